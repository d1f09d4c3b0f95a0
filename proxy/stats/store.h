#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proxy/stats/histogram.h"

namespace turnout::proxy::stats {

// A registered stat. Counters and gauges share one index space, histograms
// have their own. Index 0 of each space is the sink: writes to it are
// accepted and never shown (what registration returns past capacity).
struct StatId {
  uint32_t index = 0;
  bool operator==(const StatId&) const = default;
};

enum class StatKind : uint8_t { Counter, Gauge, Histogram };

// One thread's slice of every stat. A shard is written by exactly one thread
// (its worker, or the main thread for the main shard) with relaxed load+store,
// so the hot path has no lock-prefixed read-modify-write; the admin (main)
// thread reads every shard with relaxed loads and sums them. Values read
// mid-update are at worst one increment stale.
class Shard {
 public:
  static constexpr uint32_t kMaxScalars = 65536;
  static constexpr uint32_t kMaxHistograms = 4096;

  Shard();
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Counter += n.
  void inc(StatId counter, uint64_t n = 1) {
    auto& v = scalars_[counter.index];
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    markUsed(counter.index);
  }
  // Gauge += delta (this shard's contribution; the total is the sum of shards).
  void add(StatId gauge, int64_t delta) {
    auto& v = scalars_[gauge.index];
    v.store(v.load(std::memory_order_relaxed) + static_cast<uint64_t>(delta),
            std::memory_order_relaxed);
    markUsed(gauge.index);
  }
  void sub(StatId gauge, int64_t delta) { add(gauge, -delta); }
  // Sets this shard's contribution to a gauge. Use it for gauges that only one
  // shard writes (server.*, membership_*), so the sum is the value.
  void set(StatId gauge, int64_t value) {
    scalars_[gauge.index].store(static_cast<uint64_t>(value), std::memory_order_relaxed);
    markUsed(gauge.index);
  }
  // Records a sample in milliseconds (Envoy's unit for every histogram).
  void record(StatId histogram, uint64_t value_ms) { recordMicros(histogram, value_ms * 1000); }
  // Records a sample in microseconds, for sub-millisecond precision.
  void recordMicros(StatId histogram, uint64_t value_us);

  // Readers (any thread; relaxed).
  uint64_t scalar(uint32_t index) const {
    return scalars_[index].load(std::memory_order_relaxed);
  }
  bool used(uint32_t index) const { return used_[index].load(std::memory_order_relaxed) != 0; }
  // Adds this shard's samples of `histogram` into `out` (sized kCount).
  bool addHistogramTo(uint32_t histogram, HistogramSnapshot& out) const;

 private:
  struct HistogramData {
    std::atomic<uint64_t> counts[HistogramBuckets::kCount];
    std::atomic<uint64_t> sample_count{0};
    std::atomic<uint64_t> sum_us{0};
    HistogramData();
  };

  void markUsed(uint32_t index) {
    if (used_[index].load(std::memory_order_relaxed) == 0) {
      used_[index].store(1, std::memory_order_relaxed);
    }
  }

  std::unique_ptr<std::atomic<uint64_t>[]> scalars_;
  std::unique_ptr<std::atomic<uint8_t>[]> used_;
  // Allocated by the owning thread on first record, published with release.
  std::unique_ptr<std::atomic<HistogramData*>[]> histograms_;
};

// The process's stats: a name table (main thread only) plus one Shard per
// worker and one for the main thread. Created in main() before workers start
// and outlives them. Registration happens on the main thread; the returned
// ids reach workers inside posted immutable data (R8g), so workers never
// touch the name table.
class Store {
 public:
  // `workers` shards for workers 0..workers-1 plus the main-thread shard.
  explicit Store(size_t workers);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Registration (main thread). Registering an existing name of the same kind
  // returns its id; past capacity, or with a clashing kind, the sink id, and
  // overflowCount() goes up.
  StatId counter(std::string name);
  StatId gauge(std::string name);
  StatId histogram(std::string name);

  size_t workerCount() const { return shards_.size() - 1; }
  Shard& shard(size_t worker) { return *shards_[worker]; }
  Shard& mainShard() { return *shards_.back(); }

  // Admin (main thread).
  uint64_t overflowCount() const { return overflow_; }
  // Envoy's /reset_counters: counters read 0 afterwards; gauges and
  // histograms are untouched. Implemented as a baseline so workers' relaxed
  // stores never race with it.
  void resetCounters();
  // Ends a histogram interval (Envoy's stats flush, every 5 s by default): the
  // samples since the previous call become each histogram's interval values.
  void flushHistogramIntervals();

  struct ScalarView {
    std::string_view name;
    StatKind kind;  // Counter or Gauge
    uint64_t counter = 0;
    int64_t gauge = 0;
    bool used = false;
  };
  struct HistogramView {
    std::string_view name;
    const HistogramSnapshot* cumulative;
    const HistogramSnapshot* interval;  // empty until the first flush
    bool used = false;
  };
  // Visits counters and gauges merged across shards, in registration order.
  void forEachScalar(const std::function<void(const ScalarView&)>& fn) const;
  void forEachHistogram(const std::function<void(const HistogramView&)>& fn) const;

  // Merged values by name, for tests and the server (main thread).
  uint64_t counterValue(std::string_view name) const;
  int64_t gaugeValue(std::string_view name) const;
  HistogramSnapshot histogramValue(std::string_view name) const;

 private:
  struct Meta {
    std::string name;
    StatKind kind;
  };
  StatId registerScalar(std::string name, StatKind kind);
  uint64_t mergedScalar(uint32_t index) const;
  bool mergedUsed(uint32_t index) const;
  HistogramSnapshot mergedHistogram(uint32_t index) const;

  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<Meta> scalars_;     // index 0 is the sink
  std::vector<std::string> histograms_;  // index 0 is the sink
  absl::flat_hash_map<std::string, uint32_t> scalar_index_;
  absl::flat_hash_map<std::string, uint32_t> histogram_index_;
  std::vector<uint64_t> counter_baseline_;
  std::vector<HistogramSnapshot> interval_;       // per histogram, last complete interval
  std::vector<HistogramSnapshot> at_last_flush_;  // cumulative at the last flush
  uint64_t overflow_ = 0;
};

}  // namespace turnout::proxy::stats
