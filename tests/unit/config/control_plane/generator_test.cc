#include "config/control_plane/generator.h"

#include <catch2/catch.hpp>

#include <re2/re2.h>
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "config/control_plane/state.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "config/snapshot/discovery_response.h"
#include "config/snapshot/routing_key_config.h"
#include "google/protobuf/util/json_util.h"
#include "routing/request_view.h"
#include "routing/route_table.h"

// Checks that deprecated fields (total_weight, google_re2) stay unset.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace turnout::control_plane {
namespace {

namespace cluster_v3 = envoy::config::cluster::v3;
namespace route_v3 = envoy::config::route::v3;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

// reviews (forked by feat-x and feat-y, with a release), ratings (forked by
// feat-x), details (nothing), all in namespace shop but details.
Model shopModel() {
  State s;
  REQUIRE(s.putService("reviews", R"({"port": 9080, "namespace": "shop",
                                      "endpoints": ["10.0.0.5:9080", "10.0.0.6:9080"]})")
              .ok());
  REQUIRE(s.putService("ratings", R"({"port": 80, "namespace": "shop",
                                      "endpoints": ["10.0.1.5:80"]})")
              .ok());
  REQUIRE(s.putService("details", R"({"port": 8080, "endpoints": ["details.example.com:8080"]})")
              .ok());
  REQUIRE(s.putSandbox("feat-y", R"({"forks": {"reviews": ["10.0.9.1:9080"]}})", kNow).ok());
  REQUIRE(s.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"],
                                               "ratings": ["10.0.1.7:80"]}, "ttl": "24h"})",
                       kNow)
              .ok());
  REQUIRE(s.putRelease("reviews", R"({
      "versions": {"v1": ["10.0.0.5:9080"], "v2": ["10.0.2.1:9080"], "v3": ["v3.local:9080", "10.0.3.1:9080"]},
      "weights": {"v1": 90, "v2": 10, "v3": 0},
      "matches": [{"headers": {"x-canary": "always"}, "version": "v2"},
                  {"headers": {"x-user": {"prefix": "beta-"}, "x-debug": {"present": true}},
                   "version": "v3"}]})")
              .ok());
  return s.model();
}

std::vector<std::string> routeNames(const route_v3::VirtualHost& vh) {
  std::vector<std::string> out;
  for (const auto& r : vh.routes()) out.push_back(r.name());
  return out;
}

const route_v3::VirtualHost& vhost(const route_v3::RouteConfiguration& rc, const std::string& n) {
  for (const auto& vh : rc.virtual_hosts()) {
    if (vh.name() == n) return vh;
  }
  FAIL("no virtual host " << n);
  throw 0;
}

// ---- dialects and key regexes -----------------------------------------------------------

TEST_CASE("the dialect follows node.user_agent_name", "[control_plane][generator]") {
  envoy::config::core::v3::Node node;
  CHECK(dialectFor(node) == Dialect::kEnvoy);
  node.set_user_agent_name("envoy");
  CHECK(dialectFor(node) == Dialect::kEnvoy);
  node.set_user_agent_name("grpc-node-js");
  CHECK(dialectFor(node) == Dialect::kEnvoy);
  node.set_user_agent_name("Turnout");
  CHECK(dialectFor(node) == Dialect::kEnvoy);
  node.set_user_agent_name("turnout");
  CHECK(dialectFor(node) == Dialect::kTurnout);
  for (const char* grpc : {"gRPC Node Pure JS", "gRPC Go", "gRPC Java", "gRPC C-core"}) {
    node.set_user_agent_name(grpc);
    CHECK(dialectFor(node) == Dialect::kGrpc);
  }
  node.set_user_agent_name("gRPC");
  CHECK(dialectFor(node) == Dialect::kEnvoy);
  CHECK(dialectName(Dialect::kTurnout) == "turnout");
  CHECK(dialectName(Dialect::kEnvoy) == "envoy");
  CHECK(dialectName(Dialect::kGrpc) == "grpc");
}

bool fullMatch(const std::string& regex, const std::string& value) {
  RE2 re(regex, RE2::Quiet);
  REQUIRE(re.ok());
  return RE2::FullMatch(value, re);
}

TEST_CASE("the baggage regex matches the member wherever the W3C grammar puts it",
          "[control_plane][generator]") {
  const std::string re = baggageMemberRegex("turnout-routing-key", "a");
  for (const char* v : {
           "turnout-routing-key=a",
           "turnout-routing-key = a",
           "turnout-routing-key=\ta\t",
           "turnout-routing-key=a;prop",
           "turnout-routing-key=a ; p1=v1;p2",
           "turnout-routing-key=a,userId=7",
           "userId=7,turnout-routing-key=a",
           "userId=7 , turnout-routing-key=a , x=y",
           "k=v;p=q,turnout-routing-key=a;m,z=1",
           "turnout-routing-key=b,turnout-routing-key=a",  // Envoy sees the joined value
           "x=1,y=2,z=3,turnout-routing-key=a",
       }) {
    CAPTURE(v);
    CHECK(fullMatch(re, v));
  }
}

TEST_CASE("the baggage regex never matches a substring of another member",
          "[control_plane][generator]") {
  const std::string re = baggageMemberRegex("turnout-routing-key", "a");
  for (const char* v : {
           "",
           "turnout-routing-key=ab",
           "turnout-routing-key=ba",
           "turnout-routing-key=a b",
           "turnout-routing-key=",
           "turnout-routing-key",
           "xturnout-routing-key=a",
           "x-turnout-routing-key=a",
           "turnout-routing-keyx=a",
           "turnout-routing-key2=a",
           "sd-routing-key=a",
           "other=turnout-routing-key=a",
           "k=v;turnout-routing-key=a",
           "k=v; turnout-routing-key=a",
           "turnout-routing-key=A",
           "turnout-routing-key=%61",
           "TURNOUT-ROUTING-KEY=a",
           "turnout-routing-key=ab,x=a",
           "x=turnout-routing-key=a,y=1",
       }) {
    CAPTURE(v);
    CHECK_FALSE(fullMatch(re, v));
  }
}

TEST_CASE("the Signadot baggage member is matched as exactly", "[control_plane][generator]") {
  const std::string re = baggageMemberRegex("sd-routing-key", "k1");
  for (const char* v : {"sd-routing-key=k1", "a=b, sd-routing-key=k1;x", "sd-routing-key =k1,c=d"}) {
    CAPTURE(v);
    CHECK(fullMatch(re, v));
  }
  for (const char* v : {"sd-routing-key=k12", "xsd-routing-key=k1", "turnout-sd-routing-key=k1",
                        "turnout-routing-key=k1", "sd-routing-key=k", "a=sd-routing-key=k1"}) {
    CAPTURE(v);
    CHECK_FALSE(fullMatch(re, v));
  }
}

TEST_CASE("regex metacharacters in keys are literal", "[control_plane][generator]") {
  const std::string re = baggageMemberRegex("turnout-routing-key", "a.b");
  CHECK(fullMatch(re, "turnout-routing-key=a.b"));
  CHECK_FALSE(fullMatch(re, "turnout-routing-key=axb"));
  const std::string ts = tracestateMemberRegex("turnout", "a.b");
  CHECK(fullMatch(ts, "turnout=a.b"));
  CHECK_FALSE(fullMatch(ts, "turnout=a-b"));
}

TEST_CASE("the tracestate regex matches the member exactly", "[control_plane][generator]") {
  const std::string re = tracestateMemberRegex("turnout", "a");
  for (const char* v : {"turnout=a", "turnout=a ", "congo=t61rcWkgMzE,turnout=a",
                        "congo=x , turnout=a , rojo=00f067aa0ba902b7", "turnout=a,rojo=1",
                        "vendor@t=1,turnout=a"}) {
    CAPTURE(v);
    CHECK(fullMatch(re, v));
  }
  for (const char* v : {"", "turnout=ab", "turnout=a b", "turnout = a", "turnout =a",
                        "xturnout=a", "turnoutx=a", "t@turnout=a", "congo=turnout=a",
                        "turnout=b", "rojo=1,turnout=ab,x=1", "turnout=a;p"}) {
    CAPTURE(v);
    CHECK_FALSE(fullMatch(re, v));
  }
  const std::string sd = tracestateMemberRegex("sd-routing-key", "k1");
  CHECK(fullMatch(sd, "sd-routing-key=k1"));
  CHECK_FALSE(fullMatch(sd, "turnout=k1"));
  CHECK_FALSE(fullMatch(sd, "xsd-routing-key=k1"));
}

TEST_CASE("every generated key regex stays within Envoy's RE2 program size for the longest key",
          "[control_plane][generator]") {
  // 40 characters, '.' included (escaped by the generator).
  const std::string key = "a.b" + std::string(kMaxRoutingKeyLength - 3, 'x');
  REQUIRE(validateRoutingKey("key", key).ok());
  for (const KeyForm& form : envoyKeyForms()) {
    if (form.kind == KeyForm::Kind::kHeader) continue;
    const std::string regex = form.kind == KeyForm::Kind::kBaggage
                                  ? baggageMemberRegex(form.name, key)
                                  : tracestateMemberRegex(form.name, key);
    RE2 re(regex, RE2::Quiet);
    REQUIRE(re.ok());
    CAPTURE(regex);
    CHECK(re.ProgramSize() <= kMaxRegexProgramSize);
  }
}

TEST_CASE("the envoy dialect's key forms are turnout's defaults plus Signadot's",
          "[control_plane][generator]") {
  std::vector<std::pair<KeyForm::Kind, std::string>> got;
  for (const KeyForm& f : envoyKeyForms()) got.emplace_back(f.kind, std::string(f.name));
  using K = KeyForm::Kind;
  CHECK(got == std::vector<std::pair<K, std::string>>{
                   {K::kBaggage, "turnout-routing-key"},
                   {K::kBaggage, "sd-routing-key"},
                   {K::kTracestate, "turnout"},
                   {K::kTracestate, "sd-routing-key"},
                   {K::kHeader, "x-turnout-routing-key"},
                   {K::kHeader, "sd-routing-key"},
                   {K::kHeader, "ot-baggage-sd-routing-key"},
                   {K::kHeader, "uberctx-sd-routing-key"}});
}

// ---- resources ------------------------------------------------------------------------

TEST_CASE("domains cover the short name, the namespace and the cluster-local FQDN, with and "
          "without the port",
          "[control_plane][generator]") {
  Service s;
  s.name = "reviews";
  s.port = 9080;
  s.ns = "shop";
  CHECK(domainsFor(s) == std::vector<std::string>{
                             "reviews", "reviews:9080", "reviews.shop", "reviews.shop:9080",
                             "reviews.shop.svc", "reviews.shop.svc:9080",
                             "reviews.shop.svc.cluster.local",
                             "reviews.shop.svc.cluster.local:9080"});
}

TEST_CASE("clusters: one per service, sandbox fork and release version, EDS over ADS when all "
          "endpoints are IPs",
          "[control_plane][generator]") {
  Resources r = generate(shopModel(), Dialect::kTurnout);
  std::vector<std::string> names;
  for (const auto& c : r.clusters) names.push_back(c.name());
  CHECK(names == std::vector<std::string>{"details", "ratings", "ratings--feat-x", "reviews",
                                          "reviews--feat-x", "reviews--feat-y", "reviews--v1",
                                          "reviews--v2", "reviews--v3"});
  for (const auto& c : r.clusters) {
    CAPTURE(c.name());
    CHECK(c.connect_timeout().seconds() == kConnectTimeoutSeconds);
    CHECK(c.lb_policy() == cluster_v3::Cluster::ROUND_ROBIN);
    if (c.name() == "details") {
      CHECK(c.type() == cluster_v3::Cluster::LOGICAL_DNS);
      CHECK(c.load_assignment().endpoints(0).lb_endpoints(0).endpoint().address()
                .socket_address().address() == "details.example.com");
    } else if (c.name() == "reviews--v3") {
      CHECK(c.type() == cluster_v3::Cluster::STRICT_DNS);
      CHECK(c.load_assignment().endpoints(0).lb_endpoints_size() == 2);
    } else {
      CHECK(c.type() == cluster_v3::Cluster::EDS);
      CHECK(c.eds_cluster_config().eds_config().has_ads());
      CHECK(c.eds_cluster_config().eds_config().resource_api_version() ==
            envoy::config::core::v3::V3);
      CHECK(c.eds_cluster_config().service_name().empty());
      CHECK_FALSE(c.has_load_assignment());
    }
  }
  std::vector<std::string> clas;
  for (const auto& cla : r.load_assignments) clas.push_back(cla.cluster_name());
  CHECK(clas == std::vector<std::string>{"ratings", "ratings--feat-x", "reviews",
                                         "reviews--feat-x", "reviews--feat-y", "reviews--v1",
                                         "reviews--v2"});
  const auto& reviews = r.load_assignments[2];
  REQUIRE(reviews.endpoints_size() == 1);
  REQUIRE(reviews.endpoints(0).lb_endpoints_size() == 2);
  CHECK(reviews.endpoints(0).lb_endpoints(1).endpoint().address().socket_address().address() ==
        "10.0.0.6");
  CHECK(reviews.endpoints(0).lb_endpoints(1).endpoint().address().socket_address().port_value() ==
        9080);
}

TEST_CASE("a service without endpoints gets an EDS cluster with an empty assignment",
          "[control_plane][generator]") {
  State s;
  REQUIRE(s.putService("new-svc", R"({"port": 80})").ok());
  Resources r = generate(s.model(), Dialect::kEnvoy);
  REQUIRE(r.clusters.size() == 1);
  CHECK(r.clusters[0].type() == cluster_v3::Cluster::EDS);
  REQUIRE(r.load_assignments.size() == 1);
  CHECK(r.load_assignments[0].endpoints_size() == 0);
}

TEST_CASE("turnout dialect: sandbox routes by key, then release matches and weights, then the "
          "baseline",
          "[control_plane][generator]") {
  Resources r = generate(shopModel(), Dialect::kTurnout);
  const auto& rc = r.route_configuration;
  CHECK(rc.name() == "outbound");
  REQUIRE(rc.virtual_hosts_size() == 3);
  CHECK(rc.virtual_hosts(0).name() == "details");
  CHECK(rc.virtual_hosts(1).name() == "ratings");
  CHECK(rc.virtual_hosts(2).name() == "reviews");

  const auto& reviews = vhost(rc, "reviews");
  CHECK(reviews.domains(0) == "reviews");
  CHECK(reviews.domains_size() == 8);
  CHECK(routeNames(reviews) == std::vector<std::string>{"sandbox/feat-x", "sandbox/feat-y",
                                                        "release/match/0", "release/match/1",
                                                        "release/weights", "baseline"});
  for (const auto& route : reviews.routes()) {
    CHECK(route.match().prefix() == "/");
    CHECK(route.route().timeout().seconds() == 0);
  }
  const auto& sb = reviews.routes(0);
  REQUIRE(sb.match().headers_size() == 1);
  CHECK(sb.match().headers(0).name() == "x-turnout-routing-key");
  CHECK(sb.match().headers(0).string_match().exact() == "feat-x");
  CHECK(sb.route().cluster() == "reviews--feat-x");
  CHECK(reviews.routes(1).route().cluster() == "reviews--feat-y");

  const auto& m0 = reviews.routes(2);
  REQUIRE(m0.match().headers_size() == 1);
  CHECK(m0.match().headers(0).name() == "x-canary");
  CHECK(m0.match().headers(0).string_match().exact() == "always");
  CHECK(m0.route().cluster() == "reviews--v2");
  const auto& m1 = reviews.routes(3);
  REQUIRE(m1.match().headers_size() == 2);
  CHECK(m1.match().headers(0).name() == "x-debug");
  CHECK(m1.match().headers(0).present_match());
  CHECK(m1.match().headers(1).name() == "x-user");
  CHECK(m1.match().headers(1).string_match().prefix() == "beta-");
  CHECK(m1.route().cluster() == "reviews--v3");

  // v3 has weight 0 and is left out of the split (its cluster still exists).
  const auto& w = reviews.routes(4).route().weighted_clusters();
  REQUIRE(w.clusters_size() == 2);
  CHECK(w.clusters(0).name() == "reviews--v1");
  CHECK(w.clusters(0).weight().value() == 90);
  CHECK(w.clusters(1).name() == "reviews--v2");
  CHECK(w.clusters(1).weight().value() == 10);
  CHECK_FALSE(w.has_total_weight());
  CHECK(reviews.routes(5).route().cluster() == "reviews");
  CHECK(reviews.routes(5).match().headers_size() == 0);

  CHECK(routeNames(vhost(rc, "ratings")) ==
        std::vector<std::string>{"sandbox/feat-x", "baseline"});
  CHECK(routeNames(vhost(rc, "details")) == std::vector<std::string>{"baseline"});
}

TEST_CASE("envoy dialect: one route per key form and sandbox, forms in precedence order",
          "[control_plane][generator]") {
  Resources r = generate(shopModel(), Dialect::kEnvoy);
  const auto& reviews = vhost(r.route_configuration, "reviews");
  std::vector<std::string> want;
  const std::vector<std::string> forms = {
      "baggage/turnout-routing-key", "baggage/sd-routing-key", "tracestate/turnout",
      "tracestate/sd-routing-key", "header/x-turnout-routing-key", "header/sd-routing-key",
      "header/ot-baggage-sd-routing-key", "header/uberctx-sd-routing-key"};
  const std::vector<std::string> unforked = {"release/match/0", "release/match/1",
                                             "release/weights", "baseline"};
  std::map<std::string, size_t> at;  // route name -> index
  for (size_t f = 0; f < forms.size(); ++f) {
    for (const char* key : {"feat-x", "feat-y"}) {
      want.push_back("sandbox/" + std::string(key) + "/" + forms[f]);
    }
    // Then, but after the last form, where a request whose key in this form
    // names no fork goes: the unkeyed routes, guarded.
    if (f + 1 < forms.size()) {
      for (const auto& tail : unforked) want.push_back("keyed/" + forms[f] + "/" + tail);
    }
  }
  for (const auto& tail : unforked) want.push_back(tail);
  CHECK(routeNames(reviews) == want);
  for (int i = 0; i < reviews.routes_size(); ++i) at[reviews.routes(i).name()] = i;

  const auto& bag = reviews.routes(0);
  REQUIRE(bag.match().headers_size() == 1);
  CHECK(bag.match().headers(0).name() == "baggage");
  CHECK(bag.match().headers(0).string_match().safe_regex().regex() ==
        baggageMemberRegex("turnout-routing-key", "feat-x"));
  CHECK_FALSE(bag.match().headers(0).string_match().safe_regex().has_google_re2());
  CHECK(bag.route().cluster() == "reviews--feat-x");
  const auto& ts = reviews.routes(at.at("sandbox/feat-x/tracestate/turnout"));
  CHECK(ts.match().headers(0).name() == "tracestate");
  CHECK(ts.match().headers(0).string_match().safe_regex().regex() ==
        tracestateMemberRegex("turnout", "feat-x"));
  const auto& hdr = reviews.routes(at.at("sandbox/feat-x/header/x-turnout-routing-key"));
  CHECK(hdr.match().headers(0).name() == "x-turnout-routing-key");
  CHECK(hdr.match().headers(0).string_match().exact() == "feat-x");
  const auto& uber = reviews.routes(at.at("sandbox/feat-y/header/uberctx-sd-routing-key"));
  CHECK(uber.match().headers(0).name() == "uberctx-sd-routing-key");
  CHECK(uber.match().headers(0).string_match().exact() == "feat-y");
  CHECK(uber.route().cluster() == "reviews--feat-y");

  // A guarded route: "the form carries a key", then the release match's headers.
  const auto& keyed = reviews.routes(at.at("keyed/tracestate/turnout/release/match/0"));
  REQUIRE(keyed.match().headers_size() == 2);
  CHECK(keyed.match().headers(0).name() == "tracestate");
  CHECK(keyed.match().headers(1).name() == "x-canary");
  const std::string any = keyed.match().headers(0).string_match().safe_regex().regex();
  CHECK(fullMatch(any, "turnout=feat-q"));
  CHECK(fullMatch(any, "a=1, turnout=K_9.x ,b=2"));
  CHECK_FALSE(fullMatch(any, "turnout="));
  CHECK_FALSE(fullMatch(any, "turnout=a b"));
  CHECK_FALSE(fullMatch(any, "xturnout=feat-q"));
  CHECK(keyed.route().cluster() == "reviews--v2");
  const auto& keyed_header = reviews.routes(at.at("keyed/header/x-turnout-routing-key/baseline"));
  REQUIRE(keyed_header.match().headers_size() == 1);
  CHECK(keyed_header.match().headers(0).name() == "x-turnout-routing-key");
  CHECK(keyed_header.route().cluster() == "reviews");
  // A service no sandbox forks has no sandbox or keyed routes.
  CHECK(routeNames(vhost(r.route_configuration, "details")) == std::vector<std::string>{"baseline"});
}

TEST_CASE("a single non-zero weight is a plain route, blue/green flips with the weights",
          "[control_plane][generator]") {
  State s;
  REQUIRE(s.putService("reviews", R"({"port": 9080})").ok());
  REQUIRE(s.putRelease("reviews", R"({"versions": {"blue": ["10.0.0.1:1"], "green": ["10.0.0.2:1"]},
                                      "weights": {"blue": 100, "green": 0}})")
              .ok());
  auto rc = generate(s.model(), Dialect::kTurnout).route_configuration;
  CHECK(routeNames(rc.virtual_hosts(0)) == std::vector<std::string>{"release/weights", "baseline"});
  CHECK(rc.virtual_hosts(0).routes(0).route().cluster() == "reviews--blue");
  REQUIRE(s.putRelease("reviews", R"({"versions": {"blue": ["10.0.0.1:1"], "green": ["10.0.0.2:1"]},
                                      "weights": {"blue": 0, "green": 100}})")
              .ok());
  rc = generate(s.model(), Dialect::kTurnout).route_configuration;
  CHECK(rc.virtual_hosts(0).routes(0).route().cluster() == "reviews--green");
}

// ---- turnout accepts what it is sent ---------------------------------------------------

std::string responseJson(const std::vector<const google::protobuf::Message*>& resources) {
  std::string out = R"({"version_info": "1", "resources": [)";
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  for (size_t i = 0; i < resources.size(); ++i) {
    google::protobuf::Any any;
    any.PackFrom(*resources[i]);
    std::string json;
    auto st = google::protobuf::util::MessageToJsonString(any, &json, opts);
    REQUIRE(st.ok());
    if (i > 0) out += ",";
    out += json;
  }
  return out + "]}";
}

// Clusters through the same checks as a CDS response, exactly as generated
// (eds_config.ads included: turnout's xDS client accepts it).
void checkClustersAccepted(const std::vector<cluster_v3::Cluster>& clusters) {
  std::vector<const google::protobuf::Message*> ptrs;
  for (const auto& c : clusters) ptrs.push_back(&c);
  auto r = config::parseClusterResponse(responseJson(ptrs));
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->snapshot->clusters.size() == clusters.size());
}

std::shared_ptr<const routing::RouteTable> checkRoutesAccepted(const Resources& r) {
  auto routes = config::parseRouteResponse(responseJson({&r.route_configuration}));
  INFO(routes.status().ToString());
  REQUIRE(routes.ok());
  REQUIRE(routes->tables.size() == 1);
  CHECK(routes->tables[0].first == "outbound");
  std::vector<const google::protobuf::Message*> ptrs;
  for (const auto& cla : r.load_assignments) ptrs.push_back(&cla);
  auto eps = config::parseEndpointResponse(responseJson(ptrs));
  INFO(eps.status().ToString());
  REQUIRE(eps.ok());
  CHECK(eps->assignments.size() == r.load_assignments.size());
  return routes->tables[0].second;
}

TEST_CASE("turnout accepts every generated resource, in every dialect",
          "[control_plane][generator]") {
  const Dialect dialect = GENERATE(Dialect::kTurnout, Dialect::kEnvoy, Dialect::kGrpc);
  CAPTURE(dialectName(dialect));
  Resources r = generate(shopModel(), dialect);
  checkClustersAccepted(r.clusters);
  checkRoutesAccepted(r);
}

TEST_CASE("turnout accepts resources for 200 sandboxes and keys of every shape",
          "[control_plane][generator]") {
  State s;
  REQUIRE(s.putService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.5:9080"]})").ok());
  for (int i = 0; i < 200; ++i) {
    const std::string key = (i % 3 == 0)   ? "k" + std::to_string(i)
                            : (i % 3 == 1) ? "K_" + std::to_string(i) + ".x-" +
                                                 std::string(20, 'z')
                                           : std::to_string(i) + "." + std::string(36, 'a');
    auto put = s.putSandbox(key.substr(0, kMaxRoutingKeyLength),
                            R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", kNow);
    INFO(key);
    REQUIRE(put.ok());
  }
  for (Dialect d : {Dialect::kTurnout, Dialect::kEnvoy}) {
    Resources r = generate(s.model(), d);
    checkClustersAccepted(r.clusters);
    checkRoutesAccepted(r);
  }
}

// A request to `authority` carrying `headers`, routed by turnout's RouteTable.
std::string clusterFor(const routing::RouteTable& table, const std::string& authority,
                       std::vector<routing::HeaderEntry> headers, uint64_t random = 0) {
  routing::RequestView view("GET", authority, "/", headers);
  auto d = table.match(view, random);
  if (d.kind != routing::RouteDecision::Kind::Route) return "<no route>";
  return std::string(d.cluster);
}

TEST_CASE("turnout routes the turnout dialect by the normalised key header",
          "[control_plane][generator]") {
  auto table = checkRoutesAccepted(generate(shopModel(), Dialect::kTurnout));
  CHECK(clusterFor(*table, "reviews", {{"x-turnout-routing-key", "feat-x"}}) == "reviews--feat-x");
  CHECK(clusterFor(*table, "reviews.shop:9080", {{"x-turnout-routing-key", "feat-y"}}) ==
        "reviews--feat-y");
  CHECK(clusterFor(*table, "ratings.shop.svc.cluster.local", {{"x-turnout-routing-key", "feat-x"}}) ==
        "ratings--feat-x");
  // feat-y does not fork ratings: baseline.
  CHECK(clusterFor(*table, "ratings:80", {{"x-turnout-routing-key", "feat-y"}}) == "ratings");
  // Release: header match, then the split (random picks within 0..99), key first.
  CHECK(clusterFor(*table, "reviews", {{"x-canary", "always"}}) == "reviews--v2");
  CHECK(clusterFor(*table, "reviews", {{"x-canary", "always"}, {"x-turnout-routing-key", "feat-x"}}) ==
        "reviews--feat-x");
  CHECK(clusterFor(*table, "reviews", {{"x-user", "beta-1"}, {"x-debug", ""}}) == "reviews--v3");
  CHECK(clusterFor(*table, "reviews", {{"x-user", "beta-1"}}, 95) == "reviews--v2");
  CHECK(clusterFor(*table, "reviews", {}, 0) == "reviews--v1");
  CHECK(clusterFor(*table, "reviews", {}, 89) == "reviews--v1");
  CHECK(clusterFor(*table, "reviews", {}, 90) == "reviews--v2");
  CHECK(clusterFor(*table, "details:8080", {{"x-turnout-routing-key", "feat-x"}}) == "details");
  CHECK(clusterFor(*table, "unknown", {}) == "<no route>");
  CHECK(clusterFor(*table, "reviews.default", {}) == "<no route>");
  CHECK(clusterFor(*table, "details.default.svc", {}) == "details");
}

TEST_CASE("turnout routes the envoy dialect by baggage, tracestate and the plain headers",
          "[control_plane][generator]") {
  auto table = checkRoutesAccepted(generate(shopModel(), Dialect::kEnvoy));
  using H = std::vector<routing::HeaderEntry>;
  auto [headers, want] = GENERATE(
      std::pair<H, const char*>{H{{"baggage", "turnout-routing-key=feat-x"}}, "reviews--feat-x"},
      std::pair<H, const char*>{H{{"baggage", "userId=7, turnout-routing-key = feat-y;p=1"}},
                                "reviews--feat-y"},
      std::pair<H, const char*>{H{{"baggage", "sd-routing-key=feat-x"}}, "reviews--feat-x"},
      std::pair<H, const char*>{H{{"baggage", "a=1"}, {"baggage", "turnout-routing-key=feat-y"}},
                                "reviews--feat-y"},
      std::pair<H, const char*>{H{{"tracestate", "congo=t61rcWkgMzE,turnout=feat-x"}},
                                "reviews--feat-x"},
      std::pair<H, const char*>{H{{"tracestate", "sd-routing-key=feat-y"}}, "reviews--feat-y"},
      std::pair<H, const char*>{H{{"x-turnout-routing-key", "feat-x"}}, "reviews--feat-x"},
      std::pair<H, const char*>{H{{"sd-routing-key", "feat-y"}}, "reviews--feat-y"},
      std::pair<H, const char*>{H{{"ot-baggage-sd-routing-key", "feat-x"}}, "reviews--feat-x"},
      std::pair<H, const char*>{H{{"uberctx-sd-routing-key", "feat-y"}}, "reviews--feat-y"},
      // Baggage outranks the plain header, as in turnout's RoutingKey filter.
      std::pair<H, const char*>{
          H{{"x-turnout-routing-key", "feat-y"}, {"baggage", "turnout-routing-key=feat-x"}},
          "reviews--feat-x"},
      // Near misses go to the release split / baseline (random 0 -> v1).
      std::pair<H, const char*>{H{{"baggage", "turnout-routing-key=feat-xx"}}, "reviews--v1"},
      std::pair<H, const char*>{H{{"baggage", "xturnout-routing-key=feat-x"}}, "reviews--v1"},
      std::pair<H, const char*>{H{{"baggage", "k=v;turnout-routing-key=feat-x"}}, "reviews--v1"},
      std::pair<H, const char*>{H{{"tracestate", "turnout=feat"}}, "reviews--v1"},
      std::pair<H, const char*>{H{{"x-turnout-routing-key", "feat-x "}}, "reviews--v1"},
      std::pair<H, const char*>{H{{"x-turnout-routing-key", "feat-x"},
                                  {"x-turnout-routing-key", "feat-x"}},
                                "reviews--v1"},
      std::pair<H, const char*>{H{{"baggage", "turnout-routing-key=feat-z"}}, "reviews--v1"});
  CAPTURE(want);
  CHECK(clusterFor(*table, "reviews", headers) == want);
}

TEST_CASE("the RoutingKey filter config for turnout clients reads the envoy dialect's forms",
          "[control_plane][generator]") {
  auto cfg = config::toRoutingKeyFilterConfig(routingKeyFilterConfig(), "typed_config");
  INFO(cfg.status().ToString());
  REQUIRE(cfg.ok());
  CHECK(cfg->output_header == kRoutingKeyHeader);
  const auto& sources = cfg->extraction.sources;
  REQUIRE(sources.size() == envoyKeyForms().size());
  for (size_t i = 0; i < sources.size(); ++i) {
    const KeyForm& form = envoyKeyForms()[i];
    CAPTURE(i);
    CHECK(sources[i].name == form.name);
    CHECK(sources[i].kind == (form.kind == KeyForm::Kind::kBaggage      ? routing::KeySourceKind::kBaggage
                              : form.kind == KeyForm::Kind::kTracestate ? routing::KeySourceKind::kTracestate
                                                                        : routing::KeySourceKind::kHeader));
  }
}

// The same request routed by a turnout client (RoutingKey filter with
// routingKeyFilterConfig(), then the turnout dialect's table) and by a stock
// client (the envoy dialect's table on the raw headers) reaches the same
// cluster, for every form and key of this table and for near misses.
TEST_CASE("both dialects send each request to the same cluster", "[control_plane][generator]") {
  const Model model = shopModel();
  auto turnout_table = checkRoutesAccepted(generate(model, Dialect::kTurnout));
  auto envoy_table = checkRoutesAccepted(generate(model, Dialect::kEnvoy));
  auto filter = config::toRoutingKeyFilterConfig(routingKeyFilterConfig(), "f");
  REQUIRE(filter.ok());

  std::vector<std::vector<std::pair<std::string, std::string>>> requests;
  for (const char* key : {"feat-x", "feat-y", "feat-z", "feat", "feat-xx", "v2"}) {
    const std::string k = key;
    for (const KeyForm& form : envoyKeyForms()) {
      const std::string name(form.name);
      switch (form.kind) {
        case KeyForm::Kind::kBaggage:
          requests.push_back({{"baggage", name + "=" + k}});
          requests.push_back({{"baggage", "userId=7, " + name + " = " + k + ";p=1,z=2"}});
          requests.push_back({{"baggage", "x" + name + "=" + k}});
          break;
        case KeyForm::Kind::kTracestate:
          requests.push_back({{"tracestate", name + "=" + k}});
          requests.push_back({{"tracestate", "congo=t61rcWkgMzE, " + name + "=" + k}});
          requests.push_back({{"tracestate", name + "x=" + k}});
          break;
        case KeyForm::Kind::kHeader:
          requests.push_back({{name, k}});
          requests.push_back({{name, k}, {"x-canary", "always"}});
          break;
      }
    }
  }
  requests.push_back({});
  requests.push_back({{"x-canary", "always"}});
  requests.push_back({{"x-user", "beta-7"}, {"x-debug", "1"}});
  // Keys in two forms: the higher form's key decides, also when it names no
  // fork of the service (then the release and the baseline, never the lower
  // form's fork). Found by the grpc-js-xds interop test.
  auto member = [](const KeyForm& form, const std::string& key) {
    const std::string name(form.name);
    switch (form.kind) {
      case KeyForm::Kind::kBaggage: return std::make_pair(std::string("baggage"), name + "=" + key);
      case KeyForm::Kind::kTracestate: return std::make_pair(std::string("tracestate"), name + "=" + key);
      case KeyForm::Kind::kHeader: break;
    }
    return std::make_pair(name, key);
  };
  const auto& forms = envoyKeyForms();
  for (size_t a = 0; a < forms.size(); ++a) {
    for (size_t b = 0; b < forms.size(); ++b) {
      if (a == b || forms[a].kind == forms[b].kind && forms[a].kind != KeyForm::Kind::kHeader) {
        continue;  // two members of one baggage/tracestate header: below
      }
      for (const char* ka : {"feat-x", "feat-y", "feat-z"}) {
        for (const char* kb : {"feat-x", "feat-y"}) {
          if (std::string(ka) == kb) continue;
          requests.push_back({member(forms[a], ka), member(forms[b], kb)});
          requests.push_back({member(forms[a], ka), member(forms[b], kb), {"x-canary", "always"}});
        }
      }
    }
  }
  // Two members of one header, and a key in a form whose value is no key.
  requests.push_back({{"baggage", "sd-routing-key=feat-x,turnout-routing-key=feat-z"}});
  requests.push_back({{"baggage", "turnout-routing-key=feat-z,sd-routing-key=feat-x"}});
  requests.push_back({{"tracestate", "sd-routing-key=feat-y,turnout=feat-z"}});
  requests.push_back({{"x-turnout-routing-key", "bad key!"}, {"sd-routing-key", "feat-x"}});
  requests.push_back({{"baggage", "turnout-routing-key=a b"}, {"sd-routing-key", "feat-y"}});

  std::string scratch;
  for (const char* authority : {"reviews", "ratings.shop:80", "details"}) {
    for (const auto& req : requests) {
      std::vector<routing::HeaderEntry> raw;
      for (const auto& [n, v] : req) raw.push_back({n, v});
      for (uint64_t random : {0, 95}) {
        const std::string stock = clusterFor(*envoy_table, authority, raw, random);
        auto extraction =
            routing::extractRoutingKey(routing::RequestView("GET", authority, "/", raw),
                                       filter->extraction, scratch);
        const std::string key(extraction.key);
        std::vector<routing::HeaderEntry> filtered = raw;
        extraction.key = key;
        routing::applyRoutingKey(filtered, filter->output_header, extraction);
        const std::string ours = clusterFor(*turnout_table, authority, filtered, random);
        std::string what = std::string(authority) + " random " + std::to_string(random);
        for (const auto& [n, v] : req) what += "\n  " + n + ": " + v;
        INFO(what);
        CHECK(ours == stock);
      }
    }
  }
}

TEST_CASE("an empty model gives an empty route configuration and no clusters",
          "[control_plane][generator]") {
  Resources r = generate(Model{}, Dialect::kEnvoy);
  CHECK(r.clusters.empty());
  CHECK(r.load_assignments.empty());
  CHECK(r.route_configuration.name() == "outbound");
  CHECK(r.route_configuration.virtual_hosts_size() == 0);
  checkRoutesAccepted(r);
}

// ---- versions for Delta ----------------------------------------------------------------

TEST_CASE("generateByType gives every resource a content version that moves only with it",
          "[control_plane][generator]") {
  Model m = shopModel();
  ResourcesByType a = generateByType(m, Dialect::kTurnout);
  REQUIRE(a.size() == 3);
  const auto& clusters = a.at(config::kClusterTypeUrl);
  const auto& endpoints = a.at(config::kClusterLoadAssignmentTypeUrl);
  const auto& routes = a.at(config::kRouteConfigurationTypeUrl);
  CHECK(clusters.size() == 9);
  CHECK(endpoints.size() == 7);
  REQUIRE(routes.size() == 1);
  CHECK(routes.begin()->first == "outbound");
  CHECK(clusters.at("reviews").resource.type_url() == config::kClusterTypeUrl);
  CHECK(endpoints.at("reviews").resource.type_url() == config::kClusterLoadAssignmentTypeUrl);
  CHECK(clusters.at("reviews").version.size() == 16);
  cluster_v3::Cluster unpacked;
  REQUIRE(clusters.at("reviews--feat-x").resource.UnpackTo(&unpacked));
  CHECK(unpacked.name() == "reviews--feat-x");

  // Deterministic: the same model gives the same versions (and bytes).
  ResourcesByType again = generateByType(m, Dialect::kTurnout);
  for (const auto& [type, map] : a) {
    for (const auto& [name, res] : map) {
      CAPTURE(type, name);
      CHECK(again.at(type).at(name).version == res.version);
      CHECK(again.at(type).at(name).resource.value() == res.resource.value());
    }
  }

  // One fork's endpoints change: its assignment only.
  m.sandboxes.at("feat-y").forks.at("reviews") = {{"10.0.9.2", 9080}};
  ResourcesByType b = generateByType(m, Dialect::kTurnout);
  std::vector<std::string> changed;
  for (const auto& [type, map] : a) {
    for (const auto& [name, res] : map) {
      if (b.at(type).at(name).version != res.version) changed.push_back(name);
    }
  }
  CHECK(changed == std::vector<std::string>{"reviews--feat-y"});

  // The dialects differ in routes only.
  ResourcesByType e = generateByType(m, Dialect::kEnvoy);
  CHECK(e.at(config::kRouteConfigurationTypeUrl).at("outbound").version !=
        b.at(config::kRouteConfigurationTypeUrl).at("outbound").version);
  CHECK(e.at(config::kClusterTypeUrl).at("reviews").version ==
        b.at(config::kClusterTypeUrl).at("reviews").version);
}

// ---- gRPC clients and HTTP/2 services ---------------------------------------------------

TEST_CASE("gRPC clients get the envoy routes and an API listener per service domain",
          "[control_plane][generator]") {
  const Model m = shopModel();
  Resources grpc = generate(m, Dialect::kGrpc);
  Resources envoy = generate(m, Dialect::kEnvoy);
  CHECK(grpc.route_configuration.SerializeAsString() ==
        envoy.route_configuration.SerializeAsString());
  CHECK(envoy.listeners.empty());
  CHECK(generate(m, Dialect::kTurnout).listeners.empty());

  std::vector<std::string> want;
  for (const auto& [name, service] : m.services) {
    for (const auto& d : domainsFor(service)) want.push_back(d);
  }
  std::sort(want.begin(), want.end());
  std::vector<std::string> names;
  for (const auto& l : grpc.listeners) {
    names.push_back(l.name());
    CAPTURE(l.name());
    CHECK(l.address().ByteSizeLong() == 0);
    CHECK(l.filter_chains_size() == 0);
    envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager hcm;
    REQUIRE(l.api_listener().api_listener().UnpackTo(&hcm));
    CHECK(hcm.rds().route_config_name() == "outbound");
    CHECK(hcm.rds().config_source().has_ads());
    CHECK(hcm.rds().config_source().resource_api_version() == envoy::config::core::v3::V3);
    // gRFC A39: the router is the last (here the only) filter.
    REQUIRE(hcm.http_filters_size() == 1);
    CHECK(hcm.http_filters(0).typed_config().type_url() ==
          "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
  }
  CHECK(names == want);
  CHECK(names.size() == 24);
  CHECK(std::find(names.begin(), names.end(), "reviews.shop.svc.cluster.local:9080") != names.end());

  ResourcesByType by_type = generateByType(m, Dialect::kGrpc);
  CHECK(by_type.at(config::kListenerTypeUrl).size() == 24);
  CHECK(by_type.at(config::kListenerTypeUrl).at("reviews").resource.type_url() ==
        config::kListenerTypeUrl);
  // Envoy and turnout ask for every listener (wildcard): they get none yet.
  CHECK(!generateByType(m, Dialect::kEnvoy).contains(config::kListenerTypeUrl));
  CHECK(!generateByType(m, Dialect::kTurnout).contains(config::kListenerTypeUrl));
}

TEST_CASE("every locality is set and has weight 1, which gRPC needs to use it",
          "[control_plane][generator]") {
  Resources r = generate(shopModel(), Dialect::kGrpc);
  REQUIRE(!r.load_assignments.empty());
  for (const auto& cla : r.load_assignments) {
    CAPTURE(cla.cluster_name());
    REQUIRE(cla.endpoints_size() == 1);
    CHECK(cla.endpoints(0).has_locality());
    CHECK(cla.endpoints(0).load_balancing_weight().value() == 1);
  }
  for (const auto& c : r.clusters) {
    if (c.has_load_assignment()) {
      CAPTURE(c.name());
      CHECK(c.load_assignment().endpoints(0).load_balancing_weight().value() == 1);
    }
  }
}

TEST_CASE("an HTTP/2 or gRPC service's clusters, forks and versions too, speak HTTP/2 upstream",
          "[control_plane][generator]") {
  State s;
  REQUIRE(s.putService("greeter", R"({"port": 50051, "protocol": "grpc",
                                      "endpoints": ["10.0.0.5:50051"]})").ok());
  REQUIRE(s.putService("web", R"({"port": 80, "protocol": "http2",
                                  "endpoints": ["web.local:80"]})").ok());
  REQUIRE(s.putService("plain", R"({"port": 80, "endpoints": ["10.0.0.9:80"]})").ok());
  REQUIRE(s.putSandbox("feat-x", R"({"forks": {"greeter": ["10.0.0.7:50051"],
                                               "plain": ["10.0.0.8:80"]}})", kNow).ok());
  REQUIRE(s.putRelease("greeter", R"({"versions": {"v1": ["10.0.0.5:50051"]},
                                      "weights": {"v1": 100}})").ok());
  CHECK(s.model().services.at("greeter").protocol == "grpc");
  CHECK(s.model().services.at("plain").protocol == "http");
  Resources r = generate(s.model(), Dialect::kTurnout);
  std::vector<std::string> h2;  // "<cluster> h2" or "<cluster> h1"
  for (const auto& c : r.clusters) {
    auto it = c.typed_extension_protocol_options().find(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
    const bool is_h2 = it != c.typed_extension_protocol_options().end();
    h2.push_back(c.name() + (is_h2 ? " h2" : " h1"));
    if (is_h2) {
      envoy::extensions::upstreams::http::v3::HttpProtocolOptions o;
      REQUIRE(it->second.UnpackTo(&o));
      CHECK(o.explicit_http_config().has_http2_protocol_options());
    }
  }
  CHECK(h2 == std::vector<std::string>{"greeter h2", "greeter--feat-x h2", "greeter--v1 h2",
                                       "plain h1", "plain--feat-x h1", "web h2"});
  // turnout takes them as HTTP/2 clusters.
  checkClustersAccepted(r.clusters);
}

TEST_CASE("a service's protocol is http, http2 or grpc", "[control_plane][generator]") {
  State s;
  auto bad = s.putService("greeter", R"({"port": 50051, "protocol": "h2c"})");
  REQUIRE(!bad.ok());
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(bad.status().message(), "protocol"));
  CHECK(absl::StrContains(bad.status().message(), "h2c"));
  CHECK(!s.putService("greeter", R"({"port": 50051, "protocol": 2})").ok());
  CHECK(s.version() == 0);
}


// IncrementalGenerator against generateByType, step by step through a run of
// mutations, for every profile: the same resources byte for byte, and
// changed()/removed() exactly the difference from the step before.
TEST_CASE("the incremental generator equals a full generation after every mutation",
          "[control_plane][generator]") {
  const std::vector<Profile> profiles = {
      Profile(Dialect::kTurnout), Profile(Dialect::kEnvoy), Profile(Dialect::kGrpc),
      Profile(Dialect::kTurnout, true), Profile(Dialect::kEnvoy, true),
      Profile(Dialect::kTurnout, false, true), Profile(Dialect::kEnvoy, true, true),
      Profile(Dialect::kTurnout, true, false, IpFamilies::kDual),
      Profile(Dialect::kEnvoy, true, true, IpFamilies::kIpv6)};
  State s;
  auto ok = [](const auto& r) { REQUIRE(r.ok()); };
  const absl::Time now = absl::Now();
  std::vector<std::function<void()>> steps = {
      [&] { ok(s.putService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.5:9080"]})")); },
      [&] { ok(s.putService("ratings", R"({"port": 9081, "endpoints": ["10.0.0.6:9081"]})")); },
      [&] { ok(s.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", now)); },
      [&] {
        ok(s.putSandbox("feat-y", R"({"forks": {"reviews": ["10.0.0.8:9080"], "ratings": ["db:9081"]}})",
                        now));
      },
      [&] {
        ok(s.putService("reviews",
                        R"({"port": 9080, "endpoints": ["10.0.0.5:9080", "10.0.0.9:9080"]})"));
      },
      [&] {
        ok(s.putRelease("ratings", R"({"versions": {"v1": ["10.0.1.1:9081"], "v2": ["10.0.1.2:9081"]},
                                       "weights": {"v1": 90, "v2": 10}})"));
      },
      [&] { ok(s.putSandbox("feat-x", R"({"forks": {"ratings": ["10.0.0.7:9081"]}})", now)); },
      // One update in which a cluster name moves from the service's own (a
      // release version) to a fork (a sandbox of that name), and back.
      [&] {
        ok(s.deleteRelease("ratings"));
        ok(s.putSandbox("v2", R"({"forks": {"ratings": ["10.0.0.12:9081"]}})", now));
      },
      [&] {
        ok(s.deleteSandbox("v2"));
        ok(s.putRelease("ratings",
                        R"({"versions": {"v1": ["10.0.1.1:9081"], "v2": ["10.0.1.2:9081"]},
                                       "weights": {"v1": 90, "v2": 10}})"));
      },
      // Reused and remade fork clusters: a key before the others, a fork
      // going from IP endpoints (EDS) to a DNS name and back, the service's
      // protocol changing under its forks.
      [&] { ok(s.putSandbox("feat-a", R"({"forks": {"reviews": ["10.0.0.11:9080"]}})", now)); },
      [&] {
        ok(s.putSandbox("feat-y",
                        R"({"forks": {"reviews": ["rev-y:9080"], "ratings": ["db:9081"]}})", now));
      },
      [&] {
        ok(s.putService("reviews",
                        R"({"port": 9080, "endpoints": ["10.0.0.5:9080"], "protocol": "http2"})"));
      },
      [&] {
        ok(s.putSandbox(
            "feat-y", R"({"forks": {"reviews": ["10.0.0.8:9080"], "ratings": ["db:9081"]}})", now));
      },
      [&] { ok(s.deleteSandbox("feat-a")); },
      [&] {
        ok(s.putService("details",
                        R"({"port": 9080, "endpoints": ["10.0.0.10:9080"], "protocol": "grpc"})"));
      },
      [&] { ok(s.deleteSandbox("feat-y")); },
      [&] { ok(s.deleteRelease("ratings")); },
      // A mutation taken back (a store that refused it), an expiry, and a
      // state put back from a copy (its journal restarted).
      [&] {
        const State::Checkpoint c = s.checkpoint(ResourceKind::kSandbox, "feat-x");
        ok(s.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.21:9080"]}})", now));
        s.rollback(c);
      },
      [&] {
        const State::Checkpoint c = s.checkpoint(ResourceKind::kSandbox, "feat-z");
        ok(s.putSandbox("feat-z", R"({"forks": {"reviews": ["10.0.0.22:9080"]}})", now));
        s.rollback(c);
      },
      [&] {
        ok(s.putSandbox("short", R"({"ttl": "1h", "forks": {"ratings": ["10.0.0.23:9081"]}})",
                        now));
      },
      [&] { CHECK(s.expire(now + absl::Hours(2)).removed == std::vector<std::string>{"short"}); },
      [&] {
        State copy = s;
        ok(s.putSandbox("feat-w", R"({"forks": {"reviews": ["10.0.0.24:9080"]}})", now));
        s = std::move(copy);
        s.restartJournal();
      },
      [&] { ok(s.deleteSandbox("feat-x")); },
      [&] { ok(s.deleteService("ratings")); },
      [&] { ok(s.deleteService("details")); },
  };
  for (const Profile& profile : profiles) {
    CAPTURE(profileKey(profile));
    s = State();
    IncrementalGenerator g(profile);
    ResourcesByType before = generateByType(s.model(), profile);
    g.update(s.model());
    CHECK(g.resources().size() == before.size());
    for (size_t i = 0; i < steps.size(); ++i) {
      CAPTURE(i);
      const uint64_t epoch = s.model().journal.epoch;
      steps[i]();
      g.update(s.model());
      // Made from the journal's list, unless the journal was restarted.
      CHECK(g.lastUpdateIncremental() == (s.model().journal.epoch == epoch));
      if (g.lastUpdateIncremental()) CHECK(g.lastUpdateServices() <= 2);
      const ResourcesByType want = generateByType(s.model(), profile);
      REQUIRE(g.resources().size() == want.size());
      for (const auto& [type, map] : want) {
        CAPTURE(type);
        const ResourceMap& got = g.resources().at(type);
        std::set<std::string> changed, removed;
        for (const auto& [name, v] : map) {
          auto it = got.find(name);
          REQUIRE(it != got.end());
          CHECK(it->second.version == v.version);
          CHECK(it->second.resource.SerializeAsString() == v.resource.SerializeAsString());
          auto b = before[type].find(name);
          if (b == before[type].end() || b->second.version != v.version) changed.insert(name);
        }
        CHECK(got.size() == map.size());
        for (const auto& [name, v] : before[type]) {
          if (!map.contains(name)) {
            changed.insert(name);
            removed.insert(name);
          }
        }
        CHECK(g.changed().at(type) == changed);
        std::set<std::string> gone;
        if (auto r = g.removed().find(type); r != g.removed().end()) {
          for (const auto& [name, v] : r->second) gone.insert(name);
        }
        CHECK(gone == removed);
      }
      // Otherwise the RouteConfiguration's bytes are the deterministic
      // serialization of the message generate() makes (the generator puts
      // them together from each service's kept virtual host bytes).
      if (!profile.vhds) {
        const Resources full = generate(s.model(), profile);
        std::string bytes;
        {
          google::protobuf::io::StringOutputStream stream(&bytes);
          google::protobuf::io::CodedOutputStream coded(&stream);
          coded.SetSerializationDeterministic(true);
          full.route_configuration.SerializeToCodedStream(&coded);
        }
        const ResourceMap& got = g.resources().at(config::kRouteConfigurationTypeUrl);
        REQUIRE(got.size() == 1);
        CHECK(got.begin()->second.resource.type_url() ==
              "type.googleapis.com/envoy.config.route.v3.RouteConfiguration");
        CHECK(got.begin()->second.resource.value() == bytes);
      }
      // VHDS: each VirtualHost's bytes are the deterministic serialization
      // of the message a full generation makes (the turnout dialect writes
      // its sandbox routes' bytes directly).
      if (profile.vhds) {
        const Resources full = generate(s.model(), profile);
        const ResourceMap& got = g.resources().at(std::string(kVirtualHostTypeUrl));
        REQUIRE(got.size() == full.virtual_hosts.size());
        for (const auto& vh : full.virtual_hosts) {
          CAPTURE(vh.name());
          std::string bytes;
          {
            google::protobuf::io::StringOutputStream stream(&bytes);
            google::protobuf::io::CodedOutputStream coded(&stream);
            coded.SetSerializationDeterministic(true);
            vh.SerializeToCodedStream(&coded);
          }
          const auto it = got.find(vh.name());
          REQUIRE(it != got.end());
          CHECK(it->second.resource.type_url() ==
                "type.googleapis.com/envoy.config.route.v3.VirtualHost");
          CHECK(it->second.resource.value() == bytes);
        }
      }
      before = want;
    }
  }
}

TEST_CASE("a generator that fell behind a journal's list looks at every service",
          "[control_plane][generator]") {
  State s;
  const absl::Time now = absl::Now();
  REQUIRE(s.putService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.5:9080"]})").ok());
  REQUIRE(s.putService("ratings", R"({"port": 9081, "endpoints": ["10.0.0.6:9081"]})").ok());
  IncrementalGenerator g(Profile(Dialect::kTurnout, false, true));
  g.update(s.model());
  CHECK_FALSE(g.lastUpdateIncremental());
  CHECK(g.lastUpdateServices() == 2);
  REQUIRE(s.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", now).ok());
  g.update(s.model());
  CHECK(g.lastUpdateIncremental());
  CHECK(g.lastUpdateServices() == 1);
  // More changes than the journal lists, then one update: all of them.
  for (int i = 0; i < 9000; ++i) {
    const std::string port = i % 2 == 0 ? "9082" : "9081";
    REQUIRE(s.putService("ratings", R"({"port": )" + port + R"(, "endpoints": ["10.0.0.6:9081"]})")
                .ok());
  }
  REQUIRE(s.putSandbox("feat-y", R"({"forks": {"reviews": ["10.0.0.8:9080"]}})", now).ok());
  g.update(s.model());
  CHECK_FALSE(g.lastUpdateIncremental());
  CHECK(g.lastUpdateServices() == 2);
  const ResourcesByType want = generateByType(s.model(), Profile(Dialect::kTurnout, false, true));
  for (const auto& [type, map] : want) {
    CAPTURE(type);
    REQUIRE(g.resources().at(type).size() == map.size());
    for (const auto& [name, v] : map) CHECK(g.resources().at(type).at(name).version == v.version);
  }
  // A model without a journal (put together by hand): every update looks at all.
  Model hand = s.model();
  hand.journal = ModelJournal{};
  g.update(hand);
  CHECK_FALSE(g.lastUpdateIncremental());
  g.update(hand);
  CHECK_FALSE(g.lastUpdateIncremental());
}

}  // namespace
}  // namespace turnout::control_plane
