#include "proxy/upstream/outlier_detector.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "config/snapshot/snapshot.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"
#include "proxy/upstream/cluster_manager.h"

namespace turnout::proxy {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// One cluster "c" of `n` hosts with outlier detection `od`, its detector on
// a main io_context with an injected clock and random draw, and two workers'
// counters per host. The detector's published ejected sets land in
// `published`.
struct Detector {
  Detector(size_t n, config::OutlierDetectionConfig od) : store(2) {
    config.name = "c";
    config.outlier_detection = od;
    std::vector<HostDescription> hosts;
    for (size_t i = 0; i < n; ++i) {
      HostDescription h;
      h.ip = "10.0.0." + std::to_string(i + 1);
      h.port = 80;
      h.address = h.ip + ":80";
      hosts.push_back(h);
    }
    auto dp = std::make_shared<DataPlaneConfig>();
    ClusterRuntime rt;
    rt.config = &config;
    rt.hosts = makeHostSet(config, std::move(hosts));
    rt.stats = stats::makeClusterStats(store, "c", "");
    dp->clusters.insert_or_assign(rt.config->name, std::make_shared<ClusterRuntime>(std::move(rt)));
    dataplane = dp;
    detector = OutlierDetector::create(
        main, dataplane, store,
        [this](const ClusterRuntime&, OutlierEjectionsConstSharedPtr e) {
          published.push_back(std::move(e));
        },
        [this] { return now; }, [this] { return draw; });
  }

  const ClusterRuntime& cluster() const { return *dataplane->clusters.begin()->second; }
  const HostDescription& host(size_t i) const { return cluster().hosts->hosts[i]; }
  OutlierHostMonitor& monitor(size_t i) const { return *host(i).state->outlier; }

  // `ok` successes and `failed` failures of host `i`, spread over both workers.
  void record(size_t i, uint64_t ok, uint64_t failed) {
    for (uint64_t k = 0; k < ok; ++k) monitor(i).worker(k % 2).record(true);
    for (uint64_t k = 0; k < failed; ++k) monitor(i).worker(k % 2).record(false);
  }
  void interval() {
    now += cluster().config->outlier_detection->interval;
    detector->runInterval(cluster());
  }
  bool ejected(size_t i) const {
    return !published.empty() && published.back()->contains(host(i).state.get());
  }
  uint64_t counter(const std::string& name) const {
    return store.counterValue("cluster.c.outlier_detection." + name);
  }
  int64_t active() const { return store.gaugeValue("cluster.c.outlier_detection.ejections_active"); }

  asio::io_context main{1};
  stats::Store store;
  config::ClusterConfig config;
  DataPlaneConfigConstSharedPtr dataplane;
  Clock::time_point now = Clock::time_point() + 1h;
  uint64_t draw = 0;
  std::vector<OutlierEjectionsConstSharedPtr> published;
  OutlierDetectorPtr detector;
};

config::OutlierDetectionConfig successRate(uint32_t max_ejection_percent = 100) {
  config::OutlierDetectionConfig od;
  od.max_ejection_percent = max_ejection_percent;
  return od;
}

}  // namespace

TEST_CASE("of five hosts, the one failing half its requests is ejected by success rate",
          "[outlier]") {
  Detector d(5, successRate(20));
  for (size_t i = 0; i < 4; ++i) d.record(i, 100, 0);
  d.record(4, 50, 50);  // rates 100,100,100,100,50: mean 90, stdev 20, threshold 52
  d.interval();
  REQUIRE(d.published.size() == 1);
  CHECK(d.published[0]->hosts.size() == 1);
  CHECK(d.ejected(4));
  CHECK(d.monitor(4).ejected());
  CHECK(d.counter("ejections_detected_success_rate") == 1);
  CHECK(d.counter("ejections_enforced_success_rate") == 1);
  CHECK(d.counter("ejections_enforced_total") == 1);
  CHECK(d.counter("ejections_success_rate") == 1);
  CHECK(d.counter("ejections_total") == 1);
  CHECK(d.active() == 1);
}

TEST_CASE("the success-rate threshold is the mean less stdev_factor standard deviations",
          "[outlier]") {
  auto run = [](std::vector<uint64_t> ok, uint32_t stdev_factor) {
    config::OutlierDetectionConfig od = successRate();
    od.success_rate_stdev_factor = stdev_factor;
    auto d = std::make_unique<Detector>(ok.size(), od);
    for (size_t i = 0; i < ok.size(); ++i) d->record(i, ok[i], 100 - ok[i]);
    d->interval();
    return d;
  };
  // mean 94, stdev 2: threshold 90.2 at 1.9, 88 at 3.0.
  CHECK(run({95, 95, 95, 95, 90}, 1900)->ejected(4));
  auto wide = run({95, 95, 95, 95, 90}, 3000);
  CHECK(wide->published.empty());
  CHECK(wide->counter("ejections_detected_success_rate") == 0);
  // mean 92, stdev 4: threshold 84.4; 85 is not below it.
  CHECK(run({95, 95, 95, 85, 90}, 1900)->published.empty());
}

TEST_CASE("hosts below success_rate_request_volume are not judged by success rate",
          "[outlier]") {
  Detector d(5, successRate());
  for (size_t i = 0; i < 4; ++i) d.record(i, 99, 0);
  d.record(4, 10, 89);  // 99 requests each: below the default volume of 100
  d.interval();
  CHECK(d.published.empty());
  CHECK(d.counter("ejections_detected_success_rate") == 0);
  // The counts are per interval: the next interval starts from zero.
  for (size_t i = 0; i < 4; ++i) d.record(i, 1, 0);
  d.record(4, 0, 1);
  d.interval();
  CHECK(d.published.empty());
}

TEST_CASE("fewer than success_rate_minimum_hosts hosts with enough volume eject nobody",
          "[outlier]") {
  Detector d(5, successRate());
  for (size_t i = 0; i < 3; ++i) d.record(i, 100, 0);
  d.record(3, 0, 100);
  d.record(4, 1, 0);  // too few requests: only 4 hosts qualify
  d.interval();
  CHECK(d.published.empty());
}

TEST_CASE("enforcing_success_rate 0 detects the outlier without ejecting it", "[outlier]") {
  config::OutlierDetectionConfig od = successRate();
  od.enforcing_success_rate = 0;
  Detector d(5, od);
  for (size_t i = 0; i < 4; ++i) d.record(i, 100, 0);
  d.record(4, 50, 50);
  d.interval();
  CHECK(d.published.empty());
  CHECK(d.counter("ejections_detected_success_rate") == 1);
  CHECK(d.counter("ejections_enforced_success_rate") == 0);
  CHECK(d.active() == 0);
}

TEST_CASE("a partial enforcing percentage ejects when the random draw falls below it",
          "[outlier]") {
  config::OutlierDetectionConfig od = successRate();
  od.enforcing_success_rate = 30;
  Detector d(5, od);
  d.draw = 130;  // 130 % 100 = 30: not below 30
  for (size_t i = 0; i < 4; ++i) d.record(i, 100, 0);
  d.record(4, 50, 50);
  d.interval();
  CHECK(d.published.empty());
  d.draw = 29;
  for (size_t i = 0; i < 4; ++i) d.record(i, 100, 0);
  d.record(4, 50, 50);
  d.interval();
  CHECK(d.ejected(4));
  CHECK(d.counter("ejections_detected_success_rate") == 2);
  CHECK(d.counter("ejections_enforced_success_rate") == 1);
}

TEST_CASE("max_ejection_percent bounds how many hosts are ejected at once", "[outlier]") {
  Detector d(10, successRate(10));
  for (size_t i = 0; i < 8; ++i) d.record(i, 100, 0);
  d.record(8, 50, 50);  // mean 90, stdev 20, threshold 52: both outliers are detected
  d.record(9, 50, 50);
  d.interval();
  CHECK(d.counter("ejections_detected_success_rate") == 2);
  // (0 + 1) / 10 = 10 % may be ejected, (1 + 1) / 10 = 20 % may not.
  CHECK(d.counter("ejections_enforced_success_rate") == 1);
  CHECK(d.counter("ejections_overflow") == 1);
  CHECK(d.active() == 1);
  REQUIRE(d.published.size() == 1);
  CHECK(d.published[0]->hosts.size() == 1);
}

TEST_CASE("Envoy's default max_ejection_percent ejects nobody among five hosts unless "
          "always_eject_one_host",
          "[outlier]") {
  Detector d(5, successRate(10));
  for (size_t i = 0; i < 4; ++i) d.record(i, 100, 0);
  d.record(4, 50, 50);
  d.interval();
  CHECK(d.published.empty());
  CHECK(d.counter("ejections_overflow") == 1);

  config::OutlierDetectionConfig od = successRate(10);
  od.always_eject_one_host = true;
  Detector e(5, od);
  for (size_t i = 0; i < 4; ++i) e.record(i, 100, 0);
  e.record(4, 50, 50);
  e.interval();
  CHECK(e.ejected(4));
}

TEST_CASE("failure percentage is detected by default and ejects only when enforced",
          "[outlier]") {
  config::OutlierDetectionConfig od = successRate();
  od.success_rate_request_volume = 1000;  // keep the success-rate check out of it
  SECTION("enforcing_failure_percentage defaults to 0") {
    Detector d(5, od);
    for (size_t i = 0; i < 4; ++i) d.record(i, 50, 0);
    d.record(4, 7, 43);  // 86 % failures, threshold 85 %
    d.interval();
    CHECK(d.counter("ejections_detected_failure_percentage") == 1);
    CHECK(d.counter("ejections_enforced_failure_percentage") == 0);
    CHECK(d.published.empty());
  }
  SECTION("enforced") {
    od.enforcing_failure_percentage = 100;
    Detector d(5, od);
    for (size_t i = 0; i < 4; ++i) d.record(i, 50, 0);
    d.record(3, 8, 42);  // 84 %: below the threshold
    d.record(4, 7, 43);
    d.interval();
    CHECK(d.counter("ejections_detected_failure_percentage") == 1);
    CHECK(d.counter("ejections_enforced_failure_percentage") == 1);
    CHECK(d.ejected(4));
    CHECK_FALSE(d.ejected(3));
  }
  SECTION("below failure_percentage_request_volume") {
    od.enforcing_failure_percentage = 100;
    Detector d(5, od);
    for (size_t i = 0; i < 4; ++i) d.record(i, 49, 0);
    d.record(4, 0, 49);
    d.interval();
    CHECK(d.published.empty());
    CHECK(d.counter("ejections_detected_failure_percentage") == 0);
  }
}

TEST_CASE("consecutive 5xx seen by a worker reach the main thread and eject the host",
          "[outlier]") {
  config::OutlierDetectionConfig od;
  od.consecutive_5xx = 3;
  od.max_ejection_percent = 50;
  Detector d(2, od);
  OutlierHostMonitor& m = d.monitor(0);
  CHECK_FALSE(m.recordConsecutive(true));
  CHECK_FALSE(m.recordConsecutive(false));  // a success starts the count again
  CHECK_FALSE(m.recordConsecutive(true));
  CHECK_FALSE(m.recordConsecutive(true));
  REQUIRE(m.recordConsecutive(true));
  OutlierHostMonitor::notifyConsecutive5xx(d.host(0).state->outlier);
  CHECK(d.published.empty());  // decided on the main thread, not the caller's
  d.main.poll();
  REQUIRE(d.published.size() == 1);
  CHECK(d.ejected(0));
  CHECK(m.consecutive5xx() == 0);
  CHECK(d.counter("ejections_detected_consecutive_5xx") == 1);
  CHECK(d.counter("ejections_enforced_consecutive_5xx") == 1);
  CHECK(d.counter("ejections_consecutive_5xx") == 1);
  CHECK(d.counter("ejections_total") == 1);
}

TEST_CASE("an ejection lasts base_ejection_time times its backoff, up to max_ejection_time",
          "[outlier]") {
  config::OutlierDetectionConfig od;
  od.consecutive_5xx = 1;
  od.max_ejection_percent = 100;
  od.interval = 10s;
  od.base_ejection_time = 30s;
  od.max_ejection_time = 50s;
  Detector d(2, od);
  auto eject = [&] {
    REQUIRE(d.monitor(0).recordConsecutive(true));
    d.detector->onConsecutive5xx(d.host(0).state->outlier);
    REQUIRE(d.ejected(0));
  };
  eject();
  d.interval();
  d.interval();
  CHECK(d.ejected(0));  // 20 s
  d.interval();
  CHECK_FALSE(d.ejected(0));  // 30 s: back
  CHECK(d.active() == 0);
  eject();  // the second ejection in a row: 60 s, capped at 50 s
  for (int i = 0; i < 4; ++i) d.interval();
  CHECK(d.ejected(0));  // 40 s
  d.interval();
  CHECK_FALSE(d.ejected(0));  // 50 s
}

TEST_CASE("enforcing_consecutive_5xx 0 detects consecutive 5xx without ejecting",
          "[outlier]") {
  config::OutlierDetectionConfig od;
  od.consecutive_5xx = 2;
  od.max_ejection_percent = 100;
  od.enforcing_consecutive_5xx = 0;
  Detector d(2, od);
  REQUIRE_FALSE(d.monitor(0).recordConsecutive(true));
  REQUIRE(d.monitor(0).recordConsecutive(true));
  d.detector->onConsecutive5xx(d.host(0).state->outlier);
  CHECK_FALSE(d.ejected(0));
  CHECK(d.counter("ejections_detected_consecutive_5xx") == 1);
  CHECK(d.counter("ejections_enforced_consecutive_5xx") == 0);
  CHECK(d.active() == 0);
}

TEST_CASE("max_ejection_time_jitter adds the random draw, up to the jitter, to an ejection",
          "[outlier]") {
  config::OutlierDetectionConfig od;
  od.consecutive_5xx = 1;
  od.max_ejection_percent = 100;
  od.interval = 10s;
  od.base_ejection_time = 30s;
  od.max_ejection_time_jitter = 15s;
  Detector d(2, od);
  d.draw = 10000;  // enforced (10000 % 100 = 0 < 100); jitter 10000 % 15001 ms = 10 s
  REQUIRE(d.monitor(0).recordConsecutive(true));
  d.detector->onConsecutive5xx(d.host(0).state->outlier);
  REQUIRE(d.ejected(0));
  for (int i = 0; i < 3; ++i) d.interval();
  CHECK(d.ejected(0));  // 30 s: base_ejection_time alone would have ended here
  d.interval();
  CHECK_FALSE(d.ejected(0));  // 40 s = 30 s + 10 s of jitter
}

TEST_CASE("a host removed by DNS leaves the ejected count, a new one gets a monitor",
          "[outlier]") {
  config::OutlierDetectionConfig od;
  od.consecutive_5xx = 1;
  od.max_ejection_percent = 100;
  Detector d(2, od);
  REQUIRE(d.monitor(0).recordConsecutive(true));
  d.detector->onConsecutive5xx(d.host(0).state->outlier);
  CHECK(d.active() == 1);
  HostDescription fresh;
  fresh.ip = "10.0.0.9";
  fresh.port = 80;
  fresh.address = "10.0.0.9:80";
  HostSet next;
  next.hosts = {d.host(1), fresh};
  d.detector->updateHosts(d.cluster(), next);
  CHECK(d.active() == 0);
  REQUIRE(next.hosts[1].state->outlier != nullptr);
  CHECK(next.hosts[0].state->outlier == d.host(1).state->outlier);
  CHECK(d.detector->ejections(d.cluster())->hosts.empty());
}

TEST_CASE("a worker records outcomes in its own counters and skips ejected hosts",
          "[outlier][pool]") {
  config::OutlierDetectionConfig od;
  Detector d(3, od);
  stats::Store& store = d.store;
  auto resources = std::make_shared<ClusterResources>();
  WorkerCluster wc(d.cluster(), d.cluster().hosts, resources, store.shard(1), 1);
  wc.recordOutcome(wc.hosts()[0], false);
  wc.recordOutcome(wc.hosts()[0], true);
  CHECK(d.monitor(0).worker(1).total.load() == 2);
  CHECK(d.monitor(0).worker(1).success.load() == 1);
  CHECK(d.monitor(0).worker(0).total.load() == 0);

  auto e = std::make_shared<OutlierEjections>();
  e->hosts.push_back(d.host(1).state.get());
  wc.updateEjections(e);
  for (int i = 0; i < 30; ++i) CHECK(wc.chooseHost(LoadBalancerContext{}) != &wc.hosts()[1]);
  wc.updateEjections(std::make_shared<OutlierEjections>());
  bool picked = false;
  for (int i = 0; i < 3; ++i) picked |= wc.chooseHost(LoadBalancerContext{}) == &wc.hosts()[1];
  CHECK(picked);
}

}  // namespace turnout::proxy
