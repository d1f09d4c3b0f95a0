#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "config/control_plane/sidecar_bootstrap.h"
#include <vector>

namespace turnout::control_plane::cli {

inline constexpr char kDefaultServer[] = "http://127.0.0.1:18080";
inline constexpr char kVersion[] = "0.1.0";

// `turnout-cp <command> ...` for every command but `serve` (main.cc): the
// resource commands talk to the REST API at --server, `bootstrap` prints a
// sidecar bootstrap. `args` excludes the program name. Returns the exit code:
// 0 success, 1 an error from the server or the connection, 2 bad usage.
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The usage text (`turnout-cp --help`).
std::string usage();

struct BootstrapOptions {
  std::string node;
  std::string cluster = "turnout-sidecar";
  std::string xds_host = "127.0.0.1";
  uint32_t xds_port = 18000;
  uint32_t admin_port = 15000;
  uint32_t outbound_port = 15001;
  bool delta = kDeltaAdsByDefault;  // --ads delta|sotw
  // false ("explicit"): apps call the static outbound listener; true
  // ("capture"): iptables captures the pod's traffic and turnout-cp sends the
  // capture listeners over LDS (docs/sidecar.md).
  bool capture = false;
  std::string service;     // capture: node metadata, who this pod is
  std::string service_ns;  // capture: node metadata
  // capture: the pod's IP families (--ip-families ipv4|ipv6|dual), node
  // metadata `ip_families` unless IPv4.
  IpFamilies ip_families = IpFamilies::kIpv4;
};
// A sidecar bootstrap (YAML): node `node`, ADS over h2c to xds_cluster
// (xds_host:xds_port), CDS and LDS over ADS, and either the static outbound
// listener 127.0.0.1:outbound_port whose HCM runs the RoutingKey filter and
// takes route configuration `outbound` over ADS, or (capture) no listener and
// node metadata `turnout: {mode: sidecar, service, namespace}`, for which
// turnout-cp sends virtualOutbound/virtualInbound and the per-port listeners.
std::string bootstrapYaml(const BootstrapOptions& options);

}  // namespace turnout::control_plane::cli
