#include "proxy/upstream/dns_refresher.h"

#include <chrono>
#include <memory>
#include <string>
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
using Type = config::ClusterConfig::Type;

// One DNS cluster "d" with one lb_endpoint `name`:80, refreshed every 20 ms.
struct Harness {
  explicit Harness(std::string name, Type type = Type::StrictDns) : store(1) {
    config.name = "d";
    config.type = type;
    config.dns_refresh_rate = 20ms;
    config.dns_lookup_family = config::ClusterConfig::DnsLookupFamily::V4Only;
    dp = std::make_shared<DataPlaneConfig>();
    ClusterRuntime rt;
    rt.config = &config;
    rt.stats = stats::makeClusterStats(store, "d", "");
    ResolveTarget t;
    t.dns_name = std::move(name);
    t.host.port = 80;
    rt.dns_targets.push_back(t);
    rt.hosts = std::make_shared<HostSet>();
    dp->clusters.insert_or_assign(rt.config->name, std::make_shared<ClusterRuntime>(std::move(rt)));
    dataplane = dp;
  }
  const ClusterRuntime& cluster() const { return *dataplane->clusters.begin()->second; }
  // The cluster as if its name had resolved to `ips` before.
  void resolvedBefore(const std::vector<std::string>& ips) {
    auto set = std::make_shared<HostSet>();
    set->hosts = updateHostList({}, cluster().dns_targets[0], ips, config.type, false).hosts;
    std::const_pointer_cast<ClusterRuntime>(dp->clusters.begin()->second)->hosts = std::move(set);
  }
  void start() {
    refresher = DnsRefresher::create(io, dataplane, store.mainShard(),
                                     [this](const ClusterRuntime&, HostSetConstSharedPtr hosts) {
                                       published.push_back(std::move(hosts));
                                     });
    refresher->start();
  }
  template <typename Pred>
  bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
    return test::eventually(io, pred, limit);
  }
  uint64_t counter(const std::string& n) const { return store.counterValue("cluster.d." + n); }

  asio::io_context io{1};
  stats::Store store;
  config::ClusterConfig config;
  std::shared_ptr<DataPlaneConfig> dp;  // built here, handed out as `dataplane`
  DataPlaneConfigConstSharedPtr dataplane;
  DnsRefresherPtr refresher;
  std::vector<HostSetConstSharedPtr> published;
};

}  // namespace

TEST_CASE("a DNS cluster is resolved again every dns_refresh_rate", "[dns]") {
  Harness h("localhost");
  h.resolvedBefore({"127.0.0.1"});
  h.start();
  REQUIRE(h.eventually([&] { return h.counter("update_attempt") >= 3; }));
  CHECK(h.counter("update_success") >= 2);
  CHECK(h.counter("update_no_rebuild") >= 2);
  CHECK(h.counter("update_failure") == 0);
  CHECK(h.published.empty());  // same answer: nothing to publish
  CHECK(h.refresher->hosts(h.cluster()) == h.cluster().hosts);
}

TEST_CASE("a changed answer is published and becomes the cluster's host set", "[dns]") {
  Harness h("localhost");
  h.resolvedBefore({"127.0.0.9"});
  h.start();
  REQUIRE(h.eventually([&] { return !h.published.empty(); }));
  REQUIRE(h.published[0]->hosts.size() == 1);
  CHECK(h.published[0]->hosts[0].address == "127.0.0.1:80");
  CHECK(h.counter("membership_change") == 1);
  CHECK(h.store.gaugeValue("cluster.d.membership_total") == 1);
  CHECK(h.refresher->hosts(h.cluster()) == h.published[0]);
  // The next answers are the same: no more publishing.
  const uint64_t attempts = h.counter("update_attempt");
  REQUIRE(h.eventually([&] { return h.counter("update_attempt") >= attempts + 2; }));
  CHECK(h.published.size() == 1);
}

TEST_CASE("a failed resolution keeps the hosts and is tried again", "[dns]") {
  Harness h("");  // getaddrinfo refuses an empty name at once
  h.resolvedBefore({"127.0.0.9"});
  const HostSetConstSharedPtr before = h.cluster().hosts;
  h.start();
  REQUIRE(h.eventually([&] { return h.counter("update_failure") >= 2; }));
  CHECK(h.counter("update_success") == 0);
  CHECK(h.published.empty());
  CHECK(h.refresher->hosts(h.cluster()) == before);
}

TEST_CASE("after stop nothing is resolved or published", "[dns]") {
  Harness h("localhost");
  h.resolvedBefore({"127.0.0.9"});
  h.start();
  h.refresher->stop();
  const uint64_t attempts = h.counter("update_attempt");
  h.eventually([] { return false; }, 200ms);
  CHECK(h.counter("update_attempt") == attempts);
  CHECK(h.published.empty());
}

TEST_CASE("one resolution is counted as Envoy counts its update stats", "[dns]") {
  Harness strict("svc");
  Harness logical("svc", Type::LogicalDns);
  const HostSet empty;
  const std::vector<asio::ip::address> one = {asio::ip::make_address("10.0.0.1")};
  stats::Shard& s1 = strict.store.mainShard();
  stats::Shard& s2 = logical.store.mainShard();
  const ResolveTarget& t1 = strict.cluster().dns_targets[0];
  const ResolveTarget& t2 = logical.cluster().dns_targets[0];

  // A resolver error: a failure, whatever the type.
  ResolutionApplied r =
      applyResolution(strict.cluster(), t1, asio::error::host_not_found, {}, empty, s1);
  CHECK_FALSE(r.ok);
  CHECK(r.changed == nullptr);
  CHECK(strict.counter("update_failure") == 1);
  // No address: STRICT_DNS succeeds (with no hosts), LOGICAL_DNS fails.
  r = applyResolution(strict.cluster(), t1, {}, {}, empty, s1);
  CHECK(r.ok);
  CHECK(r.changed == nullptr);
  CHECK(strict.counter("update_success") == 1);
  CHECK(strict.counter("update_no_rebuild") == 1);
  r = applyResolution(logical.cluster(), t2, {}, {}, empty, s2);
  CHECK_FALSE(r.ok);
  CHECK(logical.counter("update_failure") == 1);
  // A new address: a new host set, a membership change.
  r = applyResolution(strict.cluster(), t1, {}, one, empty, s1);
  REQUIRE(r.changed != nullptr);
  const HostSetConstSharedPtr next = r.changed;
  CHECK(next->hosts.size() == 1);
  CHECK(strict.counter("membership_change") == 1);
  CHECK(strict.counter("update_attempt") == 3);
  CHECK(strict.counter("update_success") == 2);
  // The same answer again: success without a rebuild.
  r = applyResolution(strict.cluster(), t1, {}, one, *next, s1);
  CHECK(r.ok);
  CHECK(r.changed == nullptr);
  CHECK(strict.counter("update_no_rebuild") == 2);
}

}  // namespace turnout::proxy
