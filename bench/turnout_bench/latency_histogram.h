#pragma once

// An HDR-style latency histogram for turnout-bench: log-linear buckets over
// nanoseconds with 3 significant digits (every bucket is at most 1/1024 of
// its lower bound wide), covering 0 .. 2^42-1 ns (about 73 minutes, so 1 us ..
// 1 h with room). Values above are clamped to the top bucket and counted in
// clamped(). Exact count, min, max, sum and sum of squares are kept beside
// the buckets, so mean and stdev are exact and max is never rounded.
//
// One histogram per worker thread, written only by that thread (no locks or
// atomics on the recording path); the runner merges them once the workers
// have stopped. Same layout as HdrHistogram with sub_bucket_count = 2048, so
// percentiles follow its convention: the value at percentile p is the highest
// value equivalent to the sample of rank ceil(p/100 * count), clamped to the
// exact [min, max].

#include <cstdint>
#include <vector>

namespace turnout::bench {

class LatencyHistogram {
 public:
  static constexpr uint32_t kSubBucketBits = 11;                // 2048 sub-buckets
  static constexpr uint32_t kSubBucketCount = 1u << kSubBucketBits;
  static constexpr uint32_t kHalfCount = kSubBucketCount / 2;  // 1024 per power of two
  static constexpr uint32_t kMaxExponent = 41;                 // top bucket: [2^41, 2^42)
  static constexpr uint64_t kMaxValue = (uint64_t{1} << (kMaxExponent + 1)) - 1;
  static constexpr uint32_t kBucketCount =
      kSubBucketCount + (kMaxExponent - kSubBucketBits + 1) * kHalfCount;  // 33792
  static constexpr int kSignificantDigits = 3;

  // The bucket of `value` (clamped to kMaxValue).
  static uint32_t indexOf(uint64_t value);
  // The smallest and largest values that share bucket `index`.
  static uint64_t lowestEquivalent(uint32_t index);
  static uint64_t highestEquivalent(uint32_t index);

  LatencyHistogram();

  void record(uint64_t value_ns) { recordN(value_ns, 1); }
  // Records `count` samples of `value_ns`.
  void recordN(uint64_t value_ns, uint64_t count);
  // Adds every sample of `other`.
  void merge(const LatencyHistogram& other);
  void clear();

  uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  // Exact extremes of what was recorded (clamped values included as given);
  // 0 when empty.
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  // Samples above kMaxValue (recorded as kMaxValue in the buckets).
  uint64_t clamped() const { return clamped_; }
  double mean() const;
  // Population standard deviation.
  double stdev() const;
  // The value at percentile `p` in [0, 100] (see the header comment); 0 when
  // empty. p = 100 is max(), p = 0 is min().
  uint64_t valueAtPercentile(double p) const;
  // Samples <= value (bucket resolution: whole buckets up to value's bucket).
  uint64_t countAtOrBelow(uint64_t value) const;

  uint64_t countAt(uint32_t index) const { return counts_[index]; }
  // Calls fn(index, count) for every non-empty bucket, in increasing order.
  template <typename Fn>
  void forEachBucket(Fn&& fn) const {
    for (uint32_t i = 0; i < kBucketCount; ++i) {
      if (counts_[i] != 0) fn(i, counts_[i]);
    }
  }

  // The raw moments, for a report that must be re-merged exactly.
  uint64_t sum() const { return sum_; }
  double sumOfSquares() const { return sum_sq_; }
  // Restores a histogram written out as buckets plus exact moments (a report
  // read back). Buckets come through recordN(lowestEquivalent(i), n); then
  // this overrides the moments the buckets cannot carry.
  void setExact(uint64_t min, uint64_t max, uint64_t sum, double sum_sq);

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  uint64_t clamped_ = 0;
  uint64_t sum_ = 0;   // ns; 2^64 ns is 584 years of summed latency
  double sum_sq_ = 0;  // ns^2
};

}  // namespace turnout::bench
