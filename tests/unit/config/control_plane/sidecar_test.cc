#include "config/control_plane/sidecar.h"

#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "config/bootstrap/bootstrap_loader.h"
#include "config/control_plane/generator.h"
#include "config/control_plane/sidecar_bootstrap.h"
#include "config/control_plane/state.h"
#include "config/snapshot/discovery_response.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"
#include "google/protobuf/util/json_util.h"
#include "routing/request_view.h"
#include "routing/route_table.h"
#include "turnout/extensions/filters/http/routing_key/v3/routing_key.pb.h"

namespace turnout::control_plane {
namespace {

namespace listener_v3 = envoy::config::listener::v3;
namespace hcm_v3 = envoy::extensions::filters::network::http_connection_manager::v3;
using RoutingKeyProto = turnout::extensions::filters::http::routing_key::v3::RoutingKey;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

Model shopModel() {
  State s;
  REQUIRE(s.putService("reviews", R"({"port": 9080, "namespace": "shop",
                                      "endpoints": ["10.0.0.5:9080"]})")
              .ok());
  REQUIRE(s.putService("ratings", R"({"port": 9090, "namespace": "shop",
                                      "endpoints": ["10.0.1.5:9090"]})")
              .ok());
  REQUIRE(s.putService("details", R"({"port": 9080, "endpoints": ["10.0.2.5:9080"]})").ok());
  REQUIRE(s.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", kNow).ok());
  return s.model();
}

std::string responseJson(const std::vector<const google::protobuf::Message*>& resources) {
  std::string out = R"({"version_info": "1", "resources": [)";
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  for (size_t i = 0; i < resources.size(); ++i) {
    google::protobuf::Any any;
    any.PackFrom(*resources[i]);
    std::string json;
    REQUIRE(google::protobuf::util::MessageToJsonString(any, &json, opts).ok());
    if (i > 0) out += ",";
    out += json;
  }
  return out + "]}";
}

template <typename T>
std::vector<const google::protobuf::Message*> pointers(const std::vector<T>& v) {
  std::vector<const google::protobuf::Message*> out;
  for (const auto& m : v) out.push_back(&m);
  return out;
}

std::map<std::string, const listener_v3::Listener*> byName(const Resources& r) {
  std::map<std::string, const listener_v3::Listener*> out;
  for (const auto& l : r.listeners) out[l.name()] = &l;
  return out;
}

hcm_v3::HttpConnectionManager hcmOf(const listener_v3::FilterChain& chain) {
  hcm_v3::HttpConnectionManager hcm;
  REQUIRE(chain.filters_size() == 1);
  REQUIRE(chain.filters(0).typed_config().UnpackTo(&hcm));
  return hcm;
}

TEST_CASE("sidecarFor reads node metadata turnout.mode", "[control_plane][sidecar]") {
  envoy::config::core::v3::Node node;
  CHECK_FALSE(sidecarFor(node));
  REQUIRE(google::protobuf::util::JsonStringToMessage(
              R"({"id": "a", "metadata": {"turnout": {"mode": "sidecar", "service": "reviews"}}})", &node)
              .ok());
  CHECK(sidecarFor(node));
  CHECK(profileFor(node).sidecar);
  CHECK(profileName(profileFor(node)) == "envoy/sidecar");
  node.set_user_agent_name("turnout");
  CHECK(profileName(profileFor(node)) == "turnout/sidecar");
  // gRPC's proxyless clients are never captured.
  node.set_user_agent_name("gRPC Go");
  CHECK_FALSE(profileFor(node).sidecar);
  REQUIRE(google::protobuf::util::JsonStringToMessage(
              R"({"id": "a", "metadata": {"turnout": {"mode": "explicit"}}})", &node)
              .ok());
  CHECK_FALSE(sidecarFor(node));
  REQUIRE(google::protobuf::util::JsonStringToMessage(R"({"id": "a", "metadata": {"turnout": "sidecar"}})",
                                                      &node)
              .ok());
  CHECK_FALSE(sidecarFor(node));
}

envoy::config::core::v3::Node nodeOf(const std::string& json) {
  envoy::config::core::v3::Node node;
  REQUIRE(google::protobuf::util::JsonStringToMessage(json, &node).ok());
  return node;
}

TEST_CASE("a sidecar's inbound ports are its own service's, by node metadata",
          "[control_plane][sidecar]") {
  const Model model = shopModel();
  auto service = [](const std::string& json) { return sidecarServiceFor(nodeOf(json)); };
  const SidecarService reviews =
      service(R"({"id": "a", "metadata": {"turnout": {"mode": "sidecar", "service": "reviews",
                                                       "namespace": "shop"}}})");
  CHECK(reviews.name == "reviews");
  CHECK(reviews.ns == "shop");
  CHECK(sidecarInboundPorts(model, reviews, nullptr) == std::set<uint32_t>{9080});
  // No namespace in the metadata: the name alone.
  CHECK(sidecarInboundPorts(model, service(R"({"id": "a", "metadata": {"turnout":
      {"mode": "sidecar", "service": "ratings"}}})"), nullptr) == std::set<uint32_t>{9090});
  // Another namespace, an unknown service, none, or not a string: no own ports
  // (the node gets the chains of every service port).
  CHECK_FALSE(sidecarInboundPorts(model, service(R"({"id": "a", "metadata": {"turnout":
      {"mode": "sidecar", "service": "reviews", "namespace": "other"}}})"), nullptr));
  CHECK_FALSE(sidecarInboundPorts(model, service(R"({"id": "a", "metadata": {"turnout":
      {"mode": "sidecar", "service": "nosuch"}}})"), nullptr));
  CHECK_FALSE(sidecarInboundPorts(model, service(R"({"id": "a", "metadata": {"turnout":
      {"mode": "sidecar"}}})"), nullptr));
  CHECK(service(R"({"id": "a", "metadata": {"turnout": {"mode": "sidecar", "service": 7}}})")
            .name.empty());
  CHECK(service(R"({"id": "a"})").name.empty());

  // The endpoints at the pod's address add their ports (a second app in the
  // pod, a sandbox fork, a release version), with or without a named service.
  const std::set<uint32_t> pod = {8081, 9080};
  CHECK(sidecarInboundPorts(model, reviews, &pod) == std::set<uint32_t>{8081, 9080});
  CHECK(sidecarInboundPorts(model, SidecarService{}, &pod) == pod);
  const std::set<uint32_t> none;
  CHECK_FALSE(sidecarInboundPorts(model, SidecarService{}, &none));

  const listener_v3::Listener own = sidecarInboundListener({9080}, true, IpFamilies::kIpv4);
  CHECK(own.name() == "virtualInbound");
  REQUIRE(own.filter_chains_size() == 1);
  CHECK(own.filter_chains(0).filter_chain_match().destination_port().value() == 9080);
  CHECK(own.has_default_filter_chain());
}

TEST_CASE("the model's endpoint ports by address, and a stream's address, canonical",
          "[control_plane][sidecar]") {
  CHECK(canonicalIp("10.0.0.5") == "10.0.0.5");
  CHECK(canonicalIp("::ffff:10.0.0.5") == "10.0.0.5");
  CHECK(canonicalIp("FD00:0::5") == "fd00::5");
  CHECK(canonicalIp("reviews.shop") == "");
  CHECK(peerIp("10.0.0.5:4711") == "10.0.0.5");
  CHECK(peerIp("[::ffff:10.0.0.5]:4711") == "10.0.0.5");
  CHECK(peerIp("[fd00::5]:4711") == "fd00::5");
  CHECK(peerIp("[fd00::5") == "");
  CHECK(peerIp("") == "");

  State s;
  REQUIRE(s.putService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.5:9080", "[fd00::5]:9081"]})").ok());
  REQUIRE(s.putService("admin", R"({"port": 80, "endpoints": ["10.0.0.5:8081", "db.local:5432"]})").ok());
  REQUIRE(s.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", kNow).ok());
  REQUIRE(s.putRelease("reviews", R"({"versions": {"v2": ["10.0.0.8:9090"]}, "weights": {"v2": 100}})").ok());
  const PortsByIp ports = endpointPortsByIp(s.model());
  CHECK(ports == PortsByIp{{"10.0.0.5", {8081, 9080}},
                           {"fd00::5", {9081}},
                           {"10.0.0.7", {9080}},
                           {"10.0.0.8", {9090}}});
}

TEST_CASE("a sidecar's IP families come from node metadata and an unknown value is IPv4 and reported",
          "[control_plane][sidecar]") {
  std::string unknown;
  const auto absent = nodeOf(R"({"id": "a", "metadata": {"turnout": {"mode": "sidecar"}}})");
  CHECK(ipFamiliesFor(absent, &unknown) == IpFamilies::kIpv4);
  CHECK(profileFor(absent) == Profile(Dialect::kEnvoy, true));
  CHECK(unknown.empty());
  for (const auto& [value, families, name] :
       std::vector<std::tuple<std::string, IpFamilies, std::string>>{
           {"ipv4", IpFamilies::kIpv4, "envoy/sidecar"},
           {"ipv6", IpFamilies::kIpv6, "envoy/sidecar/ipv6"},
           {"dual", IpFamilies::kDual, "envoy/sidecar/dual"}}) {
    const auto node = nodeOf(absl::StrCat(
        R"({"id": "a", "metadata": {"turnout": {"mode": "sidecar", "ip_families": ")", value, R"("}}})"));
    CHECK(ipFamiliesFor(node, &unknown) == families);
    CHECK(profileFor(node).ip_families == families);
    CHECK(profileName(profileFor(node)) == name);
    CHECK(parseIpFamilies(value) == families);
    CHECK(ipFamiliesName(families) == value);
  }
  CHECK(unknown.empty());
  // "ipv4" and absent are one profile: byte-for-byte the same resources.
  CHECK(profileFor(nodeOf(R"({"id": "a", "metadata": {"turnout": {"mode": "sidecar", "ip_families": "ipv4"}}})")) ==
        profileFor(absent));
  for (const char* bad : {R"("IPv6")", R"("both")", R"("")", "6"}) {
    CAPTURE(bad);
    unknown.clear();
    const auto node = nodeOf(absl::StrCat(
        R"({"id": "a", "metadata": {"turnout": {"mode": "sidecar", "ip_families": )", bad, "}}}"));
    CHECK(profileFor(node, &unknown).ip_families == IpFamilies::kIpv4);
    CHECK_FALSE(unknown.empty());
  }
  CHECK_FALSE(parseIpFamilies("IPv4").has_value());
  // Not a sidecar: no families at all.
  const auto explicit_node =
      nodeOf(R"({"id": "a", "metadata": {"turnout": {"mode": "explicit", "ip_families": "dual"}}})");
  CHECK(profileFor(explicit_node).ip_families == IpFamilies::kIpv4);
  CHECK(Profile(Dialect::kGrpc, true, false, IpFamilies::kDual).ip_families == IpFamilies::kIpv4);
}

TEST_CASE("IPv6 and dual-stack sidecars listen on :: and their inbound passthrough binds ::6",
          "[control_plane][sidecar]") {
  const Dialect dialect = GENERATE(Dialect::kTurnout, Dialect::kEnvoy);
  const IpFamilies families = GENERATE(IpFamilies::kIpv4, IpFamilies::kIpv6, IpFamilies::kDual);
  CAPTURE(dialectName(dialect), ipFamiliesName(families));
  const Resources r = generate(shopModel(), Profile(dialect, true, false, families));
  const auto listeners = byName(r);
  const std::string prefix = families == IpFamilies::kIpv6 ? "::" : "0.0.0.0";
  std::vector<std::string> names;
  for (const auto& [name, l] : listeners) names.push_back(name);
  CHECK(names == std::vector<std::string>{prefix + "_9080", prefix + "_9090", "virtualInbound",
                                          "virtualOutbound"});
  for (const auto& [name, l] : listeners) {
    CAPTURE(name);
    const auto& sa = l->address().socket_address();
    CHECK(sa.address() == (families == IpFamilies::kIpv4 ? "0.0.0.0" : "::"));
    CHECK(sa.ipv4_compat() == (families == IpFamilies::kDual));
  }
  const listener_v3::Listener& in = *listeners.at("virtualInbound");
  CHECK(hcmOf(in.filter_chains(0)).stat_prefix() == "inbound_" + prefix + "_9080");
  CHECK(hcmOf(listeners.at(prefix + "_9090")->filter_chains(0)).stat_prefix() ==
        "outbound_" + prefix + "_9090");
  bool found = false;
  for (const auto& c : r.clusters) {
    if (c.name() != "InboundPassthroughCluster") continue;
    found = true;
    const auto& bind = c.upstream_bind_config();
    CHECK(bind.source_address().address() ==
          (families == IpFamilies::kIpv6 ? "::6" : "127.0.0.6"));
    if (families == IpFamilies::kDual) {
      REQUIRE(bind.extra_source_addresses_size() == 1);
      CHECK(bind.extra_source_addresses(0).address().address() == "::6");
      CHECK(bind.extra_source_addresses(0).address().port_value() == 0);
      CHECK_FALSE(bind.extra_source_addresses(0).has_socket_options());
    } else {
      CHECK(bind.extra_source_addresses_size() == 0);
    }
  }
  CHECK(found);

  // turnout takes them as they are (stock Envoy's protos and checks: no
  // ipv4_compat on a non-:: address, an extra address of the other family).
  auto clusters = config::parseClusterResponse(responseJson(pointers(r.clusters)));
  INFO(clusters.status().ToString());
  REQUIRE(clusters.ok());
  auto parsed = config::parseListenerResponse(responseJson(pointers(r.listeners)));
  INFO(parsed.status().ToString());
  REQUIRE(parsed.ok());
  CHECK(parsed->snapshot->listeners.size() == 4);
}

TEST_CASE("a capture bootstrap names its IP families unless they are IPv4",
          "[control_plane][sidecar]") {
  SidecarBootstrap b;
  b.node_id = "reviews-1.shop";
  b.node_cluster = "reviews";
  b.capture = true;
  b.service = "reviews";
  b.service_ns = "shop";
  b.xds_host = "127.0.0.1";
  const std::string ipv4 = toYaml(b);
  CHECK(absl::StrContains(ipv4,
                          "    turnout: {mode: sidecar, service: \"reviews\", namespace: \"shop\"}\n"));
  CHECK_FALSE(absl::StrContains(ipv4, "ip_families"));
  for (IpFamilies families : {IpFamilies::kIpv6, IpFamilies::kDual}) {
    b.ip_families = families;
    const std::string yaml = toYaml(b);
    CHECK(absl::StrContains(yaml, absl::StrCat("    turnout: {mode: sidecar, service: \"reviews\", "
                                               "namespace: \"shop\", ip_families: ",
                                               std::string(ipFamiliesName(families)), "}\n")));
    auto loaded = config::loadBootstrapFromYaml(yaml);
    INFO(loaded.status().ToString());
    REQUIRE(loaded.ok());
    CHECK(profileFor(loaded->bootstrap.node()).ip_families == families);
  }
  // Only a capture bootstrap carries metadata.
  b.capture = false;
  CHECK_FALSE(absl::StrContains(toYaml(b), "ip_families"));
}

TEST_CASE("a sidecar gets Istio's capture listeners and the passthrough clusters",
          "[control_plane][sidecar]") {
  const Dialect dialect = GENERATE(Dialect::kTurnout, Dialect::kEnvoy);
  CAPTURE(dialectName(dialect));
  const Model m = shopModel();
  const Resources plain = generate(m, dialect);
  const Resources r = generate(m, Profile(dialect, true));
  CHECK(plain.listeners.empty());
  CHECK(r.clusters.size() == plain.clusters.size() + 2);
  // The inbound passthrough binds 127.0.0.6 (turnout iptables never captures
  // it); the outbound one binds nothing.
  for (const auto& c : r.clusters) {
    if (c.name() == "InboundPassthroughCluster") {
      CHECK(c.upstream_bind_config().source_address().address() == "127.0.0.6");
      CHECK(c.upstream_bind_config().source_address().port_value() == 0);
    } else {
      CHECK_FALSE(c.has_upstream_bind_config());
    }
  }

  const auto listeners = byName(r);
  REQUIRE(listeners.size() == 4);  // virtualOutbound, virtualInbound, 9080, 9090
  const listener_v3::Listener& out = *listeners.at("virtualOutbound");
  CHECK(out.address().socket_address().port_value() == 15001);
  CHECK(out.use_original_dst().value());
  CHECK(out.filter_chains_size() == 0);
  envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy tcp;
  REQUIRE(out.default_filter_chain().filters(0).typed_config().UnpackTo(&tcp));
  CHECK(tcp.cluster() == "PassthroughCluster");

  for (uint32_t port : {9080u, 9090u}) {
    const listener_v3::Listener& l = *listeners.at("0.0.0.0_" + std::to_string(port));
    CHECK(l.address().socket_address().port_value() == port);
    CHECK_FALSE(l.bind_to_port().value());
    REQUIRE(l.has_bind_to_port());
    hcm_v3::HttpConnectionManager hcm = hcmOf(l.filter_chains(0));
    CHECK(hcm.rds().route_config_name() == "outbound");
    CHECK(hcm.codec_type() == hcm_v3::HttpConnectionManager::AUTO);
    CHECK(hcm.http_filters(hcm.http_filters_size() - 1).name() == "envoy.filters.http.router");
    if (dialect == Dialect::kTurnout) {
      REQUIRE(hcm.http_filters_size() == 2);
      RoutingKeyProto rk;
      REQUIRE(hcm.http_filters(0).typed_config().UnpackTo(&rk));
      CHECK(rk.trace_key_recovery().mode() == RoutingKeyProto::TraceKeyRecovery::RECOVER);
    } else {
      CHECK(hcm.http_filters_size() == 1);
    }
  }

  const listener_v3::Listener& in = *listeners.at("virtualInbound");
  CHECK(in.address().socket_address().port_value() == 15006);
  REQUIRE(in.listener_filters_size() == 1);
  CHECK(in.listener_filters(0).name() == "envoy.filters.listener.original_dst");
  REQUIRE(in.filter_chains_size() == 2);
  CHECK(in.filter_chains(0).filter_chain_match().destination_port().value() == 9080);
  CHECK(in.filter_chains(1).filter_chain_match().destination_port().value() == 9090);
  hcm_v3::HttpConnectionManager inbound = hcmOf(in.filter_chains(0));
  CHECK(inbound.route_config().virtual_hosts(0).routes(0).route().cluster() ==
        "InboundPassthroughCluster");
  if (dialect == Dialect::kTurnout) {
    RoutingKeyProto rk;
    REQUIRE(inbound.http_filters(0).typed_config().UnpackTo(&rk));
    CHECK(rk.trace_key_recovery().mode() == RoutingKeyProto::TraceKeyRecovery::REMEMBER);
  }
  REQUIRE(in.default_filter_chain().filters(0).typed_config().UnpackTo(&tcp));
  CHECK(tcp.cluster() == "InboundPassthroughCluster");
}

TEST_CASE("turnout accepts the sidecar's listeners, clusters and routes",
          "[control_plane][sidecar]") {
  const Dialect dialect = GENERATE(Dialect::kTurnout, Dialect::kEnvoy);
  CAPTURE(dialectName(dialect));
  const Resources r = generate(shopModel(), Profile(dialect, true));
  auto clusters = config::parseClusterResponse(responseJson(pointers(r.clusters)));
  INFO(clusters.status().ToString());
  REQUIRE(clusters.ok());
  auto listeners = config::parseListenerResponse(responseJson(pointers(r.listeners)));
  INFO(listeners.status().ToString());
  REQUIRE(listeners.ok());
  CHECK(listeners->snapshot->listeners.size() == 4);

  auto routes = config::parseRouteResponse(responseJson({&r.route_configuration}));
  INFO(routes.status().ToString());
  REQUIRE(routes.ok());
  const routing::RouteTable& table = *routes->tables[0].second;
  auto clusterFor = [&](const std::string& authority) {
    std::vector<routing::HeaderEntry> headers;
    routing::RequestView view("GET", authority, "/", headers);
    auto d = table.match(view, 0);
    return d.kind == routing::RouteDecision::Kind::Route ? std::string(d.cluster) : "<none>";
  };
  CHECK(clusterFor("reviews:9080") == "reviews");
  // A host the model does not know goes where the app sent it (ALLOW_ANY).
  CHECK(clusterFor("example.com:9080") == "PassthroughCluster");
  CHECK(clusterFor("10.96.0.1:9090") == "PassthroughCluster");
}

TEST_CASE("a service on a port the sidecar uses is refused with the port field",
          "[control_plane][sidecar]") {
  const uint32_t port = GENERATE(15000u, 15001u, 15006u, 15021u);
  State s;
  const std::string body = absl::StrCat(R"({"port": )", port, R"(, "endpoints": ["10.0.0.5:80"]})");
  auto put = s.putService("odd", body);
  REQUIRE_FALSE(put.ok());
  CHECK(put.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(put.status().message() ==
        absl::StrCat("port: ", port,
                     " is a port the sidecar uses itself (reserved: 15000, 15001, 15006, 15021; "
                     "docs/sidecar.md)"));
  CHECK(httpStatusFor(put.status()) == 400);
  CHECK(s.model().services.empty());
  // The typed put is checked the same way.
  Service typed;
  typed.name = "odd";
  typed.port = port;
  CHECK_FALSE(s.putService(typed).ok());
  // Other ports nearby are ordinary ones.
  CHECK(s.putService("near", absl::StrCat(R"({"port": )", port + 100, "}")).ok());
}

TEST_CASE("a stored service on a reserved port gets no outbound listener of its own",
          "[control_plane][sidecar]") {
  // Stored before turnout-cp refused such ports: it still loads, but the
  // sidecar's own addresses stay its own.
  Model m;
  for (uint32_t port : kSidecarReservedPorts) {
    Service svc;
    svc.name = absl::StrCat("odd", port);
    svc.port = port;
    m.services[svc.name] = svc;
  }
  const Resources r = generate(m, Profile(Dialect::kEnvoy, true));
  const auto listeners = byName(r);
  CHECK(listeners.size() == 2);
  CHECK(listeners.contains("virtualOutbound"));
  CHECK(listeners.contains("virtualInbound"));
}

TEST_CASE("generateByType gives sidecars a listener type, and only them",
          "[control_plane][sidecar]") {
  const Model m = shopModel();
  CHECK_FALSE(generateByType(m, Dialect::kTurnout).contains(config::kListenerTypeUrl));
  CHECK_FALSE(generateByType(m, Dialect::kEnvoy).contains(config::kListenerTypeUrl));
  const ResourcesByType s = generateByType(m, Profile(Dialect::kTurnout, true));
  REQUIRE(s.contains(config::kListenerTypeUrl));
  CHECK(s.at(config::kListenerTypeUrl).size() == 4);
  CHECK(s.at(config::kClusterTypeUrl).contains("PassthroughCluster"));
}

}  // namespace
}  // namespace turnout::control_plane
