#include "config/control_plane/sidecar_bootstrap.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "config/json_string.h"

namespace turnout::control_plane {
namespace {

std::string q(std::string_view s) {
  std::string out;
  config::appendJsonString(out, s);
  return out;
}

}  // namespace

std::string toYaml(const SidecarBootstrap& b) {
  return absl::StrCat(
      b.comment,
      "node:\n"
      "  id: ", q(b.node_id), "\n",
      "  cluster: ", q(b.node_cluster), "\n",
      b.capture ? absl::StrCat("  metadata:\n"
                               "    turnout: {mode: sidecar, service: ", q(b.service),
                               ", namespace: ", q(b.service_ns),
                               b.ip_families == IpFamilies::kIpv4
                                   ? std::string()
                                   : absl::StrCat(", ip_families: ", std::string(ipFamiliesName(b.ip_families))),
                               "}\n")
                : std::string(),
      "admin:\n"
      "  address:\n"
      "    socket_address: {address: 127.0.0.1, port_value: ", b.admin_port, "}\n",
      "dynamic_resources:\n"
      "  ads_config:\n"
      "    api_type: ", b.delta ? "DELTA_GRPC" : "GRPC", "\n"
      "    transport_api_version: V3\n"
      "    grpc_services:\n"
      "    - envoy_grpc: {cluster_name: xds_cluster}\n"
      "  cds_config: {resource_api_version: V3, ads: {}}\n"
      "  lds_config: {resource_api_version: V3, ads: {}}\n"
      "static_resources:\n"
      "  clusters:\n"
      "  - name: xds_cluster\n"
      "    type: STRICT_DNS\n"
      "    connect_timeout: 1s\n"
      "    typed_extension_protocol_options:\n"
      "      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
      "        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
      "        explicit_http_config: {http2_protocol_options: {}}\n"
      "    load_assignment:\n"
      "      cluster_name: xds_cluster\n"
      "      endpoints:\n"
      "      - lb_endpoints:\n"
      "        - endpoint: {address: {socket_address: {address: ", q(b.xds_host), ", port_value: ",
      b.xds_port, "}}}\n",
      b.listeners.empty() ? std::string() : absl::StrCat("  listeners:\n", b.listeners));
}

std::string hcmListenerHead(absl::string_view name, absl::string_view address, uint32_t port,
                            bool ipv4_compat) {
  return absl::StrCat(
      "  - name: ", name, "\n"
      "    address:\n"
      "      socket_address: {address: ", address, ", port_value: ", port,
      ipv4_compat ? ", ipv4_compat: true" : "", "}\n",
      "    filter_chains:\n"
      "    - filters:\n"
      "      - name: envoy.filters.network.http_connection_manager\n"
      "        typed_config:\n"
      "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
      "HttpConnectionManager\n"
      "          stat_prefix: ", name, "\n");
}

}  // namespace turnout::control_plane
