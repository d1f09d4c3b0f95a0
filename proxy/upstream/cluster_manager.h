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

class PendingRequest;

// One host of a cluster on one worker: its address, its idle connections and
// the requests of this worker waiting for one.
struct HostState {
  const HostDescription* description = nullptr;
  size_t index = 0;  // into the cluster's host set
  asio::ip::tcp::endpoint endpoint;
  std::vector<UpstreamConnectionPtr> idle;  // LIFO: the warmest connection first
  uint32_t active_requests = 0;             // for least-request balancing
  uint64_t rq_total = 0;
  uint32_t cx_active = 0;  // this worker's connections to the host, connecting ones included
  // Pending requests, oldest first. Never non-empty while `idle` is: a
  // released connection goes to the oldest waiter before the idle list.
  PendingRequest* pending_head = nullptr;
  PendingRequest* pending_tail = nullptr;
};

// What load balancers may use to pick a host.
struct LoadBalancerContext {
  std::optional<uint64_t> hash;  // from the route's hash_policy (ring hash, maglev)
  uint64_t random = 0;
  const HostState* avoid = nullptr;  // retry: prefer another host (previous_hosts)
};

// One circuit-breaker resource of a cluster (Envoy's ResourceManagerImpl
// ManagedResourceImpl): a count shared by every worker (relaxed atomics, no
// locks) and the `circuit_breakers.<priority>.*_open` gauge that is 1 while
// the count is at or above its limit. Only crossings of the limit touch the
// gauge; each crossing is seen by exactly one thread, so the gauge summed
// over the shards is exactly 0 or 1.
class BreakerResource {
 public:
  uint32_t count() const { return count_.load(std::memory_order_relaxed); }
  bool canCreate(uint32_t max) const { return count() < max; }
  void inc(uint32_t max, stats::Shard& shard, stats::StatId open) {
    if (count_.fetch_add(1, std::memory_order_relaxed) + 1 == max) shard.add(open, 1);
  }
  void dec(uint32_t max, stats::Shard& shard, stats::StatId open) {
    if (count_.fetch_sub(1, std::memory_order_relaxed) == max && max > 0) shard.add(open, -1);
  }
  // inc() only while below `max`, exactly (no overshoot when workers race).
  bool tryInc(uint32_t max, stats::Shard& shard, stats::StatId open);

 private:
  std::atomic<uint32_t> count_{0};
};

// Cluster-wide resource counts shared by every worker (Envoy's circuit
// breakers are per cluster, not per worker). They outlive host-set updates.
struct ClusterResources {
  BreakerResource connections;  // max_connections
  BreakerResource pending;      // max_pending_requests
  BreakerResource requests;     // max_requests
  BreakerResource retries;      // max_retries
};

// A request on this worker waiting for a connection to one host (Envoy's
// conn-pool PendingRequest). The caller owns it, in the request's coroutine
// frame, so queueing allocates nothing; WorkerCluster::acquire links it into
// the host's FIFO while it waits. Worker thread only.
class PendingRequest {
 public:
  explicit PendingRequest(asio::any_io_executor ex) : timer_(std::move(ex)) {}
  ~PendingRequest();  // leaves the queue if still in it
  PendingRequest(const PendingRequest&) = delete;
  PendingRequest& operator=(const PendingRequest&) = delete;

  // The request was abandoned (its client went away): acquire() returns
  // Cancelled as soon as it can. Any time, before or during acquire().
  void cancel() {
    cancelled_ = true;
    timer_.cancel();
  }
  bool cancelled() const { return cancelled_; }

 private:
  friend class WorkerCluster;
  enum class Wake : uint8_t { None, Connection, Slot, ConnectFailure };
  void wake(Wake why) {
    wake_ = why;
    timer_.cancel();
  }

  asio::steady_timer timer_;
  Wake wake_ = Wake::None;
  bool cancelled_ = false;
  UpstreamConnectionPtr conn_;  // Wake::Connection: the connection handed over
  HostState* host_ = nullptr;   // the host whose queue it is in; null when not queued
  PendingRequest* prev_ = nullptr;
  PendingRequest* next_ = nullptr;
};

// A cluster on one worker: one host set's hosts, balancer state, pools,
// breakers. Worker thread only; `shard` is the worker's. A new host set (DNS)
// or config makes a new WorkerCluster; the old one lives on for the requests
// that hold it and hands the connections they release to its successor.
class WorkerCluster {
 public:
  WorkerCluster(const ClusterRuntime& runtime, HostSetConstSharedPtr hosts,
                std::shared_ptr<ClusterResources> resources, stats::Shard& shard);
  ~WorkerCluster();  // closes the idle connections
  WorkerCluster(const WorkerCluster&) = delete;
  WorkerCluster& operator=(const WorkerCluster&) = delete;

  // Takes over the idle connections of `old`'s hosts that are also hosts
  // here: the same host (shared state) even at a new address (LOGICAL_DNS
  // keeps existing connections), else the same address. Then `old` is
  // retired: a connection released to it later goes to its pending requests,
  // else to the same host here, else it is closed. Removed hosts' idle
  // connections close with `old`.
  void succeed(WorkerCluster& old, const std::shared_ptr<WorkerCluster>& self);

  const ClusterRuntime& runtime() const { return *runtime_; }
  const config::ClusterConfig& config() const { return *runtime_->config; }
  const config::CircuitBreakerThresholds& thresholds() const { return thresholds_; }
  ClusterResources& resources() { return *resources_; }
  const std::shared_ptr<ClusterResources>& sharedResources() const { return resources_; }
  std::vector<HostState>& hosts() { return hosts_; }

  // Chooses a healthy host by the cluster's lb_policy, from the lowest
  // priority that has one. Null when no host is healthy (503 UH).
  HostState* chooseHost(const LoadBalancerContext& ctx);

  // Takes an idle connection to `host` that the peer has not closed, or null.
  UpstreamConnectionPtr takeIdle(HostState& host);

  // A connection to `host` for one request (Envoy's ConnPoolImplBase::
  // newStream; stage 7 of docs/life_of_a_request.md): an idle one; else, as a
  // pending request within max_pending_requests (upstream_rq_pending_*), a new
  // one within max_connections, or regardless of it when this worker has no
  // connection to the host at all (Envoy's rule against a pool that could
  // never be served; upstream_cx_overflow counts each time the limit is hit);
  // else `pending` waits in the host's FIFO for a connection to be released
  // (it gets that connection) or closed (it may then connect). The wait ends
  // at `deadline` (Timeout), on pending->cancel() (Cancelled; both count
  // upstream_rq_cancelled), or when a connect to the host fails, which fails
  // every waiter of the host (Envoy purges the pool's pending requests;
  // upstream_rq_pending_failure_eject). `host` and `pending` must outlive the
  // call; `pending` is used for one call only.
  struct AcquireResult {
    enum class Status { Ready, Overflow, ConnectFailure, Timeout, Cancelled };
    Status status = Status::Ready;
    UpstreamConnectionPtr conn;      // Ready
    bool connect_timed_out = false;  // ConnectFailure: the connect itself timed out
  };
  asio::awaitable<AcquireResult> acquire(HostState* host, PendingRequest* pending,
                                         std::chrono::steady_clock::time_point deadline);

  // Returns a connection after a complete exchange; `reusable` false closes
  // it. A reusable one goes to the host's oldest pending request, else to the
  // idle list; closing one lets the oldest pending request connect.
  void release(HostState& host, UpstreamConnectionPtr conn, bool reusable);

  // The max_requests breaker, for an exchange on an acquired connection
  // (Envoy checks it when a request is attached to a connection).
  bool tryStartRequest();
  void endRequest();
  // The max_retries breaker around one retry (its back-off and its attempt).
  void startRetry();
  void endRetry();

  // Outlier detection (consecutive_5xx): an upstream 5xx, or a locally
  // originated failure (connect failure, reset, timeout), counts against the
  // host; enough in a row eject it for base_ejection_time x times ejected,
  // within max_ejection_percent (at least one host may always be ejected).
  // Anything else resets the count. Any worker; relaxed atomics.
  void recordOutcome(HostState& host, bool failure);
  bool ejected(const HostState& host, int64_t now_ns) const;
  bool failedActiveHealthCheck(const HostState& host) const;

 private:
  struct ConnectResult {
    UpstreamConnectionPtr conn;
    bool timed_out = false;
  };
  // A new connection to `host` within `timeout`, counted in the cluster's cx
  // stats and breaker. Null conn on failure.
  asio::awaitable<ConnectResult> connect(asio::any_io_executor ex, HostState* host,
                                         std::chrono::milliseconds timeout);
  // Closes `conn` and gives its breaker slot back.
  void destroy(HostState& host, UpstreamConnectionPtr conn);
  // The host here that `d` is: the same shared state, else the same address.
  HostState* find(const HostDescription& d);
  void enqueue(HostState& host, PendingRequest& pending, bool at_front);
  static void dequeue(PendingRequest& pending);
  // Wakes every pending request of `host` with `why`.
  static void wakeAll(HostState& host, PendingRequest::Wake why);

  HostState* roundRobin(std::vector<HostState*>& candidates);
  HostState* leastRequest(std::vector<HostState*>& candidates, uint64_t random);
  HostState* ringHash(std::vector<HostState*>& candidates, uint64_t hash);
  HostState* maglev(std::vector<HostState*>& candidates, uint64_t hash);
  // Hash mixes tried before a Maglev pick falls back to hash % candidates.
  static constexpr uint32_t kMaglevAttempts = 16;

  const ClusterRuntime* runtime_;
  HostSetConstSharedPtr host_set_;  // keeps every HostState::description alive
  std::shared_ptr<ClusterResources> resources_;
  stats::Shard* shard_;
  bool retired_ = false;
  std::weak_ptr<WorkerCluster> successor_;
  config::CircuitBreakerThresholds thresholds_;
  std::vector<HostState> hosts_;
  std::vector<HostState*> scratch_;
  uint64_t rr_next_ = 0;
  // Smooth weighted round robin (nginx's algorithm): current weights.
  std::vector<int64_t> wrr_current_;
  bool weighted_ = false;
  // Ring hash: sorted (point, host index). Maglev tables come with the host set.
  std::vector<std::pair<uint64_t, uint32_t>> ring_;
};

// The clusters of one config on one worker. Not thread-safe: one worker only.
class ClusterManager {
 public:
  ClusterManager() = default;

  // Switches to `config`. Hosts that survive keep their idle connections;
  // removed clusters and hosts are dropped (their idle connections close).
  void update(const DataPlaneConfigConstSharedPtr& config,
              const absl::flat_hash_map<std::string, std::shared_ptr<ClusterResources>>& resources,
              stats::Shard& shard);
  // Switches `cluster` (of the current config) to a new host set from the
  // DnsRefresher, the same way. Ignored when `cluster` is not current.
  void updateHosts(const ClusterRuntime& cluster, HostSetConstSharedPtr hosts, stats::Shard& shard);

  // A request keeps the shared_ptr for its lifetime, so an update never
  // pulls a cluster (or a host it holds) from under it.
  std::shared_ptr<WorkerCluster> get(std::string_view name) const;
  const std::vector<std::shared_ptr<WorkerCluster>>& clusters() const { return clusters_; }

 private:
  std::vector<std::shared_ptr<WorkerCluster>> clusters_;
  absl::flat_hash_map<std::string, std::shared_ptr<WorkerCluster>> by_name_;
};

}  // namespace turnout::proxy
