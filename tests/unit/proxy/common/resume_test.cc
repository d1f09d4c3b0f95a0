#include "proxy/common/resume.h"

#include <array>
#include <optional>
#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>

#include "proxy/common/signal.h"

namespace turnout {
namespace {

using boost::system::error_code;

// A connected pair of loopback sockets on `io`.
std::pair<TcpSocket, TcpSocket> socketPair(asio::io_context& io) {
  TcpAcceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  TcpSocket a(io);
  a.connect(acceptor.local_endpoint());
  TcpSocket b = acceptor.accept();
  return {std::move(a), std::move(b)};
}

// One read, its results as readSome left them.
Awaitable<void> readOnce(TcpSocket& s, std::string& got, std::optional<error_code>& ec_out) {
  std::array<char, 64> buf{};
  error_code ec = asio::error::would_block;  // overwritten at completion
  std::size_t n = 12345;
  co_await readSome(s, asio::buffer(buf), &ec, &n);
  got.assign(buf.data(), n);
  ec_out = ec;
}

TEST_CASE("readSome and writeAll resume the caller with the operation's results", "[resume]") {
  asio::io_context io;
  auto [a, b] = socketPair(io);
  std::string got;
  std::optional<error_code> read_ec;
  std::optional<error_code> write_ec;
  asio::co_spawn(io, readOnce(b, got, read_ec), asio::detached);
  asio::co_spawn(
      io,
      [&]() -> Awaitable<void> {
        error_code ec = asio::error::would_block;
        co_await writeAll(a, asio::buffer(std::string_view("hello")), &ec);
        write_ec = ec;
      },
      asio::detached);
  io.run_for(std::chrono::seconds(2));
  REQUIRE(write_ec);
  CHECK_FALSE(*write_ec);
  REQUIRE(read_ec);
  CHECK_FALSE(*read_ec);
  CHECK(got == "hello");
}

TEST_CASE("readSome reports EOF and cancellation as its error", "[resume]") {
  asio::io_context io;
  auto [a, b] = socketPair(io);
  std::string got = "x";
  std::optional<error_code> ec;
  asio::co_spawn(io, readOnce(b, got, ec), asio::detached);
  io.poll();
  CHECK_FALSE(ec);  // suspended: nothing to read yet
  a.close();
  io.run_for(std::chrono::seconds(2));
  REQUIRE(ec);
  CHECK(*ec == asio::error::eof);
  CHECK(got.empty());

  auto [c, d] = socketPair(io);
  std::optional<error_code> aborted;
  io.restart();
  asio::co_spawn(io, readOnce(d, got, aborted), asio::detached);
  io.poll();
  CHECK_FALSE(aborted);
  d.cancel();
  io.run_for(std::chrono::seconds(2));
  REQUIRE(aborted);
  CHECK(*aborted == asio::error::operation_aborted);
}

// A callee that awaits inside a caller: the resumed frame is the callee's,
// and the caller resumes after the callee returns.
Awaitable<int> calleeWaits(proxy::Signal& signal, error_code* ec) {
  co_await waitOn(signal, ec);
  co_return 7;
}

TEST_CASE("waitOn resumes a nested coroutine and its caller in order", "[resume]") {
  asio::io_context io;
  proxy::Signal signal(io.get_executor());
  std::optional<int> result;
  error_code ec = asio::error::would_block;
  asio::co_spawn(
      io, [&]() -> Awaitable<void> { result = co_await calleeWaits(signal, &ec); }, asio::detached);
  io.poll();
  REQUIRE(signal.waiting());
  CHECK_FALSE(result);
  signal.notify();
  io.poll();
  REQUIRE(result);
  CHECK(*result == 7);
  CHECK_FALSE(ec);

  // A timer's wait, and an error delivered through fire().
  SteadyTimer timer(io, std::chrono::milliseconds(1));
  std::optional<error_code> timer_ec;
  std::optional<error_code> fired;
  io.restart();
  asio::co_spawn(
      io,
      [&]() -> Awaitable<void> {
        error_code e = asio::error::would_block;
        co_await waitOn(timer, &e);
        timer_ec = e;
        co_await waitOn(signal, &e);
        fired = e;
      },
      asio::detached);
  io.run_for(std::chrono::milliseconds(200));
  REQUIRE(timer_ec);
  CHECK_FALSE(*timer_ec);
  signal.fire(asio::error::timed_out);
  io.poll();
  REQUIRE(fired);
  CHECK(*fired == asio::error::timed_out);
}

TEST_CASE("an exception after a resumption reaches the spawner", "[resume]") {
  asio::io_context io;
  proxy::Signal signal(io.get_executor());
  std::string what;
  asio::co_spawn(
      io,
      [&]() -> Awaitable<void> {
        error_code ec;
        co_await waitOn(signal, &ec);
        throw std::runtime_error("after the wait");
      },
      [&](std::exception_ptr e) {
        try {
          if (e) std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          what = ex.what();
        }
      });
  io.poll();
  signal.notify();
  io.poll();
  CHECK(what == "after the wait");
}

TEST_CASE("an io_context torn down with a resumeAfter wait pending frees the coroutine",
          "[resume]") {
  // The frame's destructor runs (Asio unwinds the stack through the
  // executor, as for its own handlers): the guard's flag says so.
  bool destroyed = false;
  struct Guard {
    bool* flag;
    ~Guard() { *flag = true; }
  };
  {
    asio::io_context io;
    auto [a, b] = socketPair(io);
    asio::co_spawn(
        io,
        [&b, &destroyed]() -> Awaitable<void> {
          Guard g{&destroyed};
          std::array<char, 8> buf{};
          error_code ec;
          std::size_t n = 0;
          co_await readSome(b, asio::buffer(buf), &ec, &n);
        },
        asio::detached);
    io.poll();
    CHECK_FALSE(destroyed);
  }
  CHECK(destroyed);
}

}  // namespace
}  // namespace turnout
