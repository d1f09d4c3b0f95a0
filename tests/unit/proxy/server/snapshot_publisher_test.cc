#include <catch2/catch.hpp>

#include <chrono>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "config/snapshot/snapshot_builder.h"
#include "proxy/filters/routing_key_filter.h"
#include "proxy/server/snapshot_publisher.h"
#include "proxy/upstream/cluster_manager.h"
#include "routing/route_table.h"

namespace turnout::proxy {
namespace {

// A snapshot of `n` STATIC clusters c0..c<n-1>, one host each.
config::SnapshotConstSharedPtr clusters(size_t n, const std::string& prefix = "c") {
  auto s = std::make_shared<config::Snapshot>();
  s->clusters.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    config::ClusterConfig c;
    c.name = prefix + std::to_string(i);
    config::LocalityEndpointsConfig l;
    config::EndpointConfig e;
    e.address.address = "127.0.0.1";
    e.address.port = 10000 + static_cast<uint32_t>(i % 50000);
    l.endpoints.push_back(e);
    c.localities.push_back(l);
    c.circuit_breakers.push_back(config::CircuitBreakerThresholds{});
    s->clusters.push_back(std::move(c));
  }
  return s;
}

struct Fixture {
  stats::Store store{1};
  asio::io_context io;
  DataPlaneConfigConstSharedPtr base;
  ClusterManager manager{0};
  ClusterResourcesMap resources;

  explicit Fixture(size_t n) {
    auto snapshot = clusters(n);
    auto dp = DataPlaneConfig::build(snapshot, store);
    REQUIRE(dp.ok());
    base = *dp;
  }
  ClusterRuntimeConstSharedPtr replacement(const std::string& name) {
    auto s = std::make_shared<config::Snapshot>(*clusters(1, "tmp"));
    auto& c = const_cast<config::ClusterConfig&>(s->clusters[0]);
    c.name = name;
    c.localities[0].endpoints[0].address.port = 9;
    auto rt = DataPlaneConfig::buildCluster(s, s->clusters[0], store);
    REQUIRE(rt.ok());
    return *rt;
  }
};

TEST_CASE("an update replaces only the changed cluster, workers keep the others by identity",
          "[publisher]") {
  constexpr size_t kClusters = 10000;
  Fixture f(kClusters);
  auto first = f.manager.update(f.base, f.resources, f.store.shard(0));
  CHECK(first.deferred == kClusters);  // WorkerClusters are made at first use
  CHECK(first.created == 0);
  const std::shared_ptr<WorkerCluster> kept = f.manager.get("c7");
  const std::shared_ptr<WorkerCluster> changed = f.manager.get("c42");
  const std::shared_ptr<WorkerCluster> removed = f.manager.get("c99");
  REQUIRE(kept);
  REQUIRE(changed);

  ClusterRuntimeConstSharedPtr c42 = f.replacement("c42");
  const auto t0 = std::chrono::steady_clock::now();
  DataPlaneConfigConstSharedPtr next =
      SnapshotPublisher::withClusters(*f.base, {c42}, {"c99"});
  const auto t1 = std::chrono::steady_clock::now();
  auto r = f.manager.update(next, f.resources, f.store.shard(0));
  const auto t2 = std::chrono::steady_clock::now();
  std::cout << "replacing 1 of " << kClusters << " clusters: next generation in "
            << std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count()
            << " us, worker update in "
            << std::chrono::duration_cast<std::chrono::microseconds>(t2 - t1).count()
            << " us (" << r.created << " WorkerCluster made, " << r.reused << " kept)\n";

  // O(1) objects made: one runtime (built by the caller), one WorkerCluster.
  CHECK(r.created == 1);
  CHECK(r.reused == kClusters - 2);
  CHECK(r.removed == 1);
  CHECK(next->clusters.size() == kClusters - 1);
  CHECK(next->clusters.at("c7") == f.base->clusters.at("c7"));  // same object
  CHECK(next->clusters.at("c42") == c42);
  CHECK(f.base->clusters.at("c42") != c42);  // the old generation is untouched
  CHECK(f.manager.get("c7") == kept);        // pools, idle connections, ejections kept
  CHECK(f.manager.get("c42") != changed);
  CHECK(f.manager.get("c42")->hosts()[0].endpoint.port() == 9);
  CHECK(f.manager.get("c99") == nullptr);
  // A request that held the removed cluster still has it, with its runtime.
  CHECK(removed->config().name == "c99");
  CHECK(next->generation == f.base->generation + 1);
}

TEST_CASE("a config with the same runtime objects changes nothing on a worker", "[publisher]") {
  Fixture f(3);
  f.manager.update(f.base, f.resources, f.store.shard(0));
  auto a = f.manager.get("c0");
  auto r = f.manager.update(SnapshotPublisher::withClusters(*f.base, {}, {}), f.resources,
                            f.store.shard(0));
  CHECK(r.created == 0);
  CHECK(r.reused == 3);
  CHECK(f.manager.get("c0") == a);
}

TEST_CASE("a cluster rebuilt from an equal config is a new object and gets a new WorkerCluster",
          "[publisher]") {
  Fixture f(2);
  f.manager.update(f.base, f.resources, f.store.shard(0));
  auto old = f.manager.get("c1");
  auto rebuilt = f.replacement("c1");
  f.manager.update(SnapshotPublisher::withClusters(*f.base, {rebuilt}, {}), f.resources,
                   f.store.shard(0));
  CHECK(f.manager.get("c1") != old);
  CHECK(&f.manager.get("c1")->runtime() == rebuilt.get());
}

TEST_CASE("an RDS table replaces the route table of the listeners that name it only",
          "[publisher]") {
  auto s = std::make_shared<config::Snapshot>();
  for (const char* name : {"rds_a", "rds_b", "inline"}) {
    config::ListenerConfig l;
    l.name = name;
    config::FilterChainConfig fc;
    config::HttpConnectionManagerConfig h;
    h.stat_prefix = name;
    if (std::string(name) != "inline") {
      h.route_source = config::HttpConnectionManagerConfig::RouteSource::Rds;
      h.route_config_name = std::string(name) == "rds_a" ? "routes_a" : "routes_b";
    }
    fc.http_connection_manager = h;
    l.filter_chains.push_back(fc);
    s->listeners.push_back(l);
  }
  stats::Store store(1);
  auto dp = DataPlaneConfig::build(s, store);
  REQUIRE(dp.ok());
  auto base = *dp;
  CHECK_FALSE((*base->findListener("rds_a"))->filter_chains[0].hcm->route_table);

  routing::RouteConfiguration rc;
  auto table = routing::RouteTable::create(rc);
  REQUIRE(table.ok());
  RouteTableConstSharedPtr t = *table;
  auto next = SnapshotPublisher::withRoute(*base, "routes_a", t);
  const auto& a = *next->findListener("rds_a");
  CHECK(a->filter_chains[0].hcm->route_table == t);
  CHECK(a != *base->findListener("rds_a"));
  CHECK(a->config == (*base->findListener("rds_a"))->config);  // same listener: connections follow
  CHECK(*next->findListener("rds_b") == *base->findListener("rds_b"));
  CHECK(*next->findListener("inline") == *base->findListener("inline"));
  CHECK(next->routes.at("routes_a") == t);
}

}  // namespace
}  // namespace turnout::proxy

namespace turnout::proxy {
namespace {

// A listener on `port` whose HCM has a routing_key filter reading `header`.
std::string routingKeyListener(int port, const std::string& header) {
  return absl::StrCat(R"(
  - name: l)",
                      port, R"(
    address: {socket_address: {address: 127.0.0.1, port_value: )",
                      port, R"(}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l)",
                      port, R"(
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}
          http_filters:
          - name: turnout.routing_key
            typed_config:
              "@type": type.googleapis.com/turnout.extensions.filters.http.routing_key.v3.RoutingKey
              sources: [{baggage_member: turnout-routing-key}, {header: )",
                      header, R"(}]
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router})");
}

TEST_CASE("HCMs with the same routing_key config share one compiled filter",
          "[publisher][memory]") {
  config::BootstrapLoadOptions options;
  options.config_yaml = "static_resources:\n  listeners:" + routingKeyListener(10001, "x-key") +
                        routingKeyListener(10002, "x-key") + routingKeyListener(10003, "x-other");
  auto loaded = config::SnapshotBuilder::load(options);
  REQUIRE(loaded.ok());
  stats::Store store(1);
  auto dp = DataPlaneConfig::build(loaded->snapshot, store);
  REQUIRE(dp.ok());
  auto filter = [&](const char* name) {
    const auto* l = (*dp)->findListener(name);
    REQUIRE(l != nullptr);
    REQUIRE((*l)->filter_chains[0].hcm->filters.size() == 1);
    return (*l)->filter_chains[0].hcm->filters[0].get();
  };
  CHECK(filter("l10001") == filter("l10002"));
  CHECK(filter("l10001") != filter("l10003"));
  const auto* other = dynamic_cast<const RoutingKeyFilter*>(filter("l10003"));
  REQUIRE(other != nullptr);
  CHECK(other->config().extraction.sources.size() == 2);
}

}  // namespace
}  // namespace turnout::proxy
