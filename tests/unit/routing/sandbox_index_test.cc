// The sandbox index: runs of routes differing only by one exact header value
// become one hash lookup, with first-match-wins preserved.

#include <random>

#include <catch2/catch.hpp>

#include "routing/header_index.h"
#include "tests/unit/routing/route_test_support.h"

namespace turnout::routing::test {
namespace {

Route sandboxRoute(std::string key, std::string cluster, std::string prefix = "/") {
  Route r = prefixRoute(std::move(prefix), std::move(cluster));
  r.match.headers = {exactHeader("x-turnout-routing-key", std::move(key))};
  return r;
}

TEST_CASE("runs of exact-header routes are indexed and lookups honour order", "[routing]") {
  std::vector<Route> routes;
  routes.push_back(prefixRoute("/health", "health"));
  for (int i = 0; i < 1000; ++i) {
    routes.push_back(sandboxRoute("sb" + std::to_string(i), "svc-sb" + std::to_string(i)));
  }
  routes.push_back(sandboxRoute("sb5", "shadowed"));  // duplicate: earliest wins
  routes.push_back(prefixRoute("/", "baseline"));
  auto t = mustCreate(singleVhost(routes));
  CHECK(t->indexedRouteCount(0) == 1001);
  CHECK(clusterFor(*t, keyed("sb0")) == "svc-sb0");
  CHECK(clusterFor(*t, keyed("sb999")) == "svc-sb999");
  CHECK(clusterFor(*t, keyed("sb5")) == "svc-sb5");
  CHECK(clusterFor(*t, keyed("nope")) == "baseline");
  CHECK(clusterFor(*t, keyed("")) == "baseline");
  CHECK(clusterFor(*t, TestRequest()) == "baseline");
  CHECK(clusterFor(*t, keyed("sb1").at("/health")) == "health");  // before the run
}

TEST_CASE("matchers that are not plain exact values are not indexed", "[routing]") {
  auto [name, mutate] = GENERATE(table<std::string, std::function<void(HeaderMatcher&)>>({
      {"ignore_case", [](HeaderMatcher& h) { h.string_match->ignore_case = true; }},
      {"invert_match", [](HeaderMatcher& h) { h.invert_match = true; }},
      {"prefix", [](HeaderMatcher& h) {
         h.string_match->prefix = *h.string_match->exact;
         h.string_match->exact.reset();
       }},
      {"deprecated empty exact_match", [](HeaderMatcher& h) {
         h.string_match.reset();
         h.exact_match = "";
       }},
  }));
  std::vector<Route> routes;
  for (int i = 0; i < 3; ++i) {
    Route r = sandboxRoute("k" + std::to_string(i), "c" + std::to_string(i));
    mutate(r.match.headers[0]);
    routes.push_back(r);
  }
  auto t = mustCreate(singleVhost(routes));
  CAPTURE(name);
  CHECK(t->indexedRouteCount(0) == 0);
}

TEST_CASE("deprecated exact_match values are indexed like string_match.exact", "[routing]") {
  std::vector<Route> routes;
  for (int i = 0; i < 3; ++i) {
    Route r = prefixRoute("/", "c" + std::to_string(i));
    HeaderMatcher h;
    h.name = "X-Tenant";
    h.exact_match = "t" + std::to_string(i);
    r.match.headers = {h};
    routes.push_back(r);
  }
  auto t = mustCreate(singleVhost(routes));
  CHECK(t->indexedRouteCount(0) == 3);
  CHECK(clusterFor(*t, TestRequest().header("x-tenant", "t2")) == "c2");
}

TEST_CASE("routes differing in anything else break the run", "[routing]") {
  std::vector<Route> routes{sandboxRoute("a", "a"), sandboxRoute("b", "b", "/other"),
                            sandboxRoute("c", "c")};
  auto t = mustCreate(singleVhost(routes));
  CHECK(t->indexedRouteCount(0) == 0);
  CHECK(findIndexedRuns(singleVhost(routes).virtual_hosts[0].routes).empty());
}

TEST_CASE("CONNECT routes per key form runs of their own", "[routing]") {
  // A sandbox's CONNECT tunnel (connect_matcher plus the key) next to its
  // path routes: neither run takes the other's requests.
  std::vector<Route> routes;
  for (int i = 0; i < 8; ++i) {
    Route r = sandboxRoute("sb" + std::to_string(i), "tcp-sb" + std::to_string(i));
    r.match.prefix.reset();
    r.match.connect_matcher = true;
    routes.push_back(r);
  }
  for (int i = 0; i < 8; ++i) {
    routes.push_back(sandboxRoute("sb" + std::to_string(i), "http-sb" + std::to_string(i)));
  }
  auto t = mustCreate(singleVhost(routes));
  CHECK(t->indexedRouteCount(0) == 16);
  CHECK(findIndexedRuns(singleVhost(routes).virtual_hosts[0].routes).size() == 2);
  TestRequest connect = keyed("sb3");
  connect.method = "CONNECT";
  connect.path = "";
  CHECK(clusterFor(*t, connect) == "tcp-sb3");
  CHECK(clusterFor(*t, keyed("sb3")) == "http-sb3");
}

TEST_CASE("the indexed header may sit at any position of headers[]", "[routing]") {
  std::vector<Route> routes;
  for (int i = 0; i < 4; ++i) {
    Route r = prefixRoute("/", "c" + std::to_string(i));
    r.match.headers = {exactHeader("x-env", "prod"),
                       exactHeader("x-turnout-routing-key", "k" + std::to_string(i))};
    routes.push_back(r);
  }
  routes.push_back(prefixRoute("/", "baseline"));
  auto t = mustCreate(singleVhost(routes));
  CHECK(t->indexedRouteCount(0) == 4);
  CHECK(clusterFor(*t, keyed("k3").header("x-env", "prod")) == "c3");
  CHECK(clusterFor(*t, keyed("k3").header("x-env", "dev")) == "baseline");
}

// Random route tables over a small alphabet of matchers, so that runs,
// duplicates, interleavings and near-misses all occur.
Route randomRoute(std::mt19937_64& rng, int i) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  const char* prefixes[] = {"/", "/a", "/b"};
  Route r = prefixRoute(prefixes[pick(3)], "c" + std::to_string(i));
  if (pick(4) == 0) {
    r.match.prefix.reset();
    r.match.path_separated_prefix = "/a";
  }
  const char* names[] = {"x-turnout-routing-key", "X-Turnout-Routing-Key", "x-tenant"};
  const char* values[] = {"k0", "k1", "k2", "k3", ""};
  const int nheaders = pick(3);
  for (int h = 0; h < nheaders; ++h) {
    HeaderMatcher m;
    m.name = names[pick(3)];
    switch (pick(6)) {
      case 0:
        m.exact_match = values[pick(5)];
        break;
      case 1:
        m.present_match = pick(2) == 0;
        break;
      case 2:
        m.string_match.emplace();
        m.string_match->prefix = "k";
        break;
      default:
        m.string_match.emplace();
        m.string_match->exact = values[pick(5)];
        m.treat_missing_header_as_empty = pick(5) == 0;
        break;
    }
    r.match.headers.push_back(m);
  }
  if (pick(8) == 0) {
    r.match.runtime_fraction = RuntimeFractionalPercent{
        FractionalPercent{50, FractionalPercent::DenominatorType::HUNDRED}, ""};
  }
  if (pick(10) == 0) {
    QueryParameterMatcher q;
    q.name = "q";
    r.match.query_parameters.push_back(q);
  }
  return r;
}

TEST_CASE("an indexed route rewrites the path its run matched", "[routing]") {
  // An indexed route keeps no match of its own: the length a prefix_rewrite
  // replaces comes from its run's common match.
  std::vector<Route> routes;
  for (int i = 0; i < 3; ++i) {
    Route r = sandboxRoute("sb" + std::to_string(i), "c" + std::to_string(i), "/api/");
    r.route->prefix_rewrite = "/v2/";
    routes.push_back(r);
  }
  routes.push_back(prefixRoute("/", "baseline"));
  auto t = mustCreate(singleVhost(routes));
  REQUIRE(t->indexedRouteCount(0) == 3);
  for (bool linear : {false, true}) {
    CAPTURE(linear);
    TestRequest req = keyed("sb1").at("/api/items?x=1");
    const RequestView v = req.view();
    const RouteDecision d = linear ? t->matchLinear(v, 0) : t->match(v, 0);
    CHECK(d.cluster == "c1");
    CHECK(d.rewritten_path == "/v2/items?x=1");
    TestRequest other = keyed("sb1").at("/apix");
    CHECK(clusterFor(*t, other) == "baseline");
  }
}

TEST_CASE("the indexed match equals a linear match on random tables", "[routing]") {
  std::mt19937_64 rng(GENERATE(1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u));
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  std::vector<Route> routes;
  // Bias towards runs: repeat a template with different key values.
  while (routes.size() < 60) {
    Route base = randomRoute(rng, static_cast<int>(routes.size()));
    const int copies = pick(3) == 0 ? 1 : 2 + pick(6);
    for (int c = 0; c < copies; ++c) {
      Route r = base;
      r.route->cluster = "c" + std::to_string(routes.size());
      if (!r.match.headers.empty() && pick(5) != 0) {
        HeaderMatcher& h =
            r.match.headers[static_cast<size_t>(pick(static_cast<int>(r.match.headers.size())))];
        h = exactHeader(h.name, "k" + std::to_string(pick(5)));
      }
      routes.push_back(r);
    }
  }
  auto t = mustCreate(singleVhost(routes));
  const size_t indexed = t->indexedRouteCount(0);
  CHECK(indexed > 0);
  const char* paths[] = {"/", "/a", "/a/x", "/ab", "/b?q=1", "/a?q"};
  const char* keys[] = {"", "k0", "k1", "k2", "k3", "k4"};
  for (int n = 0; n < 400; ++n) {
    TestRequest req;
    req.at(paths[pick(6)]);
    if (pick(2) == 0) req.header("x-tenant", keys[pick(6)]);
    if (pick(4) == 0) req.header("x-tenant", keys[pick(6)]);
    if (pick(2) == 0) req.header("x-turnout-routing-key", keys[pick(6)]);
    if (pick(4) == 0) req.header("x-turnout-routing-key", keys[pick(6)]);
    const uint64_t random = rng();
    const RequestView v = req.view();
    const RouteDecision a = t->match(v, random);
    const RouteDecision b = t->matchLinear(v, random);
    CAPTURE(n, req.path, indexed);
    REQUIRE(a.kind == b.kind);
    REQUIRE(a.route == b.route);
  }
}

}  // namespace
}  // namespace turnout::routing::test
