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
  CHECK(static_cast<long double>(s.dueOffset(n)) ==
        Approx(static_cast<double>(expect_ns)).margin(1));
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

// How many of `s`'s requests are due before `offset`, counted one by one.
uint64_t dueBeforeByCounting(const RateSchedule& s, uint64_t offset) {
  uint64_t n = 0;
  while (s.dueOffset(n) < offset) ++n;
  return n;
}

TEST_CASE("open-loop schedule counts the requests due before any offset", "[bench][schedule]") {
  const double rate = GENERATE(1.0, 3.0, 7.5, 200.0, 333.0, 12345.0, 1e6);
  const uint32_t conns = GENERATE(1u, 3u, 4u, 64u);
  CAPTURE(rate, conns);
  for (uint32_t c = 0; c < conns; ++c) {
    RateSchedule s(rate, conns, c);
    // Every due offset of the first requests, one nanosecond either side of
    // it, and points between them.
    std::vector<uint64_t> offsets = {0, 1};
    for (uint64_t n = 0; n < 40; ++n) {
      const uint64_t due = s.dueOffset(n);
      for (uint64_t o : {due - (due > 0 ? 1 : 0), due, due + 1, due + due / 3}) {
        offsets.push_back(o);
      }
    }
    for (uint64_t o : offsets) {
      CAPTURE(c, o);
      REQUIRE(s.dueBefore(o) == dueBeforeByCounting(s, o));
    }
  }
}

TEST_CASE("open-loop schedule counts the requests not issued yet in a span", "[bench][schedule]") {
  const double rate = GENERATE(3.0, 200.0, 12345.0);
  const uint32_t conns = GENERATE(1u, 4u, 7u);
  const uint64_t interval = static_cast<uint64_t>(1e9 / rate);
  // Spans over the first ~60 requests of the run, edges on and off the grid.
  const std::vector<uint64_t> edges = {0,
                                       interval,
                                       interval * 5 + 1,
                                       interval * 10,
                                       interval * 10 + 1,
                                       interval * 33 - 1,
                                       interval * 60};
  for (uint32_t c = 0; c < conns; ++c) {
    RateSchedule s(rate, conns, c);
    for (int issued = 0; issued <= 12; ++issued) {
      for (uint64_t from : edges) {
        for (uint64_t to : edges) {
          uint64_t expect = 0;
          for (uint64_t n = s.issued(); s.dueOffset(n) < to; ++n) {
            if (s.dueOffset(n) >= from) ++expect;
          }
          CAPTURE(rate, conns, c, issued, from, to);
          REQUIRE(s.pendingIn(from, to) == expect);
        }
      }
      CHECK(s.peek() == s.dueOffset(s.issued()));
      s.next();
    }
  }
}

TEST_CASE("open-loop window of 2 s at 200/s after 1 s has 400 requests due in it",
          "[bench][schedule]") {
  // The integration test's run: -c4 -R 200 --warmup 1 -d 2.
  uint64_t total = 0;
  for (uint32_t c = 0; c < 4; ++c) {
    total += RateSchedule(200, 4, c).pendingIn(1000000000, 3000000000);
  }
  CHECK(total == 400);
}

}  // namespace
}  // namespace turnout::bench
