// Route actions: cluster choice, weighted clusters, rewrites, timeouts,
// policies, redirects and direct responses.

#include <catch2/catch.hpp>

#include "tests/unit/routing/route_test_support.h"

namespace turnout::routing::test {
namespace {

using Kind = RouteDecision::Kind;

Route weighted(std::vector<std::pair<std::string, uint32_t>> entries) {
  Route r;
  r.match.prefix = "/";
  r.route.emplace();
  r.route->weighted_clusters.emplace();
  for (auto& [name, w] : entries) {
    ClusterWeight cw;
    cw.name = name;
    cw.weight = w;
    r.route->weighted_clusters->clusters.push_back(cw);
  }
  return r;
}

TEST_CASE("weighted clusters pick random % total over cumulative ranges", "[routing]") {
  auto [random, want] = GENERATE(table<uint64_t, std::string>({
      {0, "a"},
      {32, "a"},
      {33, "b"},
      {65, "b"},
      {66, "c"},
      {99, "c"},
      {100, "a"},
      {133, "b"},
  }));
  auto t = mustCreate(singleVhost({weighted({{"a", 33}, {"b", 33}, {"c", 34}})}));
  CAPTURE(random);
  CHECK(clusterFor(*t, TestRequest(), random) == want);
}

TEST_CASE("zero-weight clusters are never picked", "[routing]") {
  auto t = mustCreate(singleVhost({weighted({{"zero", 0}, {"a", 1}, {"zero2", 0}, {"b", 1}})}));
  for (uint64_t r = 0; r < 10; ++r) {
    const std::string c = clusterFor(*t, TestRequest(), r);
    CHECK((c == "a" || c == "b"));
  }
}

TEST_CASE("weighted_clusters header_name supplies the random value", "[routing]") {
  Route r = weighted({{"a", 1}, {"b", 1}});
  r.route->weighted_clusters->header_name = "x-random";
  auto t = mustCreate(singleVhost({r}));
  CHECK(clusterFor(*t, TestRequest().header("x-random", "1"), 0) == "b");
  CHECK(clusterFor(*t, TestRequest().header("x-random", "2"), 1) == "a");
  // Unparsable or repeated values fall back to the stream's random value.
  CHECK(clusterFor(*t, TestRequest().header("x-random", "x"), 1) == "b");
  CHECK(clusterFor(*t, TestRequest().header("x-random", "0").header("x-random", "0"), 1) ==
        "b");
}

TEST_CASE("the chosen weighted cluster is reported with its entry", "[routing]") {
  Route r = weighted({{"a", 1}, {"b", 1}});
  r.route->weighted_clusters->clusters[1].host_rewrite_literal = "b.internal";
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  const RequestView v = req.view();
  const RouteDecision d = t->match(v, 1);
  REQUIRE(d.weighted_cluster != nullptr);
  CHECK(d.weighted_cluster->name == "b");
  CHECK(d.host_rewrite == "b.internal");
}

TEST_CASE("cluster_header takes the first value, absent gives ClusterHeaderMissing", "[routing]") {
  Route r = prefixRoute("/", "");
  r.route->cluster.reset();
  r.route->cluster_header = "X-Cluster";
  r.route->cluster_not_found_response_code = RouteAction::ClusterNotFoundResponseCode::NOT_FOUND;
  auto t = mustCreate(singleVhost({r}));
  TestRequest a;
  a.header("x-cluster", "one").header("x-cluster", "two");
  const RequestView va = a.view();
  CHECK(t->match(va, 0).cluster == "one");
  TestRequest b;
  const RequestView vb = b.view();
  const RouteDecision d = t->match(vb, 0);
  CHECK(d.kind == Kind::ClusterHeaderMissing);
  CHECK(d.status == 404);
}

TEST_CASE("cluster_header missing defaults to Envoy's 503 cluster_not_found code", "[routing]") {
  Route r = prefixRoute("/", "");
  r.route->cluster.reset();
  r.route->cluster_header = "x-cluster";
  auto t = mustCreate(singleVhost({r}));
  TestRequest b;
  const RequestView vb = b.view();
  CHECK(t->match(vb, 0).status == 503);
}

TEST_CASE("prefix_rewrite replaces the matched prefix or path and keeps the query", "[routing]") {
  auto [kind, match, rewrite, path, want] =
      GENERATE(table<std::string, std::string, std::string, std::string, std::string>({
          {"prefix", "/api/", "/", "/api/users?x=1", "/users?x=1"},
          {"prefix", "/api", "/v2", "/api/users", "/v2/users"},
          {"prefix", "/API", "/v2", "/api/users", "/v2/users"},  // case-insensitive route
          {"path", "/old", "/new", "/old?q", "/new?q"},
          {"regex", "/v[0-9]+/.*", "/x", "/v1/a?q", "/x?q"},  // regex route: whole path
          {"sep", "/api", "/b", "/api/c", "/b/c"},
      }));
  Route r = prefixRoute("/", "c");
  r.match.prefix.reset();
  if (kind == "prefix") r.match.prefix = match;
  if (kind == "path") r.match.path = match;
  if (kind == "regex") r.match.safe_regex = RegexMatcher{match};
  if (kind == "sep") r.match.path_separated_prefix = match;
  r.match.case_sensitive = false;
  r.route->prefix_rewrite = rewrite;
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  req.at(path);
  const RequestView v = req.view();
  const RouteDecision d = t->match(v, 0);
  REQUIRE(d.rewritten_path.has_value());
  CHECK(*d.rewritten_path == want);
}

TEST_CASE("regex_rewrite substitutes over the path and keeps the query", "[routing]") {
  Route r = prefixRoute("/", "c");
  r.route->regex_rewrite =
      RegexMatchAndSubstitute{RegexMatcher{"^/service/([^/]+)(/.*)$"}, "\\2/instance/\\1"};
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  req.at("/service/foo/v1/api?x=1");
  const RequestView v = req.view();
  const RouteDecision d = t->match(v, 0);
  REQUIRE(d.rewritten_path.has_value());
  CHECK(*d.rewritten_path == "/v1/api/instance/foo?x=1");
}

TEST_CASE("no rewrite leaves rewritten_path unset", "[routing]") {
  auto t = mustCreate(singleVhost({prefixRoute("/", "c")}));
  TestRequest req;
  const RequestView v = req.view();
  CHECK_FALSE(t->match(v, 0).rewritten_path.has_value());
}

TEST_CASE("host rewrites: literal, header, and the weighted cluster's literal", "[routing]") {
  Route lit = prefixRoute("/lit", "c");
  lit.route->host_rewrite_literal = "lit.internal";
  Route hdr = prefixRoute("/hdr", "c");
  hdr.route->host_rewrite_header = "X-Host";
  Route wc = weighted({{"a", 1}});
  wc.match.prefix = "/wc";
  wc.route->host_rewrite_header = "x-host";
  wc.route->weighted_clusters->clusters[0].host_rewrite_literal = "wc.internal";
  Route autoh = prefixRoute("/auto", "c");
  autoh.route->auto_host_rewrite = true;
  auto t = mustCreate(singleVhost({lit, hdr, wc, autoh}));
  auto host = [&](TestRequest req) {
    const RequestView v = req.view();
    return std::string(t->match(v, 0).host_rewrite);
  };
  CHECK(host(TestRequest().at("/lit")) == "lit.internal");
  CHECK(host(TestRequest().at("/hdr").header("x-host", "h1").header("x-host", "h2")) == "h1");
  CHECK(host(TestRequest().at("/hdr")) == "");
  CHECK(host(TestRequest().at("/wc").header("x-host", "from-header")) == "from-header");
  CHECK(host(TestRequest().at("/wc")) == "wc.internal");
  TestRequest a;
  a.at("/auto");
  const RequestView va = a.view();
  CHECK(t->match(va, 0).auto_host_rewrite);
}

TEST_CASE("timeouts default to 15 s and 0 disables", "[routing]") {
  using std::chrono::milliseconds;
  auto [timeout, want] = GENERATE(table<std::optional<milliseconds>, milliseconds>({
      {std::nullopt, milliseconds(15000)},
      {milliseconds(0), milliseconds(0)},
      {milliseconds(250), milliseconds(250)},
  }));
  Route r = prefixRoute("/", "c");
  r.route->timeout = timeout;
  r.route->idle_timeout = milliseconds(5);
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  const RequestView v = req.view();
  const RouteDecision d = t->match(v, 0);
  CHECK(d.timeout == want);
  CHECK(d.idle_timeout == milliseconds(5));
}

TEST_CASE("a route retry policy replaces the virtual host's whole", "[routing]") {
  RetryPolicy vh_policy;
  vh_policy.retry_on = "5xx";
  vh_policy.num_retries = 3;
  RetryPolicy route_policy;
  route_policy.retry_on = "reset";
  Route with = prefixRoute("/with", "c");
  with.route->retry_policy = route_policy;
  RouteConfiguration c = singleVhost({with, prefixRoute("/", "c")});
  c.virtual_hosts[0].retry_policy = vh_policy;
  auto t = mustCreate(c);
  TestRequest a;
  a.at("/with");
  const RequestView va = a.view();
  const RouteDecision da = t->match(va, 0);
  REQUIRE(da.retry_policy != nullptr);
  CHECK(da.retry_policy->retry_on == "reset");
  CHECK(da.retry_policy->num_retries == 1);  // default, not inherited
  TestRequest b;
  const RequestView vb = b.view();
  REQUIRE(t->match(vb, 0).retry_policy != nullptr);
  CHECK(t->match(vb, 0).retry_policy->retry_on == "5xx");
}

TEST_CASE("the most specific non-empty mirror policy list wins", "[routing]") {
  auto mirror = [](std::string c) {
    RequestMirrorPolicy p;
    p.cluster = std::move(c);
    return std::vector<RequestMirrorPolicy>{p};
  };
  Route own = prefixRoute("/own", "c");
  own.route->request_mirror_policies = mirror("route-shadow");
  RouteConfiguration c;
  c.request_mirror_policies = mirror("config-shadow");
  c.virtual_hosts = {vhost("a", {"a.com"}, {own, prefixRoute("/", "c")}),
                     vhost("b", {"b.com"}, {prefixRoute("/", "c")})};
  c.virtual_hosts[0].request_mirror_policies = mirror("vhost-shadow");
  auto t = mustCreate(c);
  auto first = [&](TestRequest req) {
    const RequestView v = req.view();
    const RouteDecision d = t->match(v, 0);
    return d.mirror_policies.empty() ? std::string() : d.mirror_policies[0].cluster;
  };
  CHECK(first(TestRequest().host("a.com").at("/own")) == "route-shadow");
  CHECK(first(TestRequest().host("a.com")) == "vhost-shadow");
  CHECK(first(TestRequest().host("b.com")) == "config-shadow");
}

TEST_CASE("hash policies are passed through", "[routing]") {
  Route r = prefixRoute("/", "c");
  HashPolicy h;
  h.header = HashPolicy::Header{"x-user", std::nullopt};
  h.terminal = true;
  r.route->hash_policy = {h};
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  const RequestView v = req.view();
  const RouteDecision d = t->match(v, 0);
  REQUIRE(d.hash_policy.size() == 1);
  CHECK(d.hash_policy[0].terminal);
}

TEST_CASE("direct responses report status and body", "[routing]") {
  Route r;
  r.match.prefix = "/";
  r.direct_response = DirectResponseAction{503, DataSource{std::nullopt, "down"}};
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  const RequestView v = req.view();
  const RouteDecision d = t->match(v, 0);
  CHECK(d.kind == Kind::DirectResponse);
  CHECK(d.status == 503);
  CHECK(d.body == "down");
  CHECK(redirectLocation(v, d) == "");
}

TEST_CASE("a 3xx direct response carries a Location of the request URL", "[routing]") {
  Route r;
  r.match.prefix = "/";
  r.direct_response = DirectResponseAction{302, std::nullopt};
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  req.host("a.com").at("/x?y");
  const RequestView v = req.view();
  CHECK(redirectLocation(v, t->match(v, 0)) == "http://a.com/x?y");
}

struct RedirectCase {
  std::string name;
  std::function<void(RedirectAction&)> set;
  std::string route_prefix;
  std::string scheme, host, path;
  uint32_t status;
  std::string location;
};

TEST_CASE("redirects compute Envoy's Location", "[routing]") {
  using C = RedirectAction::RedirectResponseCode;
  auto c = GENERATE_COPY(values<RedirectCase>({
      {"defaults keep the URL, 301", [](auto&) {}, "/", "http", "a.com", "/p?q", 301,
       "http://a.com/p?q"},
      {"https_redirect drops :80", [](auto& r) { r.https_redirect = true; }, "/", "http",
       "a.com:80", "/p", 301, "https://a.com/p"},
      {"https_redirect keeps a non-default port", [](auto& r) { r.https_redirect = true; }, "/",
       "http", "a.com:8080", "/p", 301, "https://a.com:8080/p"},
      {"scheme_redirect http drops :443", [](auto& r) { r.scheme_redirect = "http"; }, "/", "https",
       "a.com:443", "/p", 301, "http://a.com/p"},
      {"same scheme keeps :80", [](auto& r) { r.scheme_redirect = "http"; }, "/", "http",
       "a.com:80", "/p", 301, "http://a.com:80/p"},
      {"port_redirect replaces the port", [](auto& r) { r.port_redirect = 8443; }, "/", "http",
       "a.com:80", "/p", 301, "http://a.com:8443/p"},
      {"host_redirect", [](auto& r) { r.host_redirect = "b.com"; }, "/", "http", "a.com:9", "/p",
       301, "http://b.com/p"},
      {"ipv6 host keeps brackets", [](auto& r) { r.https_redirect = true; }, "/", "http",
       "[::1]:80", "/p", 301, "https://[::1]/p"},
      {"path_redirect keeps the request query", [](auto& r) { r.path_redirect = "/new"; }, "/",
       "http", "a.com", "/old?q=1", 301, "http://a.com/new?q=1"},
      {"path_redirect with its own query wins, strip_query ignored",
       [](auto& r) {
         r.path_redirect = "/new?x=2";
         r.strip_query = true;
       },
       "/", "http", "a.com", "/old?q=1", 301, "http://a.com/new?x=2"},
      {"strip_query", [](auto& r) { r.strip_query = true; }, "/", "http", "a.com", "/p?q=1", 301,
       "http://a.com/p"},
      {"prefix_rewrite", [](auto& r) { r.prefix_rewrite = "/v2/"; }, "/v1/", "http", "a.com",
       "/v1/x?q", 301, "http://a.com/v2/x?q"},
      {"regex_rewrite",
       [](auto& r) {
         r.regex_rewrite = RegexMatchAndSubstitute{RegexMatcher{"/(a)/(b)"}, "/\\2/\\1"};
       },
       "/", "http", "a.com", "/a/b?q", 301, "http://a.com/b/a?q"},
      {"path_redirect without leading '/' gets one", [](auto& r) { r.path_redirect = "x"; }, "/",
       "http", "a.com", "/p", 301, "http://a.com/x"},
      {"302", [](auto& r) { r.response_code = C::FOUND; }, "/", "http", "a.com", "/", 302,
       "http://a.com/"},
      {"303", [](auto& r) { r.response_code = C::SEE_OTHER; }, "/", "http", "a.com", "/", 303,
       "http://a.com/"},
      {"307", [](auto& r) { r.response_code = C::TEMPORARY_REDIRECT; }, "/", "http", "a.com", "/",
       307, "http://a.com/"},
      {"308", [](auto& r) { r.response_code = C::PERMANENT_REDIRECT; }, "/", "http", "a.com", "/",
       308, "http://a.com/"},
  }));
  Route r;
  r.match.prefix = c.route_prefix;
  r.redirect.emplace();
  c.set(*r.redirect);
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  req.host(c.host).at(c.path);
  req.scheme = c.scheme;
  const RequestView v = req.view();
  const RouteDecision d = t->match(v, 0);
  CAPTURE(c.name);
  REQUIRE(d.kind == Kind::Redirect);
  CHECK(d.status == c.status);
  CHECK(redirectLocation(v, d) == c.location);
}

}  // namespace
}  // namespace turnout::routing::test
