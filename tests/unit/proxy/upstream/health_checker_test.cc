#include "proxy/upstream/health_checker.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "config/snapshot/snapshot.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"
#include "tests/support/eventually.h"

namespace turnout::proxy {
namespace {

using namespace std::chrono_literals;
using Result = HealthCheckResult;

// ---------------------------------------------------------------------------
// A tiny HTTP server on 127.0.0.1:0, run on the test's io_context.

enum class ServerMode { Reply200, Reply503, CloseAtOnce, Hang };

struct TestServerState {
  ServerMode mode = ServerMode::Reply200;
  int requests = 0;
  std::string last_request;
  bool closed = false;
};

void logFailure(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    FAIL("test server coroutine threw: " << ex.what());
  }
}

Awaitable<void> serveOne(std::shared_ptr<TestServerState> state, TcpSocket socket) {
  TcpStream stream(std::move(socket));
  boost::system::error_code ec;
  if (state->mode == ServerMode::CloseAtOnce) co_return;
  stream.expires_after(5s);
  std::string in;
  co_await asio::async_read_until(stream, asio::dynamic_buffer(in, 8192), "\r\n\r\n",
                                  asio::redirect_error(use_awaitable, ec));
  if (ec) co_return;
  ++state->requests;
  state->last_request = in;
  if (state->mode == ServerMode::Hang) {
    // Holds the connection open until the peer gives up (or 5 s pass).
    char byte;
    co_await stream.async_read_some(asio::buffer(&byte, 1),
                                    asio::redirect_error(use_awaitable, ec));
    co_return;
  }
  const std::string reply = state->mode == ServerMode::Reply200
                                ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                : "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
  co_await asio::async_write(stream, asio::buffer(reply), asio::redirect_error(use_awaitable, ec));
}

Awaitable<void> acceptLoop(std::shared_ptr<TestServerState> state,
                           std::shared_ptr<TcpAcceptor> acceptor) {
  for (;;) {
    boost::system::error_code ec;
    TcpSocket socket = co_await acceptor->async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;  // closed by the test
    asio::co_spawn(acceptor->get_executor(), serveOne(state, std::move(socket)), logFailure);
  }
}

class TestServer {
 public:
  explicit TestServer(asio::io_context& io)
      : state_(std::make_shared<TestServerState>()),
        acceptor_(std::make_shared<TcpAcceptor>(
            io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))) {
    port_ = acceptor_->local_endpoint().port();
    asio::co_spawn(io, acceptLoop(state_, acceptor_), logFailure);
  }
  ~TestServer() { close(); }

  void setMode(ServerMode mode) { state_->mode = mode; }
  int requests() const { return state_->requests; }
  const std::string& lastRequest() const { return state_->last_request; }
  uint16_t port() const { return port_; }
  void close() {
    boost::system::error_code ignored;
    acceptor_->close(ignored);
  }

 private:
  std::shared_ptr<TestServerState> state_;
  std::shared_ptr<TcpAcceptor> acceptor_;
  uint16_t port_ = 0;
};

// A port nothing listens on: bound once to learn a free number, then closed.
uint16_t closedPort(asio::io_context& io) {
  TcpAcceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const uint16_t port = a.local_endpoint().port();
  a.close();
  return port;
}

// ---------------------------------------------------------------------------
// Config and harness.

struct Flip {
  std::string cluster;
  std::string address;
  bool healthy;
  uint64_t failures;   // cluster.c.health_check.failure when the flip was reported
  uint64_t successes;  // cluster.c.health_check.success when the flip was reported
};

struct Harness {
  Harness() : store(1) {}

  // Creates (not starts) the checker for cluster "c" with one host at `port`.
  void build(uint16_t port, std::string http_host = "") {
    address = "127.0.0.1:" + std::to_string(port);
    auto snapshot = std::make_shared<config::Snapshot>();
    config::ClusterConfig cluster;
    cluster.name = "c";
    config::HealthCheckConfig hc;
    hc.kind = config::HealthCheckConfig::Kind::Http;
    hc.interval = std::chrono::milliseconds(50);
    hc.timeout = std::chrono::milliseconds(200);
    hc.unhealthy_threshold = 2;
    hc.healthy_threshold = 2;
    hc.http_path = "/health";
    hc.http_host = std::move(http_host);
    cluster.health_checks.push_back(hc);
    config::HealthCheckConfig tcp;  // ignored: not HTTP
    tcp.kind = config::HealthCheckConfig::Kind::Tcp;
    cluster.health_checks.push_back(tcp);
    snapshot->clusters.push_back(cluster);
    config::ClusterConfig unchecked;  // no health checks: not checked
    unchecked.name = "plain";
    snapshot->clusters.push_back(unchecked);

    auto dp = std::make_shared<DataPlaneConfig>();
    dp->snapshot = snapshot;
    for (const auto& c : snapshot->clusters) {
      ClusterRuntime rt;
      rt.config = &c;
      auto hosts = std::make_shared<HostSet>();
      HostDescription host;
      host.ip = "127.0.0.1";
      host.port = port;
      host.address = "127.0.0.1:" + std::to_string(port);
      hosts->hosts.push_back(host);
      rt.hosts = std::move(hosts);
      rt.stats = stats::makeClusterStats(store, c.name, c.alt_stat_name);
      dp->clusters.insert_or_assign(rt.config->name, std::make_shared<ClusterRuntime>(std::move(rt)));
    }
    dataplane = dp;
    checker = HealthChecker::create(io, dp, store.mainShard(),
                                    [this](const std::string& cluster,
                                           const HostDescription& host, bool healthy) {
                                      flips.push_back(Flip{cluster, host.address, healthy,
                                                           failures(), successes()});
                                    });
  }

  uint64_t attempts() const { return store.counterValue("cluster.c.health_check.attempt"); }
  uint64_t successes() const { return store.counterValue("cluster.c.health_check.success"); }
  uint64_t failures() const { return store.counterValue("cluster.c.health_check.failure"); }

  // Runs the io_context until `pred` holds or `limit` passes.
  template <typename Pred>
  bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
    return test::eventually(io, pred, limit);
  }
  // Runs the io_context for `d` (a bounded wait, not an assertion on timing).
  void runFor(std::chrono::milliseconds d) {
    eventually([] { return false; }, d);
  }

  asio::io_context io{1};
  stats::Store store;
  std::string address;  // cluster c's one host
  DataPlaneConfigConstSharedPtr dataplane;
  std::vector<Flip> flips;
  HealthCheckerPtr checker;
};

}  // namespace

// ---------------------------------------------------------------------------
// The state machine on its own.

TEST_CASE("a new host starts unhealthy and one first success marks it healthy",
          "[health_check]") {
  HostHealthState h;
  CHECK_FALSE(h.healthy);
  CHECK(h.onResult(Result::Success, 2, 2));
  CHECK(h.healthy);
}

TEST_CASE("a host whose first check fails needs healthy_threshold successes",
          "[health_check]") {
  HostHealthState h;
  CHECK_FALSE(h.onResult(Result::NetworkFailure, 3, 2));
  CHECK_FALSE(h.healthy);
  CHECK_FALSE(h.onResult(Result::Success, 3, 2));
  CHECK_FALSE(h.onResult(Result::Success, 3, 2));
  CHECK(h.onResult(Result::Success, 3, 2));
  CHECK(h.healthy);
}

TEST_CASE("network failures mark a healthy host unhealthy after unhealthy_threshold in a row",
          "[health_check]") {
  HostHealthState h;
  REQUIRE(h.onResult(Result::Success, 2, 3));
  CHECK_FALSE(h.onResult(Result::NetworkFailure, 2, 3));
  CHECK_FALSE(h.onResult(Result::NetworkFailure, 2, 3));
  CHECK_FALSE(h.onResult(Result::Success, 2, 3));  // resets the failure run
  CHECK_FALSE(h.onResult(Result::NetworkFailure, 2, 3));
  CHECK_FALSE(h.onResult(Result::NetworkFailure, 2, 3));
  CHECK(h.onResult(Result::NetworkFailure, 2, 3));
  CHECK_FALSE(h.healthy);
}

TEST_CASE("an unexpected status marks a healthy host unhealthy at once", "[health_check]") {
  HostHealthState h;
  REQUIRE(h.onResult(Result::Success, 2, 5));
  CHECK(h.onResult(Result::ActiveFailure, 2, 5));
  CHECK_FALSE(h.healthy);
}

TEST_CASE("a failure interrupts an unhealthy host's run of successes", "[health_check]") {
  HostHealthState h;
  REQUIRE_FALSE(h.onResult(Result::ActiveFailure, 2, 2));
  CHECK_FALSE(h.onResult(Result::Success, 2, 2));
  CHECK_FALSE(h.onResult(Result::NetworkFailure, 2, 2));
  CHECK_FALSE(h.onResult(Result::Success, 2, 2));
  CHECK(h.onResult(Result::Success, 2, 2));
}

TEST_CASE("a threshold of zero acts as one", "[health_check]") {
  HostHealthState h;
  REQUIRE(h.onResult(Result::Success, 0, 0));
  CHECK(h.onResult(Result::NetworkFailure, 0, 0));
  CHECK(h.onResult(Result::Success, 0, 0));
}

// ---------------------------------------------------------------------------
// Against a real server.

TEST_CASE("only clusters with an HTTP health check are checked", "[health_check]") {
  Harness h;
  h.build(closedPort(h.io));
  CHECK(h.checker->checkedHostCount() == 1);
  CHECK_FALSE(h.checker->isHealthy("plain", h.address));
  CHECK_FALSE(h.checker->isHealthy("c", "127.0.0.1:1"));
}

TEST_CASE("a host answering 200 is reported healthy after its first check", "[health_check]") {
  Harness h;
  TestServer server(h.io);
  h.build(server.port());
  CHECK_FALSE(h.checker->isHealthy("c", h.address));
  h.checker->start();
  REQUIRE(h.eventually([&] { return !h.flips.empty(); }));
  CHECK(h.flips[0].cluster == "c");
  CHECK(h.flips[0].address == h.address);
  CHECK(h.flips[0].healthy);
  CHECK(h.flips[0].successes == 1);
  CHECK(h.checker->isHealthy("c", h.address));
  CHECK(server.lastRequest() ==
        "GET /health HTTP/1.1\r\nHost: c\r\nUser-Agent: Envoy/HC\r\nConnection: close\r\n\r\n");
  // It keeps checking every interval without reporting anything new.
  REQUIRE(h.eventually([&] { return h.successes() >= 3; }));
  CHECK(h.flips.size() == 1);
  CHECK(h.failures() == 0);
}

TEST_CASE("the Host header is http_host when set", "[health_check]") {
  Harness h;
  TestServer server(h.io);
  h.build(server.port(), "health.example");
  h.checker->start();
  REQUIRE(h.eventually([&] { return server.requests() >= 1; }));
  CHECK(server.lastRequest().find("\r\nHost: health.example\r\n") != std::string::npos);
}

TEST_CASE("a healthy host answering 503 is reported unhealthy at once and healthy again after "
          "healthy_threshold successes",
          "[health_check]") {
  Harness h;
  TestServer server(h.io);
  h.build(server.port());
  h.checker->start();
  REQUIRE(h.eventually([&] { return h.flips.size() == 1; }));

  const uint64_t failures_before = h.failures();
  server.setMode(ServerMode::Reply503);
  REQUIRE(h.eventually([&] { return h.flips.size() == 2; }));
  CHECK_FALSE(h.flips[1].healthy);
  CHECK(h.flips[1].failures == failures_before + 1);  // Envoy: unexpected status ignores the threshold
  CHECK_FALSE(h.checker->isHealthy("c", h.address));

  const uint64_t successes_before = h.successes();
  server.setMode(ServerMode::Reply200);
  REQUIRE(h.eventually([&] { return h.flips.size() == 3; }));
  CHECK(h.flips[2].healthy);
  CHECK(h.flips[2].successes == successes_before + 2);
  CHECK(h.checker->isHealthy("c", h.address));
}

TEST_CASE("a healthy host is reported unhealthy after unhealthy_threshold network failures",
          "[health_check]") {
  Harness h;
  TestServer server(h.io);
  h.build(server.port());
  h.checker->start();
  REQUIRE(h.eventually([&] { return h.flips.size() == 1; }));

  const uint64_t failures_before = h.failures();
  server.setMode(ServerMode::CloseAtOnce);
  REQUIRE(h.eventually([&] { return h.flips.size() == 2; }));
  CHECK_FALSE(h.flips[1].healthy);
  CHECK(h.flips[1].failures == failures_before + 2);
}

TEST_CASE("a host that does not answer within the timeout fails its checks", "[health_check]") {
  Harness h;
  TestServer server(h.io);
  server.setMode(ServerMode::Hang);
  h.build(server.port());
  h.checker->start();
  REQUIRE(h.eventually([&] { return h.failures() >= 2; }));
  CHECK(h.successes() == 0);
  CHECK(h.flips.empty());  // it never was healthy
  CHECK_FALSE(h.checker->isHealthy("c", h.address));
}

TEST_CASE("a host on a closed port stays unhealthy and counts failures", "[health_check]") {
  Harness h;
  h.build(closedPort(h.io));
  h.checker->start();
  REQUIRE(h.eventually([&] { return h.failures() >= 3; }));
  CHECK(h.successes() == 0);
  CHECK(h.attempts() >= h.failures());
  CHECK(h.flips.empty());
  CHECK_FALSE(h.checker->isHealthy("c", h.address));
}

TEST_CASE("every attempt is counted as exactly one success or failure", "[health_check]") {
  Harness h;
  TestServer server(h.io);
  h.build(server.port());
  h.checker->start();
  REQUIRE(h.eventually([&] { return h.successes() >= 2; }));
  server.setMode(ServerMode::Reply503);
  REQUIRE(h.eventually([&] { return h.failures() >= 2; }));
  h.checker->stop();
  h.runFor(100ms);  // lets the aborted check unwind
  const uint64_t attempts = h.attempts();
  const uint64_t finished = h.successes() + h.failures();
  CHECK(attempts >= finished);
  CHECK(attempts <= finished + 1);  // at most the one check stop() aborted
}

TEST_CASE("after stop no callback fires and no check starts", "[health_check]") {
  Harness h;
  TestServer server(h.io);
  h.build(server.port());
  h.checker->start();
  REQUIRE(h.eventually([&] { return h.flips.size() == 1; }));
  server.setMode(ServerMode::Reply503);
  h.checker->stop();
  const uint64_t attempts = h.attempts();
  h.runFor(300ms);  // six intervals
  CHECK(h.flips.size() == 1);
  CHECK(h.attempts() == attempts);
  h.checker->start();  // a stopped checker does not restart
  h.runFor(100ms);
  CHECK(h.attempts() == attempts);
}

TEST_CASE("destroying the checker while a check is in flight is safe and silent",
          "[health_check]") {
  Harness h;
  TestServer server(h.io);
  server.setMode(ServerMode::Hang);
  h.build(server.port());
  h.checker->start();
  REQUIRE(h.eventually([&] { return server.requests() >= 1; }));
  h.checker.reset();
  h.runFor(300ms);
  CHECK(h.flips.empty());
}

TEST_CASE("a new host set starts checks for new hosts, stops them for removed ones and keeps "
          "the survivors' state",
          "[health_check][dns]") {
  Harness h;
  TestServer first(h.io), second(h.io);
  h.build(first.port());
  h.checker->start();
  REQUIRE(h.eventually([&] { return h.flips.size() == 1; }));
  const ClusterRuntime& c = *h.dataplane->clusters.at("c");
  const HostDescription survivor = c.hosts->hosts[0];
  CHECK_FALSE(survivor.state->failed_active_hc.load());

  HostDescription added;
  added.ip = "127.0.0.1";
  added.port = second.port();
  added.address = "127.0.0.1:" + std::to_string(second.port());
  added.state->failed_active_hc = true;  // as a new DNS host starts
  HostSet both;
  both.hosts = {survivor, added};
  h.checker->updateHosts(c, both);
  CHECK(h.checker->checkedHostCount() == 2);
  REQUIRE(h.eventually([&] { return h.flips.size() == 2; }));
  CHECK(h.flips[1].address == added.address);
  CHECK(h.flips[1].healthy);
  CHECK_FALSE(added.state->failed_active_hc.load());
  CHECK(h.checker->isHealthy("c", survivor.address));  // not checked from scratch

  HostSet only_added;
  only_added.hosts = {added};
  h.checker->updateHosts(c, only_added);
  CHECK(h.checker->checkedHostCount() == 1);
  const int first_requests = first.requests();
  h.runFor(300ms);  // six intervals
  CHECK(first.requests() <= first_requests + 1);  // at most the check in flight
  CHECK(second.requests() >= 3);
  CHECK_FALSE(h.checker->isHealthy("c", survivor.address));
  CHECK(h.flips.size() == 2);
}

}  // namespace turnout::proxy
