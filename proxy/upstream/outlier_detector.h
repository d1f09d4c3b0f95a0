#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "proxy/common/asio.h"

#include "proxy/server/data_plane_config.h"
#include "proxy/stats/store.h"
#include "proxy/upstream/host_set.h"

namespace turnout::proxy {

// One worker's request outcomes for one host. Written only by that worker
// (relaxed load + store: no lock-prefixed read-modify-write on the request
// path), read by the main thread. The counts only grow; the detector keeps
// its previous reading and takes the difference each interval. One cache
// line each, so workers never share a line.
struct alignas(64) OutlierWorkerCounters {
  std::atomic<uint64_t> total{0};
  std::atomic<uint64_t> success{0};

  void record(bool ok) {
    total.store(total.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (ok) success.store(success.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

// The outlier state of one host of a cluster with outlier_detection (Envoy's
// DetectorHostMonitorImpl), reached by workers through
// HostSharedState::outlier. Created by the main thread's OutlierDetector.
//
// Workers record every request's outcome in their own counters
// (worker(i).record) and count consecutive 5xx in a shared atomic: a success
// only reads it (and clears it when non-zero); a failure increments it, and
// the failure that reaches the threshold posts the host to the main thread,
// which decides the ejection (Envoy's notifyMainThreadConsecutiveError).
// Ejection itself is main-thread state; workers learn of it from the
// OutlierEjections posted to them.
class OutlierHostMonitor {
 public:
  OutlierHostMonitor(size_t workers, uint32_t consecutive_5xx);

  OutlierWorkerCounters& worker(size_t index) { return counters_[index < workers_ ? index : 0]; }
  const OutlierWorkerCounters& worker(size_t index) const {
    return counters_[index < workers_ ? index : 0];
  }
  size_t workers() const { return workers_; }

  // Any worker. True for the failure that reaches consecutive_5xx: the
  // caller then calls notifyConsecutive5xx().
  bool recordConsecutive(bool failure) {
    if (!failure) {
      if (consecutive_5xx_.load(std::memory_order_relaxed) != 0) {
        consecutive_5xx_.store(0, std::memory_order_relaxed);
      }
      return false;
    }
    const uint32_t n = consecutive_5xx_.fetch_add(1, std::memory_order_relaxed) + 1;
    return threshold_ != 0 && n == threshold_;
  }
  void resetConsecutive() { consecutive_5xx_.store(0, std::memory_order_relaxed); }
  uint32_t consecutive5xx() const { return consecutive_5xx_.load(std::memory_order_relaxed); }

  // Any worker: posts the host to the detector on the main thread (dropped
  // when the detector is gone). `self` is this monitor.
  static void notifyConsecutive5xx(std::shared_ptr<OutlierHostMonitor> self);

  // Main thread only: ejected by outlier detection now (for /clusters).
  bool ejected() const { return detector.ejected; }

  // Set once by the detector, before the host reaches a worker.
  void setNotify(std::function<void(std::shared_ptr<OutlierHostMonitor>)> notify) {
    notify_ = std::move(notify);
  }

  // The detector's bookkeeping (Envoy's DetectorHostMonitorImpl fields).
  // Main thread only.
  struct DetectorState {
    bool ejected = false;
    std::chrono::steady_clock::time_point ejected_at{};
    std::chrono::milliseconds jitter{0};
    uint32_t backoff = 0;  // Envoy's ejectTimeBackoff
    uint32_t num_ejections = 0;
    bool unejected_once = false;
    std::chrono::steady_clock::time_point last_unejection{};
    uint64_t seen_total = 0;  // the counters' sums at the previous interval
    uint64_t seen_success = 0;
  };
  DetectorState detector;

 private:
  size_t workers_;
  std::unique_ptr<OutlierWorkerCounters[]> counters_;
  std::atomic<uint32_t> consecutive_5xx_{0};
  uint32_t threshold_;
  std::function<void(std::shared_ptr<OutlierHostMonitor>)> notify_;
};
using OutlierHostMonitorSharedPtr = std::shared_ptr<OutlierHostMonitor>;

// The hosts of one cluster that outlier detection ejects, as the main thread
// decided at one moment. Immutable; posted to every worker.
struct OutlierEjections {
  std::vector<const HostSharedState*> hosts;  // sorted

  bool contains(const HostSharedState* s) const;
};
using OutlierEjectionsConstSharedPtr = std::shared_ptr<const OutlierEjections>;

// Envoy's outlier detector (source/common/upstream/outlier_detection_impl.cc)
// for every cluster of one DataPlaneConfig that has outlier_detection.
//
// Threading, as Envoy's: everything here runs on the MAIN thread. Workers
// only write their own OutlierWorkerCounters and post consecutive-5xx
// detections. Every `interval` (per cluster) the detector sums the workers'
// counters, unejects hosts whose ejection time is over, runs the
// success-rate and failure-percentage checks, and, when the set of ejected
// hosts changed, calls `publish` with the new OutlierEjections (the caller
// posts it to every worker, as DnsRefresher's host sets are).
//
// Rules (Envoy's): a request is a failure when the upstream answered 5xx or
// the request failed locally (connect failure, reset, timeout). Success
// rate: among non-ejected hosts with at least success_rate_request_volume
// requests in the interval, if there are at least success_rate_minimum_hosts
// of them, a host whose success rate is below mean - stdev_factor/1000 *
// stdev is detected. Failure percentage: among hosts with at least
// failure_percentage_request_volume requests, if there are at least
// failure_percentage_minimum_hosts, a host whose failure percentage is at
// least failure_percentage_threshold is detected. A detection ejects when
// (ejected + 1) / hosts <= max_ejection_percent (or always_eject_one_host
// and none is ejected; else ejections_overflow) and a random draw passes the
// type's enforcing_* percentage. An ejection lasts min(base_ejection_time x
// backoff, max_ejection_time) + jitter, checked at each interval; backoff
// grows with each ejection and shrinks by one per interval the host stays
// healthy.
//
// Stats (cluster.<name>.outlier_detection.): ejections_active,
// ejections_enforced_total, ejections_overflow,
// ejections_{detected,enforced}_{consecutive_5xx,success_rate,
// failure_percentage}, and Envoy's deprecated ejections_total,
// ejections_consecutive_5xx, ejections_success_rate.
class OutlierDetector {
 public:
  using Publish =
      std::function<void(const ClusterRuntime& cluster, OutlierEjectionsConstSharedPtr ejections)>;
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  using Random = std::function<uint64_t()>;

  // Creates monitors for every host of every cluster with outlier_detection
  // in `config` (call before the config reaches a worker), one counter per
  // worker of `store`, and registers their outlier_detection stats. `clock`
  // and `random` default to steady_clock and a seeded mt19937_64. `main` and
  // `store` must outlive the detector.
  static std::unique_ptr<OutlierDetector> create(asio::io_context& main,
                                                 DataPlaneConfigConstSharedPtr config,
                                                 stats::Store& store, Publish publish,
                                                 Clock clock = {}, Random random = {});
  ~OutlierDetector();
  OutlierDetector(const OutlierDetector&) = delete;
  OutlierDetector& operator=(const OutlierDetector&) = delete;

  // Arms each cluster's interval timer. stop() cancels them; idempotent.
  void start();
  void stop();

  // A new host set of `cluster` (DNS), before it is published: its new hosts
  // get monitors, removed hosts are forgotten (and leave the ejected count).
  void updateHosts(const ClusterRuntime& cluster, const HostSet& hosts);

  // One interval of `cluster`, now (the timer calls it; tests call it).
  void runInterval(const ClusterRuntime& cluster);
  // A consecutive-5xx detection for `monitor` (what a worker posts).
  void onConsecutive5xx(const OutlierHostMonitorSharedPtr& monitor);

  // The ejected hosts of `cluster` now.
  OutlierEjectionsConstSharedPtr ejections(const ClusterRuntime& cluster) const;

  struct State;  // shared with timers and workers' posts

 private:
  explicit OutlierDetector(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

using OutlierDetectorPtr = std::unique_ptr<OutlierDetector>;

}  // namespace turnout::proxy
