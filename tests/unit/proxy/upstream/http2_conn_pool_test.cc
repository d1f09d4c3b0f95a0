#include "proxy/upstream/http2_conn_pool.h"

#include <nghttp2/nghttp2.h>

#include <array>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "config/snapshot/snapshot.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"
#include "tests/support/eventually.h"
#include "tests/unit/proxy/codec/http2_test_peer.h"

namespace turnout::proxy {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using http2::test::Fields;
using http2::test::TestPeer;

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

// An h2c server on 127.0.0.1:0: one in-process nghttp2 server session
// (TestPeer) per accepted connection, over a real socket. Each request that
// ends goes to `on_request`, which answers by default with 200 and
// "ok <path>"; a test that wants to answer later returns without responding
// and calls flush() after acting on the peer.
class H2Server {
 public:
  struct Conn {
    explicit Conn(TcpSocket s) : sock(std::move(s)) {}
    TcpSocket sock;
    std::unique_ptr<TestPeer> peer;
    std::set<int32_t> seen;  // requests passed to on_request
    std::string out;
    bool writing = false;
    bool reading = false;
    bool closed = false;
    std::array<char, 65536> buf{};
  };

  H2Server(asio::io_context& io, std::vector<nghttp2_settings_entry> settings = {})
      : io_(io),
        acceptor_(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        settings_(std::move(settings)) {
    on_request = [this](Conn& c, int32_t id) {
      c.peer->respond(id, "200", {{"content-type", "text/plain"}},
                      "ok " + c.peer->requests[id].get(":path"));
      (void)this;
    };
    accept();
  }
  ~H2Server() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    for (auto& c : conns) c->sock.close(ec);
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  // Writes what the connection's session has to send.
  void flush(Conn& c) {
    if (c.closed) return;
    c.out += c.peer->send();
    if (c.writing || c.out.empty()) return;
    c.writing = true;
    auto data = std::make_shared<std::string>(std::move(c.out));
    c.out.clear();
    asio::async_write(c.sock, asio::buffer(*data),
                      [this, &c, data](const boost::system::error_code& ec, size_t) {
                        c.writing = false;
                        if (ec) return;
                        flush(c);
                      });
  }
  void flushAll() {
    for (auto& c : conns) flush(*c);
  }
  // Closes every accepted connection (RST-free FIN both ways).
  void hangUp() {
    for (auto& c : conns) {
      boost::system::error_code ec;
      c->closed = true;
      c->sock.shutdown(TcpSocket::shutdown_both, ec);
      c->sock.close(ec);
    }
  }
  // Reading stops (the client's writes then back up in the kernel) or resumes.
  void pauseReading(bool paused) {
    paused_ = paused;
    if (!paused) {
      for (auto& c : conns) {
        if (!c->closed && !c->reading) read(*c);
      }
    }
  }

  std::function<void(Conn&, int32_t)> on_request;
  std::vector<std::unique_ptr<Conn>> conns;

 private:
  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, TcpSocket s) {
      if (ec) return;
      auto c = std::make_unique<Conn>(std::move(s));
      c->peer = std::make_unique<TestPeer>(settings_);
      Conn& ref = *c;
      conns.push_back(std::move(c));
      flush(ref);  // our SETTINGS
      read(ref);
      accept();
    });
  }
  void read(Conn& c) {
    c.reading = true;
    c.sock.async_read_some(asio::buffer(c.buf), [this, &c](const boost::system::error_code& ec,
                                                           size_t n) {
      c.reading = false;
      if (ec) {
        c.closed = true;
        return;
      }
      c.peer->receive(std::string_view(c.buf.data(), n));
      for (auto& [id, r] : c.peer->requests) {
        if (r.ended && !r.reset && c.seen.insert(id).second) on_request(c, id);
      }
      flush(c);
      if (!paused_) read(c);
    });
  }

  asio::io_context& io_;
  TcpAcceptor acceptor_;
  std::vector<nghttp2_settings_entry> settings_;
  bool paused_ = false;
};

// One exchange driven the way UpstreamRequest drives a stream.
struct Exchange : ResponseDecoderCallbacks {
  std::string path = "/";
  std::string method = "GET";
  HeaderMap extra_headers;
  std::string body;
  HeaderMap trailers_out;
  bool with_trailers = false;

  std::optional<ConnPool::NewStreamResult::Status> status;
  UpstreamStreamPtr stream;
  uint32_t code = 0;
  std::string received;
  HeaderMap trailers;
  bool complete = false;
  bool reset = false;
  StreamResetReason reason = StreamResetReason::kLocalReset;
  bool reused = false;
  bool done = false;
  // false: the exchange stops reading after its first receive() and waits
  // until `resume` is set (a slow client).
  bool read_all = true;
  bool resume = false;
  SteadyTimer* gate = nullptr;         // cancelled with `resume` set
  UpstreamStream* raw = nullptr;       // the stream, while the exchange runs
  bool keep = false;  // hold the stream after completion (not finished)
  // trySend() first, as the UpstreamRequest does; what it answered.
  bool try_send = false;
  std::optional<bool> try_sent;

  // Runs as the response head is handed over (inside receive()).
  std::function<void()> on_headers;

  void onMessageBegin() override {}
  void onHeaders(ResponseHead& head, bool end) override {
    code = head.status;
    if (end) complete = true;
    if (on_headers) on_headers();
  }
  void onData(std::span<const char> d, bool end) override {
    received.append(d.data(), d.size());
    if (end) complete = true;
  }
  void onTrailers(HeaderMap& t) override {
    trailers = t;
    complete = true;
  }
  void onMessageComplete() override { complete = true; }
  void onInformational(ResponseHead&) override {}
};

Awaitable<void> runExchange(ConnPool* pool, Exchange* x, asio::io_context* io) {
  UpstreamStreamPtr s = pool->tryNewStream();
  if (!s) {
    PendingRequest pending(io->get_executor());
    ConnPool::NewStreamResult r = co_await pool->newStream(&pending, Clock::now() + 5s);
    x->status = r.status;
    if (r.status != ConnPool::NewStreamResult::Status::Ready) {
      x->done = true;
      co_return;
    }
    s = std::move(r.stream);
  } else {
    x->status = ConnPool::NewStreamResult::Status::Ready;
  }
  x->reused = s->reused();
  x->raw = s.get();
  s->setResponseCallbacks(x);
  RequestHead head;
  head.method = x->method;
  head.path = x->path;
  head.authority = "upstream.test";
  head.headers = x->extra_headers;
  const bool has_body = !x->body.empty() || x->with_trailers;
  s->encodeHeaders(head, !has_body);
  if (!x->body.empty()) s->encodeData(x->body, !x->with_trailers);
  if (x->with_trailers) s->encodeTrailers(x->trailers_out);
  if (x->try_send) x->try_sent = s->trySend();
  if (!x->try_sent) {
    const bool sent = co_await s->send();
    (void)sent;
  }
  bool first = true;
  while (!x->complete) {
    if (!first && !x->read_all) {
      while (!x->resume) {
        boost::system::error_code ec;
        co_await x->gate->async_wait(asio::redirect_error(use_awaitable, ec));
      }
      x->read_all = true;
    }
    first = false;
    const UpstreamStream::ReceiveResult rr = co_await s->receive();
    if (rr.reset) {
      x->reset = true;
      x->reason = rr.reason;
      break;
    }
  }
  x->stream = std::move(s);
  x->raw = nullptr;
  if (!x->keep) x->stream.finish(x->complete && !x->reset);
  x->done = true;
}

// A cluster "c" with one HTTP/2 host on one worker.
struct Fixture {
  explicit Fixture(std::vector<nghttp2_settings_entry> settings = {},
                   std::function<void(config::ClusterConfig&)> tweak = {})
      : store(1), server(io, std::move(settings)) {
    config.name = "c";
    config.connect_timeout = 1000ms;
    config.upstream_protocol = config::ClusterConfig::UpstreamProtocol::Http2;
    config.circuit_breakers.push_back({});
    if (tweak) tweak(config);
    runtime.config = &config;
    runtime.stats = stats::makeClusterStats(store, "c", "");
    useHostPort(server.port());
  }
  ~Fixture() {
    cluster.reset();
    io.restart();
    io.poll();
  }

  // Points the cluster's one host at `port` (a new WorkerCluster).
  void useHostPort(uint16_t port) {
    HostDescription h;
    h.ip = "127.0.0.1";
    h.port = port;
    h.address = "127.0.0.1:" + std::to_string(port);
    runtime.hosts = makeHostSet(config, {h});
    cluster = std::make_shared<WorkerCluster>(runtime, runtime.hosts,
                                              std::make_shared<ClusterResources>(),
                                              store.shard(0), 0, nullptr);
  }
  Http2ConnPool& pool() {
    return dynamic_cast<Http2ConnPool&>(cluster->connPool(cluster->hosts()[0]));
  }
  void start(Exchange& x) {
    asio::co_spawn(io, runExchange(&pool(), &x, &io), rethrow);
  }
  template <typename Pred>
  bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
    return test::eventually(io, pred, limit);
  }
  bool run(Exchange& x) {
    start(x);
    return eventually([&] { return x.done; });
  }
  uint64_t counter(const std::string& name) const {
    return store.counterValue("cluster.c." + name);
  }
  int64_t gauge(const std::string& name) const { return store.gaugeValue("cluster.c." + name); }

  asio::io_context io{1};
  stats::Store store;
  H2Server server;
  config::ClusterConfig config;
  ClusterRuntime runtime;
  std::shared_ptr<WorkerCluster> cluster;
};

// Answers every request except those whose path starts with /hold.
void holdSome(H2Server& server) {
  server.on_request = [](H2Server::Conn& c, int32_t id) {
    const std::string path = c.peer->requests[id].get(":path");
    if (path.rfind("/hold", 0) == 0) return;
    c.peer->respond(id, "200", {}, "ok " + path);
  };
}

TEST_CASE("an HTTP/2 cluster gets the HTTP/2 pool", "[pool][http2]") {
  Fixture f;
  REQUIRE(dynamic_cast<Http2ConnPool*>(&f.cluster->connPool(f.cluster->hosts()[0])) != nullptr);
}

TEST_CASE("many concurrent streams share one upstream connection", "[pool][http2]") {
  Fixture f;
  std::vector<std::unique_ptr<Exchange>> xs;
  for (int i = 0; i < 50; ++i) {
    xs.push_back(std::make_unique<Exchange>());
    xs.back()->path = "/r" + std::to_string(i);
    f.start(*xs.back());
  }
  REQUIRE(f.eventually([&] {
    for (auto& x : xs) {
      if (!x->done) return false;
    }
    return true;
  }));
  for (int i = 0; i < 50; ++i) {
    INFO(i);
    CHECK(xs[i]->code == 200);
    CHECK(xs[i]->received == "ok /r" + std::to_string(i));
  }
  CHECK(f.counter("upstream_cx_total") == 1);
  CHECK(f.counter("upstream_cx_http2_total") == 1);
  CHECK(f.gauge("upstream_cx_active") == 1);
  REQUIRE(f.server.conns.size() == 1);
  CHECK(f.server.conns[0]->peer->requests.size() == 50);
  CHECK(f.server.conns[0]->peer->maxOpenStreams() > 1);
  // The connection stays for the next request, which says it was reused.
  Exchange again;
  REQUIRE(f.run(again));
  CHECK(again.code == 200);
  CHECK(again.reused);
  CHECK(f.counter("upstream_cx_total") == 1);
}

TEST_CASE(
    "a lone stream's frames leave without a writer coroutine, concurrent ones are batched by one",
    "[pool][http2]") {
  Fixture f;
  auto* pool = dynamic_cast<Http2ConnPool*>(&f.cluster->connPool(f.cluster->hosts()[0]));
  REQUIRE(pool != nullptr);
  // One request at a time: HEADERS, the peer's SETTINGS ACK and the window
  // updates all go out from the caller.
  for (int i = 0; i < 5; ++i) {
    Exchange x;
    x.method = "POST";
    x.body = "small body " + std::to_string(i);
    REQUIRE(f.run(x));
    CHECK(x.code == 200);
    CHECK(f.server.conns[0]->peer->requests.at(2 * i + 1).body == x.body);
  }
  REQUIRE(pool->connections().size() == 1);
  CHECK(pool->connections()[0]->writerRuns() == 0);
  // Twenty at once: one writer run takes several streams' frames.
  std::vector<std::unique_ptr<Exchange>> xs;
  for (int i = 0; i < 20; ++i) {
    xs.push_back(std::make_unique<Exchange>());
    f.start(*xs.back());
  }
  REQUIRE(f.eventually([&] {
    for (auto& x : xs) {
      if (!x->done) return false;
    }
    return true;
  }));
  for (auto& x : xs) CHECK(x->code == 200);
  const uint64_t runs = pool->connections()[0]->writerRuns();
  CHECK(runs > 0);
  CHECK(runs < 20);
}

TEST_CASE("answers read together resume their streams after the read, and one may reset another",
          "[pool][http2]") {
  Fixture f;
  holdSome(f.server);
  Exchange warm;  // the connection and the peer's SETTINGS
  REQUIRE(f.run(warm));
  REQUIRE(warm.code == 200);
  Exchange a, b, c;
  a.path = "/hold-a";
  b.path = "/hold-b";
  c.path = "/hold-c";
  // The first answer's turn resets the second stream, already woken in the
  // same read: it ends (with what had arrived before the reset, or reset),
  // and the third still gets its answer.
  a.on_headers = [&] { b.raw->resetStream(StreamResetReason::kLocalReset); };
  f.start(a);
  f.start(b);
  f.start(c);
  REQUIRE(f.eventually([&] { return f.server.conns[0]->peer->requests.size() == 4; }));
  auto& conn = *f.server.conns[0];
  for (int32_t id : {3, 5, 7}) {
    conn.peer->respond(id, "200", {}, "held " + conn.peer->requests[id].get(":path"));
  }
  f.server.flush(conn);  // one write: one read and one dispatch() on our side
  REQUIRE(f.eventually([&] { return a.done && b.done && c.done; }));
  CHECK(a.code == 200);
  CHECK(a.received == "held /hold-a");
  CHECK((b.reset || b.complete));
  CHECK(c.code == 200);
  CHECK(c.received == "held /hold-c");
  // Woken where the read was, not through the scheduler.
  REQUIRE(f.pool().connections().size() == 1);
  CHECK(f.pool().connections()[0]->inlineWakes() >= 3);
  // The connection is still good.
  Exchange again;
  REQUIRE(f.run(again));
  CHECK(again.code == 200);
  CHECK(again.reused);
}

TEST_CASE("the peer's SETTINGS_MAX_CONCURRENT_STREAMS of 1 makes a second stream open a second connection",
          "[pool][http2]") {
  Fixture f({{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1}});
  holdSome(f.server);
  Exchange warm;  // the peer's SETTINGS arrive with its first answer
  REQUIRE(f.run(warm));
  REQUIRE(warm.code == 200);
  REQUIRE(f.pool().connections().size() == 1);
  CHECK(f.pool().connections()[0]->capacity() == 1);

  Exchange held;
  held.path = "/hold";
  f.start(held);
  REQUIRE(f.eventually([&] { return f.server.conns[0]->peer->requests.size() == 2; }));
  Exchange second;
  REQUIRE(f.run(second));
  CHECK(second.code == 200);
  CHECK_FALSE(second.reused);
  CHECK(f.counter("upstream_cx_total") == 2);
  CHECK(f.counter("upstream_cx_http2_total") == 2);
  CHECK(f.server.conns.size() == 2);

  // The held stream still completes on the first connection.
  auto& c0 = *f.server.conns[0];
  c0.peer->respond(3, "200", {}, "late");
  f.server.flush(c0);
  REQUIRE(f.eventually([&] { return held.done; }));
  CHECK(held.received == "late");
}

TEST_CASE("the cluster's Http2ProtocolOptions are advertised and max_concurrent_streams caps a connection",
          "[pool][http2]") {
  Fixture f({}, [](config::ClusterConfig& c) {
    c.http2.max_concurrent_streams = 2;
    c.http2.initial_stream_window_size = 100000;
    c.http2.initial_connection_window_size = 300000;
    c.http2.hpack_table_size = 1234;
  });
  holdSome(f.server);
  std::vector<std::unique_ptr<Exchange>> xs;
  for (int i = 0; i < 3; ++i) {
    xs.push_back(std::make_unique<Exchange>());
    xs.back()->path = "/hold" + std::to_string(i);
    f.start(*xs.back());
  }
  REQUIRE(f.eventually([&] {
    size_t n = 0;
    for (auto& c : f.server.conns) n += c->peer->requests.size();
    return n == 3;
  }));
  // Two streams fit on the first connection; the third needed another.
  CHECK(f.counter("upstream_cx_total") == 2);
  REQUIRE(f.server.conns.size() == 2);
  nghttp2_session* s = f.server.conns[0]->peer->session;
  CHECK(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) == 2);
  CHECK(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE) == 100000);
  CHECK(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_HEADER_TABLE_SIZE) == 1234);
  CHECK(nghttp2_session_get_remote_window_size(s) == 300000);
  for (auto& c : f.server.conns) {
    for (auto& [id, r] : c->peer->requests) c->peer->respond(id, "200", {}, "x");
    f.server.flush(*c);
  }
  REQUIRE(f.eventually([&] { return xs[0]->done && xs[1]->done && xs[2]->done; }));
}

TEST_CASE("GOAWAY drains a connection: its streams finish and new ones open another connection",
          "[pool][http2]") {
  Fixture f;
  holdSome(f.server);
  Exchange held;
  held.path = "/hold";
  f.start(held);
  REQUIRE(f.eventually([&] {
    return !f.server.conns.empty() && f.server.conns[0]->peer->requests.size() == 1;
  }));
  auto& c0 = *f.server.conns[0];
  c0.peer->goAway(1, http2::kNoError);
  f.server.flush(c0);
  REQUIRE(f.eventually([&] {
    return f.pool().connections()[0]->state() == Http2PoolConnection::State::Draining;
  }));
  Exchange next;
  REQUIRE(f.run(next));
  CHECK(next.code == 200);
  CHECK(f.counter("upstream_cx_total") == 2);
  REQUIRE(f.server.conns.size() == 2);
  CHECK(f.server.conns[1]->peer->requests.size() == 1);
  // The in-flight stream completes on the draining connection, which then closes.
  c0.peer->respond(1, "200", {}, "finished");
  f.server.flush(c0);
  REQUIRE(f.eventually([&] { return held.done; }));
  CHECK(held.received == "finished");
  CHECK_FALSE(held.reset);
  REQUIRE(f.eventually([&] { return f.gauge("upstream_cx_active") == 1; }));
  CHECK(f.pool().connections().size() == 1);
}

TEST_CASE("streams above a GOAWAY's last stream id and REFUSED_STREAM resets come back as refused",
          "[pool][http2]") {
  Fixture f;
  holdSome(f.server);
  Exchange a, b;
  a.path = "/hold-a";
  b.path = "/hold-b";
  f.start(a);
  f.start(b);
  REQUIRE(f.eventually([&] {
    return !f.server.conns.empty() && f.server.conns[0]->peer->requests.size() == 2;
  }));
  auto& c0 = *f.server.conns[0];
  c0.peer->reset(1, NGHTTP2_REFUSED_STREAM);
  c0.peer->goAway(1, http2::kNoError);  // stream 3 was never processed
  f.server.flush(c0);
  REQUIRE(f.eventually([&] { return a.done && b.done; }));
  CHECK(a.reset);
  CHECK(a.reason == StreamResetReason::kRemoteRefusedStreamReset);
  CHECK(b.reset);
  CHECK(b.reason == StreamResetReason::kRemoteRefusedStreamReset);
  CHECK(isRefusedStream(a.reason));
  // Nothing is left on the drained connection: it closes.
  REQUIRE(f.eventually([&] { return f.gauge("upstream_cx_active") == 0; }));
  // A retry goes out on a new connection.
  Exchange retry;
  REQUIRE(f.run(retry));
  CHECK(retry.code == 200);
  CHECK(f.counter("upstream_cx_total") == 2);
}

TEST_CASE("max_requests_per_connection drains a connection after that many streams",
          "[pool][http2]") {
  Fixture f({}, [](config::ClusterConfig& c) { c.max_requests_per_connection = 2; });
  for (int i = 0; i < 3; ++i) {
    Exchange x;
    REQUIRE(f.run(x));
    CHECK(x.code == 200);
  }
  CHECK(f.counter("upstream_cx_total") == 2);
  CHECK(f.counter("upstream_cx_max_requests") == 1);
  REQUIRE(f.server.conns.size() == 2);
  CHECK(f.server.conns[0]->peer->requests.size() == 2);
  CHECK(f.server.conns[1]->peer->requests.size() == 1);
  REQUIRE(f.eventually([&] { return f.gauge("upstream_cx_active") == 1; }));
}

TEST_CASE("an idle HTTP/2 connection closes after the cluster's idle_timeout", "[pool][http2]") {
  Fixture f({}, [](config::ClusterConfig& c) { c.upstream_idle_timeout = 50ms; });
  Exchange x;
  REQUIRE(f.run(x));
  CHECK(x.code == 200);
  REQUIRE(f.eventually([&] { return f.gauge("upstream_cx_active") == 0; }));
  CHECK(f.counter("upstream_cx_idle_timeout") == 1);
  CHECK(f.eventually([&] { return f.server.conns[0]->closed; }));
}

TEST_CASE("a connect failure fails the pending request", "[pool][http2]") {
  Fixture f;
  uint16_t closed_port = 0;
  {
    TcpAcceptor a(f.io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    closed_port = a.local_endpoint().port();
  }
  f.useHostPort(closed_port);
  Exchange x;
  REQUIRE(f.run(x));
  REQUIRE(x.status.has_value());
  CHECK(*x.status == ConnPool::NewStreamResult::Status::ConnectFailure);
  CHECK(f.counter("upstream_cx_connect_fail") == 1);
  CHECK(f.counter("upstream_rq_pending_failure_eject") == 1);
  CHECK(f.gauge("upstream_cx_active") == 0);
  CHECK(f.gauge("upstream_rq_pending_active") == 0);
  CHECK(f.pool().connections().empty());
}

TEST_CASE("a slow reader holds the upstream to the stream window", "[pool][http2]") {
  Fixture f({}, [](config::ClusterConfig& c) {
    c.http2.initial_stream_window_size = 65535;
    c.http2.initial_connection_window_size = 65535;
  });
  const std::string big(1 << 20, 'b');
  f.server.on_request = [&](H2Server::Conn& c, int32_t id) { c.peer->respond(id, "200", {}, big); };
  Exchange x;
  SteadyTimer gate(f.io, Clock::time_point::max());
  x.gate = &gate;
  x.read_all = false;  // one receive(), then stall
  f.start(x);
  // What the client holds of the response: handed over, or queued on the stream.
  auto buffered = [&] {
    auto* s = dynamic_cast<Http2PoolStream*>(x.raw);
    return x.received.size() + (s != nullptr ? s->queuedResponseBytes() : 0);
  };
  REQUIRE(f.eventually([&] { return f.server.conns.size() == 1 && x.code == 200; }));
  // Whatever the upstream could send arrives; then its window is shut.
  nghttp2_session* s = f.server.conns[0]->peer->session;
  REQUIRE(f.eventually([&] {
    return nghttp2_session_get_stream_remote_window_size(s, 1) == 0 ||
           nghttp2_session_get_remote_window_size(s) == 0;
  }));
  for (int i = 0; i < 20; ++i) {
    f.io.restart();
    f.io.run_for(5ms);
  }
  // Nothing beyond the window was sent: the client holds at most 65535
  // bytes it has not acknowledged.
  CHECK(nghttp2_session_get_stream_remote_window_size(s, 1) == 0);
  CHECK(buffered() == 65535);
  x.resume = true;
  gate.cancel();
  REQUIRE(f.eventually([&] { return x.done; }));
  CHECK(x.received == big);
}

TEST_CASE("request body and trailers go out as DATA and trailing HEADERS, te: trailers is kept",
          "[pool][http2]") {
  Fixture f;
  Exchange x;
  x.method = "POST";
  x.path = "/upload";
  x.body = std::string(200000, 'u');
  x.with_trailers = true;
  x.trailers_out.add("x-checksum", "abc");
  x.extra_headers.add("te", "trailers");
  x.extra_headers.add("connection", "keep-alive");
  x.extra_headers.add("x-app", "1");
  REQUIRE(f.run(x));
  CHECK(x.code == 200);
  const auto& r = f.server.conns[0]->peer->requests[1];
  CHECK(r.body == x.body);
  CHECK(r.get("te") == "trailers");
  CHECK(r.get("connection") == "<none>");
  CHECK(r.get("x-app") == "1");
  CHECK(r.get(":authority") == "upstream.test");
  REQUIRE(r.trailers.size() == 1);
  CHECK(r.trailers[0].first == "x-checksum");
  CHECK(r.trailers[0].second == "abc");

  Exchange y;
  y.extra_headers.add("te", "gzip");
  REQUIRE(f.run(y));
  CHECK(f.server.conns[0]->peer->requests[3].get("te") == "<none>");
}

TEST_CASE(
    "trySend is done at once for a request whose bytes the codec framed, not for a body it holds",
    "[pool][http2]") {
  Fixture f;
  Exchange get;
  get.try_send = true;
  REQUIRE(f.run(get));
  CHECK(get.code == 200);
  REQUIRE(get.try_sent.has_value());  // HEADERS only: nothing of the stream's buffered
  CHECK(*get.try_sent);

  Exchange post;
  post.try_send = true;
  post.method = "POST";
  post.body = std::string(300000, 'p');  // beyond the initial windows: send() must wait
  REQUIRE(f.run(post));
  CHECK(post.code == 200);
  CHECK_FALSE(post.try_sent.has_value());
  const auto& requests = f.server.conns[0]->peer->requests;
  REQUIRE(requests.count(3) == 1);
  CHECK(requests.at(3).body == post.body);
}

TEST_CASE("resetting a stream cancels it upstream and keeps the connection", "[pool][http2]") {
  Fixture f;
  holdSome(f.server);
  Exchange held;
  held.path = "/hold";
  f.start(held);
  REQUIRE(f.eventually([&] {
    return !f.server.conns.empty() && f.server.conns[0]->peer->requests.size() == 1 &&
           held.raw != nullptr;
  }));
  // The caller gives up (its watchdog): receive() returns the reset.
  held.raw->resetStream(StreamResetReason::kLocalReset);
  REQUIRE(f.eventually([&] { return held.done; }));
  CHECK(held.reset);
  CHECK(held.reason == StreamResetReason::kLocalReset);
  auto& c0 = *f.server.conns[0];
  REQUIRE(f.eventually([&] { return c0.peer->requests[1].reset; }));
  CHECK(c0.peer->requests[1].reset_code == NGHTTP2_CANCEL);
  Exchange next;
  REQUIRE(f.run(next));
  CHECK(next.code == 200);
  CHECK(next.reused);
  CHECK(f.counter("upstream_cx_total") == 1);
  CHECK(f.gauge("upstream_cx_active") == 1);
}

TEST_CASE("at max_connections a stream waits for room on the open connection instead of connecting",
          "[pool][http2]") {
  Fixture f({{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1}},
            [](config::ClusterConfig& c) { c.circuit_breakers[0].max_connections = 1; });
  holdSome(f.server);
  Exchange warm;
  REQUIRE(f.run(warm));
  Exchange held;
  held.path = "/hold";
  f.start(held);
  REQUIRE(f.eventually([&] { return f.server.conns[0]->peer->requests.size() == 2; }));
  Exchange waiting;
  f.start(waiting);
  REQUIRE(f.eventually([&] { return f.gauge("upstream_rq_pending_active") == 1; }));
  CHECK(f.counter("upstream_cx_overflow") >= 1);
  CHECK(f.counter("upstream_cx_total") == 1);
  CHECK_FALSE(waiting.done);
  // The held stream ends: its slot goes to the waiting request.
  auto& c0 = *f.server.conns[0];
  c0.peer->respond(3, "200", {}, "held");
  f.server.flush(c0);
  REQUIRE(f.eventually([&] { return held.done && waiting.done; }));
  CHECK(waiting.code == 200);
  CHECK(waiting.reused);
  CHECK(f.counter("upstream_cx_total") == 1);
  CHECK(f.gauge("upstream_rq_pending_active") == 0);
}

TEST_CASE("max_pending_requests 0 overflows a request that would have to wait", "[pool][http2]") {
  Fixture f({}, [](config::ClusterConfig& c) { c.circuit_breakers[0].max_pending_requests = 0; });
  Exchange x;
  REQUIRE(f.run(x));
  REQUIRE(x.status.has_value());
  CHECK(*x.status == ConnPool::NewStreamResult::Status::Overflow);
  CHECK(f.counter("upstream_rq_pending_overflow") == 1);
  CHECK(f.counter("upstream_cx_total") == 0);
}

TEST_CASE("a CONNECT is a stream like any other on an HTTP/2 upstream", "[pool][http2]") {
  // RFC 9113 §8.5: :method and :authority only; its payload would be the
  // stream's DATA (docs/connect.md "Tunnels over an HTTP/2 upstream").
  Fixture f;
  Exchange warm;
  REQUIRE(f.run(warm));
  Exchange x;
  x.method = "CONNECT";
  REQUIRE(f.run(x));
  CHECK_FALSE(x.reset);
  CHECK(x.code == 200);
  const auto& r = f.server.conns[0]->peer->requests[3];
  CHECK(r.get(":method") == "CONNECT");
  CHECK(r.get(":authority") == "upstream.test");
  CHECK(r.get(":path") == "<none>");
  CHECK(r.get(":scheme") == "<none>");
  // The connection goes on.
  Exchange after;
  REQUIRE(f.run(after));
  CHECK(after.code == 200);
  CHECK(f.counter("upstream_cx_total") == 1);
}

}  // namespace
}  // namespace turnout::proxy
