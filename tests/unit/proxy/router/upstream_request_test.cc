#include "proxy/router/upstream_request.h"

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
#include "proxy/upstream/cluster_manager.h"
#include "tests/support/eventually.h"

namespace turnout::proxy {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using State = UpstreamRequest::State;
using Event = UpstreamRequest::Event;

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

// An origin on 127.0.0.1:0 that reads what each connection sends into
// `received` and, once the bytes so far contain `answer_after`, writes
// `response` (then closes if `close_after`). Empty `response`: silent.
class Origin {
 public:
  explicit Origin(asio::io_context& io)
      : acceptor_(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

  std::string answer_after = "\r\n\r\n";
  std::string response;
  bool close_after = false;
  std::string received;
  size_t accepted = 0;
  size_t answered = 0;

 private:
  struct Conn {
    explicit Conn(TcpSocket s) : socket(std::move(s)) {}
    TcpSocket socket;
    std::string seen;
    bool answered = false;
    char buf[4096];
  };
  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, TcpSocket s) {
      if (ec) return;
      ++accepted;
      auto c = std::make_shared<Conn>(std::move(s));
      read(c);
      accept();
    });
  }
  void read(std::shared_ptr<Conn> c) {
    c->socket.async_read_some(asio::buffer(c->buf), [this, c](const boost::system::error_code& ec,
                                                              size_t n) {
      if (ec) return;
      c->seen.append(c->buf, n);
      received.append(c->buf, n);
      if (!c->answered && !response.empty() && c->seen.find(answer_after) != std::string::npos) {
        c->answered = true;
        ++answered;
        boost::system::error_code ignored;
        asio::write(c->socket, asio::buffer(response), ignored);
        if (close_after) {
          c->socket.shutdown(TcpSocket::shutdown_both, ignored);
          return;
        }
        c->seen.clear();
        c->answered = false;
      }
      read(c);
    });
  }
  TcpAcceptor acceptor_;
};

// A client's request as an UpstreamRequestParent: a head and body chunks
// that arrive one per `gap` (the last one ends the request), collecting the
// response it is given.
class FakeClient : public UpstreamRequestParent {
 public:
  FakeClient(asio::io_context& io, std::vector<std::string> chunks, std::chrono::milliseconds gap)
      : io_(io), chunks_(std::move(chunks)), gap_(gap) {
    head.method = chunks_.empty() ? "GET" : "POST";
    head.path = "/";
    head.authority = "origin";
    head.headers.add("host", "origin");
    if (!chunks_.empty()) head.chunked = true;
  }

  void encodeRequestStart(UpstreamStream& stream) override {
    stream.encodeHeaders(head, chunks_.empty());
  }
  bool requestComplete() const override { return next_ >= chunks_.size(); }
  Awaitable<bool> encodeMoreRequest(UpstreamStream* stream) override {
    SteadyTimer t(io_, gap_);
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stopped_) co_return false;
    const std::string& c = chunks_[next_++];
    stream->encodeData(std::span<const char>(c.data(), c.size()), requestComplete());
    co_return true;
  }
  void stopRequestBody() override { stopped_ = true; }
  void onRequestSent() override { ++sent; }
  bool downstreamFailed() const override { return false; }
  Clock::time_point routeDeadline() const override { return deadline; }
  std::chrono::milliseconds streamIdle() const override { return 0ms; }
  bool onUpstreamHeaders(ResponseHead& h, bool) override {
    status = h.status;
    return discard_status != 0 && h.status == discard_status;
  }
  void onUpstreamData(std::span<const char> d, bool) override { body.append(d.data(), d.size()); }
  void onUpstreamTrailers(HeaderMap&) override {}
  Awaitable<bool> flushResponse() override {
    ++awaited_flushes;
    co_return !client_gone;
  }
  bool tryFlushResponse() override {
    ++tried_flushes;
    return flush_at_once && !client_gone;
  }

  RequestHead head;
  bool flush_at_once = false;  // tryFlushResponse() succeeds
  bool client_gone = false;    // both flushes fail
  int tried_flushes = 0;
  int awaited_flushes = 0;
  Clock::time_point deadline = Clock::time_point::max();
  uint32_t discard_status = 0;
  uint32_t status = 0;
  std::string body;
  int sent = 0;

 private:
  asio::io_context& io_;
  std::vector<std::string> chunks_;
  std::chrono::milliseconds gap_;
  size_t next_ = 0;
  bool stopped_ = false;
};

// One STATIC host "c" on one worker, behind an Origin.
struct Upstream {
  Upstream() : store(1), origin(io) {
    config.name = "c";
    config.connect_timeout = 1000ms;
    config.circuit_breakers.push_back(config::CircuitBreakerThresholds{});
    runtime.config = &config;
    runtime.stats = stats::makeClusterStats(store, "c", "");
    HostDescription h;
    h.ip = "127.0.0.1";
    h.port = origin.port();
    h.address = "127.0.0.1:" + std::to_string(h.port);
    runtime.hosts = makeHostSet(config, {h});
    cluster = std::make_shared<WorkerCluster>(runtime, runtime.hosts,
                                              std::make_shared<ClusterResources>(),
                                              store.shard(0), 0, nullptr);
  }
  HostState& host() { return cluster->hosts()[0]; }
  UpstreamStreamPtr stream() {
    ConnPool& pool = cluster->connPool(host());
    if (UpstreamStreamPtr s = pool.tryNewStream()) return s;
    std::optional<ConnPool::NewStreamResult> r;
    PendingRequest pending(io.get_executor());
    asio::co_spawn(
        io, [&]() -> Awaitable<void> { r = co_await pool.newStream(&pending, Clock::now() + 2s); },
        rethrow);
    REQUIRE(test::eventually(io, [&] { return r.has_value(); }));
    REQUIRE(r->status == ConnPool::NewStreamResult::Status::Ready);
    return std::move(r->stream);
  }
  // Runs one UpstreamRequest for `client` and returns its result; the
  // stream goes back reusable when the exchange completed cleanly.
  UpstreamRequest::Result run(FakeClient& client, const routing::RetryPolicy* policy = nullptr) {
    UpstreamRequest upstream(client, *cluster, host(), store.shard(0), stream(), policy,
                             io.get_executor(), DeadlineQueue::of(io));
    REQUIRE(upstream.start());
    std::optional<UpstreamRequest::Result> r;
    asio::co_spawn(
        io, [&]() -> Awaitable<void> { r = co_await upstream.run(); }, rethrow);
    REQUIRE(test::eventually(io, [&] { return r.has_value(); }));
    upstream.finish(r->state == State::Complete && !r->eof);
    return *r;
  }
  uint64_t counter(const std::string& name) const {
    return store.counterValue("cluster.c." + name);
  }

  asio::io_context io{1};
  stats::Store store;
  Origin origin;
  config::ClusterConfig config;
  ClusterRuntime runtime;
  std::shared_ptr<WorkerCluster> cluster;
};

}  // namespace

TEST_CASE("UpstreamRequest::transition keeps request and response sides apart",
          "[upstream_request]") {
  using T = UpstreamRequest;
  // The ordinary exchange.
  CHECK(T::transition(State::Sending, Event::RequestSent) == State::AwaitingResponse);
  CHECK(T::transition(State::AwaitingResponse, Event::ResponseHeaders) == State::Responding);
  CHECK(T::transition(State::Responding, Event::ResponseComplete) == State::Complete);
  // An early response: the response may complete before the request does.
  CHECK(T::transition(State::Sending, Event::ResponseHeaders) == State::EarlyResponse);
  CHECK(T::transition(State::EarlyResponse, Event::RequestSent) == State::Responding);
  CHECK(T::transition(State::EarlyResponse, Event::ResponseComplete) == State::CompleteEarly);
  CHECK(T::transition(State::CompleteEarly, Event::RequestSent) == State::Complete);
  // A retriable response is dropped; nothing moves it out of Discarding.
  CHECK(T::transition(State::AwaitingResponse, Event::Discard) == State::Discarding);
  CHECK(T::transition(State::Sending, Event::Discard) == State::Discarding);
  for (Event e : {Event::RequestSent, Event::ResponseHeaders, Event::ResponseComplete,
                  Event::Discard, Event::Reset}) {
    CHECK(T::transition(State::Discarding, e) == State::Discarding);
    CHECK(T::transition(State::Reset, e) == State::Reset);
    CHECK(T::transition(State::Complete, e) == State::Complete);
  }
  // A reset ends any exchange that is not complete, and none that is.
  for (State s : {State::Sending, State::AwaitingResponse, State::EarlyResponse,
                  State::Responding}) {
    CHECK(T::transition(s, Event::Reset) == State::Reset);
  }
  CHECK(T::transition(State::CompleteEarly, Event::Reset) == State::CompleteEarly);
  // A completion without response headers is not a response.
  CHECK(T::transition(State::AwaitingResponse, Event::ResponseComplete) == State::AwaitingResponse);
}

TEST_CASE("an UpstreamRequest streams the body and gives back a reusable connection",
          "[upstream_request]") {
  Upstream u;
  u.origin.answer_after = "0\r\n\r\n";
  u.origin.response = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
  FakeClient client(u.io, {"abc", "def"}, 20ms);
  UpstreamRequest::Result r = u.run(client);
  CHECK(r.state == State::Complete);
  CHECK(r.request_sent);
  CHECK(r.status == 200);
  CHECK(client.body == "ok");
  CHECK(client.sent == 1);
  CHECK(u.origin.received.find("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n") != std::string::npos);
  CHECK(u.counter("upstream_rq_total") == 1);
  CHECK(u.store.gaugeValue("cluster.c.upstream_rq_active") == 0);
  // Back in the pool: the next stream is the same connection, marked reused.
  REQUIRE(u.host().idle.size() == 1);
  UpstreamStreamPtr again = u.cluster->connPool(u.host()).tryNewStream();
  REQUIRE(again);
  CHECK(again->reused());
  CHECK(u.origin.accepted == 1);
}

TEST_CASE("a response is flushed without a coroutine when the parent can, awaited when not",
          "[upstream_request]") {
  for (const bool at_once : {true, false}) {
    Upstream u;
    u.origin.response = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    FakeClient client(u.io, {}, 0ms);
    client.flush_at_once = at_once;
    UpstreamRequest::Result r = u.run(client);
    INFO("tryFlushResponse succeeds: " << at_once);
    CHECK(r.state == State::Complete);
    CHECK(client.body == "ok");
    CHECK(client.tried_flushes >= 1);
    CHECK(client.tried_flushes == (at_once ? client.tried_flushes : client.awaited_flushes));
    CHECK(client.awaited_flushes == (at_once ? 0 : client.tried_flushes));
  }
  // Both fail (the client is gone): the exchange stops at the first flush,
  // which was tried at once and then awaited.
  Upstream u;
  u.origin.response = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
  FakeClient client(u.io, {}, 0ms);
  client.client_gone = true;
  u.run(client);
  CHECK(client.tried_flushes == 1);
  CHECK(client.awaited_flushes == 1);
}

TEST_CASE("an early response completes while the body is still being sent (full duplex)",
          "[upstream_request]") {
  Upstream u;
  u.origin.answer_after = "\r\n\r\n";  // answers the head, before any body
  u.origin.response = "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n";
  FakeClient client(u.io, {"a", "b", "c", "d", "e", "f"}, 200ms);
  const auto started = Clock::now();
  UpstreamRequest::Result r = u.run(client);
  CHECK(r.state == State::CompleteEarly);
  CHECK(r.response_started);
  CHECK_FALSE(r.request_sent);
  CHECK(client.status == 413);
  CHECK(client.sent == 0);
  // It did not wait for the upload (6 chunks x 200 ms) to end.
  CHECK(Clock::now() - started < 1000ms);
  // Half a request went up: the connection is not reused.
  CHECK(u.host().idle.empty());
}

TEST_CASE("the per-try timeout ends an attempt whose response does not start",
          "[upstream_request]") {
  Upstream u;  // the origin never answers
  routing::RetryPolicy policy;
  policy.per_try_timeout = 100ms;
  FakeClient client(u.io, {}, 0ms);
  UpstreamRequest::Result r = u.run(client, &policy);
  CHECK(r.state == State::Reset);
  CHECK(r.timeout == UpstreamRequest::Timeout::PerTry);
  CHECK(r.reset_reason == StreamResetReason::kLocalReset);
  CHECK(r.request_sent);
  CHECK_FALSE(r.response_started);
  CHECK(u.host().idle.empty());
}

TEST_CASE("a retriable response is dropped, and malformed bytes are a protocol error",
          "[upstream_request]") {
  SECTION("dropped") {
    Upstream u;
    u.origin.response = "HTTP/1.1 503 Unavailable\r\ncontent-length: 4\r\n\r\nbusy";
    FakeClient client(u.io, {}, 0ms);
    client.discard_status = 503;
    UpstreamRequest::Result r = u.run(client);
    CHECK(r.state == State::Discarding);
    CHECK(r.status == 503);
    CHECK_FALSE(r.response_started);
    CHECK(client.body.empty());
  }
  SECTION("protocol error") {
    Upstream u;
    u.origin.response = "HTTP/1.1 2x0 Nonsense\r\n\r\n";
    FakeClient client(u.io, {}, 0ms);
    UpstreamRequest::Result r = u.run(client);
    CHECK(r.state == State::Reset);
    CHECK(r.reset_reason == StreamResetReason::kProtocolError);
  }
  SECTION("connection closed before a response") {
    Upstream u;
    u.origin.response = "x";  // not enough for a status line, then close
    u.origin.close_after = true;
    FakeClient client(u.io, {}, 0ms);
    UpstreamRequest::Result r = u.run(client);
    CHECK(r.state == State::Reset);
    CHECK(r.reset_reason == StreamResetReason::kConnectionTermination);
    CHECK(r.eof);
    CHECK(r.status == 0);
  }
}

}  // namespace turnout::proxy
