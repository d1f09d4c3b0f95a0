// UpstreamConnection's shared output buffer (outBuffer()): the connections
// of a worker encode into one buffer while it is free or theirs, and each
// connection's bytes still reach its own socket, whole and in order.

#include <chrono>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "proxy/upstream/cluster_manager.h"

namespace turnout::proxy {
namespace {

using namespace std::chrono_literals;

// An UpstreamConnection whose socket is connected to `peer` on loopback.
struct Connected {
  explicit Connected(asio::io_context& io)
      : conn(std::make_unique<UpstreamConnection>(io.get_executor())), peer(io) {
    TcpAcceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    conn->stream.socket().connect(acceptor.local_endpoint());
    peer = acceptor.accept();
  }
  // What the peer received, up to `n` bytes, waiting at most a second.
  std::string received(size_t n) {
    std::string got;
    peer.non_blocking(true);
    const auto until = std::chrono::steady_clock::now() + 1s;
    while (got.size() < n && std::chrono::steady_clock::now() < until) {
      char buf[4096];
      boost::system::error_code ec;
      const size_t r = peer.read_some(asio::buffer(buf), ec);
      if (ec == asio::error::would_block) continue;
      if (ec) break;
      got.append(buf, r);
    }
    return got;
  }
  std::unique_ptr<UpstreamConnection> conn;
  TcpSocket peer;
};

RequestHead request(const std::string& method, const std::string& path, size_t body = 0) {
  RequestHead h;
  h.method = method;
  h.path = path;
  h.authority = "upstream";
  h.headers.add("host", "upstream");
  if (body > 0) {
    h.headers.add("content-length", std::to_string(body));
    h.content_length = body;
  }
  return h;
}

bool sentAll(UpstreamConnection& c) {
  const std::optional<bool> r = c.trySend();
  return r.has_value() && *r;
}

TEST_CASE("connections that interleave their encodes each send their own bytes, in order",
          "[upstream][http1]") {
  asio::io_context io;
  Connected a(io);
  Connected b(io);
  // a's head goes into the shared buffer; b's encode moves it to a's own
  // buffer; a's body follows it there.
  a.conn->encodeHeaders(request("POST", "/a", 5), false);
  b.conn->encodeHeaders(request("GET", "/b"), true);
  a.conn->encodeData(std::span<const char>("hello", 5), true);
  REQUIRE(sentAll(*b.conn));
  REQUIRE(sentAll(*a.conn));
  const std::string to_a = a.received(4096);
  const std::string to_b = b.received(4096);
  CHECK(to_a.rfind("POST /a HTTP/1.1\r\n", 0) == 0);
  CHECK(to_a.size() >= 5);
  CHECK(to_a.substr(to_a.size() - 9) == "\r\n\r\nhello");
  CHECK(to_a.find("/b") == std::string::npos);
  CHECK(to_b.rfind("GET /b HTTP/1.1\r\n", 0) == 0);
  CHECK(to_b.find("hello") == std::string::npos);
  CHECK(to_b.find("/a") == std::string::npos);

  // Sent: the next encode of either takes the buffer over.
  a.conn->encodeHeaders(request("GET", "/a2"), true);
  REQUIRE(sentAll(*a.conn));
  CHECK(a.received(4096).rfind("GET /a2 HTTP/1.1\r\n", 0) == 0);
}

TEST_CASE("a connection that ends with bytes in the shared buffer takes them along",
          "[upstream][http1]") {
  asio::io_context io;
  Connected b(io);
  {
    Connected a(io);
    a.conn->encodeHeaders(request("GET", "/gone"), true);
    a.conn.reset();  // never sent
  }
  b.conn->encodeHeaders(request("GET", "/b"), true);
  REQUIRE(sentAll(*b.conn));
  const std::string to_b = b.received(4096);
  CHECK(to_b.rfind("GET /b HTTP/1.1\r\n", 0) == 0);
  CHECK(to_b.find("/gone") == std::string::npos);
}

TEST_CASE("send() writes what was encoded into the shared buffer", "[upstream][http1]") {
  asio::io_context io;
  Connected a(io);
  Connected b(io);
  a.conn->encodeHeaders(request("GET", "/a"), true);
  bool sent = false;
  asio::co_spawn(
      io, [&]() -> Awaitable<void> { sent = co_await a.conn->send(); }, asio::detached);
  // b encodes while a's write is under way.
  b.conn->encodeHeaders(request("GET", "/b"), true);
  io.run_for(1s);
  CHECK(sent);
  CHECK(a.received(4096).rfind("GET /a HTTP/1.1\r\n", 0) == 0);
  REQUIRE(sentAll(*b.conn));
  const std::string to_b = b.received(4096);
  CHECK(to_b.rfind("GET /b HTTP/1.1\r\n", 0) == 0);
  CHECK(to_b.find("/a") == std::string::npos);
}

}  // namespace
}  // namespace turnout::proxy
