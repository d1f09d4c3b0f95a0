#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace turnout::proxy::stats {

// Log-linear histogram buckets (HDR-style) over microseconds.
//
// Values 0..127 us get one bucket each; from 128 us up, every power of two
// [2^e, 2^(e+1)) is split into 64 equal sub-buckets, so a bucket is at most
// 1/64 (1.6%) of its lower bound wide and an interpolated quantile is within
// about 1% of the true value. Values are clamped to 2^32-1 us (about 71.6
// minutes), which covers 1 us .. 1 h with 1,728 buckets (13.5 KiB of counts).
struct HistogramBuckets {
  static constexpr uint32_t kLinear = 128;
  static constexpr uint32_t kSubBits = 6;
  static constexpr uint32_t kSub = 1u << kSubBits;  // 64
  static constexpr uint32_t kMaxExponent = 31;
  static constexpr uint64_t kMaxValueUs = (uint64_t{1} << 32) - 1;
  static constexpr uint32_t kCount = kLinear + (kMaxExponent - 6) * kSub;  // 1728

  static uint32_t index(uint64_t value_us);
  static uint64_t lowerBound(uint32_t index);
  static uint64_t width(uint32_t index);
};

// Envoy's supported_quantiles, as fractions.
inline constexpr std::array<double, 10> kSupportedQuantiles = {0,   0.25, 0.5,   0.75,  0.9,
                                                               0.95, 0.99, 0.995, 0.999, 1};
// Envoy's default histogram bucket bounds (ms), used for Prometheus `le` labels.
inline constexpr std::array<double, 19> kPrometheusBuckets = {
    0.5,   1,     5,     10,     25,     50,     100,     250,     500,    1000,
    2500,  5000,  10000, 30000,  60000,  300000, 600000,  1800000, 3600000};

// A merged, immutable view of one histogram (all shards), built by the reader.
struct HistogramSnapshot {
  std::vector<uint64_t> counts;  // HistogramBuckets::kCount entries, or empty if no samples
  uint64_t sample_count = 0;
  uint64_t sum_us = 0;

  bool empty() const { return sample_count == 0; }
  // Interpolated quantile in milliseconds; NaN when empty. q in [0, 1].
  double quantileMs(double q) const;
  // kSupportedQuantiles, in milliseconds.
  std::array<double, kSupportedQuantiles.size()> supportedQuantilesMs() const;
  // Count of samples <= bound_ms (cumulative, Prometheus style).
  uint64_t countAtOrBelowMs(double bound_ms) const;
  double sumMs() const { return static_cast<double>(sum_us) / 1000.0; }
};

}  // namespace turnout::proxy::stats
