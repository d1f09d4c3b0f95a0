#include "config/control_plane/sidecar.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/control_plane/generator.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/listener/original_dst/v3/original_dst.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"

namespace turnout::control_plane {
namespace {

namespace cluster_v3 = envoy::config::cluster::v3;
namespace core_v3 = envoy::config::core::v3;
namespace listener_v3 = envoy::config::listener::v3;
namespace route_v3 = envoy::config::route::v3;
namespace hcm_v3 = envoy::extensions::filters::network::http_connection_manager::v3;
namespace tcp_v3 = envoy::extensions::filters::network::tcp_proxy::v3;

constexpr char kAnyAddress[] = "0.0.0.0";
constexpr char kAnyAddressIpv6[] = "::";

// The wildcard a profile's listeners are named after (Istio names them after
// its first wildcard: 0.0.0.0 for IPv4 and dual stack, :: for IPv6).
const char* nameAddress(IpFamilies families) {
  return families == IpFamilies::kIpv6 ? kAnyAddressIpv6 : kAnyAddress;
}

// IPv4: 0.0.0.0; IPv6: ::; dual: :: with ipv4_compat (IPV6_V6ONLY off: one
// socket takes both families, and Envoy and turnout hand an IPv4 original
// destination to it as to 0.0.0.0).
void setAddress(listener_v3::Listener& l, uint32_t port, IpFamilies families) {
  auto* sa = l.mutable_address()->mutable_socket_address();
  sa->set_address(families == IpFamilies::kIpv4 ? kAnyAddress : kAnyAddressIpv6);
  sa->set_port_value(port);
  if (families == IpFamilies::kDual) sa->set_ipv4_compat(true);
}

void addOriginalDst(listener_v3::Listener& l) {
  auto* f = l.add_listener_filters();
  f->set_name("envoy.filters.listener.original_dst");
  f->mutable_typed_config()->PackFrom(envoy::extensions::filters::listener::original_dst::v3::OriginalDst());
}

// A filter chain that relays TCP to `cluster` (ORIGINAL_DST: where it was going).
listener_v3::FilterChain tcpRelay(const std::string& cluster) {
  tcp_v3::TcpProxy tcp;
  tcp.set_stat_prefix(cluster);
  tcp.set_cluster(cluster);
  listener_v3::FilterChain chain;
  chain.set_name(cluster);
  auto* f = chain.add_filters();
  f->set_name("envoy.filters.network.tcp_proxy");
  f->mutable_typed_config()->PackFrom(tcp);
  return chain;
}

// The HCM both directions share: AUTO codec, no stream idle timeout beyond
// Envoy's, the turnout dialect's RoutingKey filter first, the router last.
hcm_v3::HttpConnectionManager httpManager(std::string stat_prefix, bool turnout_dialect,
                                          bool inbound) {
  hcm_v3::HttpConnectionManager hcm;
  hcm.set_stat_prefix(std::move(stat_prefix));
  hcm.set_codec_type(hcm_v3::HttpConnectionManager::AUTO);
  if (turnout_dialect) {
    using Recovery = turnout::extensions::filters::http::routing_key::v3::RoutingKey::TraceKeyRecovery;
    auto filter = routingKeyFilterConfig();
    // Inbound requests teach trace id -> key; outbound ones without a key get
    // it back (apps that propagate traceparent but drop baggage).
    filter.mutable_trace_key_recovery()->set_mode(inbound ? Recovery::REMEMBER : Recovery::RECOVER);
    auto* f = hcm.add_http_filters();
    f->set_name("turnout.filters.http.routing_key");
    f->mutable_typed_config()->PackFrom(filter);
  }
  auto* router = hcm.add_http_filters();
  router->set_name("envoy.filters.http.router");
  router->mutable_typed_config()->PackFrom(envoy::extensions::filters::http::router::v3::Router());
  return hcm;
}

void addHttpManager(listener_v3::FilterChain& chain, const hcm_v3::HttpConnectionManager& hcm) {
  auto* f = chain.add_filters();
  f->set_name("envoy.filters.network.http_connection_manager");
  f->mutable_typed_config()->PackFrom(hcm);
}

listener_v3::Listener virtualOutbound(IpFamilies families) {
  listener_v3::Listener l;
  l.set_name(kVirtualOutboundListener);
  setAddress(l, kOutboundCapturePort, families);
  l.mutable_use_original_dst()->set_value(true);
  l.set_traffic_direction(core_v3::OUTBOUND);
  addOriginalDst(l);
  *l.mutable_default_filter_chain() = tcpRelay(kPassthroughCluster);
  return l;
}

listener_v3::Listener outboundPort(uint32_t port, bool turnout_dialect, IpFamilies families) {
  listener_v3::Listener l;
  const std::string name = absl::StrCat(nameAddress(families), "_", port);
  l.set_name(name);
  setAddress(l, port, families);
  l.mutable_bind_to_port()->set_value(false);
  l.set_traffic_direction(core_v3::OUTBOUND);
  hcm_v3::HttpConnectionManager hcm = httpManager(absl::StrCat("outbound_", name), turnout_dialect,
                                                  /*inbound=*/false);
  auto* rds = hcm.mutable_rds();
  rds->set_route_config_name(kRouteConfigurationName);
  rds->mutable_config_source()->mutable_ads();
  rds->mutable_config_source()->set_resource_api_version(core_v3::V3);
  addHttpManager(*l.add_filter_chains(), hcm);
  return l;
}

}  // namespace

listener_v3::Listener sidecarInboundListener(const std::set<uint32_t>& ports, bool turnout_dialect,
                                             IpFamilies families) {
  listener_v3::Listener l;
  l.set_name(kVirtualInboundListener);
  setAddress(l, kInboundCapturePort, families);
  l.set_traffic_direction(core_v3::INBOUND);
  addOriginalDst(l);
  for (uint32_t port : ports) {
    auto* chain = l.add_filter_chains();
    chain->set_name(absl::StrCat("inbound_", port));
    chain->mutable_filter_chain_match()->mutable_destination_port()->set_value(port);
    hcm_v3::HttpConnectionManager hcm =
        httpManager(absl::StrCat("inbound_", nameAddress(families), "_", port), turnout_dialect,
                    /*inbound=*/true);
    auto* rc = hcm.mutable_route_config();
    rc->set_name(absl::StrCat("inbound|", port));
    auto* vh = rc->add_virtual_hosts();
    vh->set_name("inbound");
    vh->add_domains("*");
    auto* r = vh->add_routes();
    r->set_name("default");
    r->mutable_match()->set_prefix("/");
    r->mutable_route()->set_cluster(kInboundPassthroughCluster);
    r->mutable_route()->mutable_timeout()->set_seconds(0);
    addHttpManager(*chain, hcm);
  }
  *l.mutable_default_filter_chain() = tcpRelay(kInboundPassthroughCluster);
  return l;
}

namespace {

cluster_v3::Cluster passthrough(const std::string& name, IpFamilies families) {
  cluster_v3::Cluster c;
  c.set_name(name);
  c.set_type(cluster_v3::Cluster::ORIGINAL_DST);
  c.set_lb_policy(cluster_v3::Cluster::CLUSTER_PROVIDED);
  c.mutable_connect_timeout()->set_seconds(kConnectTimeoutSeconds);
  if (name == kInboundPassthroughCluster) {
    // Istio's convention: connections to the local app come from 127.0.0.6
    // (::6 for IPv6), which `turnout iptables` never captures, so the
    // proxy's other connections to its own pod address can go through the
    // inbound capture. Dual stack: Istio's order, 127.0.0.6 first and ::6
    // as the extra address (bound for IPv6 hosts).
    auto* bind = c.mutable_upstream_bind_config();
    auto* sa = bind->mutable_source_address();
    sa->set_address(families == IpFamilies::kIpv6 ? kInboundPassthroughSourceIpv6
                                                  : kInboundPassthroughSource);
    sa->set_port_value(0);
    if (families == IpFamilies::kDual) {
      auto* extra = bind->add_extra_source_addresses()->mutable_address();
      extra->set_address(kInboundPassthroughSourceIpv6);
      extra->set_port_value(0);
    }
  }
  return c;
}

}  // namespace

bool sidecarFor(const core_v3::Node& node) {
  const auto& fields = node.metadata().fields();
  auto t = fields.find("turnout");
  if (t == fields.end() || !t->second.has_struct_value()) return false;
  const auto& inner = t->second.struct_value().fields();
  auto mode = inner.find("mode");
  return mode != inner.end() && mode->second.string_value() == "sidecar";
}

SidecarService sidecarServiceFor(const core_v3::Node& node) {
  SidecarService out;
  const auto& fields = node.metadata().fields();
  auto t = fields.find("turnout");
  if (t == fields.end() || !t->second.has_struct_value()) return out;
  const auto& inner = t->second.struct_value().fields();
  if (auto s = inner.find("service"); s != inner.end() && s->second.has_string_value()) {
    out.name = s->second.string_value();
  }
  if (auto n = inner.find("namespace"); n != inner.end() && n->second.has_string_value()) {
    out.ns = n->second.string_value();
  }
  return out;
}

std::string canonicalIp(std::string_view host) {
  const std::string text(host);
  char out[INET6_ADDRSTRLEN] = {};
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return inet_ntop(AF_INET, &v4, out, sizeof out) != nullptr ? out : "";
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) return "";
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    std::memcpy(&v4, &v6.s6_addr[12], sizeof v4);
    return inet_ntop(AF_INET, &v4, out, sizeof out) != nullptr ? out : "";
  }
  return inet_ntop(AF_INET6, &v6, out, sizeof out) != nullptr ? out : "";
}

std::string peerIp(std::string_view peer) {
  if (peer.starts_with("[")) {
    const size_t close = peer.find(']');
    return close == std::string_view::npos ? "" : canonicalIp(peer.substr(1, close - 1));
  }
  const size_t colon = peer.rfind(':');
  return canonicalIp(colon == std::string_view::npos ? peer : peer.substr(0, colon));
}

PortsByIp endpointPortsByIp(const Model& model) {
  PortsByIp out;
  auto add = [&out](const Endpoints& endpoints) {
    for (const Endpoint& e : endpoints) {
      std::string ip = canonicalIp(e.host);
      if (!ip.empty()) out[std::move(ip)].insert(e.port);
    }
  };
  for (const auto& [name, service] : model.services) add(service.endpoints);
  for (const auto& [key, sandbox] : model.sandboxes) {
    for (const auto& [service, endpoints] : sandbox.forks) add(endpoints);
  }
  for (const auto& [service, release] : model.releases) {
    for (const auto& [version, endpoints] : release.versions) add(endpoints);
  }
  return out;
}

std::optional<std::set<uint32_t>> sidecarInboundPorts(const Model& model,
                                                      const SidecarService& service,
                                                      const std::set<uint32_t>* pod_ports) {
  std::set<uint32_t> out;
  if (pod_ports != nullptr) out = *pod_ports;
  if (!service.name.empty()) {
    auto it = model.services.find(service.name);
    if (it != model.services.end() && (service.ns.empty() || service.ns == it->second.ns)) {
      out.insert(it->second.port);
    }
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::string_view ipFamiliesName(IpFamilies families) {
  switch (families) {
    case IpFamilies::kIpv4: return "ipv4";
    case IpFamilies::kIpv6: return "ipv6";
    case IpFamilies::kDual: return "dual";
  }
  return "";
}

std::optional<IpFamilies> parseIpFamilies(std::string_view name) {
  for (IpFamilies f : {IpFamilies::kIpv4, IpFamilies::kIpv6, IpFamilies::kDual}) {
    if (name == ipFamiliesName(f)) return f;
  }
  return std::nullopt;
}

IpFamilies ipFamiliesFor(const core_v3::Node& node, std::string* unknown) {
  const auto& fields = node.metadata().fields();
  auto t = fields.find("turnout");
  if (t == fields.end() || !t->second.has_struct_value()) return IpFamilies::kIpv4;
  const auto& inner = t->second.struct_value().fields();
  auto families = inner.find("ip_families");
  if (families == inner.end()) return IpFamilies::kIpv4;
  const auto& v = families->second;
  if (v.has_string_value()) {
    if (auto parsed = parseIpFamilies(v.string_value())) return *parsed;
  }
  if (unknown != nullptr) {
    // Never empty: the caller tests for a value.
    *unknown = !v.has_string_value()      ? std::string("(not a string)")
               : v.string_value().empty() ? std::string("(empty)")
                                          : v.string_value();
  }
  return IpFamilies::kIpv4;
}

absl::Status reservedServicePort(std::string_view path, uint32_t port) {
  for (uint32_t reserved : kSidecarReservedPorts) {
    if (port != reserved) continue;
    return invalidArgument(path, absl::StrCat(port, " is a port the sidecar uses itself (reserved: ",
                                              absl::StrJoin(kSidecarReservedPorts, ", "),
                                              "; docs/sidecar.md)"));
  }
  return absl::OkStatus();
}

std::set<uint32_t> servicePorts(const Model& model) {
  std::set<uint32_t> out;
  for (const auto& [name, service] : model.services) out.insert(service.port);
  return out;
}

std::vector<listener_v3::Listener> sidecarListeners(const Model& model, bool turnout_dialect,
                                                     IpFamilies families) {
  const std::set<uint32_t> ports = servicePorts(model);
  std::vector<listener_v3::Listener> out;
  out.push_back(virtualOutbound(families));
  out.push_back(sidecarInboundListener(ports, turnout_dialect, families));
  for (uint32_t port : ports) {
    // A port the sidecar uses (a service stored before turnout-cp refused
    // them) would take the sidecar's own address.
    if (!reservedServicePort("", port).ok()) continue;
    out.push_back(outboundPort(port, turnout_dialect, families));
  }
  return out;
}

std::vector<cluster_v3::Cluster> sidecarClusters(IpFamilies families) {
  return {passthrough(kInboundPassthroughCluster, families),
          passthrough(kPassthroughCluster, families)};
}

route_v3::VirtualHost allowAnyVirtualHost() {
  route_v3::VirtualHost vh;
  vh.set_name(kAllowAnyVirtualHost);
  vh.add_domains("*");
  auto* r = vh.add_routes();
  r->set_name("passthrough");
  r->mutable_match()->set_prefix("/");
  r->mutable_route()->set_cluster(kPassthroughCluster);
  r->mutable_route()->mutable_timeout()->set_seconds(0);
  return vh;
}

}  // namespace turnout::control_plane
