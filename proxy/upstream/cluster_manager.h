#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/common/asio.h"

#include "absl/container/flat_hash_map.h"
#include "proxy/codec/http1_client_codec.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/stats/store.h"

namespace turnout::proxy {

// Forwards a connection's response events to whichever request is using it.
class ResponseForwarder : public ResponseDecoderCallbacks {
 public:
  ResponseDecoderCallbacks* target = nullptr;
  void onMessageBegin() override { target->onMessageBegin(); }
  void onHeaders(ResponseHead& h, bool end) override { target->onHeaders(h, end); }
  void onData(std::span<const char> d, bool end) override { target->onData(d, end); }
  void onTrailers(HeaderMap& t) override { target->onTrailers(t); }
  void onMessageComplete() override { target->onMessageComplete(); }
  void onInformational(ResponseHead& h) override { target->onInformational(h); }
};

// An upstream HTTP/1.1 connection: the socket, its codec and the bytes read
// from it that the codec has not consumed yet. Owned by the pool while idle
// and by one request while in use; lives on one worker.
struct UpstreamConnection {
  explicit UpstreamConnection(asio::any_io_executor ex) : stream(std::move(ex)) {}
  beast::tcp_stream stream;
  beast::flat_buffer read_buffer{1024 * 1024};
  ResponseForwarder forwarder;
  http1::ClientCodec codec{forwarder};
  uint64_t requests = 0;  // requests sent on this connection
  bool reused = false;    // taken from the idle pool for the current request
};
using UpstreamConnectionPtr = std::unique_ptr<UpstreamConnection>;

// One host of a cluster on one worker: its address and its idle connections.
struct HostState {
  const HostDescription* description = nullptr;
  size_t index = 0;  // into ClusterRuntime::hosts and ClusterResources::outlier
  asio::ip::tcp::endpoint endpoint;
  std::vector<UpstreamConnectionPtr> idle;  // LIFO: the warmest connection first
  uint32_t active_requests = 0;             // for least-request balancing
  uint64_t rq_total = 0;
  uint32_t cx_active = 0;
};

// What load balancers may use to pick a host.
struct LoadBalancerContext {
  std::optional<uint64_t> hash;  // from the route's hash_policy (ring hash, maglev)
  uint64_t random = 0;
  const HostState* avoid = nullptr;  // retry: prefer another host (previous_hosts)
};

// Cluster-wide resource counts shared by every worker (Envoy's circuit
// breakers are per cluster, not per worker). Relaxed atomics, no locks.
// Outlier-detection state of one host, shared by every worker.
struct HostOutlierState {
  std::atomic<uint32_t> consecutive_5xx{0};
  std::atomic<int64_t> ejected_until_ns{0};  // steady_clock; 0 = not ejected
  std::atomic<uint32_t> times_ejected{0};
  // Active health checking (written by the main thread's HealthChecker).
  std::atomic<bool> failed_active_hc{false};
};

struct ClusterResources {
  explicit ClusterResources(size_t hosts = 0)
      : outlier(std::make_unique<HostOutlierState[]>(hosts)), host_count(hosts) {}
  std::atomic<uint32_t> connections{0};
  std::atomic<uint32_t> pending{0};
  std::atomic<uint32_t> requests{0};
  std::atomic<uint32_t> retries{0};
  // Indexed like ClusterRuntime::hosts.
  std::unique_ptr<HostOutlierState[]> outlier;
  size_t host_count = 0;
};

// A cluster on one worker: hosts, balancer state, pools, breakers.
class WorkerCluster {
 public:
  WorkerCluster(const ClusterRuntime& runtime, std::shared_ptr<ClusterResources> resources);

  const ClusterRuntime& runtime() const { return *runtime_; }
  const config::ClusterConfig& config() const { return *runtime_->config; }
  const config::CircuitBreakerThresholds& thresholds() const { return thresholds_; }
  ClusterResources& resources() { return *resources_; }
  std::vector<HostState>& hosts() { return hosts_; }

  // Chooses a healthy host by the cluster's lb_policy, from the lowest
  // priority that has one. Null when no host is healthy (503 UH).
  HostState* chooseHost(const LoadBalancerContext& ctx);

  // A new connection to `host` within `timeout` (counted in the cluster's
  // cx stats and breakers). Null conn on failure; timed_out tells which.
  struct ConnectResult {
    UpstreamConnectionPtr conn;
    bool timed_out = false;
  };
  asio::awaitable<ConnectResult> connect(asio::any_io_executor ex, HostState* host,
                                         std::chrono::milliseconds timeout, stats::Shard* shard);

  // Takes an idle connection to `host` that the peer has not closed, or null.
  UpstreamConnectionPtr takeIdle(HostState& host);
  // Outlier detection (consecutive_5xx): an upstream 5xx, or a locally
  // originated failure (connect failure, reset, timeout), counts against the
  // host; enough in a row eject it for base_ejection_time x times ejected,
  // within max_ejection_percent (at least one host may always be ejected).
  // Anything else resets the count. Any worker; relaxed atomics.
  void recordOutcome(HostState& host, bool failure, stats::Shard& shard);
  bool ejected(const HostState& host, int64_t now_ns) const;
  bool failedActiveHealthCheck(const HostState& host) const;

  // Returns a connection after a complete exchange; `reusable` false closes it.
  void release(HostState& host, UpstreamConnectionPtr conn, bool reusable, stats::Shard& shard);

 private:
  HostState* roundRobin(std::vector<HostState*>& candidates);
  HostState* leastRequest(std::vector<HostState*>& candidates, uint64_t random);
  HostState* ringHash(std::vector<HostState*>& candidates, uint64_t hash);

  const ClusterRuntime* runtime_;
  std::shared_ptr<ClusterResources> resources_;
  config::CircuitBreakerThresholds thresholds_;
  std::vector<HostState> hosts_;
  std::vector<HostState*> scratch_;
  uint64_t rr_next_ = 0;
  // Smooth weighted round robin (nginx's algorithm): current weights.
  std::vector<int64_t> wrr_current_;
  bool weighted_ = false;
  // Ring hash / maglev: sorted (point, host index).
  std::vector<std::pair<uint64_t, uint32_t>> ring_;
};

// The clusters of one config on one worker. Not thread-safe: one worker only.
class ClusterManager {
 public:
  ClusterManager() = default;

  // Switches to `config`. Clusters and hosts that survive keep their idle
  // connections; removed ones are dropped (their connections close).
  void update(const DataPlaneConfigConstSharedPtr& config,
              const absl::flat_hash_map<std::string, std::shared_ptr<ClusterResources>>& resources);

  // A request keeps the shared_ptr for its lifetime, so a config update never
  // pulls a cluster (or a host it holds) from under it.
  std::shared_ptr<WorkerCluster> get(std::string_view name) const;
  const std::vector<std::shared_ptr<WorkerCluster>>& clusters() const { return clusters_; }

 private:
  std::vector<std::shared_ptr<WorkerCluster>> clusters_;
  absl::flat_hash_map<std::string, std::shared_ptr<WorkerCluster>> by_name_;
};

}  // namespace turnout::proxy
