#include "bench/turnout_bench/rate_schedule.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

namespace turnout::bench {
namespace {

TEST_CASE("open-loop schedule of one connection is one request per 1/rate", "[bench][schedule]") {
  RateSchedule s(1000, 1, 0);
  CHECK(s.dueOffset(0) == 0);
  CHECK(s.dueOffset(1) == 1000000);
  CHECK(s.dueOffset(999) == 999000000);
  CHECK(s.next() == 0);
  CHECK(s.next() == 1000000);
  CHECK(s.issued() == 2);
}

TEST_CASE("open-loop schedules of all connections form one 1/rate grid", "[bench][schedule]") {
  const uint32_t conns = GENERATE(1u, 3u, 4u, 64u);
  const double rate = 2000;  // 500 us apart over the run
  std::vector<uint64_t> all;
  for (uint32_t c = 0; c < conns; ++c) {
    RateSchedule s(rate, conns, c);
    for (int n = 0; n < 100; ++n) {
      const uint64_t due = s.next();
      // Each connection's own timetable: one request every conns / rate.
      CHECK(due == (uint64_t{c} + uint64_t(n) * conns) * 500000);
      all.push_back(due);
    }
  }
  std::sort(all.begin(), all.end());
  for (size_t k = 0; k < all.size(); ++k) REQUIRE(all[k] == k * 500000);
}

TEST_CASE("open-loop schedule does not drift for rates that do not divide a second",
          "[bench][schedule]") {
  RateSchedule s(3, 7, 5);
  // Global request number 7 * 3e6 + 5 is due at (21e6 + 5) / 3 seconds.
  const uint64_t n = 3000000;
  const long double expect_ns = (static_cast<long double>(n) * 7 + 5) * 1e9L / 3;
  CHECK(static_cast<long double>(s.dueOffset(n)) == Approx(static_cast<double>(expect_ns)).margin(1));
}

TEST_CASE("open-loop schedule offers rate x duration requests in a window", "[bench][schedule]") {
  const double rate = GENERATE(10.0, 333.0, 12345.0);
  const uint32_t conns = 8;
  const uint64_t window_ns = 2000000000;  // 2 s
  uint64_t due_in_window = 0;
  for (uint32_t c = 0; c < conns; ++c) {
    RateSchedule s(rate, conns, c);
    while (s.next() < window_ns) ++due_in_window;
  }
  CHECK(static_cast<double>(due_in_window) == Approx(rate * 2).margin(1));
}

}  // namespace
}  // namespace turnout::bench
