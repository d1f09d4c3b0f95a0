#include "proxy/stats/histogram.h"

#include <bit>
#include <cmath>
#include <limits>

namespace turnout::proxy::stats {

uint32_t HistogramBuckets::index(uint64_t value_us) {
  if (value_us < kLinear) return static_cast<uint32_t>(value_us);
  if (value_us > kMaxValueUs) value_us = kMaxValueUs;
  const uint32_t e = 63u - static_cast<uint32_t>(std::countl_zero(value_us));  // >= 7
  const uint32_t sub = static_cast<uint32_t>(value_us >> (e - kSubBits)) & (kSub - 1);
  return kLinear + (e - 7) * kSub + sub;
}

uint64_t HistogramBuckets::lowerBound(uint32_t index) {
  if (index < kLinear) return index;
  const uint32_t e = 7 + (index - kLinear) / kSub;
  const uint64_t sub = (index - kLinear) % kSub;
  return (kSub + sub) << (e - kSubBits);
}

uint64_t HistogramBuckets::width(uint32_t index) {
  if (index < kLinear) return 1;
  const uint32_t e = 7 + (index - kLinear) / kSub;
  return uint64_t{1} << (e - kSubBits);
}

double HistogramSnapshot::quantileMs(double q) const {
  if (sample_count == 0 || counts.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double rank = q * static_cast<double>(sample_count);
  uint64_t before = 0;
  uint32_t last_nonempty = 0;
  for (uint32_t i = 0; i < counts.size(); ++i) {
    const uint64_t c = counts[i];
    if (c == 0) continue;
    last_nonempty = i;
    const double after = static_cast<double>(before + c);
    if (rank <= after) {
      const double frac = (rank - static_cast<double>(before)) / static_cast<double>(c);
      const double us = static_cast<double>(HistogramBuckets::lowerBound(i)) +
                        frac * static_cast<double>(HistogramBuckets::width(i));
      // Rounded to whole nanoseconds so the text renders as a short decimal.
      return std::round(us * 1000.0) / 1e6;
    }
    before += c;
  }
  return static_cast<double>(HistogramBuckets::lowerBound(last_nonempty) +
                             HistogramBuckets::width(last_nonempty)) /
         1000.0;
}

std::array<double, kSupportedQuantiles.size()> HistogramSnapshot::supportedQuantilesMs() const {
  std::array<double, kSupportedQuantiles.size()> out{};
  for (size_t i = 0; i < kSupportedQuantiles.size(); ++i) out[i] = quantileMs(kSupportedQuantiles[i]);
  return out;
}

uint64_t HistogramSnapshot::countAtOrBelowMs(double bound_ms) const {
  if (counts.empty()) return 0;
  const double bound_us = bound_ms * 1000.0;
  uint64_t total = 0;
  for (uint32_t i = 0; i < counts.size(); ++i) {
    if (static_cast<double>(HistogramBuckets::lowerBound(i)) > bound_us) break;
    total += counts[i];
  }
  return total;
}

}  // namespace turnout::proxy::stats
