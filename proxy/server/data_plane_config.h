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
#include "routing/route_table.h"

namespace turnout::proxy {

// One upstream endpoint as the data plane sees it: an address it can connect
// to (DNS already resolved), its weight and its static health.
struct HostDescription {
  std::string ip;
  uint16_t port = 0;
  std::string address;   // "ip:port", for logs, stats and /clusters
  std::string hostname;  // endpoint.hostname, or the DNS name it came from
  uint32_t weight = 1;
  uint32_t priority = 0;
  bool healthy = true;   // false for UNHEALTHY / DRAINING / TIMEOUT endpoints
};

// A cluster compiled for the workers: its config, resolved hosts and stats.
struct ClusterRuntime {
  const config::ClusterConfig* config = nullptr;
  std::vector<HostDescription> hosts;
  stats::ClusterStats stats;
};

// The `envoy.filters.http.health_check` filter, non-pass-through form.
struct HealthCheckFilterRuntime {
  bool pass_through_mode = false;
  std::vector<routing::CompiledHeaderMatcher> headers;  // all must match a request
};

// An HTTP connection manager compiled for the workers.
struct HttpConnectionManagerRuntime {
  const config::HttpConnectionManagerConfig* config = nullptr;
  std::shared_ptr<const routing::RouteTable> route_table;  // null: RDS not yet delivered
  std::optional<config::RoutingKeyFilterConfig> routing_key;
  std::optional<HealthCheckFilterRuntime> health_check;
  std::vector<access_log::AccessLogConstSharedPtr> access_logs;
  stats::HttpConnManagerStats stats;
  stats::ListenerHttpStats listener_http_stats;
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

  // Resolves STRICT_DNS/LOGICAL_DNS hosts with the system resolver: call on
  // the main thread only (never on a worker). Errors name the cluster.
  static absl::StatusOr<std::shared_ptr<const DataPlaneConfig>> build(
      config::SnapshotConstSharedPtr snapshot, stats::Store& store);
};

using DataPlaneConfigConstSharedPtr = std::shared_ptr<const DataPlaneConfig>;

}  // namespace turnout::proxy
