#include "bench/turnout_bench/latency_histogram.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace turnout::bench {
namespace {

using H = LatencyHistogram;

// The rank of percentile `ppm` (parts per million: 99.9% = 999000) among n
// samples, by integer arithmetic: ceil(ppm * n / 1e6), at least 1.
uint64_t nearestRank(uint64_t ppm, uint64_t n) {
  return std::max<uint64_t>(1, (ppm * n + 999999) / 1000000);
}

std::vector<uint64_t> samples(const std::string& shape, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> v;
  v.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (shape == "uniform 1us..10ms") {
      v.push_back(std::uniform_int_distribution<uint64_t>(1000, 10000000)(rng));
    } else if (shape == "log-uniform 100ns..1h") {
      const double e = std::uniform_real_distribution<double>(2, 12.556)(rng);  // 10^12.556 ns ~ 1h
      v.push_back(static_cast<uint64_t>(std::pow(10.0, e)));
    } else if (shape == "loopback with 1% stalls of 1s") {
      const bool stall = std::uniform_int_distribution<int>(0, 99)(rng) == 0;
      v.push_back(stall ? 1000000000 + (rng() % 1000000)
                        : 40000 + std::uniform_int_distribution<uint64_t>(0, 20000)(rng));
    } else if (shape == "tiny exact values") {
      v.push_back(rng() % 3000);
    } else {  // constant
      v.push_back(123456789);
    }
  }
  return v;
}

TEST_CASE("histogram buckets tile the range without gaps, within 1/1024 of their value",
          "[bench][histogram]") {
  CHECK(H::lowestEquivalent(0) == 0);
  for (uint32_t i = 0; i < H::kBucketCount; ++i) {
    const uint64_t lo = H::lowestEquivalent(i);
    const uint64_t hi = H::highestEquivalent(i);
    REQUIRE(lo <= hi);
    REQUIRE(H::indexOf(lo) == i);
    REQUIRE(H::indexOf(hi) == i);
    if (i + 1 < H::kBucketCount) REQUIRE(H::lowestEquivalent(i + 1) == hi + 1);
    if (i < H::kSubBucketCount) {
      REQUIRE(lo == hi);  // below 2048 ns every value is exact
    } else {
      // 3 significant digits: the width is at most 1/1024 of the lower bound.
      REQUIRE((hi - lo + 1) * 1024 <= lo);
    }
  }
  CHECK(H::highestEquivalent(H::kBucketCount - 1) == H::kMaxValue);
  CHECK(H::indexOf(H::kMaxValue + 1) == H::kBucketCount - 1);
  CHECK(H::indexOf(UINT64_MAX) == H::kBucketCount - 1);
}

TEST_CASE("histogram covers 1 us to 1 hour without clamping", "[bench][histogram]") {
  H h;
  const uint64_t hour = 3600ull * 1000000000ull;
  h.record(1000);
  h.record(hour);
  CHECK(h.clamped() == 0);
  CHECK(h.min() == 1000);
  CHECK(h.max() == hour);
  CHECK(h.valueAtPercentile(50) == 1000);
  CHECK(h.valueAtPercentile(100) == hour);
  const uint64_t p75 = h.valueAtPercentile(75);
  CHECK(p75 == hour);  // clamped to the exact max, not the bucket's top
}

TEST_CASE("histogram clamps values above its range but keeps the exact max",
          "[bench][histogram]") {
  H h;
  h.record(H::kMaxValue + 12345);
  h.record(5);
  CHECK(h.count() == 2);
  CHECK(h.clamped() == 1);
  CHECK(h.max() == H::kMaxValue + 12345);
  CHECK(h.countAt(H::kBucketCount - 1) == 1);
  CHECK(h.valueAtPercentile(100) == H::kMaxValue + 12345);
  CHECK(h.valueAtPercentile(50) == 5);
  CHECK(h.countAtOrBelow(H::kMaxValue) == 2);
}

TEST_CASE("histogram percentiles equal the exact sorted values to within a bucket",
          "[bench][histogram]") {
  const std::string shape = GENERATE("uniform 1us..10ms", "log-uniform 100ns..1h",
                                     "loopback with 1% stalls of 1s", "tiny exact values",
                                     "constant");
  const size_t n = GENERATE(1, 7, 1000, 100001);
  CAPTURE(shape, n);
  std::vector<uint64_t> v = samples(shape, n, 42 + n);
  H h;
  for (uint64_t x : v) h.record(x);
  std::sort(v.begin(), v.end());
  REQUIRE(h.count() == n);
  CHECK(h.min() == v.front());
  CHECK(h.max() == v.back());
  for (uint64_t ppm : {0ull, 1ull, 10000ull, 250000ull, 500000ull, 750000ull, 900000ull, 990000ull,
                       999000ull, 999900ull, 999990ull, 999999ull, 1000000ull}) {
    CAPTURE(ppm);
    const uint64_t exact = v[nearestRank(ppm, n) - 1];
    const uint64_t got = h.valueAtPercentile(static_cast<double>(ppm) / 10000.0);
    if (ppm == 0) {
      CHECK(got == v.front());
      continue;
    }
    if (ppm == 1000000) {
      CHECK(got == v.back());
      continue;
    }
    // The top of the exact value's bucket, never past the recorded extremes.
    CHECK(got == std::clamp(H::highestEquivalent(H::indexOf(exact)), v.front(), v.back()));
    CHECK(got >= exact);
    CHECK(got - exact <= exact / 1024);
  }
}

TEST_CASE("histogram mean and stdev are exact", "[bench][histogram]") {
  const std::vector<uint64_t> v = samples("log-uniform 100ns..1h", 5000, 7);
  H h;
  double sum = 0;
  for (uint64_t x : v) {
    h.record(x);
    sum += static_cast<double>(x);
  }
  const double mean = sum / static_cast<double>(v.size());
  double var = 0;
  for (uint64_t x : v) var += (static_cast<double>(x) - mean) * (static_cast<double>(x) - mean);
  const double stdev = std::sqrt(var / static_cast<double>(v.size()));
  CHECK(h.mean() == Approx(mean).epsilon(1e-12));
  CHECK(h.stdev() == Approx(stdev).epsilon(1e-6));

  H same;
  same.recordN(250000, 40);
  CHECK(same.mean() == 250000);
  CHECK(same.stdev() == 0);
}

TEST_CASE("merged per-thread histograms equal one histogram of every sample",
          "[bench][histogram]") {
  const std::vector<uint64_t> v = samples("loopback with 1% stalls of 1s", 40000, 3);
  H all;
  std::vector<H> shards(4);
  for (size_t i = 0; i < v.size(); ++i) {
    all.record(v[i]);
    shards[i % 4].record(v[i]);
  }
  H merged;
  for (const H& s : shards) merged.merge(s);
  CHECK(merged.count() == all.count());
  CHECK(merged.min() == all.min());
  CHECK(merged.max() == all.max());
  CHECK(merged.sum() == all.sum());
  CHECK(merged.mean() == Approx(all.mean()));
  CHECK(merged.stdev() == Approx(all.stdev()));
  for (uint32_t i = 0; i < H::kBucketCount; ++i) REQUIRE(merged.countAt(i) == all.countAt(i));
  for (double p : {50.0, 90.0, 99.0, 99.9, 99.99}) {
    CHECK(merged.valueAtPercentile(p) == all.valueAtPercentile(p));
  }
}

TEST_CASE("histogram edge cases: empty, single sample, recordN, clear", "[bench][histogram]") {
  H empty;
  CHECK(empty.empty());
  CHECK(empty.min() == 0);
  CHECK(empty.max() == 0);
  CHECK(empty.mean() == 0);
  CHECK(empty.stdev() == 0);
  CHECK(empty.valueAtPercentile(50) == 0);
  CHECK(empty.valueAtPercentile(100) == 0);
  CHECK(empty.countAtOrBelow(UINT64_MAX) == 0);

  H one;
  one.record(777777);
  for (double p : {0.0, 0.001, 50.0, 99.999, 100.0}) CHECK(one.valueAtPercentile(p) == 777777);

  H merged = one;
  merged.merge(empty);
  CHECK(merged.count() == 1);
  CHECK(merged.min() == 777777);
  H into_empty;
  into_empty.merge(one);
  CHECK(into_empty.count() == 1);
  CHECK(into_empty.min() == 777777);
  CHECK(into_empty.max() == 777777);

  H n_times;
  n_times.recordN(5000, 3);
  n_times.recordN(9000, 0);
  H three;
  for (int i = 0; i < 3; ++i) three.record(5000);
  CHECK(n_times.count() == 3);
  CHECK(n_times.max() == 5000);
  CHECK(n_times.sum() == three.sum());
  CHECK(n_times.sumOfSquares() == three.sumOfSquares());

  n_times.clear();
  CHECK(n_times.empty());
  CHECK(n_times.max() == 0);
  CHECK(n_times.countAt(H::indexOf(5000)) == 0);
  n_times.record(10);
  CHECK(n_times.min() == 10);  // min is reset too
}

TEST_CASE("histogram counts samples at or below a value by bucket", "[bench][histogram]") {
  H h;
  for (uint64_t x : {100, 200, 300, 1000000, 2000000}) h.record(x);
  CHECK(h.countAtOrBelow(99) == 0);
  CHECK(h.countAtOrBelow(200) == 2);
  CHECK(h.countAtOrBelow(990000) == 3);
  // 999,999 shares its 512 ns wide bucket with 1,000,000.
  CHECK(h.countAtOrBelow(999999) == 4);
  CHECK(h.countAtOrBelow(1000000) == 4);
  CHECK(h.countAtOrBelow(UINT64_MAX) == 5);
}

TEST_CASE("histogram rebuilt from its buckets and exact moments reports the same",
          "[bench][histogram]") {
  const std::vector<uint64_t> v = samples("uniform 1us..10ms", 20000, 11);
  H h;
  for (uint64_t x : v) h.record(x);
  H back;
  h.forEachBucket([&](uint32_t i, uint64_t n) { back.recordN(H::lowestEquivalent(i), n); });
  back.setExact(h.min(), h.max(), h.sum(), h.sumOfSquares());
  CHECK(back.count() == h.count());
  CHECK(back.min() == h.min());
  CHECK(back.max() == h.max());
  CHECK(back.mean() == h.mean());
  CHECK(back.stdev() == h.stdev());
  for (double p : {1.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
    CHECK(back.valueAtPercentile(p) == h.valueAtPercentile(p));
  }
}

}  // namespace
}  // namespace turnout::bench
