// Virtual-host selection, as Envoy's RouteMatcher::findVirtualHost.

#include <catch2/catch.hpp>

#include "tests/unit/routing/route_test_support.h"

namespace turnout::routing::test {
namespace {

RouteConfiguration domainsConfig(bool ignore_port = false) {
  RouteConfiguration c;
  c.ignore_port_in_host_matching = ignore_port;
  c.virtual_hosts = {
      vhost("exact", {"Foo.com", "[::1]"}, {prefixRoute("/", "exact")}),
      vhost("suffix-long", {"*-bar.foo.com"}, {prefixRoute("/", "suffix-long")}),
      vhost("suffix", {"*.foo.com"}, {prefixRoute("/", "suffix")}),
      vhost("prefix-long", {"api.foo.*"}, {prefixRoute("/", "prefix-long")}),
      vhost("prefix", {"api.*"}, {prefixRoute("/", "prefix")}),
      vhost("default", {"*"}, {prefixRoute("/", "default")}),
  };
  return c;
}

TEST_CASE("virtual host selection follows exact, suffix, prefix, then default", "[routing]") {
  auto [host, want] = GENERATE(table<std::string, std::string>({
      {"foo.com", "exact"},
      {"FOO.COM", "exact"},              // lowercased at request time
      {"foo.com:8080", "default"},       // port kept without ignore_port
      {"x-bar.foo.com", "suffix-long"},  // longest suffix wins
      {"a.foo.com", "suffix"},
      {".foo.com", "default"},         // wildcard must be strictly shorter
      {"-bar.foo.com", "suffix"},      // "*-bar.foo.com" needs a non-empty '*'
      {"api.foo.net", "prefix-long"},  // longest prefix wins
      {"api.x", "prefix"},
      {"api.", "default"},
      {"api.foo.com", "suffix"},  // suffix wildcards beat prefix wildcards
      {"other.org", "default"},
      {"[::1]", "exact"},
  }));
  auto t = mustCreate(domainsConfig());
  CAPTURE(host);
  CHECK(clusterFor(*t, TestRequest().host(host)) == want);
}

TEST_CASE("ignore_port_in_host_matching strips the port before lookup", "[routing]") {
  auto [host, want] = GENERATE(table<std::string, std::string>({
      {"foo.com:8080", "exact"},
      {"foo.com:", "exact"},  // Envoy's getPortStart does not validate the port
      {"a.foo.com:443", "suffix"},
      {"[::1]:80", "exact"},
      {"[::1]", "exact"},  // ':' inside [] is not a port
  }));
  auto t = mustCreate(domainsConfig(true));
  CAPTURE(host);
  CHECK(clusterFor(*t, TestRequest().host(host)) == want);
}

TEST_CASE("a request without authority matches no virtual host", "[routing]") {
  auto t = mustCreate(domainsConfig());
  TestRequest r;
  r.has_authority = false;
  const RequestView v = r.view();
  CHECK(t->match(v, 0).kind == RouteDecision::Kind::NoRoute);
  CHECK(t->match(v, 0).virtual_host == nullptr);
}

TEST_CASE("only a default virtual host is selected even without authority", "[routing]") {
  auto t = mustCreate(singleVhost({prefixRoute("/", "only")}));
  TestRequest r;
  r.has_authority = false;
  CHECK(clusterFor(*t, r) == "only");
}

TEST_CASE("no matching domain and no default gives no route", "[routing]") {
  RouteConfiguration c;
  c.virtual_hosts = {vhost("a", {"a.com"}, {prefixRoute("/", "a")})};
  auto t = mustCreate(c);
  CHECK(clusterFor(*t, TestRequest().host("b.com")) == "<none>");
  CHECK(t->findVirtualHost("b.com") == -1);
  CHECK(t->findVirtualHost("A.com") == 0);
}

TEST_CASE("require_tls redirects plain-text requests to https", "[routing]") {
  auto [mode, proto, internal, redirected] =
      GENERATE(table<VirtualHost::TlsRequirementType, std::string, std::string, bool>({
          {VirtualHost::TlsRequirementType::ALL, "http", "", true},
          {VirtualHost::TlsRequirementType::ALL, "https", "", false},
          {VirtualHost::TlsRequirementType::EXTERNAL_ONLY, "http", "", true},
          {VirtualHost::TlsRequirementType::EXTERNAL_ONLY, "http", "true", false},
          {VirtualHost::TlsRequirementType::NONE, "http", "", false},
      }));
  RouteConfiguration c = singleVhost({prefixRoute("/", "c")});
  c.virtual_hosts[0].require_tls = mode;
  auto t = mustCreate(c);
  TestRequest r;
  r.host("a.com:8080").at("/x?y").header("x-forwarded-proto", proto);
  if (!internal.empty()) r.header("x-envoy-internal", internal);
  const RequestView v = r.view();
  const RouteDecision d = t->match(v, 0);
  if (redirected) {
    REQUIRE(d.kind == RouteDecision::Kind::Redirect);
    CHECK(d.status == 301);
    CHECK(redirectLocation(v, d) == "https://a.com:8080/x?y");
  } else {
    CHECK(d.kind == RouteDecision::Kind::Route);
  }
}

}  // namespace
}  // namespace turnout::routing::test
