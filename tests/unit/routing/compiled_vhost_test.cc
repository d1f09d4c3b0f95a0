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

// `v` with a virtual-host retry policy.
VirtualHost withRetry(VirtualHost v, std::string retry_on, uint32_t num_retries) {
  v.retry_policy.emplace();
  v.retry_policy->retry_on = std::move(retry_on);
  v.retry_policy->num_retries = num_retries;
  return v;
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
  VirtualHost v = withRetry(sandboxHost("reviews", "reviews", 2), "5xx", 3);
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

// ------------------------------------------------ a new version that keeps routes

namespace {

RouteTable::VirtualHostConstSharedPtr mustReuse(
    VirtualHost v, const RouteTable::VirtualHostConstSharedPtr& previous,
    std::vector<int32_t> reuse) {
  auto c = RouteTable::compileVirtualHost(std::move(v), "vh", *previous, reuse);
  INFO((c.ok() ? std::string("ok") : std::string(c.status().message())));
  REQUIRE(c.ok());
  return *std::move(c);
}

// The host `sandboxHost(name, domain, n)` would be with `routes` as its
// routes (a copy of the routes of another build of it).
VirtualHost withRoutes(std::string name, std::string domain, std::vector<Route> routes) {
  return vhost(std::move(name), {std::move(domain)}, std::move(routes));
}

}  // namespace

TEST_CASE(
    "a new version of a virtual host shares the routes it kept and routes as one compiled whole",
    "[routing][vhds]") {
  const VirtualHost v1_config = sandboxHost("reviews", "reviews", 100);
  auto v1 = mustCompile(v1_config);

  // Version 2: a new sandbox first, sb50 gone, the rest kept in order.
  Route fresh = prefixRoute("/", "reviews-new");
  fresh.match.headers.push_back(exactHeader("x-turnout-routing-key", "new"));
  std::vector<int32_t> reuse{-1};
  std::vector<Route> whole_routes{fresh};
  for (int32_t i = 0; i <= 100; ++i) {
    if (i == 50) continue;
    reuse.push_back(i);
    whole_routes.push_back(v1_config.routes[static_cast<size_t>(i)]);
  }
  auto v2 = mustReuse(withRoutes("reviews", "reviews", {fresh}), v1, reuse);
  auto whole = mustCompile(withRoutes("reviews", "reviews", whole_routes));
  REQUIRE(RouteTable::routeCount(*v2) == 101);
  // Kept routes are the same objects; the new one is new.
  CHECK(&RouteTable::route(*v2, 1) == &RouteTable::route(*v1, 0));
  CHECK(&RouteTable::route(*v2, 100) == &RouteTable::route(*v1, 100));
  CHECK(RouteTable::route(*v2, 0).route->cluster == "reviews-new");

  auto t2 = must(RouteTable::create(RouteConfiguration{}, {v2}));
  auto tw = must(RouteTable::create(RouteConfiguration{}, {whole}));
  CHECK(t2->indexedRouteCount(0) == 100);
  for (const char* key : {"new", "sb0", "sb49", "sb50", "sb51", "sb99", "sb100", ""}) {
    INFO(key);
    CHECK(clusterFor(*t2, keyed(key).host("reviews")) ==
          clusterFor(*tw, keyed(key).host("reviews")));
    TestRequest req = keyed(key).host("reviews");
    CHECK(t2->match(req.view(), 0).route_index == tw->match(req.view(), 0).route_index);
  }
  CHECK(clusterFor(*t2, keyed("sb50").host("reviews")) == "reviews-baseline");

  // v1 can go: v2 holds what it kept.
  v1.reset();
  CHECK(clusterFor(*t2, keyed("sb7").host("reviews")) == "reviews-sb7");
}

TEST_CASE("a kept route leaving or joining a sandbox run matches as before", "[routing][vhds]") {
  auto v1 = mustCompile(sandboxHost("reviews", "reviews", 2));  // sb0, sb1 indexed, baseline
  // sb1 gone: sb0 alone is no run and needs its whole match back.
  auto v2 = mustReuse(withRoutes("reviews", "reviews", {}), v1, {0, 2});
  auto t2 = must(RouteTable::create(RouteConfiguration{}, {v2}));
  CHECK(t2->indexedRouteCount(0) == 0);
  CHECK(clusterFor(*t2, keyed("sb0").host("reviews")) == "reviews-sb0");
  CHECK(clusterFor(*t2, keyed("sb1").host("reviews")) == "reviews-baseline");
  CHECK(clusterFor(*t2, keyed("").host("reviews")) == "reviews-baseline");
  TestRequest req = keyed("sb0").host("reviews");
  CHECK(t2->matchLinear(req.view(), 0).cluster == "reviews-sb0");

  // And back into a run with a new sandbox.
  Route sb9 = prefixRoute("/", "reviews-sb9");
  sb9.match.headers.push_back(exactHeader("x-turnout-routing-key", "sb9"));
  auto v3 = mustReuse(withRoutes("reviews", "reviews", {sb9}), v2, {-1, 0, 1});
  auto t3 = must(RouteTable::create(RouteConfiguration{}, {v3}));
  CHECK(t3->indexedRouteCount(0) == 2);
  CHECK(clusterFor(*t3, keyed("sb0").host("reviews")) == "reviews-sb0");
  CHECK(clusterFor(*t3, keyed("sb9").host("reviews")) == "reviews-sb9");
  CHECK(clusterFor(*t3, keyed("sb1").host("reviews")) == "reviews-baseline");
}

TEST_CASE("a kept route takes the new version's inherited retry and mirror policies",
          "[routing][vhds]") {
  auto v1 = mustCompile(withRetry(sandboxHost("reviews", "reviews", 2), "5xx", 1));

  VirtualHost next = withRetry(withRoutes("reviews", "reviews", {}), "reset", 4);
  next.request_mirror_policies.push_back(RequestMirrorPolicy{.cluster = "shadow"});
  auto v2 = mustReuse(next, v1, {0, 1, 2});
  auto t = must(RouteTable::create(RouteConfiguration{}, {v2}));
  TestRequest req = keyed("sb1").host("reviews");
  const RouteDecision d = t->match(req.view(), 0);
  REQUIRE(d.retry_policy != nullptr);
  REQUIRE(d.retry != nullptr);
  CHECK(d.retry_policy->num_retries == 4);
  CHECK(d.retry_policy->retry_on == "reset");
  REQUIRE(d.mirror_policies.size() == 1);
  CHECK(d.mirror_policies[0].cluster == "shadow");

  // Without a host policy, a kept route has none.
  auto v3 = mustReuse(withRoutes("reviews", "reviews", {}), v2, {0, 1, 2});
  auto t3 = must(RouteTable::create(RouteConfiguration{}, {v3}));
  CHECK(t3->match(req.view(), 0).retry_policy == nullptr);
  CHECK(t3->match(req.view(), 0).mirror_policies.empty());
}

TEST_CASE("a reuse plan that does not fit, or a bad new route, is an error naming its place",
          "[routing][vhds]") {
  auto v1 = mustCompile(sandboxHost("reviews", "reviews", 2));
  auto e = RouteTable::compileVirtualHost(withRoutes("reviews", "reviews", {}), "vh", *v1,
                                          std::vector<int32_t>{0, 7});
  REQUIRE_FALSE(e.ok());
  CHECK(std::string(e.status().message()) == "vh: route 7 of the previous version does not exist");
  e = RouteTable::compileVirtualHost(withRoutes("reviews", "reviews", {}), "vh", *v1,
                                     std::vector<int32_t>{0, -1});
  REQUIRE_FALSE(e.ok());
  CHECK(std::string(e.status().message()) == "vh: 0 new routes for 1 places");

  Route bad = prefixRoute("/", "");
  e = RouteTable::compileVirtualHost(withRoutes("reviews", "reviews", {bad}), "vh", *v1,
                                     std::vector<int32_t>{0, 1, 2, -1});
  REQUIRE_FALSE(e.ok());
  CHECK(std::string(e.status().message()) == "vh.routes[3].route.cluster: must be non-empty");
}

}  // namespace turnout::routing::test
