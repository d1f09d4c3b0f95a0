#include "proxy/common/deadline_queue.h"

#include <chrono>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace turnout::proxy {
namespace {

using Clock = DeadlineQueue::Clock;
using Deadline = DeadlineQueue::Deadline;
using std::chrono::milliseconds;

struct Fired {
  std::vector<int> order;
  std::vector<Clock::time_point> at;
};

struct Probe {
  Probe(DeadlineQueue& q, Fired& f, int n) : fired(&f), id(n), deadline(q, &Probe::onFire, this) {}
  static void onFire(void* self) {
    auto* p = static_cast<Probe*>(self);
    p->fired->order.push_back(p->id);
    p->fired->at.push_back(Clock::now());
  }
  Fired* fired;
  int id;
  Deadline deadline;
};

// Runs the io_context until `done` or 2 s have passed.
template <typename Done>
void runUntil(asio::io_context& io, Done done) {
  const auto stop = Clock::now() + std::chrono::seconds(2);
  io.restart();
  while (!done() && Clock::now() < stop) {
    io.run_for(milliseconds(5));
    io.restart();
  }
}

TEST_CASE("deadlines fire in time order and not before their time") {
  asio::io_context io;
  DeadlineQueue& q = DeadlineQueue::of(io);
  Fired fired;
  Probe a(q, fired, 1), b(q, fired, 2), c(q, fired, 3);
  const auto start = Clock::now();
  c.deadline.expiresAt(start + milliseconds(60));
  a.deadline.expiresAt(start + milliseconds(20));
  b.deadline.expiresAt(start + milliseconds(40));
  CHECK(q.queued() == 3);
  runUntil(io, [&] { return fired.order.size() == 3; });
  REQUIRE(fired.order == std::vector<int>{1, 2, 3});
  CHECK(fired.at[0] >= start + milliseconds(20));
  CHECK(fired.at[1] >= start + milliseconds(40));
  CHECK(fired.at[2] >= start + milliseconds(60));
  CHECK(q.queued() == 0);
  CHECK_FALSE(a.deadline.armed());  // cleared before its callback ran
}

TEST_CASE("a deadline moved later fires at its new time, without re-arming the timer") {
  asio::io_context io;
  DeadlineQueue& q = DeadlineQueue::of(io);
  Fired fired;
  Probe a(q, fired, 1);
  const auto start = Clock::now();
  a.deadline.expiresAt(start + milliseconds(20));
  const auto armed = q.armedFor();
  CHECK(armed == start + milliseconds(20));
  a.deadline.expiresAt(start + milliseconds(80));  // what a keep-alive read does
  CHECK(q.armedFor() == armed);                    // lazily: the timer is not touched
  runUntil(io, [&] { return !fired.order.empty(); });
  REQUIRE(fired.order.size() == 1);
  CHECK(fired.at[0] >= start + milliseconds(80));
}

TEST_CASE("deadlines due in one sweep fire in time order, one moved later included") {
  // The thread was busy past both: the sweep finds a (placed at +10, moved to
  // +30) ahead of b (+20) in the heap, and must still fire b first.
  asio::io_context io;
  DeadlineQueue& q = DeadlineQueue::of(io);
  Fired fired;
  Probe a(q, fired, 1), b(q, fired, 2);
  const auto start = Clock::now();
  a.deadline.expiresAt(start + milliseconds(10));
  b.deadline.expiresAt(start + milliseconds(20));
  a.deadline.expiresAt(start + milliseconds(30));
  std::this_thread::sleep_until(start + milliseconds(40));
  runUntil(io, [&] { return fired.order.size() == 2; });
  CHECK(fired.order == std::vector<int>{2, 1});
  CHECK(q.queued() == 0);
}

TEST_CASE("a deadline moved earlier re-arms the timer") {
  asio::io_context io;
  DeadlineQueue& q = DeadlineQueue::of(io);
  Fired fired;
  Probe a(q, fired, 1);
  const auto start = Clock::now();
  a.deadline.expiresAt(start + std::chrono::seconds(30));
  a.deadline.expiresAt(start + milliseconds(10));
  CHECK(q.armedFor() == start + milliseconds(10));
  runUntil(io, [&] { return !fired.order.empty(); });
  CHECK(fired.order.size() == 1);
}

TEST_CASE("a cleared or destroyed deadline does not fire") {
  asio::io_context io;
  DeadlineQueue& q = DeadlineQueue::of(io);
  Fired fired;
  Probe kept(q, fired, 1), cleared(q, fired, 2);
  auto destroyed = std::make_unique<Probe>(q, fired, 3);
  const auto start = Clock::now();
  cleared.deadline.expiresAt(start + milliseconds(10));
  destroyed->deadline.expiresAt(start + milliseconds(10));
  kept.deadline.expiresAt(start + milliseconds(30));
  cleared.deadline.clear();
  destroyed.reset();
  CHECK(q.queued() == 2);  // the cleared one leaves when its place comes up
  runUntil(io, [&] { return !fired.order.empty(); });
  runUntil(io, [&] { return false; });  // nothing else may follow
  CHECK(fired.order == std::vector<int>{1});
  CHECK(q.queued() == 0);
}

TEST_CASE("zero and huge timeouts mean no deadline") {
  asio::io_context io;
  Fired fired;
  Probe a(DeadlineQueue::of(io), fired, 1);
  a.deadline.expiresAfter(milliseconds(0));
  CHECK_FALSE(a.deadline.armed());
  a.deadline.expiresAfter(milliseconds::max());
  CHECK_FALSE(a.deadline.armed());
  a.deadline.expiresAfter(milliseconds(-5));
  CHECK_FALSE(a.deadline.armed());
  a.deadline.expiresAfter(milliseconds(5));
  CHECK(a.deadline.armed());
}

TEST_CASE("a callback may set deadlines again, its own included") {
  asio::io_context io;
  DeadlineQueue& q = DeadlineQueue::of(io);
  struct Repeater {
    explicit Repeater(DeadlineQueue& q) : deadline(q, &Repeater::onFire, this) {}
    static void onFire(void* self) {
      auto* r = static_cast<Repeater*>(self);
      if (++r->count < 3) r->deadline.expiresAfter(milliseconds(5));
    }
    int count = 0;
    Deadline deadline;
  } r(q);
  r.deadline.expiresAfter(milliseconds(5));
  runUntil(io, [&] { return r.count == 3; });
  CHECK(r.count == 3);
  CHECK(q.queued() == 0);
}

TEST_CASE("a callback that keeps setting a passed deadline does not hold the thread") {
  // Its first call posts a handler: that handler can only run once the
  // timer's sweep has ended, which it must although the deadline is always
  // due again.
  asio::io_context io;
  DeadlineQueue& q = DeadlineQueue::of(io);
  struct Stubborn {
    Stubborn(asio::io_context& io, DeadlineQueue& q)
        : io(io), deadline(q, &Stubborn::onFire, this) {}
    static void onFire(void* self) {
      auto* s = static_cast<Stubborn*>(self);
      if (s->count++ == 0) asio::post(s->io, [s] { s->other_ran = true; });
      if (!s->other_ran) s->deadline.expiresAt(Clock::now() - milliseconds(1));
    }
    asio::io_context& io;
    int count = 0;
    bool other_ran = false;
    Deadline deadline;
  } s(io, q);
  s.deadline.expiresAt(Clock::now());
  runUntil(io, [&] { return s.other_ran; });
  CHECK(s.other_ran);
  CHECK(s.count > 1);  // it was served again, within the budget
}

TEST_CASE("the queue matches a sorted reference under random moves") {
  // Each round moves random deadlines earlier, later, or clears them, then
  // runs the queue past a random time: exactly the deadlines at or before it
  // have fired, each once.
  asio::io_context io;
  DeadlineQueue& q = DeadlineQueue::of(io);
  Fired fired;
  std::vector<std::unique_ptr<Probe>> probes;
  for (int i = 0; i < 64; ++i) probes.push_back(std::make_unique<Probe>(q, fired, i));
  std::mt19937 rng(7);
  const auto base = Clock::now() + milliseconds(50);
  std::vector<Clock::time_point> want(64, Clock::time_point::max());
  for (int round = 0; round < 200; ++round) {
    const int i = static_cast<int>(rng() % 64);
    const int op = static_cast<int>(rng() % 4);
    if (op == 0) {
      probes[i]->deadline.clear();
      want[i] = Clock::time_point::max();
    } else {
      want[i] = base + milliseconds(rng() % 40);
      probes[i]->deadline.expiresAt(want[i]);
    }
  }
  size_t due = 0;
  for (const auto& w : want) due += w != Clock::time_point::max() ? 1 : 0;
  runUntil(io, [&] { return fired.order.size() == due; });
  REQUIRE(fired.order.size() == due);
  for (size_t k = 0; k < fired.order.size(); ++k) {
    CHECK(fired.at[k] >= want[fired.order[k]]);
    if (k > 0) CHECK(want[fired.order[k - 1]] <= want[fired.order[k]]);
  }
  CHECK(q.queued() == 0);
}

TEST_CASE("a deadline in a frame destroyed with its io_context stays harmless") {
  // The queue shuts down before the scheduler destroys the suspended
  // coroutine that owns the deadline: its destructor must find nothing to
  // unlink, and nothing fires.
  Fired fired;
  bool suspended = false;
  auto io = std::make_unique<asio::io_context>();
  asio::co_spawn(
      *io,
      [&]() -> Awaitable<void> {
        Probe p(DeadlineQueue::of(*io), fired, 1);
        p.deadline.expiresAfter(milliseconds(1));
        SteadyTimer forever(co_await asio::this_coro::executor, Clock::time_point::max());
        suspended = true;
        boost::system::error_code ec;
        co_await forever.async_wait(asio::redirect_error(use_awaitable, ec));
        p.deadline.expiresAfter(milliseconds(1));
      },
      asio::detached);
  io->run_for(milliseconds(20));
  REQUIRE(suspended);
  CHECK(fired.order.size() == 1);  // it fired while the io_context ran
  io.reset();
  CHECK(fired.order.size() == 1);
}

}  // namespace
}  // namespace turnout::proxy
