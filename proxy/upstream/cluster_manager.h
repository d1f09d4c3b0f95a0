#pragma once

#include <algorithm>
#include <array>
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
#include "proxy/tls/tls_context.h"
#include "proxy/tls/tls_transport.h"
#include "proxy/upstream/conn_pool.h"
#include "proxy/upstream/outlier_detector.h"

namespace turnout::proxy {

class WorkerCluster;
class IdleConnections;
struct HostState;
struct UpstreamConnection;

// The identity of an idle connection's read watch, shared with the watch's
// completion handler so that the handler can tell whether the connection it
// was armed for still exists and still waits for it (`generation`).
struct IdleWatch {
  UpstreamConnection* conn = nullptr;
  uint64_t generation = 0;
};

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
// and by one request while in use; lives on one worker. It is its own
// UpstreamStream (HTTP/1 is the one-stream-per-connection case): the
// Http1ConnPool hands it out and release() gives it back
// (proxy/upstream/http1_conn_pool.cc).
struct UpstreamConnection final : public UpstreamStream {
  explicit UpstreamConnection(Executor ex) : stream(std::move(ex)) {}
  ~UpstreamConnection() override;  // leaves the idle list and disowns its watch
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // UpstreamStream
  void setResponseCallbacks(ResponseDecoderCallbacks* callbacks) override {
    forwarder.target = callbacks;
  }
  void encodeHeaders(const RequestHead& head, bool end_stream) override;
  void encodeData(std::span<const char> data, bool end_stream) override;
  void encodeTrailers(const HeaderMap& trailers) override;
  Awaitable<bool> send() override;
  std::optional<bool> trySend() override;
  Awaitable<ReceiveResult> receive() override;
  std::optional<ReceiveResult> tryReceive() override;
  bool waitsInPlace() const override { return !tls; }
  void startReceiveWait(resume_detail::Frame* frame) override;
  void resetStream(StreamResetReason reason) override;
  bool reused() const override { return from_pool; }
  bool canReuse() const override {
    return !stream_reset && !write_failed && !tls_deferred_error && codec.canReuse();
  }
  bool upgraded() const override { return codec.upgraded(); }
  UpstreamConnection* http1Connection() override { return this; }

  TcpStream stream;
  // TLS clusters: the session cache the transport stores into (kept alive
  // for it) and the transport between the socket and the codec; null for
  // plaintext.
  std::shared_ptr<tls::ClientSessionCache> tls_sessions;
  std::unique_ptr<tls::TlsTransport> tls;
  std::string tls_plaintext;  // receive()'s scratch
  boost::system::error_code tls_deferred_error;  // receive(): after the plaintext read with it
  beast::flat_buffer read_buffer{1024 * 1024};
  ResponseForwarder forwarder;
  http1::ClientCodec codec{forwarder};
  uint64_t requests = 0;  // requests sent on this connection
  bool from_pool = false;  // taken from the idle pool (or handed over) for the current request

  // While in use as a stream: the pool it goes back to, the bytes encoded
  // for the upstream and not written yet (here, or in the worker's shared
  // buffer while this connection holds it: outBuffer()), and whether it
  // was reset.
  WorkerCluster* stream_owner = nullptr;
  HostState* stream_host = nullptr;
  std::string out;
  // Where encode*() appends: the worker thread's shared output buffer when
  // it is free or this connection's, else `out`. A request is mostly
  // encoded and sent at once (trySend()), and one buffer that every
  // connection of the worker writes stays in the core's cache, where each
  // of hundreds of connections' own `out` was cold when written (h2c 4 x
  // 100 streams: 400 upstream connections). Another connection's encode,
  // an awaited send() and the connection's end move the bytes to `out`.
  std::string& outBuffer();
  // Moves this connection's bytes from the shared buffer to `out` (or
  // drops them: `keep` false) and frees the buffer.
  void leaveSharedOut(bool keep);
  bool stream_reset = false;
  bool write_failed = false;
  // A read by receive() or receiveWait() completed, with these:
  // tryReceive() takes them.
  bool wait_done = false;
  boost::system::error_code wait_ec;
  std::size_t wait_n = 0;
  StreamResetReason reset_reason = StreamResetReason::kLocalReset;

  // While idle: its slot in the worker's IdleConnections (oldest first),
  // since when, and whose host's idle list holds it. Maintained by
  // WorkerCluster and IdleConnections only.
  IdleConnections* idle_list = nullptr;
  size_t idle_slot = 0;
  WorkerCluster* idle_owner = nullptr;
  HostState* idle_host = nullptr;
  std::chrono::steady_clock::time_point idle_since{};
  std::shared_ptr<IdleWatch> watch;  // made at the first watch; outlives the connection
  bool watching = false;             // an async_wait(wait_read) is outstanding

 protected:
  void release(bool reusable) override;
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
  bool ejected = false;  // by outlier detection (the main thread's OutlierEjections)
  // This worker's outcome counters in the host's outlier monitor; null when
  // the cluster has no outlier detection.
  OutlierWorkerCounters* outlier = nullptr;
  uint32_t cx_active = 0;  // this worker's connections to the host, connecting ones included
  // Pending requests, oldest first. Never non-empty while `idle` is: a
  // released connection goes to the oldest waiter before the idle list.
  PendingRequest* pending_head = nullptr;
  PendingRequest* pending_tail = nullptr;
  // The host's stream pool, made on first use (WorkerCluster::connPool()).
  std::unique_ptr<ConnPool> pool;
  // auto_config on a TLS cluster: the protocol the host's ALPN chose, learned
  // from this worker's first connection to it (Envoy caches it per host).
  enum class AlpnProtocol : uint8_t { Unknown, Http1, Http2 };
  AlpnProtocol alpn_protocol = AlpnProtocol::Unknown;
};

// The idle pooled connections of one worker, oldest first, and the one timer
// that sweeps them (DESIGN.md §8: a deadline per connection swept per worker,
// no kernel timer per connection). Worker thread only.
//
// Each sweep (every kSweepPeriod, or the shortest idle_timeout seen if that
// is shorter) closes the connections that have been idle for their
// cluster's upstream idle_timeout (Envoy's common_http_protocol_options.
// idle_timeout, default 1 h; `upstream_cx_idle_timeout`), and gives every
// other idle connection a read watch (async_wait(wait_read)): a peer that
// closes an idle connection, or sends on it unasked, gets it closed at once
// (`upstream_cx_destroy_remote`). Arming a watch costs one epoll_ctl in
// Asio's reactor, so the sweep arms it rather than every release: a
// connection reused within a sweep period never pays for it, and a request
// sent on a connection whose close was not seen yet is retried once by the
// router, as in Envoy. Taking a connection cancels its watch without a
// syscall. The timer runs while the worker has idle connections or has
// released one since the last sweep.
class IdleConnections : public std::enable_shared_from_this<IdleConnections> {
 public:
  static constexpr std::chrono::milliseconds kSweepPeriod{1000};

  IdleConnections() = default;
  IdleConnections(const IdleConnections&) = delete;
  IdleConnections& operator=(const IdleConnections&) = delete;

  // `c` went idle in `host`'s idle list of `owner`, which closes it after
  // `idle_timeout` (0: never).
  void add(UpstreamConnection& c, WorkerCluster& owner, HostState& host,
           std::chrono::milliseconds idle_timeout);
  // `c` leaves the idle list (taken, closed or destroyed); its watch is
  // cancelled. No syscall.
  void remove(UpstreamConnection& c);
  // One sweep at `now` (the timer calls it; tests may too).
  void sweep(std::chrono::steady_clock::time_point now);

  size_t size() const { return size_; }
  std::chrono::milliseconds period() const { return period_; }

 private:
  void watch(UpstreamConnection& c);
  void startTimer(const Executor& ex);
  void onTick();

  // Drops the empty slots, renumbering the connections behind them.
  void compact();

  // The idle connections, oldest first; a connection that leaves empties
  // its slot, and empty slots at the end go at once. A connection taken
  // back soon after it went idle (the pool is a stack, so mostly the last
  // one) touches its slot only: a list linked through the connections
  // wrote a neighbour's line on every add and remove, a cache line of a
  // connection the request did not use (two misses per proxied request at
  // 400 requests in flight). Other empty slots go at a sweep, or once they
  // outnumber the connections (compact()).
  std::vector<UpstreamConnection*> slots_;
  size_t size_ = 0;
  std::chrono::milliseconds period_ = kSweepPeriod;
  std::optional<SteadyTimer> timer_;
  bool timer_running_ = false;
  bool added_since_tick_ = false;
};
using IdleConnectionsSharedPtr = std::shared_ptr<IdleConnections>;

// What load balancers may use to pick a host.
struct LoadBalancerContext {
  std::optional<uint64_t> hash;  // from the route's hash_policy (ring hash, maglev)
  uint64_t random = 0;
  const HostState* avoid = nullptr;  // retry: prefer another host (previous_hosts)
  // ORIGINAL_DST clusters: the downstream connection's local address (its
  // original destination once the listener restored it), the request's
  // headers (use_http_header), and the address the connection's listener is
  // bound to (none for a listener that does not bind: bind_to_port false);
  // a destination that is that address is refused. Borrowed for the
  // chooseHost() call only.
  const asio::ip::tcp::endpoint* downstream_local = nullptr;
  const HeaderMap* request_headers = nullptr;
  const asio::ip::tcp::endpoint* listener_address = nullptr;
};

// Parses an original destination override, Envoy's
// parseInternetAddressAndPortNoThrow(v, /*v6only=*/false): `a.b.c.d:port` or
// `[v6]:port`, port in [0, 65535], nothing else. Pure.
std::optional<asio::ip::tcp::endpoint> parseOriginalDstHost(std::string_view value);

// Whether `dst` is the address a listener is bound to (`bound`, as the
// kernel reports it): the same port on the same IP, or on any IP when it
// binds a wildcard. A connection that was not redirected has that address as
// its local one; connecting to it would loop back into the listener. Pure.
bool isListenerAddress(const asio::ip::tcp::endpoint& bound, const asio::ip::tcp::endpoint& dst);

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

  // The per-request breaker (max_requests) with a worker's `credit`: slots
  // it took from the shared count and has not used. Far below the limit
  // (the count under max / 2) a worker takes creditBatch(max) slots at a
  // time and keeps up to that many between requests, so most requests
  // neither write nor bounce the shared count's cache line; near the limit
  // every slot is taken and given back one at a time, exactly as tryInc and
  // dec. The count never passes `max`; what a worker holds unused, at most
  // creditBatch(max) (4 at the default 1,024; at most 16), can refuse a
  // request early while that worker sits idle: the only slack.
  bool tryAcquire(uint32_t max, uint32_t& credit, stats::Shard& shard, stats::StatId open);
  void release(uint32_t max, uint32_t& credit, stats::Shard& shard, stats::StatId open);
  // Gives back every unused slot (a WorkerCluster going away).
  void returnCredit(uint32_t max, uint32_t& credit, stats::Shard& shard, stats::StatId open);
  static uint32_t creditBatch(uint32_t max) { return std::clamp<uint32_t>(max / 256, 1, 16); }

 private:
  std::atomic<uint32_t> count_{0};
};

// Cluster-wide resource counts shared by every worker (Envoy's circuit
// breakers are per cluster, not per worker). They outlive host-set updates.
// `requests` is charged per request: it has a cache line of its own, so
// the other breakers' writes (per connection, per queued request, per retry)
// do not move it between cores.
struct ClusterResources {
  BreakerResource connections;  // max_connections
  BreakerResource pending;      // max_pending_requests
  BreakerResource retries;      // max_retries
  alignas(64) BreakerResource requests;  // max_requests (the struct ends with its line)
};
// Every cluster's breakers by name, made on the main thread.
using ClusterResourcesMap = absl::flat_hash_map<std::string, std::shared_ptr<ClusterResources>>;
using ClusterResourcesMapConstSharedPtr = std::shared_ptr<const ClusterResourcesMap>;

// A request on this worker waiting for a connection to one host (Envoy's
// conn-pool PendingRequest). The caller owns it, in the request's coroutine
// frame, so queueing allocates nothing; WorkerCluster::acquire links it into
// the host's FIFO while it waits. Worker thread only.
class PendingRequest {
 public:
  explicit PendingRequest(Executor ex) : timer_(std::move(ex)) {}
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
  friend class Http2ConnPool;  // shares the host's pending FIFO
  enum class Wake : uint8_t { None, Connection, Slot, ConnectFailure };
  void wake(Wake why) {
    wake_ = why;
    timer_.cancel();
  }

  SteadyTimer timer_;
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
  // `worker_index` picks this worker's outlier counters; `idle` is the
  // worker's idle-connection sweep (null: idle connections are neither
  // watched nor timed out).
  WorkerCluster(const ClusterRuntime& runtime, HostSetConstSharedPtr hosts,
                std::shared_ptr<ClusterResources> resources, stats::Shard& shard,
                size_t worker_index = 0, IdleConnectionsSharedPtr idle = nullptr);
  ~WorkerCluster();  // closes the idle connections
  WorkerCluster(const WorkerCluster&) = delete;
  WorkerCluster& operator=(const WorkerCluster&) = delete;

  // Takes over the idle connections of `old`'s hosts that are also hosts
  // here: the same host (shared state) even at a new address (LOGICAL_DNS
  // keeps existing connections), else the same address. Then `old` is
  // retired: a connection released to it later goes to its pending requests,
  // else to the same host here, else it is closed. Removed hosts' idle
  // connections close with `old`. A connection made under another TLS
  // context (TLS added, removed or changed) is never carried over: `old` is
  // retired instead, and its connections close.
  void succeed(WorkerCluster& old, const std::shared_ptr<WorkerCluster>& self);
  // The cluster left the config: it serves the requests that hold it, and a
  // connection released to it afterwards goes to its pending requests or is
  // closed; its idle connections close now.
  void retire();
  // Keeps the runtime alive for as long as this WorkerCluster (a request may
  // hold it after its config is gone).
  void keepAlive(ClusterRuntimeConstSharedPtr runtime) { runtime_owner_ = std::move(runtime); }
  const ClusterRuntimeConstSharedPtr& runtimeOwner() const { return runtime_owner_; }

  // Per-method gRPC stats of this cluster on this worker,
  // cluster.<name>.<protocol>.<method>.*: the grpc_stats filter's
  // (`protocol` "grpc") and the grpc_web filter's ("grpc-web"), `method`
  // being "<service>.<method>" (GrpcStatsFilterConfig::methodStatName).
  // Made at a method's first call (requestGrpcMethodStats), up to
  // kMaxGrpcMethods; null for a method past that (the call counts in the
  // cluster's grpc.*, or not at all for grpc-web). A successor with the same
  // stats scope keeps them.
  GrpcMethodStatsSharedPtr grpcMethodStats(std::string_view protocol, std::string_view method,
                                           stats::Store& store, Mailbox& worker);
  static constexpr size_t kMaxGrpcMethods = 256;

  const ClusterRuntime& runtime() const { return *runtime_; }
  const config::ClusterConfig& config() const { return *runtime_->config; }
  const config::CircuitBreakerThresholds& thresholds() const { return thresholds_; }
  ClusterResources& resources() { return *resources_; }
  const std::shared_ptr<ClusterResources>& sharedResources() const { return resources_; }
  std::vector<HostState>& hosts() { return hosts_; }

  // TLS clusters: this worker's resumable sessions per host (null for
  // plaintext). A successor with the same TLS context shares it.
  const std::shared_ptr<tls::ClientSessionCache>& tlsSessions() const { return tls_sessions_; }

  // Chooses a healthy host by the cluster's lb_policy, from the lowest
  // priority that has one. Null when no host is healthy (503 UH).
  // ORIGINAL_DST (CLUSTER_PROVIDED): the host at ctx's destination (see
  // LoadBalancerContext), made on first use and kept until a cleanup finds
  // it unused for a whole cleanup_interval; null without a destination, or
  // when it is the listener's own address (original_dst_loop_refused).
  HostState* chooseHost(const LoadBalancerContext& ctx);

  // A new connection to `host` for a TCP proxy (Envoy's TCP connection pool,
  // which a TCP proxy never returns connections to): within max_connections
  // (else Overflow, upstream_cx_overflow), the cluster's connect_timeout and,
  // for a TLS cluster, its handshake; counted in the cluster's cx stats. The
  // caller gives it back with closeTcp().
  struct TcpConnectResult {
    enum class Status { Ready, Overflow, ConnectFailure };
    Status status = Status::Ready;
    UpstreamConnectionPtr conn;
    bool timed_out = false;  // ConnectFailure: the connect (or handshake) timed out
  };
  Awaitable<TcpConnectResult> connectTcp(Executor ex, HostState* host);
  void closeTcp(HostState& host, UpstreamConnectionPtr conn);

  // ORIGINAL_DST: this worker's hosts now (tests, /clusters).
  size_t originalDstHostCount() const { return original_dst_hosts_.size(); }
  // One cleanup pass at `now` (the cluster's timer runs it every
  // cleanup_interval; tests may too): a host chosen since the last pass is
  // kept (and marked unused); an unused one without requests or busy
  // connections is dropped, its idle connections closed.
  void cleanupOriginalDstHosts(std::chrono::steady_clock::time_point now);
  // The most ORIGINAL_DST hosts one worker keeps per cluster: past it a new
  // destination first drops every idle host, then is refused
  // (original_dst_host_overflow).
  static constexpr size_t kMaxOriginalDstHosts = 16384;

  // The pool of `host` (one of hosts()) for this cluster's upstream
  // protocol: Http2ConnPool for UpstreamProtocol::Http2 (h2c), AutoConnPool
  // for auto_config with TLS, for use_downstream_protocol_config the side
  // of the request's downstream protocol (`downstream_http2`), else
  // Http1ConnPool.
  ConnPool& connPool(HostState& host, bool downstream_http2 = false);

  // Takes the warmest idle connection to `host`, or null. Its idle watch
  // is cancelled (no syscall); a peer close that the watch did not see yet
  // shows as a failed first exchange, which the router retries once.
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
  Awaitable<AcquireResult> acquire(HostState* host, PendingRequest* pending,
                                   std::chrono::steady_clock::time_point deadline);

  // Returns a connection after a complete exchange; `reusable` false closes
  // it, and so does reaching max_requests_per_connection
  // (upstream_cx_max_requests). A reusable one goes to the host's oldest
  // pending request, else to the idle list; closing one lets the oldest
  // pending request connect.
  void release(HostState& host, UpstreamConnectionPtr conn, bool reusable);

  // Closes `conn`, idle in `host`'s list: its peer closed it or sent on it
  // (`remote`, upstream_cx_destroy_remote), or its idle_timeout passed
  // (upstream_cx_idle_timeout). IdleConnections calls it.
  void closeIdle(HostState& host, UpstreamConnection& conn, bool remote);
  // The cluster's upstream idle_timeout (0: none).
  std::chrono::milliseconds idleTimeout() const;

  // The max_requests breaker, for an exchange on an acquired connection
  // (Envoy checks it when a request is attached to a connection).
  bool tryStartRequest();
  void endRequest();
  // The max_retries breaker around one retry (its back-off and its attempt).
  void startRetry();
  void endRetry();

  // Outlier detection: an upstream 5xx, or a locally originated failure
  // (connect failure, reset, timeout), is a failure; any other response a
  // success. Counted in this worker's counters for the main thread's
  // OutlierDetector (success rate, failure percentage); the failure that
  // makes consecutive_5xx in a row is posted to it. No-op without
  // outlier_detection. Worker thread.
  void recordOutcome(HostState& host, bool failure);
  // The main thread's latest ejected hosts of this cluster (posted to the
  // worker); new WorkerClusters of the cluster inherit them in succeed().
  void updateEjections(OutlierEjectionsConstSharedPtr ejections);
  bool ejected(const HostState& host) const { return host.ejected; }
  bool failedActiveHealthCheck(const HostState& host) const;

 private:
  friend class Http2ConnPool;  // its connections count in the same breakers and stats
  struct ConnectResult {
    UpstreamConnectionPtr conn;
    bool timed_out = false;
  };
  // A new connection to `host` within `timeout`, counted in the cluster's cx
  // stats and breaker. Null conn on failure.
  Awaitable<ConnectResult> connect(Executor ex, HostState* host, std::chrono::milliseconds timeout,
                                   bool http1 = true);
  // ORIGINAL_DST: the host for `ctx`, made if needed.
  HostState* chooseOriginalDst(const LoadBalancerContext& ctx);
  void startOriginalDstCleanup(const Executor& ex);
  std::chrono::milliseconds originalDstCleanupInterval() const;
  // Drops `it`'s host: its idle connections close.
  struct OriginalDstHost;
  void dropOriginalDstHost(OriginalDstHost& h);
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
  ClusterRuntimeConstSharedPtr runtime_owner_;
  HostSetConstSharedPtr host_set_;  // keeps every HostState::description alive
  IdleConnectionsSharedPtr idle_;
  OutlierEjectionsConstSharedPtr ejections_;
  std::shared_ptr<ClusterResources> resources_;
  uint32_t request_credit_ = 0;  // resources_->requests slots held unused (BreakerResource)
  std::shared_ptr<tls::ClientSessionCache> tls_sessions_;
  stats::Shard* shard_;
  bool retired_ = false;
  std::weak_ptr<WorkerCluster> successor_;
  absl::flat_hash_map<std::string, GrpcMethodStatsSharedPtr> grpc_methods_;
  config::CircuitBreakerThresholds thresholds_;
  std::vector<HostState> hosts_;
  std::vector<HostState*> scratch_;
  uint64_t rr_next_ = 0;
  // Smooth weighted round robin (nginx's algorithm): current weights.
  std::vector<int64_t> wrr_current_;
  bool weighted_ = false;
  // Ring hash: sorted (point, host index). Maglev tables come with the host set.
  std::vector<std::pair<uint64_t, uint32_t>> ring_;

  // ORIGINAL_DST: hosts made on demand, by address. Each owns its
  // description, so HostState::description and the HostState itself stay
  // put for as long as the host is in the map (a pool or a pending request
  // refers to them).
  struct OriginalDstKey {
    std::array<unsigned char, 16> bytes{};
    uint16_t port = 0;
    bool v6 = false;
    bool operator==(const OriginalDstKey&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const OriginalDstKey& k) {
      return H::combine(std::move(h), k.bytes, k.port, k.v6);
    }
  };
  struct OriginalDstHost {
    HostDescription description;
    HostState state;
    bool used = true;  // chosen since the last cleanup pass
  };
  absl::flat_hash_map<OriginalDstKey, std::unique_ptr<OriginalDstHost>> original_dst_hosts_;
  std::chrono::steady_clock::time_point original_dst_cleaned_{};
  // The cleanup timer, started with the first host; `alive_` tells its
  // handler whether this WorkerCluster still exists.
  std::optional<SteadyTimer> original_dst_timer_;
  std::shared_ptr<WorkerCluster*> alive_;
};

// The clusters of one config on one worker. Not thread-safe: one worker only.
//
// A cluster's WorkerCluster is made when a request of this worker first asks
// for it (get()), not for every cluster at every update: with 10,000
// sandbox clusters a worker pays only for the ones it serves. Until then the
// manager keeps what a WorkerCluster would start from (the cluster's shared
// breakers, a newer DNS host set, the latest outlier ejections), so a
// WorkerCluster made late behaves as one made at the update. Stats are not
// affected: a cluster's stats live in its ClusterRuntime and its scope is
// created on first write.
class ClusterManager {
 public:
  // `worker_index`: the worker's index, for its outlier counters.
  explicit ClusterManager(size_t worker_index = 0);

  // Switches to `config`. A cluster whose ClusterRuntime is the same object
  // as before (identity) keeps its WorkerCluster: pools, idle connections,
  // outlier ejections, DNS host set. A changed one that has a WorkerCluster
  // here gets a new WorkerCluster now, which takes over the idle connections
  // of the hosts that survive; a new or changed one without a WorkerCluster
  // here is deferred to its first get(). A removed one is retired (in-flight
  // requests keep their shared_ptr; its idle connections close).
  // `resources` has the breakers (shared by the workers) of the clusters
  // that are new or changed in `config`; a cluster without an entry there,
  // nor an earlier one, gets fresh breakers of its own when it is made.
  // `shard` is the worker's and must outlive the manager.
  struct UpdateResult {
    size_t reused = 0;    // unchanged: its WorkerCluster or deferred state kept
    size_t created = 0;   // changed, with a WorkerCluster here: a new one made now
    size_t deferred = 0;  // new, or changed without a WorkerCluster here: made at first use
    size_t removed = 0;   // left the config
  };
  UpdateResult update(
      const DataPlaneConfigConstSharedPtr& config,
      const absl::flat_hash_map<std::string, std::shared_ptr<ClusterResources>>& resources,
      stats::Shard& shard);
  // Switches `cluster` (of the current config) to a new host set from the
  // DnsRefresher, the same way (or keeps it for the WorkerCluster's first
  // use). Ignored when `cluster` is not current.
  void updateHosts(const ClusterRuntime& cluster, HostSetConstSharedPtr hosts, stats::Shard& shard);
  // Applies the main thread's ejected hosts of `cluster` (of the current
  // config; ignored otherwise) to its current WorkerCluster, or keeps them
  // for its first use.
  void updateEjections(const ClusterRuntime& cluster, OutlierEjectionsConstSharedPtr ejections);
  IdleConnections& idleConnections() { return *idle_; }

  // The cluster's WorkerCluster, made now if this is its first use on this
  // worker; null when the current config has no such cluster. A request
  // keeps the shared_ptr for its lifetime, so an update never pulls a
  // cluster (or a host it holds) from under it.
  std::shared_ptr<WorkerCluster> get(std::string_view name);
  // Clusters in the current config.
  size_t size() const;
  // Clusters whose WorkerCluster has been made on this worker.
  size_t created() const { return by_name_.size(); }

 private:
  // What a cluster's WorkerCluster starts from when it is made late, besides
  // its breakers: a newer DNS host set, the latest ejections. Rare.
  struct Deferred {
    HostSetConstSharedPtr hosts;               // null: the runtime's hosts
    OutlierEjectionsConstSharedPtr ejections;  // null: none
  };
  bool current(const ClusterRuntime& cluster) const;

  size_t worker_index_;
  IdleConnectionsSharedPtr idle_;
  stats::Shard* shard_ = nullptr;
  DataPlaneConfigConstSharedPtr config_;
  absl::flat_hash_map<std::string, std::shared_ptr<WorkerCluster>> by_name_;
  // Only for clusters of the current config that have no WorkerCluster yet,
  // keyed by their runtime (kept alive by config_). A missing breaker entry
  // means fresh breakers.
  absl::flat_hash_map<const ClusterRuntime*, std::shared_ptr<ClusterResources>> deferred_resources_;
  absl::flat_hash_map<const ClusterRuntime*, Deferred> deferred_;
};

}  // namespace turnout::proxy
