#pragma once

// Deadlines of one io_context's connections and requests on one Asio timer.
//
// An Asio timer per deadline (a Beast tcp_stream arms one per read or write,
// the router one per attempt) costs a timer-heap insert, a handler, and
// when the operation beats it, a cancellation whose handler runs anyway:
// about 4,500 instructions of a proxied HTTP/1.1 request
// (bench/compare/instructions.sh with and without timeouts). Here a deadline
// is a field: moving it later, which is what a keep-alive connection's idle
// deadline does on every request, only stores the time; the entry keeps its
// older place in the queue and is put back at its new time when that place
// comes up. Moving it earlier re-sorts one entry; clearing it stores max.
// The one timer is re-armed only when the earliest place changes to an
// earlier time, and fires about once per deadline that really passes.
//
// Single-threaded like the io_context it belongs to: every Deadline of a
// queue is set, cleared and fired on the thread that runs that io_context
// (Asio's service registry gives one queue per io_context: of()).
//
// When a deadline passes, its callback runs from the queue's timer handler,
// with the deadline already cleared; it may set or clear any deadline,
// itself included.

#include <chrono>
#include <cstddef>
#include <vector>

#include "proxy/common/asio.h"

namespace turnout::proxy {

class DeadlineQueue : public asio::io_context::service {
 public:
  using Clock = std::chrono::steady_clock;
  static asio::io_context::id id;

  explicit DeadlineQueue(asio::io_context& io);
  ~DeadlineQueue() override;

  // The queue of the io_context behind `ex` (created on first use). Every
  // executor in turnout is an io_context's.
  static DeadlineQueue& of(const Executor& ex);
  static DeadlineQueue& of(asio::io_context& io);

  // Deadlines in the queue (set or not yet put back: a cleared deadline
  // leaves when its place comes up). For tests.
  size_t queued() const { return heap_.size(); }
  // When the timer is armed for (max: not armed). For tests.
  Clock::time_point armedFor() const { return armed_; }

  class Deadline;

 private:
  friend class Deadline;
  void shutdown() override;
  void place(Deadline& d, Clock::time_point key);
  void remove(Deadline& d);
  void siftUp(size_t i);
  void siftDown(size_t i);
  void swapAt(size_t a, size_t b);
  void arm();
  void onTimer(const boost::system::error_code& ec);

  SteadyTimer timer_;
  Clock::time_point armed_ = Clock::time_point::max();
  // A binary min-heap by key. Each slot holds its deadline's key: the
  // comparisons of a sift read this array only, not the deadlines (at 400
  // streams in flight, those reads missed the cache on every level).
  struct Slot {
    Clock::time_point key;
    Deadline* deadline;
  };
  std::vector<Slot> heap_;
  bool shut_down_ = false;
};

// One deadline: set it, move it, clear it; the callback runs when it passes.
class DeadlineQueue::Deadline {
 public:
  using Callback = void (*)(void* arg);

  Deadline(DeadlineQueue& queue, Callback callback, void* arg)
      : queue_(&queue), callback_(callback), arg_(arg) {}
  ~Deadline() {
    if (index_ != kNotQueued) queue_->remove(*this);
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // max() clears it.
  void expiresAt(Clock::time_point at) {
    at_ = at;
    if (at < key_) queue_->place(*this, at);
  }
  // A zero or negative duration means no deadline (the Envoy convention for
  // a disabled timeout), as does one too long to add to now.
  void expiresAfter(std::chrono::milliseconds after) {
    if (after.count() <= 0 || after >= std::chrono::hours(24 * 365 * 100)) {
      expiresAt(Clock::time_point::max());
    } else {
      expiresAt(Clock::now() + after);
    }
  }
  void clear() { at_ = Clock::time_point::max(); }
  Clock::time_point expiry() const { return at_; }
  bool armed() const { return at_ != Clock::time_point::max(); }

 private:
  friend class DeadlineQueue;
  static constexpr size_t kNotQueued = static_cast<size_t>(-1);

  DeadlineQueue* queue_;
  Callback callback_;
  void* arg_;
  Clock::time_point at_ = Clock::time_point::max();   // what the owner asked for
  Clock::time_point key_ = Clock::time_point::max();  // its place in the queue (<= at_)
  size_t index_ = kNotQueued;
};

}  // namespace turnout::proxy
