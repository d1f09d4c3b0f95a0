#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "config/snapshot/routing_key_config.h"
#include "config/snapshot/snapshot.h"
#include "proxy/access_log/access_log.h"
#include "proxy/server/cluster_map.h"
#include "proxy/filters/grpc_stats_filter.h"
#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"
#include "proxy/stream/filter.h"
#include "proxy/tls/reloading_server_context.h"
#include "proxy/upstream/host_set.h"
#include "routing/route_table.h"

namespace turnout::proxy {

// A cluster compiled for the workers: its config, its hosts and its stats.
// Immutable once built; shared (ClusterRuntimeConstSharedPtr) by every
// DataPlaneConfig that has the cluster unchanged, so a worker can tell an
// unchanged cluster by the pointer's identity and keep its pools.
struct ClusterRuntime {
  const config::ClusterConfig* config = nullptr;
  // Owns *config: the bootstrap's snapshot, or the one built from a CDS file.
  config::SnapshotConstSharedPtr owner;
  // The hosts when the config was built. A STRICT_DNS or LOGICAL_DNS
  // cluster's later host sets come from the main thread's DnsRefresher.
  HostSetConstSharedPtr hosts;
  // STRICT_DNS / LOGICAL_DNS: one resolve target per lb_endpoint.
  std::vector<ResolveTarget> dns_targets;
  // The cluster has an HTTP health check: its new hosts start failing it.
  bool health_checked = false;
  stats::ClusterStats stats;
  // The cluster's UpstreamTlsContext (null: plaintext) and its
  // cluster.<name>.ssl.* stats (boxed: most clusters have no TLS).
  tls::ClientContextConstSharedPtr tls;
  routing::Boxed<stats::SslStats> ssl_stats;
};
using ClusterRuntimeConstSharedPtr = std::shared_ptr<const ClusterRuntime>;
using ClusterMap = ShardedMap<ClusterRuntimeConstSharedPtr>;

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
  // envoy.filters.http.grpc_stats, when the chain has it (the router feeds
  // its per-stream tracker: proxy/filters/grpc_stats_filter.h).
  std::optional<GrpcStatsFilterConfig> grpc_stats;
  // envoy.filters.http.cors, when the chain has it: its stats; the policies
  // are the matched route's and virtual host's (routing/cors.h).
  std::optional<stats::CorsStats> cors;
  std::vector<access_log::AccessLogConstSharedPtr> access_logs;
  stats::HttpConnManagerStats stats;
  stats::ListenerHttpStats listener_http_stats;
  // http2.*: Envoy's downstream HTTP/2 codec stats (one tree for every HCM).
  stats::Http2CodecStats http2_stats;
  // The listener's per_connection_buffer_limit_bytes (1 MiB default): Envoy's
  // decoder buffer limit, the most request body kept for retries and mirrors.
  uint32_t buffer_limit_bytes = 1024 * 1024;
  // The listener the HCM serves (an ORIGINAL_DST cluster refuses a
  // destination that is the address it is bound to: Worker::boundAddress).
  const config::ListenerConfig* listener = nullptr;
};

// A TCP proxy (envoy.filters.network.tcp_proxy) compiled for the workers.
struct TcpProxyRuntime {
  const config::TcpProxyConfig* config = nullptr;
  std::vector<access_log::AccessLogConstSharedPtr> access_logs;
  stats::TcpProxyStats stats;
  // The listener's per_connection_buffer_limit_bytes: the most bytes held
  // per direction while the other side cannot take them (Envoy's watermark).
  uint32_t buffer_limit_bytes = 1024 * 1024;
};

// One filter chain of a listener compiled for the workers.
struct FilterChainRuntime {
  const config::FilterChainConfig* config = nullptr;
  // Its HTTP connection manager or TCP proxy (neither: a chain without a
  // network filter, whose connections are closed).
  std::optional<HttpConnectionManagerRuntime> hcm;
  std::optional<TcpProxyRuntime> tcp_proxy;
  // Its DownstreamTlsContext (null: plaintext), reloaded when its
  // certificate files change (Server's main-thread tick).
  tls::ServerContextSlotSharedPtr tls;
};

// Immutable once built. An RDS update makes a copy with the new route table
// (same `config`), an LDS update a new one (new `config`).
struct ListenerRuntime {
  const config::ListenerConfig* config = nullptr;
  // Owns *config: the bootstrap's snapshot, or the one built from an LDS file.
  config::SnapshotConstSharedPtr owner;
  stats::ListenerStats stats;
  // config->filter_chains in order, then default_filter_chain when there is
  // one (index filter_chains.size()).
  std::vector<FilterChainRuntime> filter_chains;
  // The listener.<addr>.ssl.* stats, when a chain serves TLS.
  std::optional<stats::SslStats> ssl_stats;
  // The http_inspector.* stats, when the listener has that filter.
  std::optional<stats::HttpInspectorStats> http_inspector_stats;

  // Whether a connection's chain depends on what it sends first (a chain
  // matches server names, transport or application protocols): then it is
  // read (tls_inspector's and http_inspector's job in Envoy) before a chain
  // is chosen; otherwise the chain is chosen from the addresses alone.
  bool inspects() const;
  // Whether a plaintext connection's first request line is read for its
  // application protocol (http_inspector, and a chain that matches
  // application_protocols).
  bool inspectsHttp() const;
  // The chain for a connection: config->filter_chain_matcher's choice, else
  // the default chain; none: the connection is closed and counted in
  // listener.<addr>.no_filter_chain_match.
  std::optional<size_t> selectFilterChain(const config::FilterChainMatchInput& input) const;
  // The first chain with TLS, if any: a TLS connection's handshake starts on
  // its context until the ClientHello picks the chain.
  const FilterChainRuntime* firstTlsChain() const;
};

// Builds the TLS contexts of every listener of `snapshot` (reads the
// certificate files): --mode validate's check, the same one serving makes.
absl::Status checkListenerTls(const config::Snapshot& snapshot);
// The same for every cluster's UpstreamTlsContext (trusted CA, client
// certificate): a bad one is an error naming its field path.
absl::Status checkClusterTls(const config::Snapshot& snapshot);
using ListenerRuntimeConstSharedPtr = std::shared_ptr<const ListenerRuntime>;
using RouteTableConstSharedPtr = std::shared_ptr<const routing::RouteTable>;

// Everything a worker needs from one config generation, with its stats
// registered: maps from resource name to immutable shared objects. Built on
// the main thread (stats registration is main-thread only), then posted to
// every worker as a shared_ptr<const> (SnapshotPublisher); immutable. An
// update copies the maps (pointers only; the clusters' shard pointers) and
// replaces the changed entries, so an unchanged resource is the same object
// in both generations.
struct DataPlaneConfig {
  // The bootstrap's snapshot (admin address, node, /config_dump).
  config::SnapshotConstSharedPtr snapshot;
  std::vector<ListenerRuntimeConstSharedPtr> listeners;
  // Sharded copy-on-write (cluster_map.h): a generation shares the shards it
  // did not change with the one before.
  ShardedMap<ClusterRuntimeConstSharedPtr> clusters;
  // RDS route tables by route_config_name (the HCMs that name one hold it too).
  absl::flat_hash_map<std::string, RouteTableConstSharedPtr> routes;
  // Counts publications (0: the bootstrap's).
  uint64_t generation = 0;

  const ClusterRuntime* findCluster(std::string_view name) const;
  ClusterRuntimeConstSharedPtr cluster(std::string_view name) const;
  const ListenerRuntimeConstSharedPtr* findListener(std::string_view name) const;

  // One cluster / listener of `owner` (which owns `c` / `l`), stats
  // registered. A listener's RDS HCM takes its table from `routes`.
  static absl::StatusOr<ClusterRuntimeConstSharedPtr> buildCluster(
      config::SnapshotConstSharedPtr owner, const config::ClusterConfig& c, stats::Store& store);
  static absl::StatusOr<ListenerRuntimeConstSharedPtr> buildListener(
      config::SnapshotConstSharedPtr owner, const config::ListenerConfig& l, stats::Store& store,
      const absl::flat_hash_map<std::string, RouteTableConstSharedPtr>& routes);

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
