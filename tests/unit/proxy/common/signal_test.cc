#include "proxy/common/signal.h"

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "proxy/common/deadline_queue.h"
#include "proxy/common/resume.h"

namespace turnout::proxy {
namespace {

using boost::system::error_code;

// A coroutine that waits on `signal` once and records how it woke.
Awaitable<void> waitOnce(Signal& signal, std::optional<error_code>& woke) {
  error_code ec;
  co_await signal.async_wait(asio::redirect_error(use_awaitable, ec));
  woke = ec;
}

TEST_CASE("a signal wakes its waiter at notify, later, from the io_context's queue", "[signal]") {
  asio::io_context io;
  Signal signal(io.get_executor());
  std::optional<error_code> woke;
  asio::co_spawn(io, waitOnce(signal, woke), asio::detached);
  io.poll();
  REQUIRE(signal.waiting());
  CHECK_FALSE(woke);
  signal.notify();
  // Posted, not run inside notify(): the notifier's stack is never re-entered.
  CHECK_FALSE(woke);
  CHECK_FALSE(signal.waiting());
  io.poll();
  REQUIRE(woke);
  CHECK_FALSE(*woke);
}

// Waits on `signal` (through resume.h's waitOn, as the data plane does)
// `times` times, logging each wake-up.
Awaitable<void> waitLoop(Signal& signal, int times, std::vector<std::string>& log) {
  for (int i = 0; i < times; ++i) {
    error_code ec;
    co_await waitOn(signal, &ec);
    log.push_back(ec ? "aborted" : "woke");
  }
}

TEST_CASE("notifyNow runs the waiter inside the call, up to its next wait", "[signal]") {
  asio::io_context io;
  Signal signal(io.get_executor());
  std::vector<std::string> log;
  asio::co_spawn(io, waitLoop(signal, 2, log), asio::detached);
  io.poll();
  REQUIRE(signal.waiting());
  // From another coroutine: the waiter runs before the notifier's next line.
  auto notifier = [&]() -> Awaitable<void> {
    log.push_back("before");
    signal.notifyNow();
    log.push_back("after");
    co_return;
  };
  asio::co_spawn(io, notifier(), asio::detached);
  io.poll();
  CHECK(log == std::vector<std::string>{"before", "woke", "after"});
  // It waits again, and a plain notify still goes through the queue.
  REQUIRE(signal.waiting());
  signal.notify();
  CHECK(log.size() == 3);
  io.poll();
  CHECK(log == std::vector<std::string>{"before", "woke", "after", "woke"});
  CHECK_FALSE(signal.waiting());
  signal.notifyNow();  // nobody waits: nothing happens
  CHECK(log.size() == 4);
}

TEST_CASE("a notify with nobody waiting is not kept for the next wait", "[signal]") {
  asio::io_context io;
  Signal signal(io.get_executor());
  signal.notify();
  std::optional<error_code> woke;
  asio::co_spawn(io, waitOnce(signal, woke), asio::detached);
  io.poll();
  CHECK_FALSE(woke);  // the waiter re-checks its condition before it sleeps
  CHECK(signal.waiting());
  signal.notify();
  io.poll();
  CHECK(woke);
}

TEST_CASE("a deadline fires a signal with timed_out", "[signal]") {
  asio::io_context io;
  Signal signal(io.get_executor());
  DeadlineQueue::Deadline deadline(
      DeadlineQueue::of(io), [](void* s) { static_cast<Signal*>(s)->fire(asio::error::timed_out); },
      &signal);
  std::optional<error_code> woke;
  asio::co_spawn(io, waitOnce(signal, woke), asio::detached);
  deadline.expiresAfter(std::chrono::milliseconds(20));
  const auto stop = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!woke && std::chrono::steady_clock::now() < stop)
    io.run_one_for(std::chrono::milliseconds(50));
  REQUIRE(woke);
  CHECK(*woke == asio::error::timed_out);
}

TEST_CASE("a second wait aborts the first, and a destroyed signal calls nobody", "[signal]") {
  asio::io_context io;
  std::optional<error_code> first;
  std::optional<error_code> second;
  {
    Signal signal(io.get_executor());
    asio::co_spawn(io, waitOnce(signal, first), asio::detached);
    io.poll();
    asio::co_spawn(io, waitOnce(signal, second), asio::detached);
    io.poll();
    REQUIRE(first);
    CHECK(*first == asio::error::operation_aborted);
    CHECK_FALSE(second);
    CHECK(signal.waiting());
  }
  io.poll();
  CHECK_FALSE(second);  // dropped with the signal, as a timer's service shutdown does
}

TEST_CASE("a coroutine's wait is kept in the signal itself", "[signal]") {
  // What co_await waitOn(signal, &ec) hands async_wait: no allocation per
  // wait (Asio 1.18's awaitable_thread is 32 bytes, with the result
  // pointer 40: over the 32 bytes the signal first kept).
  STATIC_REQUIRE(Signal::keepsInPlace<resume_detail::Handler<error_code>>());
  STATIC_REQUIRE_FALSE(Signal::keepsInPlace<std::array<char, 256>>());
}

TEST_CASE("handlers of any size are kept, called once, and freed uncalled with the signal",
          "[signal]") {
  asio::io_context io;
  // A small handler lives in the signal, a large one on the heap: each is
  // called once with the wake-up's code, and what it holds goes with it.
  auto token = std::make_shared<int>(0);
  std::vector<std::string> log;
  {
    Signal signal(io.get_executor());
    signal.async_wait(
        [token, &log](error_code ec) { log.push_back(ec ? "small aborted" : "small"); });
    CHECK(token.use_count() == 2);
    signal.notifyNow();
    CHECK(token.use_count() == 1);
    std::array<char, 256> big{};
    big[0] = 'x';
    signal.async_wait([token, big, &log](error_code ec) {
      log.push_back(std::string(ec ? "big aborted " : "big ") + big[0]);
    });
    CHECK(token.use_count() == 2);
    signal.fire(asio::error::timed_out);  // posted
    CHECK(token.use_count() == 2);        // in the posted operation now
    io.poll();
    CHECK(token.use_count() == 1);
    // Replaced: the first is aborted (posted), the second never called.
    signal.async_wait([token, big, &log](error_code) { log.push_back("replaced"); });
    signal.async_wait([token, &log](error_code) { log.push_back("never"); });
    io.restart();  // the last poll() ran out of work
    io.poll();
    CHECK(token.use_count() == 2);
  }
  CHECK(token.use_count() == 1);  // the signal's destructor freed the waiter
  CHECK(log == std::vector<std::string>{"small", "big aborted x", "replaced"});
}

}  // namespace
}  // namespace turnout::proxy
