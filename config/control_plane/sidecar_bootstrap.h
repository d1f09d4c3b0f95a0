#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "config/control_plane/sidecar.h"

namespace turnout::control_plane {

// What turnout-cp's bootstraps ask for: Delta ADS (SidecarBootstrap::delta).
inline constexpr bool kDeltaAdsByDefault = true;

// The bootstrap of a sidecar that takes its config from turnout-cp over ADS,
// as `turnout-cp bootstrap` prints it and the injection webhook injects it:
// the node, the admin on 127.0.0.1:admin_port, ADS over h2c to xds_cluster
// (STRICT_DNS xds_host:xds_port), CDS and LDS over ADS, and the caller's
// static listeners. Pure; any thread.
struct SidecarBootstrap {
  std::string comment;  // leading "# ..." lines, each ending in '\n'
  std::string node_id;
  std::string node_cluster;
  // Node metadata `turnout: {mode: sidecar, service, namespace}`: turnout-cp
  // sends such a node the capture listeners (docs/sidecar.md).
  bool capture = false;
  std::string service;
  std::string service_ns;
  // Node metadata `ip_families` (capture only; absent for IPv4, so an IPv4
  // bootstrap is what it was before IP families existed): which capture
  // listeners and passthrough source turnout-cp sends (sidecar.h).
  IpFamilies ip_families = IpFamilies::kIpv4;
  uint32_t admin_port = kSidecarAdminPort;
  std::string xds_host;
  uint32_t xds_port = 18000;
  // ADS api_type: DELTA_GRPC (only what changed is sent, and turnout-cp
  // sends the routes by VHDS, a VirtualHost per service), else GRPC (State
  // of the World).
  bool delta = kDeltaAdsByDefault;
  // static_resources.listeners entries ("  - name: ...", indented two
  // spaces), or empty for none.
  std::string listeners;
};

// YAML; strings are JSON-quoted (YAML double-quoted scalars).
std::string toYaml(const SidecarBootstrap& bootstrap);

// The start of a static listener entry for SidecarBootstrap::listeners: its
// name, address and one filter chain with an HTTP connection manager, up to
// and including `stat_prefix: <name>`; the caller appends the HCM's other
// fields (indented ten spaces).
// `address` is YAML (quote "::"); `ipv4_compat` adds `ipv4_compat: true`.
std::string hcmListenerHead(absl::string_view name, absl::string_view address, uint32_t port,
                            bool ipv4_compat = false);

}  // namespace turnout::control_plane
