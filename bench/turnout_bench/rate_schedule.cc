#include "bench/turnout_bench/rate_schedule.h"

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

}  // namespace turnout::bench
