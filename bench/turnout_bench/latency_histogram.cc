#include "bench/turnout_bench/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace turnout::bench {

uint32_t LatencyHistogram::indexOf(uint64_t value) {
  if (value < kSubBucketCount) return static_cast<uint32_t>(value);
  value = std::min(value, kMaxValue);
  const uint32_t e = 63u - static_cast<uint32_t>(std::countl_zero(value));  // >= 11
  const uint32_t sub = static_cast<uint32_t>(value >> (e - (kSubBucketBits - 1)));  // [1024, 2048)
  return kSubBucketCount + (e - kSubBucketBits) * kHalfCount + (sub - kHalfCount);
}

uint64_t LatencyHistogram::lowestEquivalent(uint32_t index) {
  if (index < kSubBucketCount) return index;
  const uint32_t e = kSubBucketBits + (index - kSubBucketCount) / kHalfCount;
  const uint64_t sub = kHalfCount + (index - kSubBucketCount) % kHalfCount;
  return sub << (e - (kSubBucketBits - 1));
}

uint64_t LatencyHistogram::highestEquivalent(uint32_t index) {
  if (index < kSubBucketCount) return index;
  const uint32_t e = kSubBucketBits + (index - kSubBucketCount) / kHalfCount;
  return lowestEquivalent(index) + (uint64_t{1} << (e - (kSubBucketBits - 1))) - 1;
}

LatencyHistogram::LatencyHistogram() : counts_(kBucketCount, 0) {}

void LatencyHistogram::recordN(uint64_t value_ns, uint64_t count) {
  if (count == 0) return;
  counts_[indexOf(value_ns)] += count;
  count_ += count;
  min_ = std::min(min_, value_ns);
  max_ = std::max(max_, value_ns);
  if (value_ns > kMaxValue) clamped_ += count;
  sum_ += value_ns * count;
  const double v = static_cast<double>(value_ns);
  sum_sq_ += v * v * static_cast<double>(count);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (uint32_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  clamped_ += other.clamped_;
  sum_ += other.sum_;
  sum_sq_ += other.sum_sq_;
}

void LatencyHistogram::clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
  clamped_ = 0;
  sum_ = 0;
  sum_sq_ = 0;
}

double LatencyHistogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
}

double LatencyHistogram::stdev() const {
  if (count_ == 0) return 0.0;
  const double m = mean();
  const double var = sum_sq_ / static_cast<double>(count_) - m * m;
  return var > 0 ? std::sqrt(var) : 0.0;
}

uint64_t LatencyHistogram::valueAtPercentile(double p) const {
  if (count_ == 0) return 0;
  if (!(p > 0)) return min_;  // also NaN
  if (p >= 100) return max_;
  // Nearest rank; the factor keeps an exact product (99% of 1000 = 990) from
  // rounding up to the next rank through floating-point error.
  const double x = p / 100.0 * static_cast<double>(count_) * (1 - 1e-12);
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(x)));
  uint64_t seen = 0;
  for (uint32_t i = 0; i < kBucketCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(highestEquivalent(i), min_, max_);
  }
  return max_;
}

uint64_t LatencyHistogram::countAtOrBelow(uint64_t value) const {
  const uint32_t last = indexOf(value);
  uint64_t n = 0;
  for (uint32_t i = 0; i <= last; ++i) n += counts_[i];
  return n;
}

void LatencyHistogram::setExact(uint64_t min, uint64_t max, uint64_t sum, double sum_sq) {
  if (count_ == 0) return;
  min_ = min;
  max_ = max;
  sum_ = sum;
  sum_sq_ = sum_sq;
}

}  // namespace turnout::bench
