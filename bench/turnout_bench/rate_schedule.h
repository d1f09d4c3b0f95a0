#pragma once

// Open-loop (constant-rate) scheduling. The run offers `rate` requests per
// second in total: request number k of the whole run is due at
// start + k / rate, and it is carried by connection k mod C (C connections
// over all threads). So each connection has its own fixed timetable, one
// request every C / rate seconds, offset by its global index; together they
// form a perfect 1 / rate grid. A connection that is still busy when its
// next request is due sends it as soon as it is free: the request is late,
// never dropped, and its latency is counted from the due time (the
// coordinated-omission correction of wrk2).
//
// One per connection, on its worker thread. Pure arithmetic on nanosecond
// offsets so it can be tested without a clock.

#include <cstdint>

namespace turnout::bench {

class RateSchedule {
 public:
  // `rate` requests/s in total (> 0) over `connections` connections; this is
  // connection `index` (0-based, over all threads).
  RateSchedule(double rate, uint32_t connections, uint32_t index);

  // Offset from the start of the run, in ns, at which this connection's
  // request number `n` (0-based) is due.
  uint64_t dueOffset(uint64_t n) const;
  // The due offset of the next request; advances the timetable.
  uint64_t next() { return dueOffset(sent_++); }
  // The due offset of the next request, without advancing.
  uint64_t peek() const { return dueOffset(sent_); }
  uint64_t issued() const { return sent_; }
  // How many of this connection's requests are due before `offset_ns`
  // (those numbered 0 .. dueBefore - 1). O(1).
  uint64_t dueBefore(uint64_t offset_ns) const;
  // How many requests not issued yet are due in [from_ns, to_ns).
  uint64_t pendingIn(uint64_t from_ns, uint64_t to_ns) const;

 private:
  double ns_per_request_;  // 1e9 / rate, over the whole run
  uint32_t connections_;
  uint32_t index_;
  uint64_t sent_ = 0;
};

}  // namespace turnout::bench
