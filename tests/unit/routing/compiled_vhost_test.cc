// RouteTable::compileVirtualHost + create(config, compiled_hosts): a virtual
// host compiled once serves every table built with it (VHDS rebuilds the
// table per update from the ones it did not change), routes exactly as the
// same virtual host inline, and what needs the whole table (domains, the
// direct-response body limit, route-configuration-level policies) is
// checked and applied by the table.

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "routing/route_table.h"
#include "tests/unit/routing/route_test_support.h"

namespace turnout::routing::test {
namespace {

RouteTable::VirtualHostConstSharedPtr mustCompile(VirtualHost v, std::string_view field = "vh") {
  auto c = RouteTable::compileVirtualHost(std::move(v), field);
  INFO((c.ok() ? std::string("ok") : std::string(c.status().message())));
  REQUIRE(c.ok());
  return *std::move(c);
}

RouteTableConstSharedPtr must(absl::StatusOr<RouteTableConstSharedPtr> t) {
  INFO((t.ok() ? std::string("ok") : std::string(t.status().message())));
  REQUIRE(t.ok());
  return *std::move(t);
}

VirtualHost sandboxHost(std::string name, std::string domain, int sandboxes) {
  std::vector<Route> routes;
  for (int i = 0; i < sandboxes; ++i) {
    Route r = prefixRoute("/", name + "-sb" + std::to_string(i));
    r.match.headers.push_back(exactHeader("x-turnout-routing-key", "sb" + std::to_string(i)));
    routes.push_back(std::move(r));
  }
  routes.push_back(prefixRoute("/", name + "-baseline"));
  return vhost(std::move(name), {std::move(domain)}, std::move(routes));
}

}  // namespace

TEST_CASE("a table of compiled virtual hosts routes as the same virtual hosts inline",
          "[routing][vhds]") {
  RouteConfiguration inline_config;
  inline_config.virtual_hosts.push_back(vhost("head", {"head"}, {prefixRoute("/", "head")}));
  inline_config.virtual_hosts.push_back(sandboxHost("reviews", "reviews", 50));
  inline_config.virtual_hosts.push_back(sandboxHost("ratings", "ratings", 3));
  auto inline_table = mustCreate(inline_config);

  RouteConfiguration head;
  head.virtual_hosts.push_back(vhost("head", {"head"}, {prefixRoute("/", "head")}));
  auto shared = must(RouteTable::create(std::move(head),
                                        {mustCompile(sandboxHost("reviews", "reviews", 50)),
                                         mustCompile(sandboxHost("ratings", "ratings", 3))}));
  for (const char* host : {"head", "reviews", "ratings", "other"}) {
    for (const char* key : {"sb0", "sb2", "sb49", "sb50", ""}) {
      INFO(host << " " << key);
      CHECK(clusterFor(*shared, keyed(key).host(host)) ==
            clusterFor(*inline_table, keyed(key).host(host)));
    }
  }
  CHECK(clusterFor(*shared, keyed("sb49").host("reviews")) == "reviews-sb49");
  CHECK(shared->indexedRouteCount(1) == 50);
  CHECK(shared->indexedRouteCount(2) == 3);
}

TEST_CASE("a compiled virtual host is shared, not copied, and outlives the table it came with",
          "[routing][vhds]") {
  auto reviews = mustCompile(sandboxHost("reviews", "reviews", 10));
  auto first = must(RouteTable::create(RouteConfiguration{}, {reviews}));
  // The next update changes another virtual host only: reviews is reused.
  auto second = must(RouteTable::create(
      RouteConfiguration{}, {reviews, mustCompile(sandboxHost("ratings", "ratings", 1))}));
  TestRequest req = keyed("sb7").host("reviews");
  const RouteDecision a = first->match(req.view(), 0);
  const RouteDecision b = second->match(req.view(), 0);
  REQUIRE(a.kind == RouteDecision::Kind::Route);
  CHECK(a.route == b.route);  // the same compiled route, not a recompiled copy
  CHECK(a.virtual_host == b.virtual_host);
  first.reset();
  reviews.reset();
  // The second table keeps what its decisions point at.
  const RouteDecision c = second->match(req.view(), 0);
  CHECK(c.cluster == "reviews-sb7");
  CHECK(c.virtual_host->name == "reviews");
}

TEST_CASE("a compiled virtual host's errors name its field, the table's errors its place",
          "[routing][vhds]") {
  VirtualHost nameless = sandboxHost("", "x", 1);
  auto e = RouteTable::compileVirtualHost(nameless, "resources[3]");
  REQUIRE_FALSE(e.ok());
  CHECK(std::string(e.status().message()) == "resources[3].name: must be non-empty");

  VirtualHost bad_route = sandboxHost("r", "r", 1);
  bad_route.routes[0].route->cluster = "";
  e = RouteTable::compileVirtualHost(bad_route, "resources[0]");
  REQUIRE_FALSE(e.ok());
  CHECK(std::string(e.status().message()) == "resources[0].routes[0].route.cluster: must be "
                                             "non-empty");

  // A domain another virtual host has is the table's error, at the
  // compiled host's place after the inline ones.
  RouteConfiguration head;
  head.virtual_hosts.push_back(vhost("head", {"reviews"}, {prefixRoute("/", "head")}));
  auto t = RouteTable::create(head, {mustCompile(sandboxHost("a", "a", 1)),
                                     mustCompile(sandboxHost("reviews", "REVIEWS", 1))});
  REQUIRE_FALSE(t.ok());
  CHECK(std::string(t.status().message()) ==
        "virtual_hosts[2].domains[0]: duplicate domain \"reviews\"");

  RouteConfiguration wildcard;
  wildcard.virtual_hosts.push_back(vhost("any", {"*"}, {prefixRoute("/", "any")}));
  t = RouteTable::create(wildcard, {mustCompile(vhost("any2", {"*"}, {prefixRoute("/", "x")}))});
  REQUIRE_FALSE(t.ok());
  CHECK(absl::StrContains(t.status().message(), "virtual_hosts[1].domains[0]: only one virtual "
                                                "host may use the \"*\" domain"));
}

TEST_CASE("the direct-response body limit of the table applies to compiled virtual hosts",
          "[routing][vhds]") {
  Route big;
  big.match.prefix = "/";
  big.direct_response.emplace();
  big.direct_response->status = 200;
  big.direct_response->body.emplace();
  big.direct_response->body->inline_string = std::string(5000, 'x');
  auto host = mustCompile(vhost("big", {"big"}, {prefixRoute("/small", "c"), big}));

  // The default limit (4096) refuses it, naming the route.
  auto t = RouteTable::create(RouteConfiguration{}, {host});
  REQUIRE_FALSE(t.ok());
  CHECK(std::string(t.status().message()) ==
        "virtual_hosts[0].routes[1].direct_response.body: response body size is 5000 bytes; "
        "maximum is 4096");
  // A route configuration that allows more serves it.
  RouteConfiguration roomy;
  roomy.max_direct_response_body_size_bytes = 8192;
  auto ok = must(RouteTable::create(roomy, {host}));
  TestRequest req;
  req.host("big").at("/x");
  const RouteDecision d = ok->match(req.view(), 0);
  CHECK(d.kind == RouteDecision::Kind::DirectResponse);
  CHECK(d.body.size() == 5000);
}

TEST_CASE("route-configuration mirrors and vhost retry policies reach compiled virtual hosts",
          "[routing][vhds]") {
  VirtualHost v = sandboxHost("reviews", "reviews", 2);
  v.retry_policy.emplace();
  v.retry_policy->retry_on = "5xx";
  v.retry_policy->num_retries = 3;
  v.routes[1].route->request_mirror_policies.push_back(RequestMirrorPolicy{.cluster = "own"});
  auto host = mustCompile(std::move(v));

  RouteConfiguration head;
  head.request_mirror_policies.push_back(RequestMirrorPolicy{.cluster = "shadow"});
  auto t = must(RouteTable::create(head, {host}));
  TestRequest a = keyed("sb0").host("reviews");
  const RouteDecision d = t->match(a.view(), 0);
  REQUIRE(d.kind == RouteDecision::Kind::Route);
  REQUIRE(d.mirror_policies.size() == 1);
  CHECK(d.mirror_policies[0].cluster == "shadow");  // the route configuration's
  REQUIRE(d.retry != nullptr);
  REQUIRE(d.retry_policy != nullptr);
  CHECK(d.retry_policy->num_retries == 3);

  TestRequest b = keyed("sb1").host("reviews");
  const RouteDecision e = t->match(b.view(), 0);
  REQUIRE(e.mirror_policies.size() == 1);
  CHECK(e.mirror_policies[0].cluster == "own");  // the route's own wins

  // The same compiled host in a table without route-configuration mirrors.
  auto bare = must(RouteTable::create(RouteConfiguration{}, {host}));
  CHECK(bare->match(a.view(), 0).mirror_policies.empty());
}

}  // namespace turnout::routing::test
