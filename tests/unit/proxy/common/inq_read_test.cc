#include "proxy/common/inq_read.h"

#include <array>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace turnout {
namespace {

using boost::system::error_code;

struct Pair {
  asio::io_context io;
  TcpSocket a{io};
  TcpSocket b{io};
  explicit Pair(bool inq = true) {
    TcpAcceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    a.connect(acceptor.local_endpoint());
    b = acceptor.accept();
    if (inq) enableInq(b);
  }
};

// Reads until EOF or an error, recording each read; stops after `max`.
Awaitable<void> readAll(TcpSocket& s, std::vector<std::string>& reads, error_code& last, int max) {
  std::array<char, 16> buf{};
  for (int i = 0; i < max; ++i) {
    error_code ec;
    std::size_t n = 0;
    co_await readInq(s, asio::buffer(buf), &ec, &n);
    if (ec) {
      last = ec;
      co_return;
    }
    reads.emplace_back(buf.data(), n);
  }
}

// Runs `io` until `done()` or two seconds.
template <typename Done>
void runUntil(asio::io_context& io, Done done) {
  const auto stop = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!done() && std::chrono::steady_clock::now() < stop) {
    io.run_one_for(std::chrono::milliseconds(20));
  }
}

TEST_CASE("readInq waits after a read that drained the socket and wakes for what comes next",
          "[inq_read]") {
  for (bool inq : {true, false}) {
    Pair p(inq);
    std::vector<std::string> reads;
    error_code last;
    asio::co_spawn(p.io, readAll(p.b, reads, last, 3), asio::detached);
    asio::write(p.a, asio::buffer(std::string_view("one")));
    runUntil(p.io, [&] { return reads.size() == 1; });
    REQUIRE(reads.size() == 1);
    CHECK(reads[0] == "one");
    // The second read is waiting on an empty (drained) socket: data that
    // comes now must reach it.
    p.io.poll();
    asio::write(p.a, asio::buffer(std::string_view("two")));
    runUntil(p.io, [&] { return reads.size() == 2; });
    REQUIRE(reads.size() == 2);
    CHECK(reads[1] == "two");
    // A FIN after the drained read is EOF.
    p.a.shutdown(TcpSocket::shutdown_send);
    runUntil(p.io, [&] { return bool(last); });
    CHECK(last == asio::error::eof);
  }
}

TEST_CASE("readInq sees a FIN that came with the data, and data larger than the buffer",
          "[inq_read]") {
  Pair p;
  // All of it, then the FIN, before the first read starts: the reads that
  // leave bytes (or the FIN) behind must not wait for an edge that already
  // came.
  asio::write(p.a, asio::buffer(std::string(40, 'x')));
  p.a.shutdown(TcpSocket::shutdown_send);
  std::vector<std::string> reads;
  error_code last;
  asio::co_spawn(p.io, readAll(p.b, reads, last, 10), asio::detached);
  runUntil(p.io, [&] { return bool(last); });
  CHECK(last == asio::error::eof);
  std::string all;
  for (const auto& r : reads) all += r;
  CHECK(all == std::string(40, 'x'));
}

TEST_CASE("readInq completes with operation_aborted when cancelled", "[inq_read]") {
  Pair p;
  std::vector<std::string> reads;
  error_code last;
  asio::co_spawn(p.io, readAll(p.b, reads, last, 1), asio::detached);
  p.io.poll();
  CHECK_FALSE(last);
  p.b.cancel();
  runUntil(p.io, [&] { return bool(last); });
  CHECK(last == asio::error::operation_aborted);
}

TEST_CASE(
    "readInq uses the reactor of the socket's own io_context, also one made where another was",
    "[inq_read]") {
  // The same storage twice: an io_context at the address of a destroyed
  // one must not be taken for it (a per-thread cache keyed by the address
  // handed out the dead one's reactor: checked, this test then fails).
  std::optional<asio::io_context> io;
  // Made between the rounds, with a reactor of its own that nobody runs:
  // it likely takes the memory the first round's reactor had. A read
  // queued on any reactor but the socket's never completes.
  std::optional<asio::io_context> idle;
  for (int round = 0; round < 2; ++round) {
    if (round == 1) {
      idle.emplace();
      (void)asio::use_service<asio::detail::epoll_reactor>(*idle);
    }
    io.emplace();
    {  // the sockets go before their io_context
      TcpAcceptor acceptor(*io, {asio::ip::make_address("127.0.0.1"), 0});
      TcpSocket a(*io);
      a.connect(acceptor.local_endpoint());
      TcpSocket b = acceptor.accept();
      enableInq(b);
      std::vector<std::string> reads;
      error_code last;
      // Data first: the read completes at once, through the reactor's
      // scheduler (a wrong reactor's would never run it).
      asio::write(a, asio::buffer(std::string_view("x")));
      asio::co_spawn(*io, readAll(b, reads, last, 1), asio::detached);
      runUntil(*io, [&] { return reads.size() == 1; });
      REQUIRE(reads.size() == 1);
      CHECK(reads[0] == "x");
    }
    io.reset();
  }
}

}  // namespace
}  // namespace turnout
