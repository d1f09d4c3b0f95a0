#include "bench/turnout_bench/measure_window.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <vector>

namespace turnout::bench {
namespace {

using Clock = MeasureWindow::Clock;
using std::chrono::milliseconds;

// A run whose window is [100 ms, 200 ms) on the clock, with a 50 ms drain
// (--timeout) in open loop.
const Clock::time_point kStart = Clock::time_point(milliseconds(100));
const Clock::time_point kEnd = Clock::time_point(milliseconds(200));
constexpr milliseconds kDrain{50};

Clock::time_point at(int64_t ms) { return Clock::time_point(milliseconds(ms)); }

enum class Region { kWarmUp, kWindow, kDrain, kAfter };

// Where a time point falls for the run above, written out by hand: the spec
// the window's decisions are checked against.
Region regionOf(int64_t ms) {
  if (ms < 100) return Region::kWarmUp;
  if (ms < 200) return Region::kWindow;
  if (ms < 250) return Region::kDrain;
  return Region::kAfter;
}

// Every boundary and one point inside each region.
const std::vector<int64_t> kPoints = {0,   50,  99,  100, 101, 150, 199,
                                      200, 201, 225, 249, 250, 251, 1000};

TEST_CASE("open loop counts a request by its intended send time, whenever it finishes",
          "[bench][window]") {
  const auto w = MeasureWindow::openLoop(kStart, kEnd, kDrain);
  CHECK(w.openLoop());
  CHECK(w.deadline() == at(250));
  for (int64_t due : kPoints) {
    for (int64_t done : kPoints) {
      if (done < due) continue;  // nothing finishes before it is due
      CAPTURE(due, done);
      CHECK(w.counts(at(due), at(done)) == (regionOf(due) == Region::kWindow));
    }
    CAPTURE(due);
    // The timetable stops at the end of the window, not at the deadline.
    const Region r = regionOf(due);
    CHECK(w.schedules(at(due)) == (r == Region::kWarmUp || r == Region::kWindow));
    // What is due in the window is awaited, and a timeout if still out at the deadline.
    CHECK(w.awaits(at(due)) == (r == Region::kWindow));
  }
}

TEST_CASE("closed loop counts a request by its completion and stops at the end",
          "[bench][window]") {
  const auto w = MeasureWindow::closedLoop(kStart, kEnd);
  CHECK_FALSE(w.openLoop());
  CHECK(w.deadline() == kEnd);
  for (int64_t sent : kPoints) {
    for (int64_t done : kPoints) {
      if (done < sent) continue;
      CAPTURE(sent, done);
      CHECK(w.counts(at(sent), at(done)) == (regionOf(done) == Region::kWindow));
    }
    CAPTURE(sent);
    CHECK(w.schedules(at(sent)));     // until the worker stops at the deadline
    CHECK_FALSE(w.awaits(at(sent)));  // nothing is awaited after the end
  }
}

TEST_CASE("events that belong to no request count from the start to the deadline",
          "[bench][window]") {
  const auto open = MeasureWindow::openLoop(kStart, kEnd, kDrain);
  const auto closed = MeasureWindow::closedLoop(kStart, kEnd);
  for (int64_t t : kPoints) {
    CAPTURE(t);
    const Region r = regionOf(t);
    CHECK(open.coversEvent(at(t)) == (r == Region::kWindow || r == Region::kDrain));
    CHECK(closed.coversEvent(at(t)) == (r == Region::kWindow));
  }
}

TEST_CASE("a stall across either edge of the window moves no request in or out of an open-loop run",
          "[bench][window]") {
  const auto open = MeasureWindow::openLoop(kStart, kEnd, kDrain);
  const auto closed = MeasureWindow::closedLoop(kStart, kEnd);
  // Due in the warm-up, answered in the window after a stall: closed loop
  // counts it (by completion), open loop does not.
  CHECK_FALSE(open.counts(at(90), at(130)));
  CHECK(closed.counts(at(90), at(130)));
  // Due in the window's last millisecond, answered after the end: open loop
  // counts it with its whole wait, closed loop drops it.
  CHECK(open.counts(at(199), at(240)));
  CHECK_FALSE(closed.counts(at(199), at(240)));
  // Even answered after the deadline, it belongs to the window (the worker
  // records it as a timeout instead).
  CHECK(open.counts(at(199), at(300)));
  CHECK(open.awaits(at(199)));
  // The first request due at the end is never sent.
  CHECK_FALSE(open.schedules(kEnd));
  CHECK(open.schedules(at(199)));
}

TEST_CASE("a window with no drain ends open loop at the window's end", "[bench][window]") {
  const auto w = MeasureWindow::openLoop(kStart, kEnd, Clock::duration::zero());
  CHECK(w.deadline() == kEnd);
  CHECK_FALSE(w.coversEvent(kEnd));
  CHECK(w.awaits(at(199)));
}

}  // namespace
}  // namespace turnout::bench
