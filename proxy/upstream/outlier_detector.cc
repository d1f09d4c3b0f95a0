#include "proxy/upstream/outlier_detector.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "proxy/common/log.h"

namespace turnout::proxy {
namespace {

constexpr const char* kLogComponent = "upstream";

enum class EjectionType { Consecutive5xx, SuccessRate, FailurePercentage };

struct HostEntry {
  std::shared_ptr<HostSharedState> state;  // keeps the host's identity alive
  OutlierHostMonitorSharedPtr monitor;
};

// The detector of one cluster. Main thread only.
struct ClusterDetector {
  size_t index = 0;  // into DataPlaneConfig::clusters
  const ClusterRuntime* runtime = nullptr;
  const config::OutlierDetectionConfig* config = nullptr;
  stats::OutlierDetectionStats stats;
  std::vector<HostEntry> hosts;
  size_t ejected = 0;
  std::unique_ptr<SteadyTimer> timer;
};

}  // namespace

OutlierHostMonitor::OutlierHostMonitor(size_t workers, uint32_t consecutive_5xx)
    : workers_(std::max<size_t>(1, workers)),
      counters_(new OutlierWorkerCounters[workers_]),
      threshold_(consecutive_5xx) {}

void OutlierHostMonitor::notifyConsecutive5xx(std::shared_ptr<OutlierHostMonitor> self) {
  if (self && self->notify_) self->notify_(self);
}

bool OutlierEjections::contains(const HostSharedState* s) const {
  return std::binary_search(hosts.begin(), hosts.end(), s);
}

struct OutlierDetector::State : std::enable_shared_from_this<OutlierDetector::State> {
  State(asio::io_context& io_context, DataPlaneConfigConstSharedPtr cfg, stats::Store& st,
        Publish p, Clock c, Random r)
      : io(io_context),
        config(std::move(cfg)),
        store(st),
        shard(st.mainShard()),
        publish(std::move(p)),
        clock(std::move(c)),
        random(std::move(r)) {}

  asio::io_context& io;
  DataPlaneConfigConstSharedPtr config;
  stats::Store& store;
  stats::Shard& shard;
  Publish publish;
  Clock clock;
  Random random;
  bool started = false;
  bool stopped = false;
  std::vector<std::unique_ptr<ClusterDetector>> clusters;

  ClusterDetector* find(const ClusterRuntime& c) {
    for (auto& d : clusters) {
      if (d->runtime == &c) return d.get();
    }
    return nullptr;
  }

  OutlierHostMonitorSharedPtr monitorFor(ClusterDetector& d, HostSharedState& s) {
    if (s.outlier) return s.outlier;
    auto m = std::make_shared<OutlierHostMonitor>(store.workerCount(), d.config->consecutive_5xx);
    std::weak_ptr<State> weak = weak_from_this();
    const size_t cluster = d.index;
    asio::io_context* main = &io;
    m->setNotify([weak, cluster, main](std::shared_ptr<OutlierHostMonitor> monitor) {
      asio::post(*main, [weak, cluster, monitor = std::move(monitor)] {
        std::shared_ptr<State> self = weak.lock();
        if (!self || self->stopped) return;
        for (auto& c : self->clusters) {
          if (c->index == cluster) self->onConsecutive5xx(*c, monitor);
        }
      });
    });
    s.outlier = m;
    return m;
  }

  void addHosts(ClusterDetector& d, const HostSet& set) {
    std::vector<HostEntry> next;
    next.reserve(set.hosts.size());
    size_t ejected = 0;
    for (const HostDescription& h : set.hosts) {
      OutlierHostMonitorSharedPtr m = monitorFor(d, *h.state);
      if (m->detector.ejected) ++ejected;
      next.push_back(HostEntry{h.state, std::move(m)});
    }
    if (ejected != d.ejected) shard.add(d.stats.ejections_active, static_cast<int64_t>(ejected) -
                                                                      static_cast<int64_t>(d.ejected));
    d.ejected = ejected;
    d.hosts = std::move(next);
  }

  OutlierEjectionsConstSharedPtr current(const ClusterDetector& d) const {
    auto e = std::make_shared<OutlierEjections>();
    for (const auto& h : d.hosts) {
      if (h.monitor->detector.ejected) e->hosts.push_back(h.state.get());
    }
    std::sort(e->hosts.begin(), e->hosts.end());
    return e;
  }

  void publishNow(ClusterDetector& d) {
    if (publish) publish(*d.runtime, current(d));
  }

  // Envoy's featureEnabled(key, percent): a draw below `percent` of 100.
  bool enforced(uint32_t percent) { return percent >= 100 || random() % 100 < percent; }

  // Envoy's DetectorImpl::ejectHost. True when the host was ejected.
  bool eject(ClusterDetector& d, OutlierHostMonitor& m, EjectionType type,
             std::chrono::steady_clock::time_point now) {
    const config::OutlierDetectionConfig& c = *d.config;
    const double max_percent = std::min<uint32_t>(100, c.max_ejection_percent);
    const double percent = 100.0 * static_cast<double>(d.ejected + 1) /
                           static_cast<double>(std::max<size_t>(1, d.hosts.size()));
    bool should = percent <= max_percent;
    if (c.always_eject_one_host) should = should || d.ejected == 0;
    if (!should) {
      shard.inc(d.stats.ejections_overflow);
      return false;
    }
    if (type != EjectionType::FailurePercentage) shard.inc(d.stats.ejections_total);
    uint32_t enforcing = 0;
    stats::StatId enforced_stat;
    switch (type) {
      case EjectionType::Consecutive5xx:
        enforcing = c.enforcing_consecutive_5xx;
        enforced_stat = d.stats.ejections_enforced_consecutive_5xx;
        break;
      case EjectionType::SuccessRate:
        enforcing = c.enforcing_success_rate;
        enforced_stat = d.stats.ejections_enforced_success_rate;
        break;
      case EjectionType::FailurePercentage:
        enforcing = c.enforcing_failure_percentage;
        enforced_stat = d.stats.ejections_enforced_failure_percentage;
        break;
    }
    if (!enforced(enforcing)) return false;
    ++d.ejected;
    shard.add(d.stats.ejections_active, 1);
    shard.inc(d.stats.ejections_enforced_total);
    shard.inc(enforced_stat);
    m.detector.ejected = true;
    ++m.detector.num_ejections;
    m.detector.ejected_at = now;
    const uint64_t jitter_ms = static_cast<uint64_t>(c.max_ejection_time_jitter.count());
    m.detector.jitter = std::chrono::milliseconds(jitter_ms > 0 ? random() % (jitter_ms + 1) : 0);
    if (c.base_ejection_time * m.detector.backoff < c.max_ejection_time + c.base_ejection_time) {
      ++m.detector.backoff;
    }
    return true;
  }

  void uneject(ClusterDetector& d, OutlierHostMonitor& m, std::chrono::steady_clock::time_point now) {
    m.detector.ejected = false;
    --d.ejected;
    shard.sub(d.stats.ejections_active, 1);
    m.resetConsecutive();
    m.detector.unejected_once = true;
    m.detector.last_unejection = now;
  }

  void onConsecutive5xx(ClusterDetector& d, const OutlierHostMonitorSharedPtr& monitor) {
    auto it = std::find_if(d.hosts.begin(), d.hosts.end(),
                           [&](const HostEntry& h) { return h.monitor == monitor; });
    if (it == d.hosts.end() || monitor->detector.ejected) return;  // removed, or ejected meanwhile
    shard.inc(d.stats.ejections_detected_consecutive_5xx);
    const bool ejected = eject(d, *monitor, EjectionType::Consecutive5xx, clock());
    shard.inc(d.stats.ejections_consecutive_5xx);
    monitor->resetConsecutive();
    if (ejected) publishNow(d);
  }

  void runInterval(ClusterDetector& d) {
    const config::OutlierDetectionConfig& c = *d.config;
    const auto now = clock();
    bool changed = false;
    for (auto& h : d.hosts) {
      OutlierHostMonitor& m = *h.monitor;
      if (!m.detector.ejected) continue;
      const auto duration =
          std::min(c.base_ejection_time * m.detector.backoff, c.max_ejection_time) + m.detector.jitter;
      if (duration <= now - m.detector.ejected_at) {
        uneject(d, m, now);
        changed = true;
      }
    }

    // The interval's outcomes per host (Envoy swaps its success-rate buckets).
    struct Sample {
      OutlierHostMonitor* monitor;
      double success_rate;
    };
    std::vector<Sample> by_rate, by_failures;
    double rate_sum = 0;
    for (auto& h : d.hosts) {
      OutlierHostMonitor& m = *h.monitor;
      uint64_t total = 0, success = 0;
      for (size_t w = 0; w < m.workers(); ++w) {
        total += m.worker(w).total.load(std::memory_order_relaxed);
        success += m.worker(w).success.load(std::memory_order_relaxed);
      }
      const uint64_t volume = total - m.detector.seen_total;
      const uint64_t ok = success - m.detector.seen_success;
      m.detector.seen_total = total;
      m.detector.seen_success = success;
      if (m.detector.ejected || volume == 0) continue;
      const double rate = static_cast<double>(ok) * 100.0 / static_cast<double>(volume);
      if (volume >= c.success_rate_request_volume) {
        by_rate.push_back(Sample{&m, rate});
        rate_sum += rate;
      }
      if (volume >= c.failure_percentage_request_volume) by_failures.push_back(Sample{&m, rate});
    }
    const bool enough_hosts = d.hosts.size() >= c.success_rate_minimum_hosts ||
                              d.hosts.size() >= c.failure_percentage_minimum_hosts;
    if (enough_hosts && !by_rate.empty() && by_rate.size() >= c.success_rate_minimum_hosts) {
      // Envoy's successRateEjectionThreshold: mean - factor * stdev.
      const double n = static_cast<double>(by_rate.size());
      const double mean = rate_sum / n;
      double variance = 0;
      for (const Sample& s : by_rate) variance += (s.success_rate - mean) * (s.success_rate - mean);
      const double stdev = std::sqrt(variance / n);
      const double threshold = mean - (c.success_rate_stdev_factor / 1000.0) * stdev;
      for (const Sample& s : by_rate) {
        if (s.success_rate >= threshold) continue;
        shard.inc(d.stats.ejections_success_rate);
        shard.inc(d.stats.ejections_detected_success_rate);
        changed |= eject(d, *s.monitor, EjectionType::SuccessRate, now);
      }
    }
    if (enough_hosts && !by_failures.empty() &&
        by_failures.size() >= c.failure_percentage_minimum_hosts) {
      for (const Sample& s : by_failures) {
        if (100.0 - s.success_rate < c.failure_percentage_threshold) continue;
        shard.inc(d.stats.ejections_detected_failure_percentage);
        // A host the success-rate check just ejected is not ejected twice.
        if (s.monitor->detector.ejected) continue;
        changed |= eject(d, *s.monitor, EjectionType::FailurePercentage, now);
      }
    }

    // Hosts that stayed healthy for an interval since their last ejection
    // shorten their next one.
    for (auto& h : d.hosts) {
      OutlierHostMonitor& m = *h.monitor;
      if (!m.detector.ejected && m.detector.unejected_once && now - m.detector.last_unejection >= c.interval &&
          m.detector.backoff > 0) {
        --m.detector.backoff;
      }
    }
    if (changed) publishNow(d);
  }

  void arm(ClusterDetector* d) {
    d->timer->expires_after(d->config->interval);
    d->timer->async_wait([weak = weak_from_this(), d](const boost::system::error_code& ec) {
      if (ec) return;
      std::shared_ptr<State> self = weak.lock();
      if (!self || self->stopped) return;
      self->runInterval(*d);
      self->arm(d);
    });
  }
};

std::unique_ptr<OutlierDetector> OutlierDetector::create(asio::io_context& main,
                                                         DataPlaneConfigConstSharedPtr config,
                                                         stats::Store& store, Publish publish,
                                                         Clock clock, Random random) {
  if (!clock) clock = [] { return std::chrono::steady_clock::now(); };
  if (!random) {
    auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
    random = [rng] { return (*rng)(); };
  }
  auto state = std::make_shared<State>(main, std::move(config), store, std::move(publish),
                                       std::move(clock), std::move(random));
  if (state->config) {
    size_t i = 0;
    for (const auto& [cluster_name, cluster_ptr] : state->config->clusters) {
      const ClusterRuntime& rt = *cluster_ptr;
      ++i;
      if (!rt.config->outlier_detection) continue;
      auto d = std::make_unique<ClusterDetector>();
      d->index = i - 1;
      d->runtime = &rt;
      d->config = &*rt.config->outlier_detection;
      d->stats = stats::makeOutlierDetectionStats(store, rt.config->name, rt.config->alt_stat_name);
      d->timer = std::make_unique<SteadyTimer>(main);
      if (rt.hosts) state->addHosts(*d, *rt.hosts);
      state->clusters.push_back(std::move(d));
    }
  }
  return std::unique_ptr<OutlierDetector>(new OutlierDetector(std::move(state)));
}

OutlierDetector::OutlierDetector(std::shared_ptr<State> state) : state_(std::move(state)) {}

OutlierDetector::~OutlierDetector() { stop(); }

void OutlierDetector::start() {
  if (state_->started || state_->stopped) return;
  state_->started = true;
  for (auto& d : state_->clusters) state_->arm(d.get());
}

void OutlierDetector::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  for (auto& d : state_->clusters) d->timer->cancel();
}

void OutlierDetector::updateHosts(const ClusterRuntime& cluster, const HostSet& hosts) {
  ClusterDetector* d = state_->find(cluster);
  if (d == nullptr) return;
  const size_t before = d->ejected;
  state_->addHosts(*d, hosts);
  if (before != d->ejected) {
    TURNOUT_LOG(debug, kLogComponent, "cluster '{}': {} ejected hosts after a host-set update",
                cluster.config->name, d->ejected);
  }
}

void OutlierDetector::runInterval(const ClusterRuntime& cluster) {
  if (ClusterDetector* d = state_->find(cluster)) state_->runInterval(*d);
}

void OutlierDetector::onConsecutive5xx(const OutlierHostMonitorSharedPtr& monitor) {
  for (auto& d : state_->clusters) state_->onConsecutive5xx(*d, monitor);
}

OutlierEjectionsConstSharedPtr OutlierDetector::ejections(const ClusterRuntime& cluster) const {
  ClusterDetector* d = state_->find(cluster);
  return d != nullptr ? state_->current(*d) : std::make_shared<OutlierEjections>();
}

}  // namespace turnout::proxy
