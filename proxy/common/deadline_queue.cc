#include "proxy/common/deadline_queue.h"

#include <utility>

namespace turnout::proxy {

asio::io_context::id DeadlineQueue::id;

DeadlineQueue::DeadlineQueue(asio::io_context& io) : asio::io_context::service(io), timer_(io) {}

DeadlineQueue::~DeadlineQueue() { shutdown(); }

DeadlineQueue& DeadlineQueue::of(asio::io_context& io) {
  return asio::use_service<DeadlineQueue>(io);
}

DeadlineQueue& DeadlineQueue::of(const Executor& ex) {
  return of(static_cast<asio::io_context&>(asio::query(ex, asio::execution::context)));
}

void DeadlineQueue::shutdown() {
  // The io_context is going: its handlers (and the coroutine frames that own
  // deadlines) are destroyed after this. Nothing fires any more; a deadline
  // destroyed or set from now on finds itself out of the queue.
  shut_down_ = true;
  for (const Slot& s : heap_) {
    s.deadline->index_ = Deadline::kNotQueued;
    s.deadline->key_ = Clock::time_point::max();
  }
  heap_.clear();
  timer_.cancel();
}

void DeadlineQueue::place(Deadline& d, Clock::time_point key) {
  if (shut_down_) return;
  d.key_ = key;
  if (d.index_ == Deadline::kNotQueued) {
    d.index_ = heap_.size();
    heap_.push_back(Slot{key, &d});
  } else {
    heap_[d.index_].key = key;
  }
  siftUp(d.index_);
  if (key < armed_) arm();
}

void DeadlineQueue::remove(Deadline& d) {
  if (d.index_ == Deadline::kNotQueued) return;
  const size_t i = d.index_;
  const size_t last = heap_.size() - 1;
  if (i != last) {
    swapAt(i, last);
  }
  heap_.pop_back();
  d.index_ = Deadline::kNotQueued;
  d.key_ = Clock::time_point::max();
  if (i < heap_.size()) {
    siftUp(i);
    siftDown(i);
  }
  // The timer stays armed: if it was for this deadline, it wakes for
  // nothing once and is armed for the next.
}

void DeadlineQueue::swapAt(size_t a, size_t b) {
  std::swap(heap_[a], heap_[b]);
  heap_[a].deadline->index_ = a;
  heap_[b].deadline->index_ = b;
}

void DeadlineQueue::siftUp(size_t i) {
  while (i > 0) {
    const size_t parent = (i - 1) / 2;
    if (!(heap_[i].key < heap_[parent].key)) break;
    swapAt(i, parent);
    i = parent;
  }
}

void DeadlineQueue::siftDown(size_t i) {
  const size_t n = heap_.size();
  for (;;) {
    size_t least = i;
    const size_t l = 2 * i + 1;
    const size_t r = l + 1;
    if (l < n && heap_[l].key < heap_[least].key) least = l;
    if (r < n && heap_[r].key < heap_[least].key) least = r;
    if (least == i) return;
    swapAt(i, least);
    i = least;
  }
}

void DeadlineQueue::arm() {
  if (heap_.empty() || shut_down_) return;
  const Clock::time_point top = heap_.front().key;
  if (!(top < armed_)) return;
  armed_ = top;
  timer_.expires_at(top);  // cancels the wait for a later time, if any
  timer_.async_wait([this](const boost::system::error_code& ec) { onTimer(ec); });
}

void DeadlineQueue::onTimer(const boost::system::error_code& ec) {
  // Cancelled: arm() replaced this wait by an earlier one (or shutdown).
  if (ec || shut_down_) return;
  armed_ = Clock::time_point::max();
  const Clock::time_point now = Clock::now();
  // A callback that sets a deadline already passed is served again in this
  // sweep; the budget keeps one that always does so from holding the thread
  // (what is left waits for the timer, due at once, behind other handlers).
  size_t budget = heap_.size() + 64;
  while (!heap_.empty() && heap_.front().key <= now && budget > 0) {
    Deadline& d = *heap_.front().deadline;
    // Only an entry whose key is its wanted time fires: one moved later goes
    // back to its place first, so the deadlines due in one sweep fire in
    // the order of their times, not of where they were once placed.
    if (d.at_ == d.key_) {
      --budget;
      remove(d);
      d.at_ = Clock::time_point::max();
      d.callback_(d.arg_);  // may set or clear deadlines, this one included
    } else if (d.at_ == Clock::time_point::max()) {
      remove(d);  // cleared since it was placed
    } else {
      d.key_ = d.at_;  // moved later since it was placed: put it back there
      heap_.front().key = d.at_;
      siftDown(0);
    }
  }
  arm();
}

}  // namespace turnout::proxy
