#include "proxy/upstream/cluster_manager.h"

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "config/snapshot/snapshot.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"
#include "proxy/tls/tls_context.h"
#include "tests/support/eventually.h"

namespace turnout::proxy {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Status = WorkerCluster::AcquireResult::Status;

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

// Accepts TCP connections on 127.0.0.1:0 and keeps them open, silent.
class SilentServer {
 public:
  explicit SilentServer(asio::io_context& io)
      : acceptor_(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  size_t accepted() const { return sockets_.size(); }
  // Later connects are refused.
  void close() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }
  // Closes (FIN) every accepted connection.
  void hangUp() {
    for (auto& s : sockets_) {
      boost::system::error_code ignored;
      s.shutdown(TcpSocket::shutdown_send, ignored);
    }
  }
  // Writes `bytes` on every accepted connection, unasked.
  void say(const std::string& bytes) {
    for (auto& s : sockets_) {
      boost::system::error_code ignored;
      asio::write(s, asio::buffer(bytes), ignored);
    }
  }

 private:
  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, TcpSocket s) {
      if (ec) return;
      sockets_.push_back(std::move(s));
      accept();
    });
  }
  TcpAcceptor acceptor_;
  std::vector<TcpSocket> sockets_;
};

// One acquire() in flight and its outcome.
struct Waiter {
  explicit Waiter(asio::io_context& io) : pending(io.get_executor()) {}
  PendingRequest pending;
  std::optional<WorkerCluster::AcquireResult> result;
};

Awaitable<void> runAcquire(std::shared_ptr<WorkerCluster> cluster, HostState* host, Waiter* waiter,
                           Clock::time_point deadline) {
  waiter->result = co_await cluster->acquire(host, &waiter->pending, deadline);
}

// A cluster "c" of STATIC hosts on one worker, with its breakers and stats:
// addHost() for each host, then build().
struct Pool {
  explicit Pool(config::CircuitBreakerThresholds limits = {}) : store(1) {
    config.name = "c";
    config.connect_timeout = 1000ms;
    config.circuit_breakers.push_back(limits);
    runtime.config = &config;
    runtime.stats = stats::makeClusterStats(store, "c", "");
  }
  void addHost(uint16_t port) {
    HostDescription h;
    h.ip = "127.0.0.1";
    h.port = port;
    h.address = "127.0.0.1:" + std::to_string(port);
    hosts.push_back(h);
  }
  void build() {
    runtime.hosts = makeHostSet(config, hosts);
    resources = std::make_shared<ClusterResources>();
    cluster = std::make_shared<WorkerCluster>(runtime, runtime.hosts, resources, store.shard(0), 0,
                                              idle);
  }

  HostState* host(size_t i) { return &cluster->hosts()[i]; }

  // Starts acquire() for `w` on host `i`; it waits at most `wait`.
  void start(Waiter& w, size_t i = 0, std::chrono::milliseconds wait = 5000ms) {
    asio::co_spawn(io, runAcquire(cluster, host(i), &w, Clock::now() + wait), rethrow);
  }
  // Runs the io_context until `pred` holds or `limit` passes.
  template <typename Pred>
  bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
    return test::eventually(io, pred, limit);
  }
  // Starts `w` and runs until it has its result, which must be a connection.
  UpstreamConnectionPtr acquireNow(Waiter& w, size_t i = 0) {
    start(w, i);
    REQUIRE(eventually([&] { return w.result.has_value(); }));
    REQUIRE(w.result->status == Status::Ready);
    return std::move(w.result->conn);
  }
  // Starts `w` and runs until it is queued behind the host's busy connections.
  void queue(Waiter& w, size_t i = 0, std::chrono::milliseconds wait = 5000ms) {
    const int64_t before = gauge("upstream_rq_pending_active");
    start(w, i, wait);
    REQUIRE(eventually([&] { return gauge("upstream_rq_pending_active") == before + 1; }));
    REQUIRE_FALSE(w.result.has_value());
  }

  uint64_t counter(const std::string& name) const {
    return store.counterValue("cluster.c." + name);
  }
  int64_t gauge(const std::string& name) const { return store.gaugeValue("cluster.c." + name); }

  asio::io_context io{1};
  stats::Store store;
  IdleConnectionsSharedPtr idle = std::make_shared<IdleConnections>();
  config::ClusterConfig config;
  ClusterRuntime runtime;
  std::vector<HostDescription> hosts;  // addHost(), for build()
  std::shared_ptr<ClusterResources> resources;
  std::shared_ptr<WorkerCluster> cluster;
};

// One host behind a SilentServer.
struct OneHostPool {
  explicit OneHostPool(config::CircuitBreakerThresholds l) : pool(l), server(pool.io) {
    pool.addHost(server.port());
    pool.build();
  }
  Pool pool;
  SilentServer server;
};

config::CircuitBreakerThresholds limits(uint32_t max_connections, uint32_t max_pending = 1024,
                                        uint32_t max_requests = 1024) {
  config::CircuitBreakerThresholds t;
  t.max_connections = max_connections;
  t.max_pending_requests = max_pending;
  t.max_requests = max_requests;
  return t;
}

// One host at max_connections 1, its one connection busy (`busy`).
struct AtLimit : OneHostPool {
  explicit AtLimit(uint32_t max_pending = 1024) : OneHostPool(limits(1, max_pending)) {
    busy = pool.acquireNow(holder);
  }
  Waiter holder{pool.io};
  UpstreamConnectionPtr busy;
};

}  // namespace

TEST_CASE("a breaker's open gauge is 1 exactly while the count is at or above its limit",
          "[pool]") {
  stats::Store store(2);
  const stats::StatId open = store.gauge("open");
  BreakerResource r;
  r.inc(2, store.shard(0), open);
  CHECK(store.gaugeValue("open") == 0);
  r.inc(2, store.shard(1), open);
  CHECK(store.gaugeValue("open") == 1);
  r.inc(2, store.shard(0), open);  // above the limit (Envoy's empty-pool rule allows it)
  CHECK(store.gaugeValue("open") == 1);
  r.dec(2, store.shard(1), open);
  CHECK(store.gaugeValue("open") == 1);
  r.dec(2, store.shard(0), open);
  CHECK(store.gaugeValue("open") == 0);
  CHECK(r.count() == 1);
  CHECK(r.tryInc(2, store.shard(1), open));
  CHECK(store.gaugeValue("open") == 1);
  CHECK_FALSE(r.tryInc(2, store.shard(1), open));
  CHECK(r.count() == 2);
}

TEST_CASE(
    "the request breaker lends a worker slots in batches far below its limit and is "
    "exact near it",
    "[pool]") {
  stats::Store store(2);
  const stats::StatId open = store.gauge("open");
  BreakerResource r;
  constexpr uint32_t kMax = 1024;  // batches of 4
  REQUIRE(BreakerResource::creditBatch(kMax) == 4);
  CHECK(BreakerResource::creditBatch(511) == 1);
  CHECK(BreakerResource::creditBatch(1u << 20) == 16);
  uint32_t a = 0, b = 0;  // two workers' credit
  // Far below the limit: one write to the shared count per four requests.
  REQUIRE(r.tryAcquire(kMax, a, store.shard(0), open));
  CHECK(r.count() == 4);
  CHECK(a == 3);
  for (int i = 0; i < 3; ++i) REQUIRE(r.tryAcquire(kMax, a, store.shard(0), open));
  CHECK(r.count() == 4);
  CHECK(a == 0);
  REQUIRE(r.tryAcquire(kMax, a, store.shard(0), open));  // five in use
  CHECK(r.count() == 8);
  r.release(kMax, a, store.shard(0), open);
  CHECK(a == 4);  // kept, up to a batch
  CHECK(r.count() == 8);
  r.release(kMax, a, store.shard(0), open);  // never more than a batch: all go back
  CHECK(a == 0);
  CHECK(r.count() == 3);                          // the three in use
  r.returnCredit(kMax, a, store.shard(0), open);  // nothing held: nothing changes
  CHECK(r.count() == 3);
  // Take the count up to the limit from worker b: single slots from half of it.
  uint32_t in_use = 0;
  while (r.tryAcquire(kMax, b, store.shard(1), open)) ++in_use;
  CHECK(in_use == kMax - 3);  // exactly what the 3 slots lent out earlier leave
  CHECK(b == 0);
  CHECK(r.count() == kMax);
  CHECK(store.gaugeValue("open") == 1);
  // Near the limit every release goes straight back, and the gauge follows.
  r.release(kMax, b, store.shard(1), open);
  CHECK(b == 0);
  CHECK(r.count() == kMax - 1);
  CHECK(store.gaugeValue("open") == 0);
  CHECK(r.tryAcquire(kMax, a, store.shard(0), open));  // another worker gets that slot
  CHECK(r.count() == kMax);
  CHECK_FALSE(r.tryAcquire(kMax, a, store.shard(0), open));
  // A small limit never lends more than the slot in use.
  BreakerResource small;
  uint32_t c = 0;
  REQUIRE(small.tryAcquire(10, c, store.shard(0), open));
  CHECK(small.count() == 1);
  small.release(10, c, store.shard(0), open);
  CHECK(c == 0);
  CHECK(small.count() == 0);
}

TEST_CASE("a request that finds no idle connection connects and counts as pending", "[pool]") {
  OneHostPool p(limits(1024));
  Pool& pool = p.pool;
  Waiter w(pool.io);
  UpstreamConnectionPtr conn = pool.acquireNow(w);
  CHECK(pool.counter("upstream_rq_pending_total") == 1);
  CHECK(pool.gauge("upstream_rq_pending_active") == 0);
  CHECK(pool.counter("upstream_cx_total") == 1);
  CHECK(pool.counter("upstream_cx_overflow") == 0);

  // Released, it is idle; the next request takes it without being pending.
  pool.cluster->release(*pool.host(0), std::move(conn), true);
  Waiter again(pool.io);
  UpstreamConnectionPtr reused = pool.acquireNow(again);
  CHECK(reused->reused());
  CHECK(pool.counter("upstream_rq_pending_total") == 1);
  CHECK(p.server.accepted() == 1);
}


TEST_CASE("at max_connections a request waits for a released connection and gets it",
          "[pool]") {
  AtLimit p;
  Pool& pool = p.pool;
  UpstreamConnectionPtr& busy = p.busy;
  CHECK(pool.gauge("circuit_breakers.default.cx_open") == 1);

  Waiter second(pool.io);
  pool.queue(second);
  CHECK(pool.counter("upstream_cx_overflow") == 1);
  CHECK(pool.counter("upstream_rq_pending_total") == 2);

  UpstreamConnection* raw = busy.get();
  pool.cluster->release(*pool.host(0), std::move(busy), true);
  REQUIRE(pool.eventually([&] { return second.result.has_value(); }));
  CHECK(second.result->status == Status::Ready);
  CHECK(second.result->conn.get() == raw);
  CHECK(second.result->conn->reused());
  CHECK(pool.gauge("upstream_rq_pending_active") == 0);
  CHECK(pool.host(0)->idle.empty());
  CHECK(p.server.accepted() == 1);
}

TEST_CASE("pending requests get released connections first come, first served", "[pool]") {
  AtLimit p;
  Pool& pool = p.pool;
  UpstreamConnectionPtr& conn = p.busy;
  std::vector<std::unique_ptr<Waiter>> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.push_back(std::make_unique<Waiter>(pool.io));
    pool.queue(*waiters.back());
  }
  for (int i = 0; i < 3; ++i) {
    pool.cluster->release(*pool.host(0), std::move(conn), true);
    REQUIRE(pool.eventually([&] { return waiters[i]->result.has_value(); }));
    for (int j = i + 1; j < 3; ++j) CHECK_FALSE(waiters[j]->result.has_value());
    REQUIRE(waiters[i]->result->status == Status::Ready);
    conn = std::move(waiters[i]->result->conn);
  }
  CHECK(p.server.accepted() == 1);
}

TEST_CASE("a full pending queue overflows at once", "[pool]") {
  AtLimit p(1);
  Pool& pool = p.pool;
  UpstreamConnectionPtr& conn = p.busy;
  Waiter queued(pool.io);
  pool.queue(queued);
  CHECK(pool.gauge("circuit_breakers.default.rq_pending_open") == 1);

  Waiter over(pool.io);
  pool.start(over);
  REQUIRE(pool.eventually([&] { return over.result.has_value(); }));
  CHECK(over.result->status == Status::Overflow);
  CHECK(pool.counter("upstream_rq_pending_overflow") == 1);
  CHECK_FALSE(queued.result.has_value());

  pool.cluster->release(*pool.host(0), std::move(conn), true);
  REQUIRE(pool.eventually([&] { return queued.result.has_value(); }));
  CHECK(queued.result->status == Status::Ready);
  CHECK(pool.gauge("circuit_breakers.default.rq_pending_open") == 0);
}

TEST_CASE("a pending request that reaches its deadline leaves the queue", "[pool]") {
  AtLimit p;
  Pool& pool = p.pool;
  UpstreamConnectionPtr& conn = p.busy;
  Waiter late(pool.io);
  pool.queue(late, 0, 100ms);
  REQUIRE(pool.eventually([&] { return late.result.has_value(); }));
  CHECK(late.result->status == Status::Timeout);
  CHECK(pool.counter("upstream_rq_cancelled") == 1);
  CHECK(pool.gauge("upstream_rq_pending_active") == 0);
  CHECK(pool.host(0)->pending_head == nullptr);
  // Nobody waits any more: the connection goes idle.
  pool.cluster->release(*pool.host(0), std::move(conn), true);
  CHECK(pool.host(0)->idle.size() == 1);
}

TEST_CASE("a cancelled pending request leaves the queue and the next one is served",
          "[pool]") {
  AtLimit p;
  Pool& pool = p.pool;
  UpstreamConnectionPtr& conn = p.busy;
  Waiter gone(pool.io);
  pool.queue(gone);
  Waiter next(pool.io);
  pool.queue(next);
  gone.pending.cancel();
  REQUIRE(pool.eventually([&] { return gone.result.has_value(); }));
  CHECK(gone.result->status == Status::Cancelled);
  CHECK(pool.counter("upstream_rq_cancelled") == 1);
  pool.cluster->release(*pool.host(0), std::move(conn), true);
  REQUIRE(pool.eventually([&] { return next.result.has_value(); }));
  CHECK(next.result->status == Status::Ready);
}

TEST_CASE("a closed connection lets the oldest pending request connect", "[pool]") {
  AtLimit p;
  Pool& pool = p.pool;
  UpstreamConnectionPtr& conn = p.busy;
  Waiter first(pool.io), second(pool.io);
  pool.queue(first);
  pool.queue(second);
  pool.cluster->release(*pool.host(0), std::move(conn), false);
  REQUIRE(pool.eventually([&] { return first.result.has_value(); }));
  CHECK(first.result->status == Status::Ready);
  CHECK(p.server.accepted() == 2);
  CHECK_FALSE(second.result.has_value());
  CHECK(pool.resources->connections.count() == 1);
  // The second one is still first in line for the next release.
  pool.cluster->release(*pool.host(0), std::move(first.result->conn), true);
  REQUIRE(pool.eventually([&] { return second.result.has_value(); }));
  CHECK(second.result->status == Status::Ready);
}

TEST_CASE("a failed connect fails every pending request of the host", "[pool]") {
  AtLimit p;
  Pool& pool = p.pool;
  UpstreamConnectionPtr& conn = p.busy;
  Waiter first(pool.io), second(pool.io);
  pool.queue(first);
  pool.queue(second);
  p.server.close();
  // The first connects in the freed slot and is refused; the second is purged.
  pool.cluster->release(*pool.host(0), std::move(conn), false);
  REQUIRE(pool.eventually([&] { return first.result && second.result; }));
  CHECK(first.result->status == Status::ConnectFailure);
  CHECK(second.result->status == Status::ConnectFailure);
  CHECK(pool.counter("upstream_rq_pending_failure_eject") == 1);
  CHECK(pool.counter("upstream_cx_connect_fail") == 1);
  CHECK(pool.gauge("upstream_rq_pending_active") == 0);
  CHECK(pool.resources->connections.count() == 0);
}

TEST_CASE("a host this worker has no connection to connects even at max_connections", "[pool]") {
  Pool pool(limits(1));
  SilentServer a(pool.io), b(pool.io);
  pool.addHost(a.port());
  pool.addHost(b.port());
  pool.build();
  Waiter to_a(pool.io), to_b(pool.io);
  UpstreamConnectionPtr ca = pool.acquireNow(to_a, 0);
  UpstreamConnectionPtr cb = pool.acquireNow(to_b, 1);
  CHECK(pool.counter("upstream_cx_overflow") == 1);
  CHECK(pool.resources->connections.count() == 2);
  CHECK(pool.gauge("circuit_breakers.default.cx_open") == 1);
  pool.cluster->release(*pool.host(0), std::move(ca), false);
  CHECK(pool.gauge("circuit_breakers.default.cx_open") == 1);
  pool.cluster->release(*pool.host(1), std::move(cb), false);
  CHECK(pool.gauge("circuit_breakers.default.cx_open") == 0);
}

TEST_CASE("max_requests admits requests up to its limit and opens its gauge", "[pool]") {
  Pool pool(limits(1024, 1024, 2));
  pool.addHost(1);
  pool.build();
  CHECK(pool.cluster->tryStartRequest());
  CHECK(pool.cluster->tryStartRequest());
  CHECK(pool.gauge("circuit_breakers.default.rq_open") == 1);
  CHECK_FALSE(pool.cluster->tryStartRequest());
  pool.cluster->endRequest();
  CHECK(pool.gauge("circuit_breakers.default.rq_open") == 0);
  CHECK(pool.cluster->tryStartRequest());
}

TEST_CASE("destroying a worker cluster closes its idle connections and frees their slots",
          "[pool]") {
  OneHostPool p(limits(4));
  Pool& pool = p.pool;
  Waiter w(pool.io);
  UpstreamConnectionPtr conn = pool.acquireNow(w);
  pool.cluster->release(*pool.host(0), std::move(conn), true);
  CHECK(pool.gauge("upstream_cx_active") == 1);
  pool.cluster.reset();
  CHECK(pool.resources->connections.count() == 0);
  CHECK(pool.gauge("upstream_cx_active") == 0);
  CHECK(pool.counter("upstream_cx_destroy") == 1);
}

TEST_CASE("an idle connection whose peer closes it is dropped before any request uses it",
          "[pool][idle]") {
  OneHostPool p(limits(4));
  Pool& pool = p.pool;
  Waiter w(pool.io);
  pool.cluster->release(*pool.host(0), pool.acquireNow(w), true);
  REQUIRE(pool.idle->size() == 1);
  pool.idle->sweep(Clock::now());  // arms the read watch
  REQUIRE(pool.host(0)->idle[0]->watching);
  p.server.hangUp();
  REQUIRE(pool.eventually([&] { return pool.host(0)->idle.empty(); }));
  CHECK(pool.idle->size() == 0);
  CHECK(pool.counter("upstream_cx_destroy_remote") == 1);
  CHECK(pool.counter("upstream_cx_destroy") == 1);
  CHECK(pool.gauge("upstream_cx_active") == 0);
  CHECK(pool.resources->connections.count() == 0);
}

TEST_CASE("an idle connection on which the peer sends unasked bytes is dropped",
          "[pool][idle]") {
  OneHostPool p(limits(4));
  Pool& pool = p.pool;
  Waiter w(pool.io);
  pool.cluster->release(*pool.host(0), pool.acquireNow(w), true);
  pool.idle->sweep(Clock::now());
  p.server.say("HTTP/1.1 408 Request Timeout\r\n\r\n");
  REQUIRE(pool.eventually([&] { return pool.host(0)->idle.empty(); }));
  CHECK(pool.counter("upstream_cx_destroy_remote") == 1);
}

TEST_CASE("taking an idle connection cancels its watch and the connection stays usable",
          "[pool][idle]") {
  OneHostPool p(limits(4));
  Pool& pool = p.pool;
  Waiter w(pool.io);
  pool.cluster->release(*pool.host(0), pool.acquireNow(w), true);
  pool.idle->sweep(Clock::now());
  UpstreamConnectionPtr c = pool.cluster->takeIdle(*pool.host(0));
  REQUIRE(c);
  CHECK_FALSE(c->watching);
  CHECK(pool.idle->size() == 0);
  pool.io.poll();  // the cancelled wait completes, and must not touch the connection
  p.server.hangUp();
  pool.io.poll();
  CHECK(c->stream.socket().is_open());  // in use: nobody watches it now
  CHECK(pool.counter("upstream_cx_destroy") == 0);
  // Released again it is idle, watched again by the next sweep, and dropped.
  pool.cluster->release(*pool.host(0), std::move(c), true);
  pool.idle->sweep(Clock::now());
  REQUIRE(pool.eventually([&] { return pool.host(0)->idle.empty(); }));
  CHECK(pool.counter("upstream_cx_destroy_remote") == 1);
}

TEST_CASE("an idle connection is closed once the cluster's idle_timeout passes",
          "[pool][idle]") {
  Pool pool(limits(4));
  SilentServer server(pool.io);
  pool.config.upstream_idle_timeout = 10000ms;
  pool.addHost(server.port());
  pool.build();
  Waiter w(pool.io);
  pool.cluster->release(*pool.host(0), pool.acquireNow(w), true);
  pool.idle->sweep(Clock::now() + 9000ms);
  CHECK(pool.host(0)->idle.size() == 1);
  pool.idle->sweep(Clock::now() + 10000ms);
  CHECK(pool.host(0)->idle.empty());
  CHECK(pool.counter("upstream_cx_idle_timeout") == 1);
  CHECK(pool.gauge("upstream_cx_active") == 0);
}

namespace {

// Two hosts behind SilentServers, idle_timeout 10 s: their connections
// interleave in the worker's idle slots.
struct TwoHostIdlePool {
  explicit TwoHostIdlePool(uint32_t max_connections)
      : pool(limits(max_connections)), server_a(pool.io), server_b(pool.io) {
    pool.config.upstream_idle_timeout = 10000ms;
    pool.addHost(server_a.port());
    pool.addHost(server_b.port());
    pool.build();
  }
  // A connection to host `h`, idle or new.
  UpstreamConnectionPtr acquire(size_t h) {
    waiters.push_back(std::make_unique<Waiter>(pool.io));
    return pool.acquireNow(*waiters.back(), h);
  }
  void release(size_t h, UpstreamConnectionPtr c, bool reusable = true) {
    pool.cluster->release(*pool.host(h), std::move(c), reusable);
  }
  Pool pool;
  SilentServer server_a;
  SilentServer server_b;
  std::vector<std::unique_ptr<Waiter>> waiters;
};

}  // namespace

TEST_CASE("idle connections taken out of release order leave gaps the sweep closes over",
          "[pool][idle]") {
  // Taking host 0's connections (its pool is a stack) empties slots in the
  // middle.
  TwoHostIdlePool two(8);
  Pool& pool = two.pool;
  std::vector<std::pair<size_t, UpstreamConnectionPtr>> conns;
  for (int i = 0; i < 3; ++i) {
    for (size_t h = 0; h < 2; ++h) conns.emplace_back(h, two.acquire(h));
  }
  for (auto& [h, c] : conns) two.release(h, std::move(c));
  REQUIRE(pool.idle->size() == 6);
  UpstreamConnectionPtr taken1 = two.acquire(0);
  UpstreamConnectionPtr taken2 = two.acquire(0);
  CHECK(pool.idle->size() == 4);
  CHECK(pool.host(0)->idle.size() == 1);
  CHECK(pool.host(1)->idle.size() == 3);
  // Nothing is due: the sweep keeps all four (and drops the gaps).
  pool.idle->sweep(Clock::now() + 9000ms);
  CHECK(pool.idle->size() == 4);
  // One goes back idle after the gaps are gone, and a later sweep closes
  // every connection that is due, each once.
  two.release(0, std::move(taken1));
  CHECK(pool.idle->size() == 5);
  pool.idle->sweep(Clock::now() + 20000ms);
  CHECK(pool.idle->size() == 0);
  CHECK(pool.host(0)->idle.empty());
  CHECK(pool.host(1)->idle.empty());
  CHECK(pool.counter("upstream_cx_idle_timeout") == 5);
  // The one still in use is not the idle list's.
  two.release(0, std::move(taken2), false);
  CHECK(pool.gauge("upstream_cx_active") == 0);
}

TEST_CASE("idle slots emptied in the middle are compacted when a connection goes idle",
          "[pool][idle]") {
  TwoHostIdlePool two(128);
  Pool& pool = two.pool;
  constexpr int kMany = 70;
  std::vector<UpstreamConnectionPtr> on_a;
  for (int i = 0; i < kMany; ++i) on_a.push_back(two.acquire(0));
  UpstreamConnectionPtr on_b = two.acquire(1);
  for (auto& c : on_a) two.release(0, std::move(c));
  two.release(1, std::move(on_b));  // the last slot
  REQUIRE(pool.idle->size() == kMany + 1);
  // Host 0's connections all leave: 70 empty slots before host 1's.
  std::vector<UpstreamConnectionPtr> taken;
  for (int i = 0; i < kMany; ++i) taken.push_back(two.acquire(0));
  CHECK(pool.idle->size() == 1);
  // Going idle now compacts first; every connection is still found once.
  for (auto& c : taken) two.release(0, std::move(c));
  CHECK(pool.idle->size() == kMany + 1);
  pool.idle->sweep(Clock::now() + 20000ms);
  CHECK(pool.idle->size() == 0);
  CHECK(pool.counter("upstream_cx_idle_timeout") == kMany + 1);
  CHECK(pool.gauge("upstream_cx_active") == 0);
}

TEST_CASE("the per-worker sweep closes idle connections on its own timer", "[pool][idle]") {
  Pool pool(limits(4));
  SilentServer server(pool.io);
  pool.config.upstream_idle_timeout = 20ms;
  pool.addHost(server.port());
  pool.build();
  Waiter w(pool.io);
  pool.cluster->release(*pool.host(0), pool.acquireNow(w), true);
  CHECK(pool.idle->period() == 20ms);
  REQUIRE(pool.eventually([&] { return pool.host(0)->idle.empty(); }));
  CHECK(pool.counter("upstream_cx_idle_timeout") == 1);
}

TEST_CASE("idle_timeout 0 keeps idle connections", "[pool][idle]") {
  Pool pool(limits(4));
  SilentServer server(pool.io);
  pool.config.upstream_idle_timeout = 0ms;
  pool.addHost(server.port());
  pool.build();
  Waiter w(pool.io);
  pool.cluster->release(*pool.host(0), pool.acquireNow(w), true);
  pool.idle->sweep(Clock::now() + 1000h);
  CHECK(pool.host(0)->idle.size() == 1);
}

TEST_CASE("a connection that carried max_requests_per_connection requests is not reused",
          "[pool]") {
  Pool pool(limits(4));
  SilentServer server(pool.io);
  pool.config.max_requests_per_connection = 2;
  pool.addHost(server.port());
  pool.build();
  Waiter w(pool.io);
  UpstreamConnectionPtr c = pool.acquireNow(w);
  c->requests = 1;
  pool.cluster->release(*pool.host(0), std::move(c), true);
  REQUIRE(pool.host(0)->idle.size() == 1);
  c = pool.cluster->takeIdle(*pool.host(0));
  c->requests = 2;
  pool.cluster->release(*pool.host(0), std::move(c), true);
  CHECK(pool.host(0)->idle.empty());
  CHECK(pool.counter("upstream_cx_max_requests") == 1);
  CHECK(pool.counter("upstream_cx_destroy") == 1);
}

}  // namespace turnout::proxy

namespace turnout::proxy {
namespace {

// A ClusterManager on one worker with one cluster "c" whose hosts are the
// given SilentServers; publish() swaps in a new host set as the DnsRefresher
// would.
struct Manager {
  Manager() : pool(limits(1024)) {}
  void start(std::vector<HostDescription> hosts) {
    auto dp = std::make_shared<DataPlaneConfig>();
    ClusterRuntime rt = pool.runtime;
    auto set = std::make_shared<HostSet>();
    set->hosts = std::move(hosts);
    rt.hosts = std::move(set);
    dp->clusters.insert_or_assign(rt.config->name, std::make_shared<ClusterRuntime>(std::move(rt)));
    config = dp;
    resources["c"] = std::make_shared<ClusterResources>();
    manager.update(config, resources, pool.store.shard(0));
  }
  void publish(std::vector<HostDescription> hosts) {
    auto set = std::make_shared<HostSet>();
    set->hosts = std::move(hosts);
    manager.updateHosts(*config->clusters.begin()->second, std::move(set), pool.store.shard(0));
  }
  std::shared_ptr<WorkerCluster> cluster() { return manager.get("c"); }
  // A connection to host `i` of the current cluster.
  UpstreamConnectionPtr connect(size_t i) {
    pool.cluster = cluster();
    Waiter w(pool.io);
    UpstreamConnectionPtr c = pool.acquireNow(w, i);
    pool.cluster.reset();
    return c;
  }

  Pool pool;
  DataPlaneConfigConstSharedPtr config;
  absl::flat_hash_map<std::string, std::shared_ptr<ClusterResources>> resources;
  ClusterManager manager;
};

HostDescription hostAt(const SilentServer& s, const char* ip = "127.0.0.1") {
  HostDescription h;
  h.ip = ip;
  h.port = s.port();
  h.address = std::string(ip) + ":" + std::to_string(s.port());
  return h;
}

}  // namespace

TEST_CASE("a new host set keeps surviving hosts' idle connections and closes removed ones'",
          "[pool][dns]") {
  Manager m;
  SilentServer a(m.pool.io), b(m.pool.io), c(m.pool.io);
  const HostDescription ha = hostAt(a), hb = hostAt(b);
  m.start({ha, hb});
  UpstreamConnectionPtr ca = m.connect(0);
  UpstreamConnectionPtr cb = m.connect(1);
  UpstreamConnection* raw_a = ca.get();
  std::shared_ptr<WorkerCluster> old = m.cluster();
  old->release(old->hosts()[0], std::move(ca), true);
  old->release(old->hosts()[1], std::move(cb), true);

  m.publish({ha, hostAt(c)});
  std::shared_ptr<WorkerCluster> now = m.cluster();
  REQUIRE(now != old);
  REQUIRE(now->hosts().size() == 2);
  REQUIRE(now->hosts()[0].idle.size() == 1);
  CHECK(now->hosts()[0].idle[0].get() == raw_a);
  CHECK(now->hosts()[0].cx_active == 1);
  CHECK(now->hosts()[1].idle.empty());
  old.reset();  // the last holder of the old host set: b's idle connection closes
  CHECK(m.resources["c"]->connections.count() == 1);
  CHECK(m.pool.counter("upstream_cx_destroy") == 1);
  CHECK(m.pool.gauge("upstream_cx_active") == 1);
}

TEST_CASE("a connection released to an old host set goes to the same host in the new one",
          "[pool][dns]") {
  Manager m;
  SilentServer a(m.pool.io), b(m.pool.io);
  const HostDescription ha = hostAt(a), hb = hostAt(b);
  m.start({ha, hb});
  UpstreamConnectionPtr busy_a = m.connect(0);
  UpstreamConnectionPtr busy_b = m.connect(1);
  std::shared_ptr<WorkerCluster> old = m.cluster();  // what the requests in flight hold
  m.publish({ha});
  std::shared_ptr<WorkerCluster> now = m.cluster();
  old->release(old->hosts()[0], std::move(busy_a), true);
  old->release(old->hosts()[1], std::move(busy_b), true);
  REQUIRE(now->hosts().size() == 1);
  CHECK(now->hosts()[0].idle.size() == 1);
  CHECK(now->hosts()[0].cx_active == 1);
  CHECK(old->hosts()[0].idle.empty());
  CHECK(old->hosts()[1].idle.empty());  // b is gone: its connection closed
  CHECK(m.resources["c"]->connections.count() == 1);
}

TEST_CASE("a successor with another TLS context takes no idle connection and no session cache",
          "[pool][tls]") {
  // A plaintext connection must not serve a cluster that now wants TLS (nor
  // one verified under an old trust config a cluster with a new one).
  OneHostPool p(limits(1024));
  Waiter w(p.pool.io);
  UpstreamConnectionPtr c = p.pool.acquireNow(w);
  p.pool.cluster->release(*p.pool.host(0), std::move(c), true);
  REQUIRE(p.pool.host(0)->idle.size() == 1);
  CHECK_FALSE(p.pool.cluster->tlsSessions());

  ClusterRuntime tls_runtime = p.pool.runtime;
  auto ctx = tls::ClientContext::create(
      envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext(), "tls", {});
  REQUIRE(ctx.ok());
  tls_runtime.tls = *ctx;
  auto next = std::make_shared<WorkerCluster>(tls_runtime, p.pool.runtime.hosts, p.pool.resources,
                                              p.pool.store.shard(0), 0, p.pool.idle);
  REQUIRE(next->tlsSessions());
  next->succeed(*p.pool.cluster, next);
  CHECK(next->hosts()[0].idle.empty());
  CHECK(p.pool.host(0)->idle.empty());  // closed with the old cluster
  CHECK(p.pool.counter("upstream_cx_destroy") == 1);
  CHECK(p.pool.resources->connections.count() == 0);

  // The same context (a DNS host-set change): the cache is shared.
  auto again = std::make_shared<WorkerCluster>(tls_runtime, p.pool.runtime.hosts, p.pool.resources,
                                               p.pool.store.shard(0), 0, p.pool.idle);
  again->succeed(*next, again);
  CHECK(again->tlsSessions() == next->tlsSessions());
}

TEST_CASE("a cluster keeps one entry per gRPC method, up to its cap, across successors",
          "[pool][grpc_stats]") {
  Pool p;
  p.addHost(1);
  p.build();
  Mailbox mb(p.io);
  auto a = p.cluster->grpcMethodStats("grpc", "pkg.S.A", p.store, mb);
  REQUIRE(a != nullptr);
  CHECK(a->prefix == "cluster.c.grpc.pkg.S.A.");
  CHECK(p.cluster->grpcMethodStats("grpc", "pkg.S.A", p.store, mb) == a);  // one per method
  auto web =
      p.cluster->grpcMethodStats("grpc-web", "pkg.S.A", p.store, mb);  // the grpc_web filter's
  REQUIRE(web != nullptr);
  CHECK(web != a);
  CHECK(web->prefix == "cluster.c.grpc-web.pkg.S.A.");
  for (size_t i = 2; i < WorkerCluster::kMaxGrpcMethods; ++i) {
    REQUIRE(p.cluster->grpcMethodStats("grpc", "pkg.S.M" + std::to_string(i), p.store, mb) !=
            nullptr);
  }
  // Past the cap a method counts in the cluster's grpc.*; known ones still resolve.
  CHECK(p.cluster->grpcMethodStats("grpc", "pkg.S.Z", p.store, mb) == nullptr);
  CHECK(p.cluster->grpcMethodStats("grpc", "pkg.S.A", p.store, mb) == a);
  // The registrations come back (no poster: the store ran them at once).
  CHECK(p.eventually([&] { return a->ready; }));

  // A successor with the same stats (a host-set change) keeps the entries.
  auto next = std::make_shared<WorkerCluster>(p.runtime, p.runtime.hosts, p.resources,
                                              p.store.shard(0), 0, p.idle);
  next->succeed(*p.cluster, next);
  CHECK(next->grpcMethodStats("grpc", "pkg.S.A", p.store, mb) == a);
  // One under another stat name (alt_stat_name changed) starts afresh.
  ClusterRuntime renamed = p.runtime;
  renamed.stats = stats::makeClusterStats(p.store, "c", "other");
  auto third = std::make_shared<WorkerCluster>(renamed, p.runtime.hosts, p.resources,
                                               p.store.shard(0), 0, p.idle);
  third->succeed(*next, third);
  auto fresh = third->grpcMethodStats("grpc", "pkg.S.A", p.store, mb);
  REQUIRE(fresh != nullptr);
  CHECK(fresh != a);
}

TEST_CASE("a LOGICAL_DNS host at a new address keeps its connections, new ones go to the "
          "new address",
          "[pool][dns]") {
  Manager m;
  SilentServer first(m.pool.io), second(m.pool.io);
  const HostDescription logical = hostAt(first);
  m.start({logical});
  UpstreamConnectionPtr c = m.connect(0);
  UpstreamConnection* raw = c.get();
  m.cluster()->release(m.cluster()->hosts()[0], std::move(c), true);

  HostDescription moved = logical;  // same host (shared state), new address
  moved.port = second.port();
  moved.address = "127.0.0.1:" + std::to_string(second.port());
  m.publish({moved});
  UpstreamConnectionPtr reused = m.connect(0);
  CHECK(reused.get() == raw);
  UpstreamConnectionPtr fresh = m.connect(0);
  CHECK(second.accepted() == 1);
  CHECK(first.accepted() == 1);
}

TEST_CASE("a host set for a cluster of an older config is ignored", "[pool][dns]") {
  Manager m;
  SilentServer a(m.pool.io);
  m.start({hostAt(a)});
  const ClusterRuntime stale = *m.config->clusters.begin()->second;  // another runtime object
  auto set = std::make_shared<HostSet>();
  m.manager.updateHosts(stale, set, m.pool.store.shard(0));
  CHECK(m.cluster()->hosts().size() == 1);
}

}  // namespace turnout::proxy

namespace turnout::proxy {
namespace {

// A MAGLEV cluster of hosts 127.0.0.1:<first>.. (nothing listens: only
// chooseHost() is used).
struct MaglevPool {
  MaglevPool(int first, int count, uint64_t table_size = 65537) {
    pool.config.lb_policy = config::ClusterConfig::LbPolicy::Maglev;
    pool.config.maglev_table_size = table_size;
    for (int p = first; p < first + count; ++p) pool.addHost(static_cast<uint16_t>(p));
    pool.build();
  }
  size_t pick(uint64_t hash, const HostState* avoid = nullptr) {
    LoadBalancerContext ctx;
    ctx.hash = hash;
    ctx.avoid = avoid;
    HostState* h = pool.cluster->chooseHost(ctx);
    REQUIRE(h != nullptr);
    return static_cast<size_t>(h - pool.host(0));
  }
  Pool pool;
};

}  // namespace

TEST_CASE("a MAGLEV cluster picks the host Envoy picks for the same hash", "[maglev]") {
  MaglevPool m(90, 6, 7);  // Envoy's MaglevLoadBalancerTest.Basic
  const std::vector<size_t> expected = {2, 4, 0, 1, 5, 0, 3};
  for (uint64_t i = 0; i < 3 * expected.size(); ++i) CHECK(m.pick(i) == expected[i % 7]);
}

TEST_CASE("a MAGLEV cluster sends the same key to the same host and spreads keys", "[maglev]") {
  MaglevPool m(20000, 5);
  std::vector<size_t> first, counts(5, 0);
  for (uint64_t k = 0; k < 5000; ++k) {
    first.push_back(m.pick(k * 0x9e3779b97f4a7c15ULL));
    ++counts[first.back()];
  }
  for (uint64_t k = 0; k < 5000; ++k) CHECK(m.pick(k * 0x9e3779b97f4a7c15ULL) == first[k]);
  for (size_t c : counts) CHECK(c > 800);  // about 1000 each
}

TEST_CASE("an ejected host's keys move to the others and no other key moves", "[maglev]") {
  MaglevPool m(20000, 5);
  std::vector<size_t> before;
  for (uint64_t k = 0; k < 5000; ++k) before.push_back(m.pick(k * 0x9e3779b97f4a7c15ULL));
  auto ejections = std::make_shared<OutlierEjections>();
  ejections->hosts.push_back(m.pool.host(2)->description->state.get());
  m.pool.cluster->updateEjections(ejections);
  std::vector<size_t> moved_to(5, 0);
  for (uint64_t k = 0; k < 5000; ++k) {
    const size_t now = m.pick(k * 0x9e3779b97f4a7c15ULL);
    if (before[k] == 2) {
      CHECK(now != 2);
      ++moved_to[now];
    } else {
      CHECK(now == before[k]);
    }
  }
  // The ejected host's keys spread over the others, not onto one of them.
  for (size_t i : {0, 1, 3, 4}) CHECK(moved_to[i] > 0);
}

TEST_CASE("a retry on a MAGLEV cluster avoids the previous host, the same way each time",
          "[maglev]") {
  MaglevPool m(90, 6, 7);
  const size_t first = m.pick(10);
  CHECK(first == 1);  // Envoy: slot 3
  const size_t retry = m.pick(10, m.pool.host(first));
  CHECK(retry == 0);  // Envoy: the second attempt's slot
  CHECK(m.pick(10, m.pool.host(first)) == retry);
}

}  // namespace turnout::proxy

namespace turnout::proxy {
namespace {

// Two workers' ClusterManagers over one config of clusters "a" and "b", each
// with one host behind a SilentServer, and the breakers the main thread
// would post with the config.
struct LazyManagers {
  LazyManagers() : a(io), b(io) {
    snapshot = std::make_shared<config::Snapshot>();
    for (auto [name, server] : {std::pair{"a", &a}, std::pair{"b", &b}}) {
      config::ClusterConfig c;
      c.name = name;
      config::LocalityEndpointsConfig l;
      config::EndpointConfig e;
      e.address.address = "127.0.0.1";
      e.address.port = server->port();
      l.endpoints.push_back(e);
      c.localities.push_back(l);
      c.circuit_breakers.push_back(config::CircuitBreakerThresholds{});
      snapshot->clusters.push_back(std::move(c));
    }
    auto dp = DataPlaneConfig::build(snapshot, store);
    REQUIRE(dp.ok());
    config = *dp;
    for (const auto& [name, rt] : config->clusters) {
      resources[name] = std::make_shared<ClusterResources>();
    }
  }
  asio::io_context io{1};
  stats::Store store{2};
  SilentServer a, b;
  std::shared_ptr<config::Snapshot> snapshot;
  DataPlaneConfigConstSharedPtr config;
  ClusterResourcesMap resources;
  ClusterManager worker0{0}, worker1{1};
};

}  // namespace

TEST_CASE("a worker makes a cluster's WorkerCluster on its first use, not at the update",
          "[pool][lazy]") {
  LazyManagers m;
  auto r = m.worker0.update(m.config, m.resources, m.store.shard(0));
  CHECK(r.deferred == 2);
  CHECK(r.created == 0);
  CHECK(m.worker0.size() == 2);
  CHECK(m.worker0.created() == 0);

  std::shared_ptr<WorkerCluster> a = m.worker0.get("a");
  REQUIRE(a);
  CHECK(m.worker0.created() == 1);
  CHECK(m.worker0.get("a") == a);  // made once
  CHECK(m.worker0.get("no-such-cluster") == nullptr);
  CHECK(m.worker0.created() == 1);
  CHECK(a->hosts().size() == 1);
  CHECK(a->hosts()[0].endpoint.port() == m.a.port());
}

TEST_CASE("WorkerClusters made late on two workers share the cluster's breakers",
          "[pool][lazy]") {
  LazyManagers m;
  m.worker0.update(m.config, m.resources, m.store.shard(0));
  m.worker1.update(m.config, m.resources, m.store.shard(1));
  std::shared_ptr<WorkerCluster> on0 = m.worker0.get("b");
  std::shared_ptr<WorkerCluster> on1 = m.worker1.get("b");
  REQUIRE(on0);
  REQUIRE(on1);
  CHECK(on0 != on1);
  CHECK(on0->sharedResources() == m.resources["b"]);
  CHECK(on1->sharedResources() == m.resources["b"]);
}

TEST_CASE("a cluster first used after a DNS host set and an ejection starts with both",
          "[pool][lazy][dns]") {
  LazyManagers m;
  m.worker0.update(m.config, m.resources, m.store.shard(0));
  const ClusterRuntime& rt = *m.config->clusters.at("a");
  // A new host set: the old host and b's server.
  HostDescription moved = rt.hosts->hosts[0];
  HostDescription extra;
  extra.ip = "127.0.0.1";
  extra.port = m.b.port();
  extra.address = "127.0.0.1:" + std::to_string(m.b.port());
  auto set = std::make_shared<HostSet>();
  set->hosts = {moved, extra};
  m.worker0.updateHosts(rt, set, m.store.shard(0));
  auto ejections = std::make_shared<OutlierEjections>();
  ejections->hosts = {moved.state.get()};
  m.worker0.updateEjections(rt, ejections);
  CHECK(m.worker0.created() == 0);
  // A later generation that changes only "b" keeps what "a" was posted.
  auto next = std::make_shared<DataPlaneConfig>(*m.config);
  auto b_again = DataPlaneConfig::buildCluster(m.snapshot, *m.snapshot->findCluster("b"), m.store);
  REQUIRE(b_again.ok());
  next->clusters.insert_or_assign("b", *b_again);
  auto r = m.worker0.update(next, m.resources, m.store.shard(0));
  CHECK(r.reused == 1);
  CHECK(r.deferred == 1);
  m.config = next;

  std::shared_ptr<WorkerCluster> a = m.worker0.get("a");
  REQUIRE(a);
  REQUIRE(a->hosts().size() == 2);
  CHECK(a->hosts()[1].endpoint.port() == m.b.port());
  CHECK(a->ejected(a->hosts()[0]));
  CHECK_FALSE(a->ejected(a->hosts()[1]));
  // An ejected host is not chosen while another is healthy.
  CHECK(a->chooseHost(LoadBalancerContext{}) == &a->hosts()[1]);

  // A host set for a runtime that is not current is still ignored.
  const ClusterRuntime stale = *m.config->clusters.at("b");
  m.worker0.updateHosts(stale, std::make_shared<HostSet>(), m.store.shard(0));
  REQUIRE(m.worker0.get("b"));
  CHECK(m.worker0.get("b")->hosts().size() == 1);
}

TEST_CASE("a cluster added at run time and then used gets its stats", "[pool][lazy]") {
  LazyManagers m;
  m.worker0.update(m.config, m.resources, m.store.shard(0));
  // Cluster "late" arrives with the next generation (as from CDS).
  auto s = std::make_shared<config::Snapshot>();
  config::ClusterConfig c;
  c.name = "late";
  config::LocalityEndpointsConfig l;
  config::EndpointConfig e;
  e.address.address = "127.0.0.1";
  e.address.port = m.a.port();
  l.endpoints.push_back(e);
  c.localities.push_back(l);
  c.circuit_breakers.push_back(config::CircuitBreakerThresholds{});
  s->clusters.push_back(std::move(c));
  auto late = DataPlaneConfig::buildCluster(s, s->clusters[0], m.store);
  REQUIRE(late.ok());
  auto next = std::make_shared<DataPlaneConfig>(*m.config);
  next->clusters.insert_or_assign("late", *late);
  ClusterResourcesMap fresh;
  fresh["late"] = std::make_shared<ClusterResources>();
  auto r = m.worker0.update(next, fresh, m.store.shard(0));
  CHECK(r.deferred == 1);
  CHECK(r.reused == 2);
  CHECK(m.worker0.created() == 0);

  std::shared_ptr<WorkerCluster> wc = m.worker0.get("late");
  REQUIRE(wc);
  CHECK(wc->sharedResources() == fresh["late"]);
  Waiter w(m.io);
  asio::co_spawn(m.io, runAcquire(wc, &wc->hosts()[0], &w, Clock::now() + 5s), rethrow);
  REQUIRE(test::eventually(m.io, [&] { return w.result.has_value(); }, 5000ms));
  REQUIRE(w.result->status == Status::Ready);
  CHECK(m.store.counterValue("cluster.late.upstream_cx_total") == 1);
  CHECK(m.store.gaugeValue("cluster.late.upstream_cx_active") == 1);
  CHECK(fresh["late"]->connections.count() == 1);
  wc->release(wc->hosts()[0], std::move(w.result->conn), false);
  CHECK(m.store.gaugeValue("cluster.late.upstream_cx_active") == 0);
}

TEST_CASE("a changed cluster in use is replaced at the update, one never used stays deferred",
          "[pool][lazy]") {
  LazyManagers m;
  m.worker0.update(m.config, m.resources, m.store.shard(0));
  std::shared_ptr<WorkerCluster> a = m.worker0.get("a");
  REQUIRE(a);
  // Both clusters rebuilt (a new runtime object each), "b" removed next.
  auto next = std::make_shared<DataPlaneConfig>(*m.config);
  ClusterResourcesMap fresh;
  for (const char* name : {"a", "b"}) {
    auto rt = DataPlaneConfig::buildCluster(m.snapshot, *m.snapshot->findCluster(name), m.store);
    REQUIRE(rt.ok());
    next->clusters.insert_or_assign(name, *rt);
    fresh[name] = std::make_shared<ClusterResources>();
  }
  auto r = m.worker0.update(next, fresh, m.store.shard(0));
  CHECK(r.created == 1);   // "a": in use, its successor made now
  CHECK(r.deferred == 1);  // "b": never used here
  CHECK(m.worker0.created() == 1);
  CHECK(m.worker0.get("a") != a);
  CHECK(&m.worker0.get("a")->runtime() == next->clusters.at("a").get());
  CHECK(m.worker0.get("a")->sharedResources() == fresh["a"]);

  auto without_b = std::make_shared<DataPlaneConfig>(*next);
  without_b->clusters.erase("b");
  r = m.worker0.update(without_b, {}, m.store.shard(0));
  CHECK(r.removed == 1);
  CHECK(r.reused == 1);
  CHECK(m.worker0.get("b") == nullptr);
}

}  // namespace turnout::proxy
