#include "config/snapshot/route_config_translator.h"

#include <unistd.h>
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "config/snapshot/discovery_response.h"
#include "google/protobuf/util/json_util.h"
#include "routing/cors.h"
#include "routing/request_view.h"

namespace turnout::config {
namespace {

envoy::config::route::v3::RouteConfiguration parse(const std::string& json) {
  envoy::config::route::v3::RouteConfiguration rc;
  auto st = google::protobuf::util::JsonStringToMessage(json, &rc);
  INFO(st.ToString());
  REQUIRE(st.ok());
  return rc;
}

std::string errorOf(const std::string& json) {
  auto t = translateRouteConfiguration(parse(json), "route_config");
  REQUIRE_FALSE(t.ok());
  return std::string(t.status().message());
}

// A two-service sandbox table: reviews has a feat-x fork, ratings none.
const char* kSandboxConfig = R"({
  "name": "services",
  "virtual_hosts": [
    {"name": "reviews", "domains": ["reviews"], "routes": [
      {"match": {"prefix": "/", "headers": [
         {"name": "x-turnout-routing-key", "string_match": {"exact": "feat-x"}}]},
       "route": {"cluster": "reviews-feat-x"}},
      {"match": {"prefix": "/"}, "route": {"cluster": "reviews", "timeout": "2.5s"},
       "decorator": {"operation": "reviews"}}
    ]},
    {"name": "ratings", "domains": ["ratings"], "routes": [
      {"match": {"prefix": "/api", "headers": [{"name": "x-env", "exact_match": "canary"}]},
       "route": {"cluster": "ratings-canary"}},
      {"match": {"prefix": "/"}, "route": {"cluster": "ratings"}}
    ]}
  ]
})";

routing::RouteDecision route(const routing::RouteTable& table, std::string authority,
                             std::string path, std::string key,
                             std::vector<routing::HeaderEntry> headers = {}) {
  // The key as the RoutingKey filter leaves it: in x-turnout-routing-key.
  if (!key.empty()) headers.push_back({"x-turnout-routing-key", key});
  routing::RequestView view("GET", authority, path, headers);
  return table.match(view, 0);
}

TEST_CASE("sandbox routes from an Envoy RouteConfiguration send the key to the fork",
          "[config][translator]") {
  auto [authority, key, cluster] = GENERATE(table<std::string, std::string, std::string>({
      {"reviews", "feat-x", "reviews-feat-x"},
      {"reviews", "", "reviews"},
      {"reviews", "feat-y", "reviews"},
      {"ratings", "feat-x", "ratings"},
  }));
  auto rt = translateRouteConfiguration(parse(kSandboxConfig), "route_config");
  REQUIRE(rt.ok());
  auto d = route(**rt, authority, "/", key);
  REQUIRE(d.kind == routing::RouteDecision::Kind::Route);
  CHECK(d.cluster == cluster);
}

TEST_CASE("durations and deprecated header matchers translate", "[config][translator]") {
  auto config = toRouteConfiguration(parse(kSandboxConfig), "route_config");
  REQUIRE(config.ok());
  const auto& baseline = config->virtual_hosts[0].routes[1].route;
  REQUIRE(baseline.has_value());
  CHECK(baseline->timeout == std::chrono::milliseconds(2500));
  CHECK(config->virtual_hosts[1].routes[0].match.headers[0].exact_match == "canary");
  auto rt = translateRouteConfiguration(parse(kSandboxConfig), "route_config");
  REQUIRE(rt.ok());
  std::vector<routing::HeaderEntry> h = {{"x-env", "canary"}};
  CHECK(route(**rt, "ratings", "/api/v1", "", h).cluster == "ratings-canary");
  CHECK(route(**rt, "ratings", "/web", "", h).cluster == "ratings");
}

TEST_CASE("fields turnout does not implement are rejected with their path",
          "[config][translator]") {
  auto [json, expected] = GENERATE(table<std::string, std::string>({
      {R"({"virtual_hosts":[{"name":"a","domains":["*"],"routes":[{"match":{"prefix":"/"},
          "route":{"cluster":"c","metadata_match":{"filter_metadata":{"envoy.lb":{"v":"1"}}}}}]}]})",
       "route_config.virtual_hosts[0].routes[0].route.metadata_match: field "
       "'envoy.config.route.v3.RouteAction.metadata_match' is not supported by turnout"},
      {R"({"virtual_hosts":[{"name":"a","domains":["*"],"routes":[{"match":{"prefix":"/",
          "tls_context":{"presented":true}},"route":{"cluster":"c"}}]}]})",
       "route_config.virtual_hosts[0].routes[0].match.tls_context: field "
       "'envoy.config.route.v3.RouteMatch.tls_context' is not supported by turnout"},
      {R"({"virtual_hosts":[{"name":"a","domains":["*"],"routes":[{"match":{"prefix":"/"},
          "route":{"cluster":"c","hedge_policy":{"hedge_on_per_try_timeout":true}}}]}]})",
       "route_config.virtual_hosts[0].routes[0].route.hedge_policy: field "
       "'envoy.config.route.v3.RouteAction.hedge_policy' is not supported by turnout"},
      {R"({"virtual_hosts":[{"name":"a","domains":["*"],"routes":[{"match":{"prefix":"/"},
          "route":{"cluster":"c","max_stream_duration":{"max_stream_duration":"5s"}}}]}]})",
       "route_config.virtual_hosts[0].routes[0].route.max_stream_duration: a non-zero "
       "max_stream_duration is not supported by turnout"},
      {R"({"virtual_hosts":[{"name":"a","domains":["*"],"routes":[{"match":{"prefix":"/"},
          "route":{"cluster":"c","upgrade_configs":[{"upgrade_type":"spdy/3.1"}]}}]}]})",
       "route_config.virtual_hosts[0].routes[0].route.upgrade_configs[0].upgrade_type: upgrade "
       "type 'spdy/3.1' is not supported by turnout (websocket or CONNECT)"},
      {R"({"virtual_hosts":[{"name":"a","domains":["*"],"routes":[{"match":{"prefix":"/"},
          "route":{"cluster":"c","upgrade_configs":[{"upgrade_type":"websocket",
          "connect_config":{}}]}}]}]})",
       "route_config.virtual_hosts[0].routes[0].route.upgrade_configs[0].connect_config: only a "
       "CONNECT upgrade can have one"},
      {R"({"virtual_hosts":[{"name":"a","domains":["*"],"routes":[{"match":{"connect_matcher":{}},
          "route":{"cluster":"c","upgrade_configs":[{"upgrade_type":"CONNECT",
          "connect_config":{"allow_post":true}}]}}]}]})",
       "route_config.virtual_hosts[0].routes[0].route.upgrade_configs[0].connect_config."
       "allow_post: terminating POST requests as TCP tunnels is not supported by turnout"},
      {R"({"virtual_hosts":[{"name":"a","domains":["*"],"routes":[{"match":{"connect_matcher":{}},
          "route":{"cluster":"c","upgrade_configs":[{"upgrade_type":"CONNECT",
          "connect_config":{"proxy_protocol_config":{}}}]}}]}]})",
       "route_config.virtual_hosts[0].routes[0].route.upgrade_configs[0].connect_config."
       "proxy_protocol_config: a PROXY protocol header on terminated CONNECT tunnels is not "
       "supported by turnout"},
      {R"({"virtual_hosts":[{"name":"a","domains":["*"],"routes":[{"match":{"prefix":"/"},
          "route":{"cluster":"c","retry_policy":{"retry_host_predicate":[{"name":"x",
          "typed_config":{"@type":"type.googleapis.com/google.protobuf.Empty"}}]}}}]}]})",
       "route_config.virtual_hosts[0].routes[0].route.retry_policy.retry_host_predicate[0]."
       "typed_config: unsupported retry host predicate 'type.googleapis.com/google.protobuf."
       "Empty'"},
      {R"({"virtual_hosts":[{"name":"a","domains":["*"],"routes":[{"match":{"prefix":"/"},
          "direct_response":{"status":200,"body":{"filename":"/nonexistent/turnout-body"}}}]}]})",
       "route_config.virtual_hosts[0].routes[0].direct_response.body.filename: cannot read "
       "'/nonexistent/turnout-body'"},
  }));
  CHECK(errorOf(json) == expected);
}

TEST_CASE("vhds is refused with its path unless the route configuration comes over Delta ADS",
          "[config][translator][vhds]") {
  // An inline route_config (or a file) cannot take VHDS: Envoy's reason, the path.
  CHECK(errorOf(R"({"vhds":{"config_source":{"ads":{}}}})") ==
        "route_config.vhds: only 'DELTA_GRPC' or 'ADS' (which uses Delta xDS) is supported as "
        "a config source; turnout takes VHDS only for a route configuration delivered by RDS "
        "over ADS with dynamic_resources.ads_config.api_type DELTA_GRPC");
  auto [json, available, expected] = GENERATE(table<std::string, VhdsSource, std::string>({
      {R"({"name":"outbound","vhds":{"config_source":{"ads":{}}}})", VhdsSource::kDeltaAds, ""},
      {R"({"name":"outbound"})", VhdsSource::kNone, ""},
      {R"({"name":"outbound","vhds":{"config_source":{"ads":{}}}})", VhdsSource::kSotwAds,
       "resources[0].vhds.config_source.ads: only 'DELTA_GRPC' or 'ADS' (which uses Delta xDS) "
       "is supported as a config source; this ADS stream is State of the World "
       "(dynamic_resources.ads_config.api_type GRPC), VHDS needs DELTA_GRPC"},
      {R"({"name":"outbound","vhds":{"config_source":{"ads":{}}}})", VhdsSource::kNone,
       "resources[0].vhds: only 'DELTA_GRPC' or 'ADS' (which uses Delta xDS) is supported as a "
       "config source; turnout takes VHDS only for a route configuration delivered by RDS over "
       "ADS with dynamic_resources.ads_config.api_type DELTA_GRPC"},
      {R"({"name":"outbound","vhds":{"config_source":{"api_config_source":{
          "api_type":"DELTA_GRPC"}}}})", VhdsSource::kDeltaAds,
       "resources[0].vhds.config_source.api_config_source: only 'DELTA_GRPC' or 'ADS' (which "
       "uses Delta xDS) is supported as a config source; turnout takes VHDS only over the ADS "
       "stream (ads: {} with ads_config.api_type DELTA_GRPC), not from a separate source"},
      {R"({"name":"outbound","vhds":{"config_source":{"path_config_source":{"path":"/x"}}}})",
       VhdsSource::kDeltaAds,
       "resources[0].vhds.config_source: only 'DELTA_GRPC' or 'ADS' (which uses Delta xDS) is "
       "supported as a config source"},
  }));
  absl::Status st = checkVhds(parse(json), "resources[0]", available);
  CHECK(std::string(st.message()) == expected);
}

TEST_CASE("a VHDS virtual host is checked as an inline one, its errors naming the resource",
          "[config][translator][vhds]") {
  envoy::config::route::v3::VirtualHost vh;
  REQUIRE(google::protobuf::util::JsonStringToMessage(
              R"({"name":"outbound/reviews","domains":["reviews"],"routes":[
                 {"match":{"prefix":"/"},"route":{"cluster":"reviews"}}]})", &vh)
              .ok());
  CHECK(checkVirtualHost(vh, "resources[3]").ok());
  vh.mutable_routes(0)->mutable_route()->mutable_hedge_policy()->set_hedge_on_per_try_timeout(true);
  CHECK(std::string(checkVirtualHost(vh, "resources[3]").status().message()) ==
        "resources[3].routes[0].route.hedge_policy: field "
        "'envoy.config.route.v3.RouteAction.hedge_policy' is not supported by turnout");
  vh.mutable_routes(0)->mutable_route()->clear_hedge_policy();
  vh.clear_domains();
  CHECK(absl::StrContains(checkVirtualHost(vh, "resources[3]").status().message(), "resources[3].domains"));
}

TEST_CASE(
    "a new version of a VHDS virtual host parses and compiles only the routes it did not have",
    "[config][translator][xds]") {
  envoy::config::route::v3::VirtualHost vh;
  REQUIRE(google::protobuf::util::JsonStringToMessage(
              R"({"name":"outbound/reviews","domains":["reviews"],"routes":[
                 {"match":{"prefix":"/","headers":[{"name":"x-turnout-routing-key",
                   "string_match":{"exact":"a"}}]},"route":{"cluster":"reviews--a"}},
                 {"match":{"prefix":"/"},"route":{"cluster":"reviews"}}]})",
              &vh)
              .ok());
  using Host = routing::RouteTable;
  RouteKeys k1;
  auto v1 = checkVirtualHost(vh.SerializeAsString(), "resources[0]", nullptr, {}, k1);
  REQUIRE(v1.ok());
  REQUIRE(k1.size() == 2);

  // Version 2: a sandbox route before the others. The two it had are the
  // same compiled routes; the table routes all three.
  envoy::config::route::v3::VirtualHost v2 = vh;
  *v2.mutable_routes()->Add() = v2.routes(0);
  v2.mutable_routes()->SwapElements(0, 2);
  v2.mutable_routes()->SwapElements(1, 2);
  v2.mutable_routes(0)->mutable_match()->mutable_headers(0)->mutable_string_match()->set_exact("b");
  v2.mutable_routes(0)->mutable_route()->set_cluster("reviews--b");
  RouteKeys k2;
  auto c2 = checkVirtualHost(v2.SerializeAsString(), "resources[0]", v1->get(), k1, k2);
  REQUIRE(c2.ok());
  REQUIRE(k2.size() == 3);
  CHECK(k2[1] == k1[0]);
  CHECK(k2[2] == k1[1]);
  CHECK(&Host::route(**c2, 1) == &Host::route(**v1, 0));
  CHECK(&Host::route(**c2, 2) == &Host::route(**v1, 1));
  auto table = routing::RouteTable::create(routing::RouteConfiguration{}, {*c2});
  REQUIRE(table.ok());
  CHECK(route(**table, "reviews", "/", "b").cluster == "reviews--b");
  CHECK(route(**table, "reviews", "/", "a").cluster == "reviews--a");
  CHECK(route(**table, "reviews", "/", "").cluster == "reviews");

  // A new route the checks refuse is reported at its index in this version.
  envoy::config::route::v3::VirtualHost v3 = v2;
  v3.mutable_routes(1)->mutable_route()->mutable_hedge_policy()->set_hedge_on_per_try_timeout(true);
  RouteKeys k3;
  auto bad = checkVirtualHost(v3.SerializeAsString(), "resources[4]", c2->get(), k2, k3);
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()) ==
        "resources[4].routes[1].route.hedge_policy: field "
        "'envoy.config.route.v3.RouteAction.hedge_policy' is not supported by turnout");
  // So is one the translation refuses (here a new route at index 2).
  envoy::config::route::v3::VirtualHost v3b = v2;
  v3b.mutable_routes(2)->mutable_route()->set_cluster_header("");
  v3b.mutable_routes(2)->mutable_route()->mutable_timeout()->set_seconds(-1);
  RouteKeys k3b;
  bad = checkVirtualHost(v3b.SerializeAsString(), "resources[1]", c2->get(), k2, k3b);
  REQUIRE_FALSE(bad.ok());
  CHECK(absl::StartsWith(bad.status().message(), "resources[1].routes[2]"));
  // The host's own fields are always checked.
  envoy::config::route::v3::VirtualHost v4 = v2;
  v4.clear_domains();
  RouteKeys k4;
  CHECK(
      absl::StrContains(checkVirtualHost(v4.SerializeAsString(), "resources[0]", c2->get(), k2, k4)
                            .status()
                            .message(),
                        "resources[0].domains"));
  // Bytes that do not parse.
  RouteKeys k5;
  auto junk = checkVirtualHost(std::string("\x0a\xff", 2), "resources[2]", c2->get(), k2, k5);
  REQUIRE_FALSE(junk.ok());
  CHECK(std::string(junk.status().message()) ==
        "resources[2]: cannot parse a envoy.config.route.v3.VirtualHost");
  CHECK(k5.empty());

  // A change of the host's own fields keeps the routes too.
  envoy::config::route::v3::VirtualHost v6 = v2;
  v6.add_domains("reviews.default");
  RouteKeys k6;
  auto c6 = checkVirtualHost(v6.SerializeAsString(), "resources[0]", c2->get(), k2, k6);
  REQUIRE(c6.ok());
  CHECK(&Host::route(**c6, 0) == &Host::route(**c2, 0));
  auto t6 = routing::RouteTable::create(routing::RouteConfiguration{}, {*c6});
  REQUIRE(t6.ok());
  CHECK(route(**t6, "reviews.default", "/", "a").cluster == "reviews--a");
}

TEST_CASE("an xDS route configuration's unchanged virtual hosts are not compiled again",
          "[config][translator][xds]") {
  auto any_of = [](const envoy::config::route::v3::RouteConfiguration& rc) {
    AnyList list;
    list.Add()->PackFrom(rc);
    return list;
  };
  envoy::config::route::v3::RouteConfiguration rc = parse(kSandboxConfig);
  CompiledVirtualHosts first;
  auto a = parseRouteResourcesReusing("1", any_of(rc), VhdsSource::kNone, {}, first);
  REQUIRE(a.ok());
  REQUIRE(first.contains("services"));
  CHECK(first.at("services").size() == 2);
  CHECK(route(*a->tables[0].second, "reviews", "/", "feat-x").cluster == "reviews-feat-x");

  // A sandbox of ratings: reviews' bytes are unchanged and its compiled
  // virtual host is the same object; ratings' is new.
  auto* r0 = rc.mutable_virtual_hosts(1)->mutable_routes()->Add();
  *r0 = rc.virtual_hosts(1).routes(1);
  rc.mutable_virtual_hosts(1)->mutable_routes()->SwapElements(1, 2);
  rc.mutable_virtual_hosts(1)->mutable_routes(1)->mutable_match()->add_headers()->CopyFrom(
      rc.virtual_hosts(0).routes(0).match().headers(0));
  rc.mutable_virtual_hosts(1)->mutable_routes(1)->mutable_route()->set_cluster("ratings-feat-x");
  CompiledVirtualHosts second;
  auto b = parseRouteResourcesReusing("2", any_of(rc), VhdsSource::kNone, first, second);
  REQUIRE(b.ok());
  std::vector<routing::RouteTable::VirtualHostConstSharedPtr> old_hosts, new_hosts;
  for (const auto& [h, vh] : first.at("services")) old_hosts.push_back(vh.compiled);
  for (const auto& [h, vh] : second.at("services")) new_hosts.push_back(vh.compiled);
  int shared = 0;
  for (const auto& n : new_hosts) {
    shared += static_cast<int>(std::count(old_hosts.begin(), old_hosts.end(), n));
  }
  CHECK(shared == 1);
  // And ratings, whose bytes changed, shares the two routes it kept with
  // its last version: only its new route was compiled.
  auto named = [](const CompiledVirtualHosts& held, std::string_view name) {
    for (const auto& [h, vh] : held.at("services")) {
      if (routing::RouteTable::virtualHostName(*vh.compiled) == name) return vh.compiled;
    }
    FAIL("no virtual host " << name);
    return routing::RouteTable::VirtualHostConstSharedPtr();
  };
  const auto old_ratings = named(first, "ratings");
  const auto new_ratings = named(second, "ratings");
  using Table = routing::RouteTable;
  REQUIRE(Table::routeCount(*new_ratings) == 3);
  CHECK(&Table::route(*new_ratings, 0) == &Table::route(*old_ratings, 0));
  CHECK(&Table::route(*new_ratings, 2) == &Table::route(*old_ratings, 1));
  CHECK(Table::route(*new_ratings, 1).route->cluster == "ratings-feat-x");
  // Routes exactly as the same configuration parsed whole.
  auto whole = parseRouteResources("2", any_of(rc), VhdsSource::kNone);
  REQUIRE(whole.ok());
  for (const auto* t : {b->tables[0].second.get(), whole->tables[0].second.get()}) {
    CHECK(route(*t, "ratings", "/x", "feat-x").cluster == "ratings-feat-x");
    CHECK(route(*t, "ratings", "/api", "", {{"x-env", "canary"}}).cluster == "ratings-canary");
    CHECK(route(*t, "reviews", "/", "feat-x").cluster == "reviews-feat-x");
    CHECK(route(*t, "reviews", "/", "").cluster == "reviews");
  }
  CHECK(b->configs.size() == 1);
  CHECK(b->configs[0].virtual_hosts_size() == 2);  // whole, for /config_dump

  // An error anywhere takes the whole path: the same message, and nothing
  // kept for the next response.
  rc.mutable_virtual_hosts(1)
      ->mutable_routes(0)
      ->mutable_route()
      ->mutable_hedge_policy()
      ->set_hedge_on_per_try_timeout(true);
  CompiledVirtualHosts third = second;
  auto c = parseRouteResourcesReusing("3", any_of(rc), VhdsSource::kNone, second, third);
  auto c_whole = parseRouteResources("3", any_of(rc), VhdsSource::kNone);
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().message() == c_whole.status().message());
  CHECK(absl::StrContains(c.status().message(), "resources[0].virtual_hosts[1].routes[0]"));
  CHECK(third.empty());
}

TEST_CASE("route table compile errors are prefixed with the route config path",
          "[config][translator]") {
  std::string e = errorOf(R"({"virtual_hosts":[
      {"name":"a","domains":["a.com"],"routes":[]},
      {"name":"b","domains":["a.com"],"routes":[]}]})");
  CHECK_THAT(e, Catch::StartsWith("route_config.virtual_hosts[1].domains[0]"));
}

TEST_CASE("inert fields are accepted", "[config][translator]") {
  auto table = translateRouteConfiguration(parse(R"({"virtual_hosts":[{"name":"a",
      "domains":["*"],"virtual_clusters":[{"name":"vc","headers":[{"name":":path"}]}],
      "routes":[{"match":{"prefix":"/"},"route":{"cluster":"c",
      "max_stream_duration":{"max_stream_duration":"0s","grpc_timeout_header_max":"0s"},
      "upgrade_configs":[{"upgrade_type":"websocket"}]},
      "decorator":{"operation":"op"},"metadata":{"filter_metadata":{"x":{"y":1}}}}]}]})"),
                                           "rc");
  INFO((table.ok() ? "" : table.status().ToString()));
  REQUIRE(table.ok());
  CHECK(route(**table, "any", "/", "").cluster == "c");
}

TEST_CASE("a direct response body can come from a file", "[config][translator]") {
  char name[] = "/tmp/turnout-body-XXXXXX";
  int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  close(fd);
  { std::ofstream(name) << "hello from a file"; }
  auto table = translateRouteConfiguration(
      parse(std::string(R"({"virtual_hosts":[{"name":"a","domains":["*"],"routes":[{"match":)"
                        R"({"prefix":"/"},"direct_response":{"status":200,"body":{"filename":")") +
            name + R"("}}}]}]})"),
      "rc");
  std::remove(name);
  REQUIRE(table.ok());
  auto d = route(**table, "any", "/", "");
  REQUIRE(d.kind == routing::RouteDecision::Kind::DirectResponse);
  CHECK(d.status == 200);
  CHECK(d.body == "hello from a file");
}

// An Envoy route configuration of one catch-all virtual host whose routes are `routes`.
std::shared_ptr<const routing::RouteTable> table(const std::string& routes, const std::string& extra = "") {
  auto t = translateRouteConfiguration(
      parse(R"({)" + extra + R"("virtual_hosts":[{"name":"v","domains":["*"],"routes":[)" + routes +
            "]}]}"),
      "rc");
  INFO((t.ok() ? "" : t.status().ToString()));
  REQUIRE(t.ok());
  return *std::move(t);
}

routing::RouteDecision routeWith(const routing::RouteTable& t, std::string authority,
                                 std::string path, uint64_t random) {
  routing::RequestView view("GET", authority, path, {});
  return t.match(view, random);
}

TEST_CASE("a route's regex_rewrite puts its substitution into the path", "[config][translator]") {
  auto t = table(R"({"match":{"prefix":"/"},"route":{"cluster":"c",
      "regex_rewrite":{"pattern":{"regex":"^/v1/([^/]+)/item$"},"substitution":"/items/\\1"}}})");
  auto d = routeWith(*t, "any", "/v1/abc/item?x=1", 0);
  REQUIRE(d.rewritten_path.has_value());
  CHECK(*d.rewritten_path == "/items/abc?x=1");
  // A path the pattern does not match is left as it is (Envoy's GlobalReplace).
  CHECK(routeWith(*t, "any", "/other", 0).rewritten_path.value_or("/other") == "/other");
}

TEST_CASE("runtime_fraction draws against its denominator", "[config][translator]") {
  // 5 in TEN_THOUSAND: random 4 and 10004 match; 5 and 99 do not (they would of HUNDRED).
  auto t = table(R"({"match":{"prefix":"/","runtime_fraction":{"default_value":
      {"numerator":5,"denominator":"TEN_THOUSAND"}}},"route":{"cluster":"rare"}},
      {"match":{"prefix":"/"},"route":{"cluster":"common"}})");
  CHECK(routeWith(*t, "any", "/", 4).cluster == "rare");
  CHECK(routeWith(*t, "any", "/", 10004).cluster == "rare");
  CHECK(routeWith(*t, "any", "/", 5).cluster == "common");
  CHECK(routeWith(*t, "any", "/", 99).cluster == "common");
  auto m = table(R"({"match":{"prefix":"/","runtime_fraction":{"default_value":
      {"numerator":1,"denominator":"MILLION"}}},"route":{"cluster":"rare"}},
      {"match":{"prefix":"/"},"route":{"cluster":"common"}})");
  CHECK(routeWith(*m, "any", "/", 1000000).cluster == "rare");
  CHECK(routeWith(*m, "any", "/", 100).cluster == "common");
}

TEST_CASE("weighted clusters pick by the sum of their weights whatever total_weight says",
          "[config][translator]") {
  // Envoy deprecated total_weight and uses the sum: random % 4 picks a for 0..2, b for 3.
  auto t = table(R"({"match":{"prefix":"/"},"route":{"weighted_clusters":{"total_weight":1000,
      "clusters":[{"name":"a","weight":3},{"name":"b","weight":1}]}}})");
  CHECK(routeWith(*t, "any", "/", 0).cluster == "a");
  CHECK(routeWith(*t, "any", "/", 2).cluster == "a");
  CHECK(routeWith(*t, "any", "/", 3).cluster == "b");
  CHECK(routeWith(*t, "any", "/", 7).cluster == "b");
  CHECK(routeWith(*t, "any", "/", 999).cluster == "b");
}

TEST_CASE("ignore_port_in_host_matching matches a host with a port to its domain",
          "[config][translator]") {
  const std::string vhosts = R"({"virtual_hosts":[{"name":"v","domains":["svc"],"routes":[
      {"match":{"prefix":"/"},"route":{"cluster":"c"}}]}]})";
  auto plain = translateRouteConfiguration(parse(vhosts), "rc");
  REQUIRE(plain.ok());
  CHECK(route(**plain, "svc", "/", "").cluster == "c");
  CHECK(route(**plain, "svc:8080", "/", "").kind == routing::RouteDecision::Kind::NoRoute);
  auto ignoring = translateRouteConfiguration(
      parse(R"({"ignore_port_in_host_matching":true,)" + vhosts.substr(1)), "rc");
  REQUIRE(ignoring.ok());
  CHECK(route(**ignoring, "svc:8080", "/", "").cluster == "c");
  CHECK(route(**ignoring, "svc", "/", "").cluster == "c");
  CHECK(route(**ignoring, "other:8080", "/", "").kind == routing::RouteDecision::Kind::NoRoute);
}

TEST_CASE("max_stream_duration's grpc_timeout_header_max and _offset time gRPC requests",
          "[config][translator]") {
  auto t = table(R"({"match":{"prefix":"/"},"route":{"cluster":"c","timeout":"7s",
      "max_stream_duration":{"grpc_timeout_header_max":"5s","grpc_timeout_header_offset":"0.1s"}}})");
  std::vector<routing::HeaderEntry> grpc{{"content-type", "application/grpc"},
                                         {"grpc-timeout", "2S"}};
  CHECK(route(*t, "any", "/", "", grpc).max_stream_duration == std::chrono::milliseconds(1900));
  CHECK(route(*t, "any", "/", "", grpc).timeout == std::chrono::milliseconds(7000));
  CHECK_FALSE(route(*t, "any", "/", "").max_stream_duration.has_value());
  // Istio's zeros: the request's own grpc-timeout, uncapped.
  auto istio = table(R"({"match":{"prefix":"/"},"route":{"cluster":"c",
      "max_stream_duration":{"max_stream_duration":"0s","grpc_timeout_header_max":"0s"}}})");
  CHECK(route(*istio, "any", "/", "", grpc).max_stream_duration == std::chrono::milliseconds(2000));
  // Without grpc_timeout_header_max the header is not looked at.
  auto off = table(R"({"match":{"prefix":"/"},"route":{"cluster":"c",
      "max_stream_duration":{"grpc_timeout_header_offset":"0.1s"}}})");
  CHECK_FALSE(route(*off, "any", "/", "", grpc).max_stream_duration.has_value());
}

TEST_CASE("connect_matcher routes CONNECT requests only, and only it routes them",
          "[config][translator][connect]") {
  auto rt = translateRouteConfiguration(parse(R"({"virtual_hosts":[
    {"name":"proxy","domains":["echo.test:443"],"routes":[
      {"match":{"connect_matcher":{}},"route":{"cluster":"echo",
       "upgrade_configs":[{"upgrade_type":"CONNECT","connect_config":{}}]}}]},
    {"name":"all","domains":["*"],"routes":[
      {"match":{"prefix":"/"},"route":{"cluster":"web"}},
      {"match":{"connect_matcher":{},"headers":[{"name":"x-tunnel","present_match":true}]},
       "route":{"cluster":"tunnels","upgrade_configs":[{"upgrade_type":"connect","enabled":false}]}}]}]})"),
                                        "rc");
  INFO((rt.ok() ? "" : rt.status().ToString()));
  REQUIRE(rt.ok());
  const auto& t = *rt;
  auto connect = [&](std::string authority, std::vector<routing::HeaderEntry> h = {}) {
    routing::RequestView view("CONNECT", authority, "", h);
    return t->match(view, 0);
  };
  // The CONNECT target is the authority the virtual hosts are matched against.
  const auto d = connect("echo.test:443");
  REQUIRE(d.kind == routing::RouteDecision::Kind::Route);
  CHECK(d.cluster == "echo");
  REQUIRE(d.route->route->upgrade_configs.size() == 1);
  CHECK(d.route->route->upgrade_configs[0].upgrade_type == "connect");
  CHECK(d.route->route->upgrade_configs[0].connect_config);
  CHECK(d.route->route->upgrade_configs[0].enabled);
  // A path route never takes a CONNECT (it has no path), whatever its prefix.
  CHECK(connect("other:443").kind == routing::RouteDecision::Kind::NoRoute);
  const auto tunnels = connect("other:443", {{"x-tunnel", "1"}});
  CHECK(tunnels.cluster == "tunnels");
  CHECK_FALSE(tunnels.route->route->upgrade_configs[0].connect_config);
  CHECK_FALSE(tunnels.route->route->upgrade_configs[0].enabled);
  // connect_matcher never takes anything but a CONNECT.
  CHECK(routeWith(*t, "echo.test:443", "/", 0).kind == routing::RouteDecision::Kind::NoRoute);
  CHECK(routeWith(*t, "other", "/x", 0).cluster == "web");
}

// Every CorsPolicy field set (both messages spell them alike), and its check.
constexpr char kEveryCorsField[] = R"("allow_origin_string_match":[{"exact":"https://app.example"}],
    "allow_methods":"GET","allow_headers":"x-h","expose_headers":"grpc-status","max_age":"60",
    "allow_credentials":true,"allow_private_network_access":true,
    "forward_not_matching_preflights":false,"filter_enabled":{"default_value":{"numerator":50}},
    "shadow_enabled":{"default_value":{"numerator":100}})";

void checkEveryCorsField(const routing::CorsPolicy& c) {
  REQUIRE(c.allow_origin_string_match.size() == 1);
  CHECK(c.allow_origin_string_match[0].exact == "https://app.example");
  CHECK(c.allow_methods == "GET");
  CHECK(c.allow_headers == "x-h");
  CHECK(c.expose_headers == "grpc-status");
  CHECK(c.max_age == "60");
  CHECK(c.allow_credentials == true);
  CHECK(c.allow_private_network_access == true);
  CHECK(c.forward_not_matching_preflights == false);
  REQUIRE(c.filter_enabled.has_value());
  CHECK(c.filter_enabled->default_value.numerator == 50);
  REQUIRE(c.shadow_enabled.has_value());
  CHECK(c.shadow_enabled->default_value.numerator == 100);
}

TEST_CASE("cors policies translate on virtual hosts and routes, errors with their paths",
          "[config][translator][cors]") {
  auto rt = translateRouteConfiguration(parse(R"({"virtual_hosts":[{"name":"v","domains":["*"],
    "cors":{)" + std::string(kEveryCorsField) +
                                              R"(},
    "routes":[{"match":{"prefix":"/a"},"route":{"cluster":"c",
                "cors":{"allow_origin_string_match":[{"prefix":"https://admin."}]}}},
              {"match":{"prefix":"/"},"route":{"cluster":"c"}}]}]})"),
                                        "rc");
  INFO((rt.ok() ? "" : rt.status().ToString()));
  REQUIRE(rt.ok());
  const auto a = routeWith(**rt, "x", "/a", 0);
  REQUIRE(a.route_cors != nullptr);
  REQUIRE(a.vhost_cors != nullptr);
  CHECK(a.route_cors->config().allow_origin_string_match.size() == 1);
  checkEveryCorsField(a.vhost_cors->config());
  const auto other = routeWith(**rt, "x", "/b", 0);
  CHECK(other.route_cors == nullptr);
  CHECK(other.vhost_cors == a.vhost_cors);
  CHECK(
      errorOf(R"({"virtual_hosts":[{"name":"v","domains":["*"],"routes":[{"match":{"prefix":"/"},
      "route":{"cluster":"c","cors":{"allow_origin_string_match":[{"safe_regex":{"regex":"("}}]}}}]}]})")
          .rfind("route_config.virtual_hosts[0].routes[0].route.cors.allow_origin_string_match[0]",
                 0) == 0);
}

TEST_CASE("typed_per_filter_config CORS policies replace the cors fields",
          "[config][translator][cors]") {
  const std::string type =
      R"("@type":"type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy")";
  auto rt = translateRouteConfiguration(parse(R"({"virtual_hosts":[{"name":"v","domains":["*"],
    "cors":{"allow_origin_string_match":[{"exact":"https://deprecated.example"}]},
    "typed_per_filter_config":{"envoy.filters.http.cors":{)" +
                                              type + R"(,
      )" + kEveryCorsField + R"(}},
    "routes":[{"match":{"prefix":"/a"},"route":{"cluster":"c"},
               "typed_per_filter_config":{"envoy.filters.http.cors":{)" +
                                              type + R"(,
                 "max_age":"5"}}},
              {"match":{"prefix":"/"},"route":{"cluster":"c"}}]}]})"),
                                        "rc");
  INFO((rt.ok() ? "" : rt.status().ToString()));
  REQUIRE(rt.ok());
  const auto a = routeWith(**rt, "x", "/a", 0);
  REQUIRE(a.route_cors != nullptr);
  CHECK(a.route_cors->config().max_age == "5");
  REQUIRE(a.vhost_cors != nullptr);
  // The per-filter policy, not the deprecated cors field.
  checkEveryCorsField(a.vhost_cors->config());
  CHECK(routeWith(**rt, "x", "/b", 0).route_cors == nullptr);
  // Any other per-filter config is still refused, with its key.
  CHECK(
      errorOf(R"({"virtual_hosts":[{"name":"v","domains":["*"],"routes":[{"match":{"prefix":"/"},
      "route":{"cluster":"c"},"typed_per_filter_config":{"envoy.filters.http.router":{
      "@type":"type.googleapis.com/envoy.config.route.v3.FilterConfig"}}}]}]})")
          .rfind("route_config.virtual_hosts[0].routes[0].typed_per_filter_config[\"envoy.filters."
                 "http.router\"]: per-route filter config is not applied by turnout yet",
                 0) == 0);
}

}  // namespace
}  // namespace turnout::config
