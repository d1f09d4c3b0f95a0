#include "bench/turnout_bench/rate_schedule.h"

#include <algorithm>
#include <cmath>

namespace turnout::bench {

RateSchedule::RateSchedule(double rate, uint32_t connections, uint32_t index)
    : ns_per_request_(1e9 / rate), connections_(connections), index_(index) {}

uint64_t RateSchedule::dueOffset(uint64_t n) const {
  // Global request number times the global interval, computed from the
  // number (not accumulated), so rounding never drifts over a long run.
  const long double k = static_cast<long double>(n) * connections_ + index_;
  return static_cast<uint64_t>(std::llround(k * static_cast<long double>(ns_per_request_)));
}

uint64_t RateSchedule::dueBefore(uint64_t offset_ns) const {
  // dueOffset grows with n: estimate the first n due at or after the offset,
  // then step over the rounding at either side.
  const long double k = static_cast<long double>(offset_ns) / ns_per_request_;
  const long double n = std::ceil((k - index_) / connections_);
  uint64_t first = n > 0 ? static_cast<uint64_t>(n) : 0;
  while (first > 0 && dueOffset(first - 1) >= offset_ns) --first;
  while (dueOffset(first) < offset_ns) ++first;
  return first;
}

uint64_t RateSchedule::pendingIn(uint64_t from_ns, uint64_t to_ns) const {
  const uint64_t from = std::max(sent_, dueBefore(from_ns));
  const uint64_t to = dueBefore(to_ns);
  return to > from ? to - from : 0;
}

}  // namespace turnout::bench
