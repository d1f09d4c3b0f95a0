// Issue #8: the routing-key header is an ordinary header to RouteTable. Without
// a RoutingKey filter the client's header is matched as sent (Envoy's header
// matching); with the filter, the filter's key replaces whatever the client
// sent, and no key found means no header. Every check runs both the indexed
// and the linear matcher (clusterFor) and both kinds of table.

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "routing/routing_key.h"
#include "tests/unit/routing/route_test_support.h"

namespace turnout::routing::test {
namespace {

constexpr char kKeyHeader[] = "x-turnout-routing-key";

Route routeOn(HeaderMatcher h, std::string cluster, std::string prefix = "/") {
  Route r = prefixRoute(std::move(prefix), std::move(cluster));
  r.match.headers = {std::move(h)};
  return r;
}

// A `reviews` virtual host with one route per value (exact match on header
// `name`, cluster "reviews=<value>") and the baseline last. Indexed: the
// routes form one run. Not indexed: a route on another path separates every
// two, so each is matched on its own.
RouteTableConstSharedPtr sandboxTable(bool indexed, const std::vector<std::string>& values,
                                      std::string name = kKeyHeader) {
  std::vector<Route> routes;
  for (const std::string& v : values) {
    if (!indexed) routes.push_back(prefixRoute("/elsewhere", "elsewhere"));
    routes.push_back(routeOn(exactHeader(name, v), "reviews=" + v));
  }
  routes.push_back(prefixRoute("/", "reviews"));
  auto t = mustCreate(singleVhost(routes));
  REQUIRE(t->indexedRouteCount(0) == (indexed ? values.size() : 0));
  return t;
}

// The cluster `table` picks after the RoutingKey filter (`config`, output
// header x-turnout-routing-key) has rewritten `req` the way ActiveStream does.
std::string clusterAfterFilter(const RouteTable& table, TestRequest req,
                               const RoutingKeyConfig& config) {
  const RequestView raw = req.view();
  std::string scratch;
  KeyExtraction k = extractRoutingKey(raw, config, scratch);
  const std::string key(k.key);
  k.key = key;
  std::vector<HeaderEntry> headers(raw.headers().begin(), raw.headers().end());
  applyRoutingKey(headers, kKeyHeader, k);
  const RequestView v(raw.method(), raw.authority(), raw.path(), headers, raw.scheme());
  const RouteDecision a = table.match(v, 0);
  const RouteDecision b = table.matchLinear(v, 0);
  REQUIRE(a.kind == b.kind);
  REQUIRE(a.route == b.route);
  return a.kind == RouteDecision::Kind::Route ? std::string(a.cluster) : "<none>";
}

RoutingKeyConfig baggageOnly() {
  RoutingKeyConfig c;
  c.sources = {{KeySourceKind::kBaggage, "turnout-routing-key"}};
  return c;
}

TEST_CASE(
    "without a RoutingKey filter a route on x-turnout-routing-key matches the client's header",
    "[routing][routing_key]") {
  const bool indexed = GENERATE(true, false);
  CAPTURE(indexed);
  auto t = sandboxTable(indexed, {"feat-x", "feat-y", "feat-z"});
  CHECK(clusterFor(*t, keyed("feat-x")) == "reviews=feat-x");
  CHECK(clusterFor(*t, keyed("feat-z")) == "reviews=feat-z");
  CHECK(clusterFor(*t, keyed("feat-q")) == "reviews");
  CHECK(clusterFor(*t, keyed("FEAT-X")) == "reviews");  // values are case-sensitive
  CHECK(clusterFor(*t, keyed("")) == "reviews");
  CHECK(clusterFor(*t, TestRequest()) == "reviews");
  // A key in baggage means nothing without the filter.
  CHECK(clusterFor(*t, TestRequest().header("baggage", "turnout-routing-key=feat-x")) == "reviews");
}

TEST_CASE("the deprecated key argument of match() is ignored: the view decides",
          "[routing][routing_key]") {
  const bool indexed = GENERATE(true, false);
  CAPTURE(indexed);
  auto t = sandboxTable(indexed, {"feat-x", "feat-y"});
  TestRequest none;
  CHECK(t->match(none.view(), "feat-x", 0).cluster == "reviews");
  CHECK(t->matchLinear(none.view(), "feat-x", 0).cluster == "reviews");
  TestRequest x = keyed("feat-x");
  CHECK(t->match(x.view(), "feat-y", 0).cluster == "reviews=feat-x");
  CHECK(t->match(x.view(), "", 0).cluster == "reviews=feat-x");
}

TEST_CASE("routing-key header names in matchers are case-insensitive", "[routing][routing_key]") {
  const bool indexed = GENERATE(true, false);
  const std::string name = GENERATE("X-Turnout-Routing-Key", "x-TURNOUT-routing-key");
  CAPTURE(indexed, name);
  auto t = sandboxTable(indexed, {"feat-x", "feat-y"}, name);
  // The codec lowercases request header names; the view holds them so.
  CHECK(clusterFor(*t, keyed("feat-y")) == "reviews=feat-y");
  CHECK(clusterFor(*t, TestRequest()) == "reviews");
}

TEST_CASE("matchers spelling the header name differently still form one indexed run",
          "[routing][routing_key]") {
  auto t = mustCreate(singleVhost({routeOn(exactHeader("X-Turnout-Routing-Key", "a"), "a"),
                                   routeOn(exactHeader("x-turnout-routing-key", "b"), "b"),
                                   routeOn(exactHeader("x-Turnout-Routing-KEY", "c"), "c"),
                                   prefixRoute("/", "reviews")}));
  CHECK(t->indexedRouteCount(0) == 3);
  CHECK(clusterFor(*t, keyed("a")) == "a");
  CHECK(clusterFor(*t, keyed("c")) == "c");
}

TEST_CASE("a repeated routing-key header is matched as its values joined with ','",
          "[routing][routing_key]") {
  // Envoy's HeaderUtility::getAllOfHeaderAsString: StrJoin(values, ","), no
  // space, in arrival order; an exact matcher compares the joined string.
  const bool indexed = GENERATE(true, false);
  CAPTURE(indexed);
  auto t = sandboxTable(indexed, {"feat-x", "feat-x,feat-y", "feat-y, feat-z"});
  CHECK(clusterFor(*t, keyed("feat-x").header(kKeyHeader, "feat-x")) == "reviews");
  CHECK(clusterFor(*t, keyed("feat-x").header(kKeyHeader, "feat-y")) == "reviews=feat-x,feat-y");
  CHECK(clusterFor(*t, keyed("feat-y").header(kKeyHeader, "feat-x")) == "reviews");
  CHECK(clusterFor(*t, keyed("feat-x").header(kKeyHeader, "")) == "reviews");  // "feat-x,"
  // Other headers in between do not matter; only this header's values join.
  CHECK(clusterFor(*t, keyed("feat-x").header("x-other", "1").header(kKeyHeader, "feat-y")) ==
        "reviews=feat-x,feat-y");
  // The separator is "," without a space: "feat-y,feat-z" != "feat-y, feat-z".
  CHECK(clusterFor(*t, keyed("feat-y").header(kKeyHeader, "feat-z")) == "reviews");
  CHECK(clusterFor(*t, keyed("feat-y, feat-z")) == "reviews=feat-y, feat-z");
}

TEST_CASE("with a RoutingKey filter its key replaces a forged routing-key header",
          "[routing][routing_key]") {
  const bool indexed = GENERATE(true, false);
  CAPTURE(indexed);
  auto t = sandboxTable(indexed, {"feat-x", "feat-y"});
  const RoutingKeyConfig defaults = RoutingKeyConfig::defaults();
  TestRequest forged = keyed("feat-x").header("baggage", "turnout-routing-key=feat-y");
  // Baggage outranks the plain header among the default sources.
  CHECK(clusterAfterFilter(*t, forged, defaults) == "reviews=feat-y");
  CHECK(clusterAfterFilter(*t,
                           keyed("feat-x")
                               .header(kKeyHeader, "feat-x")
                               .header("baggage", "turnout-routing-key=feat-y"),
                           defaults) == "reviews=feat-y");
  // The same request without the filter: the client's header is what counts.
  CHECK(clusterFor(*t, forged) == "reviews=feat-x");
  // The plain header is itself a default source, so alone it is the key.
  CHECK(clusterAfterFilter(*t, keyed("feat-x"), defaults) == "reviews=feat-x");
}

TEST_CASE("with a RoutingKey filter that finds no key a forged routing-key header is ignored",
          "[routing][routing_key]") {
  const bool indexed = GENERATE(true, false);
  CAPTURE(indexed);
  auto t = sandboxTable(indexed, {"feat-x", "feat-x,feat-y"});
  // Sources without the plain header: the client's header is never a key.
  CHECK(clusterAfterFilter(*t, keyed("feat-x"), baggageOnly()) == "reviews");
  // Default sources, but the header's value is not a valid key (',').
  CHECK(clusterAfterFilter(*t, keyed("feat-x,feat-y"), RoutingKeyConfig::defaults()) == "reviews");
  // ... and two different values are a conflict, not a key.
  CHECK(clusterAfterFilter(*t, keyed("feat-x").header(kKeyHeader, "feat-y"),
                           RoutingKeyConfig::defaults()) == "reviews");
  // Without the filter both requests would reach a fork.
  CHECK(clusterFor(*t, keyed("feat-x")) == "reviews=feat-x");
  CHECK(clusterFor(*t, keyed("feat-x").header(kKeyHeader, "feat-y")) == "reviews=feat-x,feat-y");
}

TEST_CASE("present_match and invert_match on the routing-key header behave as in Envoy",
          "[routing][routing_key]") {
  HeaderMatcher present;
  present.name = kKeyHeader;
  present.present_match = true;
  HeaderMatcher absent = present;
  absent.present_match = false;
  HeaderMatcher inverted_present = present;
  inverted_present.invert_match = true;
  HeaderMatcher not_x = exactHeader(kKeyHeader, "feat-x");
  not_x.invert_match = true;
  HeaderMatcher not_x_or_missing = not_x;
  not_x_or_missing.treat_missing_header_as_empty = true;
  auto t = mustCreate(singleVhost(
      {routeOn(present, "present", "/p"), routeOn(absent, "absent", "/a"),
       routeOn(inverted_present, "inverted-present", "/ip"), routeOn(not_x, "not-x", "/n"),
       routeOn(not_x_or_missing, "not-x-or-missing", "/m"), prefixRoute("/", "baseline")}));
  const RoutingKeyConfig defaults = RoutingKeyConfig::defaults();

  SECTION("without a filter the client's header decides") {
    CHECK(clusterFor(*t, keyed("feat-x").at("/p")) == "present");
    CHECK(clusterFor(*t, keyed("").at("/p")) == "present");  // present, empty value
    CHECK(clusterFor(*t, TestRequest().at("/p")) == "baseline");
    CHECK(clusterFor(*t, TestRequest().at("/a")) == "absent");
    CHECK(clusterFor(*t, keyed("feat-x").at("/a")) == "baseline");
    CHECK(clusterFor(*t, TestRequest().at("/ip")) == "inverted-present");
    CHECK(clusterFor(*t, keyed("feat-x").at("/ip")) == "baseline");
    CHECK(clusterFor(*t, keyed("feat-y").at("/n")) == "not-x");
    CHECK(clusterFor(*t, keyed("feat-x").at("/n")) == "baseline");
    // Envoy: an absent header fails every non-presence matcher, inverted or not...
    CHECK(clusterFor(*t, TestRequest().at("/n")) == "baseline");
    // ... unless treat_missing_header_as_empty matches "" instead.
    CHECK(clusterFor(*t, TestRequest().at("/m")) == "not-x-or-missing");
    CHECK(clusterFor(*t, keyed("feat-x").at("/m")) == "baseline");
  }
  SECTION("with a filter that finds no key the forged header is absent") {
    const TestRequest forged = keyed("not a key!");
    CHECK(clusterAfterFilter(*t, TestRequest(forged).at("/p"), defaults) == "baseline");
    CHECK(clusterAfterFilter(*t, TestRequest(forged).at("/a"), defaults) == "absent");
    CHECK(clusterAfterFilter(*t, TestRequest(forged).at("/ip"), defaults) == "inverted-present");
    CHECK(clusterAfterFilter(*t, TestRequest(forged).at("/n"), defaults) == "baseline");
    CHECK(clusterAfterFilter(*t, TestRequest(forged).at("/m"), defaults) == "not-x-or-missing");
  }
  SECTION("with a filter that finds a key the header holds exactly that key") {
    const TestRequest forged = keyed("feat-y").header("baggage", "turnout-routing-key=feat-x");
    CHECK(clusterAfterFilter(*t, TestRequest(forged).at("/p"), defaults) == "present");
    CHECK(clusterAfterFilter(*t, TestRequest(forged).at("/a"), defaults) == "baseline");
    CHECK(clusterAfterFilter(*t, TestRequest(forged).at("/n"), defaults) == "baseline");
    CHECK(clusterAfterFilter(*t, TestRequest(forged).at("/m"), defaults) == "baseline");
  }
}

TEST_CASE("applyRoutingKey replaces every value of the output header or removes it",
          "[routing][routing_key]") {
  const std::vector<HeaderEntry> request = {{"x-turnout-routing-key", "forged-1"},
                                            {"accept", "*/*"},
                                            {"x-turnout-routing-key", "forged-2"}};
  KeyExtraction found;
  const KeySource source{KeySourceKind::kBaggage, "turnout-routing-key"};
  found.source = &source;
  found.key = "feat-y";
  std::vector<HeaderEntry> h = request;
  applyRoutingKey(h, "x-turnout-routing-key", found);
  REQUIRE(h.size() == 2);
  CHECK(h[0].name == "accept");
  CHECK(h[1].name == "x-turnout-routing-key");
  CHECK(h[1].value == "feat-y");

  h = request;
  applyRoutingKey(h, "x-turnout-routing-key", KeyExtraction{});
  REQUIRE(h.size() == 1);
  CHECK(h[0].name == "accept");
}

}  // namespace
}  // namespace turnout::routing::test
