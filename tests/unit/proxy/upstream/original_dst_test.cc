#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "config/snapshot/snapshot.h"
#include "proxy/codec/header_map.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"
#include "proxy/upstream/cluster_manager.h"
#include "tests/support/eventually.h"

// ORIGINAL_DST clusters on one worker (hosts made on demand from the
// connection's original destination or a request header, cleaned up when
// unused) and the TCP proxy's connections (connectTcp/closeTcp).

namespace turnout::proxy {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using TcpStatus = WorkerCluster::TcpConnectResult::Status;

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

asio::ip::tcp::endpoint ep(const std::string& ip, uint16_t port) {
  return asio::ip::tcp::endpoint(asio::ip::make_address(ip), port);
}

// A cluster "c" on one worker: ORIGINAL_DST unless a test says otherwise.
struct Cluster {
  explicit Cluster(config::CircuitBreakerThresholds limits = {}) : store(1) {
    config.name = "c";
    config.type = config::ClusterConfig::Type::OriginalDst;
    config.lb_policy = config::ClusterConfig::LbPolicy::ClusterProvided;
    config.original_dst = config::OriginalDstConfig{};
    config.connect_timeout = 1000ms;
    config.circuit_breakers.push_back(limits);
    runtime.config = &config;
    runtime.stats = stats::makeClusterStats(store, "c", "");
  }
  void build() {
    runtime.hosts = makeHostSet(config, {});
    cluster = std::make_shared<WorkerCluster>(runtime, runtime.hosts,
                                              std::make_shared<ClusterResources>(), store.shard(0),
                                              0, std::make_shared<IdleConnections>());
  }
  uint64_t counter(const std::string& name) const { return store.counterValue("cluster.c." + name); }
  int64_t gauge(const std::string& name) const { return store.gaugeValue("cluster.c." + name); }

  // connectTcp() to `host`, run to completion.
  WorkerCluster::TcpConnectResult connect(HostState* host) {
    std::optional<WorkerCluster::TcpConnectResult> out;
    asio::co_spawn(
        io,
        [](std::shared_ptr<WorkerCluster> c, HostState* h, Executor ex,
           std::optional<WorkerCluster::TcpConnectResult>* r) -> Awaitable<void> {
          *r = co_await c->connectTcp(ex, h);
        }(cluster, host, io.get_executor(), &out),
        rethrow);
    REQUIRE(test::eventually(io, [&] { return out.has_value(); }, 5000ms));
    return std::move(*out);
  }

  asio::io_context io{1};
  stats::Store store;
  config::ClusterConfig config;
  ClusterRuntime runtime;
  std::shared_ptr<WorkerCluster> cluster;
};

}  // namespace

TEST_CASE("an original destination override is ip:port, as Envoy parses it", "[original_dst]") {
  struct Case {
    const char* value;
    const char* want;  // endpoint, or "" for invalid
  };
  auto c = GENERATE(values<Case>({
      {"127.0.0.1:8080", "127.0.0.1:8080"},
      {"10.0.0.5:0", "10.0.0.5:0"},
      {"[::1]:443", "[::1]:443"},
      {"[2001:db8::2]:65535", "[2001:db8::2]:65535"},
      {"127.0.0.1", ""},
      {"127.0.0.1:", ""},
      {"127.0.0.1:65536", ""},
      {"127.0.0.1:80a", ""},
      {"127.0.0.1:-1", ""},
      {"::1:443", ""},  // IPv6 needs brackets
      {"[::1]", ""},
      {"[127.0.0.1]:80", ""},
      {"localhost:80", ""},
      {"1.2.3:80", ""},
      {"", ""},
      {" 127.0.0.1:80", ""},
  }));
  CAPTURE(c.value);
  auto got = parseOriginalDstHost(c.value);
  if (std::string(c.want).empty()) {
    CHECK_FALSE(got.has_value());
  } else {
    REQUIRE(got.has_value());
    CHECK(hostPort(got->address().to_string(), got->port()) == c.want);
  }
}

TEST_CASE("a listener's own address is its bound port on its IP, or on any IP for a wildcard",
          "[original_dst]") {
  CHECK(isListenerAddress(ep("127.0.0.1", 15001), ep("127.0.0.1", 15001)));
  CHECK_FALSE(isListenerAddress(ep("127.0.0.1", 15001), ep("127.0.0.2", 15001)));
  CHECK_FALSE(isListenerAddress(ep("127.0.0.1", 15001), ep("127.0.0.1", 8080)));
  CHECK(isListenerAddress(ep("0.0.0.0", 15001), ep("10.1.2.3", 15001)));
  CHECK(isListenerAddress(ep("::", 15001), ep("::1", 15001)));
  CHECK(isListenerAddress(ep("127.0.0.1", 80), ep("::ffff:127.0.0.1", 80)));
  CHECK(isListenerAddress(ep("::ffff:127.0.0.1", 80), ep("127.0.0.1", 80)));
}

TEST_CASE("an ORIGINAL_DST host is the connection's local address, made once and reused",
          "[original_dst]") {
  Cluster c;
  c.build();
  const auto local = ep("10.0.0.7", 5432);
  const auto own = ep("0.0.0.0", 15001);
  LoadBalancerContext lb;
  lb.downstream_local = &local;
  lb.listener_address = &own;
  HostState* h = c.cluster->chooseHost(lb);
  REQUIRE(h != nullptr);
  CHECK(h->endpoint == local);
  CHECK(h->description->address == "10.0.0.7:5432");
  CHECK(c.cluster->chooseHost(lb) == h);
  CHECK(c.cluster->originalDstHostCount() == 1);
  const auto other = ep("10.0.0.8", 5432);
  lb.downstream_local = &other;
  HostState* h2 = c.cluster->chooseHost(lb);
  REQUIRE(h2 != nullptr);
  CHECK(h2 != h);
  CHECK(c.cluster->originalDstHostCount() == 2);
  // Without any destination there is no host (Envoy's null host: 503 UH).
  CHECK(c.cluster->chooseHost(LoadBalancerContext{}) == nullptr);
}

TEST_CASE("the override header wins when use_http_header is set, a bad one falls back and counts",
          "[original_dst]") {
  Cluster c;
  c.config.original_dst->use_http_header = true;
  c.build();
  const auto local = ep("10.0.0.7", 80);
  HeaderMap headers;
  headers.add("x-envoy-original-dst-host", "127.0.0.1:9000");
  headers.add("x-envoy-original-dst-host", "127.0.0.1:9001");  // only the first counts
  LoadBalancerContext lb;
  lb.downstream_local = &local;
  lb.request_headers = &headers;
  HostState* h = c.cluster->chooseHost(lb);
  REQUIRE(h != nullptr);
  CHECK(h->endpoint == ep("127.0.0.1", 9000));
  CHECK(c.counter("original_dst_host_invalid") == 0);

  HeaderMap bad;
  bad.add("x-envoy-original-dst-host", "not-an-address");
  lb.request_headers = &bad;
  h = c.cluster->chooseHost(lb);
  REQUIRE(h != nullptr);
  CHECK(h->endpoint == local);
  CHECK(c.counter("original_dst_host_invalid") == 1);

  // Without use_http_header the header is not looked at.
  Cluster plain;
  plain.build();
  lb.request_headers = &headers;
  h = plain.cluster->chooseHost(lb);
  REQUIRE(h != nullptr);
  CHECK(h->endpoint == local);
}

TEST_CASE("upstream_port_override replaces the destination's port", "[original_dst]") {
  Cluster c;
  c.config.original_dst->use_http_header = true;
  c.config.original_dst->port_override = 7000;
  c.build();
  HeaderMap headers;
  headers.add("x-envoy-original-dst-host", "127.0.0.1:9000");
  LoadBalancerContext lb;
  lb.request_headers = &headers;
  HostState* h = c.cluster->chooseHost(lb);
  REQUIRE(h != nullptr);
  CHECK(h->endpoint == ep("127.0.0.1", 7000));
}

TEST_CASE("a destination that is the listener's own address is refused and counted",
          "[original_dst]") {
  Cluster c;
  c.config.original_dst->use_http_header = true;
  c.build();
  const auto own = ep("127.0.0.1", 10000);
  const auto local = ep("127.0.0.1", 10000);  // not redirected: the listener itself
  LoadBalancerContext lb;
  lb.downstream_local = &local;
  lb.listener_address = &own;
  CHECK(c.cluster->chooseHost(lb) == nullptr);
  CHECK(c.counter("original_dst_loop_refused") == 1);
  // A header naming the listener loops too.
  HeaderMap headers;
  headers.add("x-envoy-original-dst-host", "127.0.0.1:10000");
  lb.request_headers = &headers;
  lb.downstream_local = nullptr;
  CHECK(c.cluster->chooseHost(lb) == nullptr);
  CHECK(c.counter("original_dst_loop_refused") == 2);
  CHECK(c.cluster->originalDstHostCount() == 0);
}

TEST_CASE("unused ORIGINAL_DST hosts go after a cleanup interval, busy ones stay",
          "[original_dst]") {
  Cluster c;
  c.build();
  TcpAcceptor acceptor(c.io, ep("127.0.0.1", 0));
  const auto live = acceptor.local_endpoint();
  const auto idle_dst = ep("127.0.0.1", 1);
  LoadBalancerContext lb;
  lb.downstream_local = &live;
  HostState* busy = c.cluster->chooseHost(lb);
  REQUIRE(busy != nullptr);
  lb.downstream_local = &idle_dst;
  REQUIRE(c.cluster->chooseHost(lb) != nullptr);
  CHECK(c.cluster->originalDstHostCount() == 2);

  WorkerCluster::TcpConnectResult r = c.connect(busy);
  REQUIRE(r.status == TcpStatus::Ready);
  CHECK(busy->cx_active == 1);

  // The first pass only marks both as unused since then; the second drops
  // the one without connections.
  c.cluster->cleanupOriginalDstHosts(Clock::now());
  CHECK(c.cluster->originalDstHostCount() == 2);
  c.cluster->cleanupOriginalDstHosts(Clock::now());
  CHECK(c.cluster->originalDstHostCount() == 1);
  c.cluster->closeTcp(*busy, std::move(r.conn));
  CHECK(c.gauge("upstream_cx_active") == 0);
  c.cluster->cleanupOriginalDstHosts(Clock::now());
  CHECK(c.cluster->originalDstHostCount() == 0);
}

TEST_CASE("the cleanup timer runs every cleanup_interval once the cluster connects",
          "[original_dst]") {
  Cluster c;
  c.config.original_dst->cleanup_interval = 50ms;
  c.build();
  TcpAcceptor acceptor(c.io, ep("127.0.0.1", 0));
  const auto live = acceptor.local_endpoint();
  LoadBalancerContext lb;
  lb.downstream_local = &live;
  HostState* h = c.cluster->chooseHost(lb);
  REQUIRE(h != nullptr);
  WorkerCluster::TcpConnectResult r = c.connect(h);
  REQUIRE(r.status == TcpStatus::Ready);
  c.cluster->closeTcp(*h, std::move(r.conn));
  CHECK(test::eventually(c.io, [&] { return c.cluster->originalDstHostCount() == 0; }, 5000ms));
}

TEST_CASE("a TCP proxy connection counts in the cluster's stats and breaker", "[original_dst]") {
  config::CircuitBreakerThresholds one;
  one.max_connections = 1;
  Cluster c(one);
  c.config.type = config::ClusterConfig::Type::Static;
  c.config.lb_policy = config::ClusterConfig::LbPolicy::RoundRobin;
  TcpAcceptor acceptor(c.io, ep("127.0.0.1", 0));
  HostDescription d;
  d.ip = "127.0.0.1";
  d.port = acceptor.local_endpoint().port();
  d.address = hostPort(d.ip, d.port);
  c.runtime.hosts = makeHostSet(c.config, {d});
  c.cluster = std::make_shared<WorkerCluster>(c.runtime, c.runtime.hosts,
                                              std::make_shared<ClusterResources>(),
                                              c.store.shard(0), 0, nullptr);
  HostState* h = c.cluster->chooseHost(LoadBalancerContext{});
  REQUIRE(h != nullptr);
  WorkerCluster::TcpConnectResult r = c.connect(h);
  REQUIRE(r.status == TcpStatus::Ready);
  CHECK(c.counter("upstream_cx_total") == 1);
  CHECK(c.counter("upstream_cx_http1_total") == 0);
  CHECK(c.gauge("upstream_cx_active") == 1);
  // max_connections 1: the next one overflows instead of waiting.
  WorkerCluster::TcpConnectResult over = c.connect(h);
  CHECK(over.status == TcpStatus::Overflow);
  CHECK(c.counter("upstream_cx_overflow") == 1);
  c.cluster->closeTcp(*h, std::move(r.conn));
  CHECK(c.gauge("upstream_cx_active") == 0);
  CHECK(c.counter("upstream_cx_destroy") == 1);
  // A refused connect is a connect failure.
  boost::system::error_code ignored;
  acceptor.close(ignored);
  WorkerCluster::TcpConnectResult refused = c.connect(h);
  CHECK(refused.status == TcpStatus::ConnectFailure);
  CHECK(c.counter("upstream_cx_connect_fail") == 1);
  CHECK(c.gauge("upstream_cx_active") == 0);
}

}  // namespace turnout::proxy
