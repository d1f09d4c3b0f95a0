#pragma once

#include <array>
#include <map>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "config/control_plane/model.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"

namespace turnout::control_plane {

// What a captured sidecar gets besides the outbound routes (docs/sidecar.md),
// modelled on Istio's sidecar listeners. Pure; called by generate() for a node
// whose metadata says `turnout: {mode: sidecar}` (sidecarFor()).
//
// - `virtualOutbound` on 0.0.0.0:15001: iptables sends the app's outbound TCP
//   here; use_original_dst hands each connection to the listener of its
//   original destination port; a port no listener takes is relayed as TCP to
//   where it was going (tcp_proxy -> PassthroughCluster), so databases and
//   other non-HTTP traffic keep working through the capture.
// - `0.0.0.0_<port>` for every port a service of the model listens on,
//   bind_to_port false (reached only by that hand-off): an HTTP connection
//   manager (AUTO codec: HTTP/1.1 or h2c) on the `outbound` routes over ADS.
//   The turnout dialect runs the RoutingKey filter first, which re-attaches a
//   key remembered by trace id when the app dropped its baggage.
// - `virtualInbound` on 0.0.0.0:15006 with the original_dst listener filter:
//   iptables sends inbound TCP here; a filter chain per port of the pod's
//   own service (by destination port; sidecarInboundListener) runs an HTTP
//   connection manager whose one route sends every request on to the local
//   app at its original destination (InboundPassthroughCluster); the
//   turnout dialect's RoutingKey filter remembers the key by trace id. Any
//   other port is relayed as TCP. The ADS server gives each node the chains
//   of its own ports (sidecarInboundPorts: the endpoints at its address and
//   the service its metadata names), as Istio's inbound listener has the
//   pod's ports only; sidecarListeners() makes the one for a node without
//   own ports: a chain per port of every service.
// - clusters PassthroughCluster and InboundPassthroughCluster: ORIGINAL_DST,
//   CLUSTER_PROVIDED; InboundPassthroughCluster binds 127.0.0.6
//   (upstream_bind_config), as Istio's does, for `turnout iptables`.
// - the `outbound` route configuration gets a last virtual host `allow_any`
//   (domains "*") to PassthroughCluster: a captured HTTP call to a host the
//   model does not know goes where the app sent it, as Istio's ALLOW_ANY.
//
// The addresses follow the pod's IP families (IpFamilies, below): IPv4 as
// above; IPv6 `::` and source `::6`, the per-port listeners named
// `::_<port>` (Istio's name for its IPv6 wildcard); dual stack `::` with
// ipv4_compat (one socket takes both families, and it is the IPv4 wildcard
// for hand-offs too), the names of IPv4, InboundPassthroughCluster binding
// 127.0.0.6 and, for IPv6 hosts, `::6` (extra_source_addresses).

inline constexpr uint32_t kOutboundCapturePort = 15001;
inline constexpr uint32_t kInboundCapturePort = 15006;
// The sidecar's admin server (127.0.0.1) in the bootstraps turnout-cp makes.
inline constexpr uint32_t kSidecarAdminPort = 15000;
// The injected sidecar's readiness listener (0.0.0.0, GET /healthz/ready);
// never captured inbound.
inline constexpr uint32_t kSidecarReadinessPort = 15021;
// Every port the sidecar itself listens on. A service on one would get a
// `0.0.0.0_<port>` listener on the sidecar's own address (and its inbound
// capture would take the sidecar's traffic): turnout-cp refuses such a
// service (reservedServicePort), and sidecarListeners() skips the port for
// one stored before that check.
inline constexpr std::array<uint32_t, 4> kSidecarReservedPorts = {
    kSidecarAdminPort, kOutboundCapturePort, kInboundCapturePort, kSidecarReadinessPort};
inline constexpr char kVirtualOutboundListener[] = "virtualOutbound";
inline constexpr char kVirtualInboundListener[] = "virtualInbound";
inline constexpr char kPassthroughCluster[] = "PassthroughCluster";
inline constexpr char kInboundPassthroughCluster[] = "InboundPassthroughCluster";
inline constexpr char kAllowAnyVirtualHost[] = "allow_any";
// The source addresses of InboundPassthroughCluster (upstream_bind_config),
// per family, as Istio's (`turnout iptables` never captures them).
inline constexpr char kInboundPassthroughSource[] = "127.0.0.6";
inline constexpr char kInboundPassthroughSourceIpv6[] = "::6";

// Node metadata: {"turnout": {"mode": "sidecar", "service": S, "namespace": N}}.
// True when the node asks for the sidecar's listeners.
bool sidecarFor(const envoy::config::core::v3::Node& node);
// The service a sidecar node runs next to (metadata turnout.service; empty
// when absent or not a string) and its namespace (turnout.namespace).
struct SidecarService {
  std::string name;
  std::string ns;
};
SidecarService sidecarServiceFor(const envoy::config::core::v3::Node& node);
// Canonical text of an IP address (an IPv4-mapped IPv6 address as IPv4);
// empty for anything else (a host name).
std::string canonicalIp(std::string_view host);
// The address of a peer as the ADS server writes it ("10.0.0.5:4711",
// "[fd00::5]:4711"), canonical; empty when it is not an IP address.
std::string peerIp(std::string_view peer);
// Per IP address (canonical), the ports of the model's endpoints there:
// the services' baselines, the sandboxes' forks and the releases' versions.
using PortsByIp = std::map<std::string, std::set<uint32_t>>;
PortsByIp endpointPortsByIp(const Model& model);
// The inbound ports of a sidecar: those of the endpoints at its pod's
// address (`pod_ports`: endpointPortsByIp at the address its xDS stream
// comes from; null when none), and the port of the service its node names
// (when the model has one of that name, in `service.ns` when that is not
// empty). nullopt when neither gives a port.
std::optional<std::set<uint32_t>> sidecarInboundPorts(const Model& model,
                                                      const SidecarService& service,
                                                      const std::set<uint32_t>* pod_ports);

// The IP families of a captured sidecar's pod: which addresses its capture
// listeners take and its inbound passthrough binds (above).
enum class IpFamilies { kIpv4, kIpv6, kDual };
// "ipv4", "ipv6", "dual": the node metadata value (`turnout: {...,
// ip_families: dual}`), the `--ip-families` flag of `turnout-cp bootstrap`
// and the `turnout.dev/ip-families` annotation.
std::string_view ipFamiliesName(IpFamilies families);
// The inverse of ipFamiliesName(); nullopt for any other string.
std::optional<IpFamilies> parseIpFamilies(std::string_view name);
// "ipv4, ipv6 or dual": for error messages.
inline constexpr char kIpFamiliesChoices[] = "ipv4, ipv6 or dual";
// Node metadata `turnout.ip_families`: absent (or not a sidecar) is kIpv4;
// a value parseIpFamilies() does not know is kIpv4 too, and is then put in
// `*unknown` (when given; never empty: "(empty)", "(not a string)") for the
// caller to warn about.
IpFamilies ipFamiliesFor(const envoy::config::core::v3::Node& node, std::string* unknown = nullptr);

// InvalidArgument naming `path` when `port` is one of kSidecarReservedPorts.
absl::Status reservedServicePort(std::string_view path, uint32_t port);

// The ports the model's services listen on, ascending.
std::set<uint32_t> servicePorts(const Model& model);

// `turnout_dialect`: the HCMs run turnout's RoutingKey filter (with trace-id
// recovery); else Envoy's router alone.
std::vector<envoy::config::listener::v3::Listener> sidecarListeners(
    const Model& model, bool turnout_dialect, IpFamilies families = IpFamilies::kIpv4);
// `virtualInbound` with a filter chain per port of `ports` (above).
envoy::config::listener::v3::Listener sidecarInboundListener(const std::set<uint32_t>& ports,
                                                             bool turnout_dialect,
                                                             IpFamilies families);
std::vector<envoy::config::cluster::v3::Cluster> sidecarClusters(
    IpFamilies families = IpFamilies::kIpv4);
envoy::config::route::v3::VirtualHost allowAnyVirtualHost();

}  // namespace turnout::control_plane
