#include "proxy/common/send_now.h"

#include <string>

#include <catch2/catch.hpp>

namespace turnout::proxy {
namespace {

struct Pair {
  asio::io_context io;
  TcpSocket a{io};
  TcpSocket b{io};
  Pair() {
    TcpAcceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    a.connect(acceptor.local_endpoint());
    b = acceptor.accept();
  }
};

TEST_CASE("sendNow writes a small buffer whole and empties it", "[send_now]") {
  Pair p;
  std::string out = "GET / HTTP/1.1\r\nhost: x\r\n\r\n";
  const std::string sent = out;
  CHECK(sendNow(p.a, out) == SendNow::kAll);
  CHECK(out.empty());
  std::string got(sent.size(), '\0');
  asio::read(p.b, asio::buffer(got));
  CHECK(got == sent);
  CHECK(sendNow(p.a, out) == SendNow::kAll);  // nothing to send
}

TEST_CASE("sendNow leaves what a full socket buffer did not take, without blocking", "[send_now]") {
  Pair p;
  p.a.set_option(asio::socket_base::send_buffer_size(4096));
  p.b.set_option(asio::socket_base::receive_buffer_size(4096));
  // The socket is blocking here (no async operation ran on it): the send
  // must not wait anyway.
  std::string out(8 * 1024 * 1024, 'x');
  const auto size = out.size();
  CHECK(sendNow(p.a, out) == SendNow::kSome);
  CHECK_FALSE(out.empty());
  CHECK(out.size() < size);
  // Again, with the peer still not reading: at most what the buffers freed
  // meanwhile goes, and it still returns at once.
  const auto left = out.size();
  CHECK(sendNow(p.a, out) == SendNow::kSome);
  CHECK(out.size() <= left);
  CHECK(out.size() > size / 2);
}

TEST_CASE("sendNow reports a reset connection and keeps the bytes", "[send_now]") {
  Pair p;
  p.b.set_option(asio::socket_base::linger(true, 0));  // close() sends RST
  p.b.close();
  std::string out = "late";
  // The first send after the RST may still be accepted by the kernel only
  // if the RST has not arrived; loopback delivers it before close returns.
  SendNow r = sendNow(p.a, out);
  for (int i = 0; i < 3 && r != SendNow::kFailed; ++i) {
    out = "late";
    r = sendNow(p.a, out);
  }
  CHECK(r == SendNow::kFailed);
  CHECK(out == "late");
}

}  // namespace
}  // namespace turnout::proxy
