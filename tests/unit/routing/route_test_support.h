#pragma once

// Builders shared by the RouteTable tests.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "routing/request_view.h"
#include "routing/route_config.h"
#include "routing/route_table.h"

namespace turnout::routing::test {

// Owns a request's strings; view() is valid while the TestRequest lives.
struct TestRequest {
  std::string method = "GET";
  std::string authority = "example.com";
  std::string path = "/";
  std::string scheme = "http";
  std::vector<std::pair<std::string, std::string>> header_list;
  bool has_authority = true;
  bool has_path = true;

  TestRequest& host(std::string h) {
    authority = std::move(h);
    return *this;
  }
  TestRequest& at(std::string p) {
    path = std::move(p);
    return *this;
  }
  TestRequest& header(std::string n, std::string v) {
    header_list.emplace_back(std::move(n), std::move(v));
    return *this;
  }
  RequestView view() {
    entries_.clear();
    for (auto& [n, v] : header_list) entries_.push_back(HeaderEntry{n, v});
    return RequestView(method, has_authority ? std::string_view(authority) : std::string_view(),
                       has_path ? std::string_view(path) : std::string_view(), entries_, scheme);
  }

 private:
  std::vector<HeaderEntry> entries_;
};

inline Route prefixRoute(std::string prefix, std::string cluster) {
  Route r;
  r.match.prefix = std::move(prefix);
  r.route.emplace();
  r.route->cluster = std::move(cluster);
  return r;
}

inline HeaderMatcher exactHeader(std::string name, std::string value) {
  HeaderMatcher h;
  h.name = std::move(name);
  h.string_match.emplace();
  h.string_match->exact = std::move(value);
  return h;
}

inline VirtualHost vhost(std::string name, std::vector<std::string> domains,
                         std::vector<Route> routes = {}) {
  VirtualHost v;
  v.name = std::move(name);
  v.domains = std::move(domains);
  v.routes = std::move(routes);
  return v;
}

inline RouteConfiguration singleVhost(std::vector<Route> routes,
                                      std::vector<std::string> domains = {"*"}) {
  RouteConfiguration c;
  c.virtual_hosts.push_back(vhost("vh", std::move(domains), std::move(routes)));
  return c;
}

inline RouteTableConstSharedPtr mustCreate(RouteConfiguration c) {
  auto t = RouteTable::create(std::move(c));
  INFO((t.ok() ? std::string("ok") : std::string(t.status().message())));
  REQUIRE(t.ok());
  return *std::move(t);
}

inline std::string createError(RouteConfiguration c) {
  auto t = RouteTable::create(std::move(c));
  return t.ok() ? std::string("<ok>") : std::string(t.status().message());
}

// A request carrying `x-turnout-routing-key: key`, as the RoutingKey filter
// leaves it (or as a client sends it when no filter is configured).
inline TestRequest keyed(std::string key) {
  TestRequest r;
  r.header("x-turnout-routing-key", std::move(key));
  return r;
}

// The cluster matched by `table` (both the indexed and the linear path, which
// must agree), or "<none>".
inline std::string clusterFor(const RouteTable& table, TestRequest req, uint64_t random = 0) {
  const RequestView v = req.view();
  const RouteDecision a = table.match(v, random);
  const RouteDecision b = table.matchLinear(v, random);
  REQUIRE(a.kind == b.kind);
  REQUIRE(a.route == b.route);
  if (a.kind != RouteDecision::Kind::Route) return "<none>";
  return std::string(a.cluster);
}

}  // namespace turnout::routing::test
