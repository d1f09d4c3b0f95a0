#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/snapshot/routing_key_config.h"
#include "config/snapshot/snapshot.h"
#include "proxy/access_log/access_log.h"
#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"
#include "proxy/stream/filter.h"
#include "proxy/upstream/host_set.h"
#include "routing/route_table.h"

namespace turnout::proxy {

// A cluster compiled for the workers: its config, its hosts and its stats.
struct ClusterRuntime {
  const config::ClusterConfig* config = nullptr;
  // The hosts when the config was built. A STRICT_DNS or LOGICAL_DNS
  // cluster's later host sets come from the main thread's DnsRefresher.
  HostSetConstSharedPtr hosts;
  // STRICT_DNS / LOGICAL_DNS: one resolve target per lb_endpoint.
  std::vector<ResolveTarget> dns_targets;
  // The cluster has an HTTP health check: its new hosts start failing it.
  bool health_checked = false;
  stats::ClusterStats stats;
};

// Sets membership_total and membership_healthy (static health) for `hosts`,
// and a MAGLEV cluster's maglev_lb.{min,max}_entries_per_host, on the main shard.
void recordMembership(const ClusterRuntime& cluster, const HostSet& hosts, stats::Shard& shard);

// Applies one resolution of `target` (the resolver gave `ec` or `resolved`)
// to `current` with updateHostList(), counting Envoy's cluster.<name>.
// update_attempt, update_success / update_no_rebuild / update_failure and
// membership_change. A failure, and an empty answer for LOGICAL_DNS, keep
// the current hosts (`ok` false; the caller logs it). `changed` is the new
// host set when there is one (the caller publishes it). Main thread.
struct ResolutionApplied {
  bool ok = false;
  HostSetConstSharedPtr changed;
};
ResolutionApplied applyResolution(const ClusterRuntime& cluster, const ResolveTarget& target,
                                  const boost::system::error_code& ec,
                                  const std::vector<asio::ip::address>& resolved,
                                  const HostSet& current, stats::Shard& shard);

// An HTTP connection manager compiled for the workers.
struct HttpConnectionManagerRuntime {
  const config::HttpConnectionManagerConfig* config = nullptr;
  std::shared_ptr<const routing::RouteTable> route_table;  // null: RDS not yet delivered
  // http_filters before the router, in config order (RoutingKey, health_check).
  FilterChain filters;
  std::vector<access_log::AccessLogConstSharedPtr> access_logs;
  stats::HttpConnManagerStats stats;
  stats::ListenerHttpStats listener_http_stats;
  // The listener's per_connection_buffer_limit_bytes (1 MiB default): Envoy's
  // decoder buffer limit, the most request body kept for retries and mirrors.
  uint32_t buffer_limit_bytes = 1024 * 1024;
};

struct ListenerRuntime {
  const config::ListenerConfig* config = nullptr;
  stats::ListenerStats stats;
  // The first filter chain's HTTP connection manager (filter_chain_match
  // selection arrives with TLS/SNI).
  std::optional<HttpConnectionManagerRuntime> hcm;
};

// Everything a worker needs from one config snapshot, with its stats
// registered. Built on the main thread (stats registration is main-thread
// only), then posted to every worker as a shared_ptr<const>; immutable.
struct DataPlaneConfig {
  config::SnapshotConstSharedPtr snapshot;
  std::vector<ListenerRuntime> listeners;
  std::vector<ClusterRuntime> clusters;

  const ClusterRuntime* findCluster(std::string_view name) const;

  // Resolves STRICT_DNS/LOGICAL_DNS hosts once with the system resolver:
  // call on the main thread only (never on a worker). A name that does not
  // resolve leaves its lb_endpoint without hosts for now (logged, counted as
  // update_failure), as Envoy starts such a cluster empty; the DnsRefresher
  // keeps trying.
  static absl::StatusOr<std::shared_ptr<const DataPlaneConfig>> build(
      config::SnapshotConstSharedPtr snapshot, stats::Store& store);
};

using DataPlaneConfigConstSharedPtr = std::shared_ptr<const DataPlaneConfig>;

}  // namespace turnout::proxy
