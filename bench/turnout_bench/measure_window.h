#pragma once

// Which requests a run measures, and when a worker's run is over
// (bench/README.md, "Window"). Pure arithmetic on time points, so every
// decision can be tested without a clock or a socket.
//
// Closed loop: a request counts if it completes in [start, end). The worker
// stops at `end`; requests in flight then are dropped.
//
// Open loop: a request counts if its *intended* send time is in
// [start, end), whenever it completes: a server that stalls late in the
// window must show up in the requests due during the stall, not vanish
// because they were answered after the window closed. At `end` the
// timetable stops (nothing due at or after `end` is sent), but every request
// due before `end` is still sent, late if need be, and awaited. The wait is
// bounded: at end + drain (--timeout) whatever is still outstanding counts
// as a timeout and the worker stops.

#include <chrono>

namespace turnout::bench {

class MeasureWindow {
 public:
  using Clock = std::chrono::steady_clock;

  static MeasureWindow closedLoop(Clock::time_point start, Clock::time_point end) {
    return MeasureWindow(false, start, end, Clock::duration::zero());
  }
  static MeasureWindow openLoop(Clock::time_point start, Clock::time_point end,
                                Clock::duration drain) {
    return MeasureWindow(true, start, end, drain);
  }

  bool openLoop() const { return open_loop_; }
  Clock::time_point start() const { return start_; }
  Clock::time_point end() const { return end_; }

  bool contains(Clock::time_point t) const { return t >= start_ && t < end_; }

  // Whether a request intended for `due` and finished (answered or failed)
  // at `done` is recorded. Closed loop: by completion; open loop: by
  // intended send time. (In closed loop `due` is the send time.)
  bool counts(Clock::time_point due, Clock::time_point done) const {
    return contains(open_loop_ ? due : done);
  }

  // Whether a request due at `due` is sent at all. Open loop: only what is
  // due before the end; closed loop sends until the worker stops.
  bool schedules(Clock::time_point due) const { return !open_loop_ || due < end_; }

  // When the worker stops, whatever is still outstanding: `end` in closed
  // loop, end + drain in open loop. (It stops earlier once nothing is left.)
  Clock::time_point deadline() const { return end_ + drain_; }

  // Whether something that happens at `t` and belongs to no request (a
  // connect error, a connection opened) is counted: from the start to the
  // deadline, so the drain's reconnections count in open loop.
  bool coversEvent(Clock::time_point t) const { return t >= start_ && t < deadline(); }

  // Whether a request due at `due` is awaited after the end: open loop, due
  // in the window. If it is still outstanding at the deadline (unsent, queued
  // for a retry, or in flight), it counts as a timeout.
  bool awaits(Clock::time_point due) const { return open_loop_ && contains(due); }

 private:
  MeasureWindow(bool open_loop, Clock::time_point start, Clock::time_point end,
                Clock::duration drain)
      : open_loop_(open_loop), start_(start), end_(end), drain_(drain) {}

  bool open_loop_;
  Clock::time_point start_;
  Clock::time_point end_;
  Clock::duration drain_;
};

}  // namespace turnout::bench
