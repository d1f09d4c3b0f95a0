#include "proxy/stats/store.h"

#include <utility>

namespace turnout::proxy::stats {

Shard::HistogramData::HistogramData() {
  for (auto& c : counts) c.store(0, std::memory_order_relaxed);
}

Shard::Shard()
    : scalars_(new std::atomic<uint64_t>[kMaxScalars]()),
      used_(new std::atomic<uint8_t>[kMaxScalars]()),
      histograms_(new std::atomic<HistogramData*>[kMaxHistograms]()) {}

Shard::~Shard() {
  for (uint32_t i = 0; i < kMaxHistograms; ++i) delete histograms_[i].load(std::memory_order_acquire);
}

void Shard::recordMicros(StatId histogram, uint64_t value_us) {
  auto& slot = histograms_[histogram.index];
  HistogramData* data = slot.load(std::memory_order_relaxed);
  if (data == nullptr) {
    // Only this shard's thread writes the slot, so no compare-exchange is needed.
    data = new HistogramData();
    slot.store(data, std::memory_order_release);
  }
  auto& bucket = data->counts[HistogramBuckets::index(value_us)];
  bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  data->sum_us.store(data->sum_us.load(std::memory_order_relaxed) + value_us,
                     std::memory_order_relaxed);
  data->sample_count.store(data->sample_count.load(std::memory_order_relaxed) + 1,
                           std::memory_order_relaxed);
}

bool Shard::addHistogramTo(uint32_t histogram, HistogramSnapshot& out) const {
  const HistogramData* data = histograms_[histogram].load(std::memory_order_acquire);
  if (data == nullptr) return false;
  if (out.counts.empty()) out.counts.assign(HistogramBuckets::kCount, 0);
  uint64_t n = 0;
  for (uint32_t i = 0; i < HistogramBuckets::kCount; ++i) {
    const uint64_t c = data->counts[i].load(std::memory_order_relaxed);
    out.counts[i] += c;
    n += c;
  }
  // The bucket sum, not sample_count, so quantiles and counts always agree
  // even when a record is in flight.
  out.sample_count += n;
  out.sum_us += data->sum_us.load(std::memory_order_relaxed);
  return true;
}

Store::Store(size_t workers) {
  for (size_t i = 0; i < workers + 1; ++i) shards_.push_back(std::make_unique<Shard>());
  scalars_.push_back(Meta{"", StatKind::Counter});
  histograms_.emplace_back();
  counter_baseline_.push_back(0);
  interval_.emplace_back();
  at_last_flush_.emplace_back();
}

Store::~Store() = default;

StatId Store::registerScalar(std::string name, StatKind kind) {
  if (auto it = scalar_index_.find(name); it != scalar_index_.end()) {
    if (scalars_[it->second].kind == kind) return StatId{it->second};
    ++overflow_;
    return StatId{0};
  }
  if (histogram_index_.contains(name) || scalars_.size() >= Shard::kMaxScalars) {
    ++overflow_;
    return StatId{0};
  }
  const auto index = static_cast<uint32_t>(scalars_.size());
  scalar_index_.emplace(name, index);
  scalars_.push_back(Meta{std::move(name), kind});
  counter_baseline_.push_back(0);
  return StatId{index};
}

StatId Store::counter(std::string name) { return registerScalar(std::move(name), StatKind::Counter); }
StatId Store::gauge(std::string name) { return registerScalar(std::move(name), StatKind::Gauge); }

StatId Store::histogram(std::string name) {
  if (auto it = histogram_index_.find(name); it != histogram_index_.end()) return StatId{it->second};
  if (scalar_index_.contains(name) || histograms_.size() >= Shard::kMaxHistograms) {
    ++overflow_;
    return StatId{0};
  }
  const auto index = static_cast<uint32_t>(histograms_.size());
  histogram_index_.emplace(name, index);
  histograms_.push_back(std::move(name));
  interval_.emplace_back();
  at_last_flush_.emplace_back();
  return StatId{index};
}

uint64_t Store::mergedScalar(uint32_t index) const {
  uint64_t sum = 0;
  for (const auto& s : shards_) sum += s->scalar(index);
  return sum;
}

bool Store::mergedUsed(uint32_t index) const {
  for (const auto& s : shards_) {
    if (s->used(index)) return true;
  }
  return false;
}

HistogramSnapshot Store::mergedHistogram(uint32_t index) const {
  HistogramSnapshot out;
  for (const auto& s : shards_) s->addHistogramTo(index, out);
  return out;
}

void Store::resetCounters() {
  for (uint32_t i = 1; i < scalars_.size(); ++i) {
    if (scalars_[i].kind == StatKind::Counter) counter_baseline_[i] = mergedScalar(i);
  }
}

void Store::flushHistogramIntervals() {
  for (uint32_t i = 1; i < histograms_.size(); ++i) {
    HistogramSnapshot now = mergedHistogram(i);
    HistogramSnapshot interval;
    if (!now.counts.empty()) {
      interval.counts = now.counts;
      const HistogramSnapshot& prev = at_last_flush_[i];
      if (!prev.counts.empty()) {
        for (size_t b = 0; b < interval.counts.size(); ++b) interval.counts[b] -= prev.counts[b];
      }
      interval.sample_count = now.sample_count - prev.sample_count;
      interval.sum_us = now.sum_us - prev.sum_us;
      if (interval.sample_count == 0) interval.counts.clear();
    }
    interval_[i] = std::move(interval);
    at_last_flush_[i] = std::move(now);
  }
}

void Store::forEachScalar(const std::function<void(const ScalarView&)>& fn) const {
  for (uint32_t i = 1; i < scalars_.size(); ++i) {
    ScalarView v;
    v.name = scalars_[i].name;
    v.kind = scalars_[i].kind;
    const uint64_t raw = mergedScalar(i);
    if (v.kind == StatKind::Counter) {
      v.counter = raw - counter_baseline_[i];
    } else {
      v.gauge = static_cast<int64_t>(raw);
    }
    v.used = mergedUsed(i);
    fn(v);
  }
}

void Store::forEachHistogram(const std::function<void(const HistogramView&)>& fn) const {
  for (uint32_t i = 1; i < histograms_.size(); ++i) {
    const HistogramSnapshot cumulative = mergedHistogram(i);
    HistogramView v;
    v.name = histograms_[i];
    v.cumulative = &cumulative;
    v.interval = &interval_[i];
    v.used = !cumulative.empty();
    fn(v);
  }
}

uint64_t Store::counterValue(std::string_view name) const {
  auto it = scalar_index_.find(std::string(name));
  if (it == scalar_index_.end()) return 0;
  return mergedScalar(it->second) - counter_baseline_[it->second];
}

int64_t Store::gaugeValue(std::string_view name) const {
  auto it = scalar_index_.find(std::string(name));
  if (it == scalar_index_.end()) return 0;
  return static_cast<int64_t>(mergedScalar(it->second));
}

HistogramSnapshot Store::histogramValue(std::string_view name) const {
  auto it = histogram_index_.find(std::string(name));
  if (it == histogram_index_.end()) return {};
  return mergedHistogram(it->second);
}

}  // namespace turnout::proxy::stats
