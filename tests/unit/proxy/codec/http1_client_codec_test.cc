#include "proxy/codec/http1_client_codec.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace turnout::proxy::http1 {
namespace {

// Plays the upstream connection: keeps unconsumed bytes and records events
// (adjacent onData merged).
class ClientHarness : public ResponseDecoderCallbacks {
 public:
  explicit ClientHarness(const Http1Settings& settings = {}) : codec(*this, settings) {}

  void request(std::string_view method = "GET", bool end_stream = true) {
    RequestHead h;
    h.method = std::string(method);
    h.path = "/";
    h.authority = "up";
    codec.encodeHeaders(h, end_stream, wire);
  }

  void feed(std::string_view bytes) {
    buffer.append(bytes);
    while (status.ok()) {
      auto r = codec.decode(buffer);
      if (!r.ok()) {
        status = r.status();
        return;
      }
      buffer.erase(0, *r);
      if (*r == 0) return;
    }
  }

  void eof() {
    if (status.ok()) status = codec.onEof();
  }

  void onMessageBegin() override { events.push_back("begin"); }
  void onInformational(ResponseHead& h) override {
    events.push_back("1xx " + std::to_string(h.status));
  }
  void onHeaders(ResponseHead& h, bool end_stream) override {
    std::string e = "headers " + std::to_string(h.status) + " " + h.reason +
                    " ka=" + std::to_string(h.keep_alive) + " end=" + std::to_string(end_stream);
    h.headers.forEach([&](std::string_view n, std::string_view v) {
      e += " [" + std::string(n) + ":" + std::string(v) + "]";
    });
    events.push_back(e);
  }
  void onData(std::span<const char> data, bool end_stream) override {
    body_bytes += data.size();
    if (!events.empty() && events.back().starts_with("data ")) {
      std::string& e = events.back();
      e.erase(e.rfind(" end="));
      e.append(data.data(), data.size());
      e += " end=" + std::to_string(end_stream);
      return;
    }
    events.push_back("data " + std::string(data.data(), data.size()) +
                     " end=" + std::to_string(end_stream));
  }
  void onTrailers(HeaderMap& t) override {
    std::string e = "trailers";
    t.forEach([&](std::string_view n, std::string_view v) {
      e += " [" + std::string(n) + ":" + std::string(v) + "]";
    });
    events.push_back(e);
  }
  void onMessageComplete() override { events.push_back("complete"); }

  ClientCodec codec;
  std::string buffer;
  std::string wire;
  std::vector<std::string> events;
  absl::Status status;
  std::size_t body_bytes = 0;
};

TEST_CASE("client codec parses a sized response and allows reuse", "[codec][http1_client]") {
  ClientHarness h;
  h.request();
  CHECK_FALSE(h.codec.canReuse());
  h.feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello");
  REQUIRE(h.status.ok());
  REQUIRE(h.events.size() == 4);
  CHECK(h.events[1] == "headers 200 OK ka=1 end=0 [content-length:5] [x-a:b]");
  CHECK(h.events[2] == "data hello end=1");
  CHECK(h.codec.canReuse());
}

TEST_CASE("client codec parses chunked responses with trailers", "[codec][http1_client]") {
  ClientHarness h;
  h.request();
  h.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n");
  REQUIRE(h.status.ok());
  CHECK(h.events[2] == "data abc end=0");
  CHECK(h.events[3] == "trailers [t:v]");
  CHECK(h.codec.canReuse());
}

TEST_CASE("client codec reads a close-delimited response until EOF", "[codec][http1_client]") {
  ClientHarness h;
  h.request();
  h.feed("HTTP/1.1 200 OK\r\n\r\nsome");
  h.feed(" bytes");
  CHECK(h.events.back() == "data some bytes end=0");
  h.eof();
  REQUIRE(h.status.ok());
  CHECK(h.events[h.events.size() - 2] == "data some bytes end=1");
  CHECK(h.events.back() == "complete");
  CHECK_FALSE(h.codec.canReuse());
}

TEST_CASE("client codec expects no body after HEAD, 204 and 304", "[codec][http1_client]") {
  SECTION("HEAD with a content-length") {
    ClientHarness h;
    h.request("HEAD");
    h.request("GET");
    h.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
    REQUIRE(h.status.ok());
    REQUIRE(h.events.size() == 7);
    CHECK(h.events[1] == "headers 200 OK ka=1 end=1 [content-length:100]");
    CHECK(h.events[5] == "data x end=1");
    CHECK(h.codec.canReuse());
  }
  SECTION("204 and 304") {
    // A 204's Content-Length may only be 0 (and is then dropped); a 304's
    // describes the representation (http1_hardening_test.cc has the errors).
    const int status = GENERATE(204, 304);
    const std::string cl = status == 204 ? "0" : "3";
    ClientHarness h;
    h.request();
    h.request();
    h.feed("HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + cl + "\r\n\r\n" +
           "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(h.status.ok());
    REQUIRE(h.events.size() == 6);
    CHECK(h.events[1].ends_with(status == 204 ? "end=1" : "end=1 [content-length:3]"));
    CHECK(h.codec.canReuse());
  }
}

TEST_CASE("client codec parses responses to requests the caller encoded itself",
          "[codec][http1_client]") {
  // turnout-bench re-sends pre-serialised requests and only tells the codec
  // which response to expect; HEAD still means "no body".
  ClientHarness h;
  h.codec.expectResponse("HEAD");
  h.codec.expectResponse("GET");
  CHECK(h.wire.empty());
  CHECK_FALSE(h.codec.canReuse());
  h.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  REQUIRE(h.status.ok());
  REQUIRE(h.events.size() == 7);
  CHECK(h.events[1] == "headers 200 OK ka=1 end=1 [content-length:100]");
  CHECK(h.events[5] == "data ok end=1");
  CHECK(h.codec.canReuse());
  h.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  CHECK(h.codec.error() == CodecErrorCode::kUnexpectedResponse);
}

TEST_CASE("client codec surfaces 100 Continue and keeps parsing", "[codec][http1_client]") {
  ClientHarness h;
  h.request("POST", false);
  h.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(h.status.ok());
  REQUIRE(h.events.size() == 4);
  CHECK(h.events[0] == "1xx 100");
  CHECK(h.events[2] == "headers 201 Created ka=1 end=1 [content-length:0]");
  CHECK_FALSE(h.codec.canReuse());  // the request body is still being sent
  std::string out;
  h.codec.encodeData(std::span<const char>(), true, out);
  CHECK(h.codec.canReuse());
}

TEST_CASE("client codec hands over to a tunnel after 101", "[codec][http1_client]") {
  ClientHarness h;
  h.request();
  h.feed("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
         "\x81\x02hi");
  REQUIRE(h.status.ok());
  CHECK(h.codec.upgraded());
  CHECK(h.buffer == "\x81\x02hi");
  CHECK(h.events.back() == "complete");
  CHECK_FALSE(h.codec.canReuse());
}

TEST_CASE("client codec hands over to a tunnel after a 2xx to CONNECT", "[codec][http1_client]") {
  ClientHarness h;
  RequestHead r;
  r.method = "CONNECT";
  r.authority = "db:5432";
  std::string out;
  h.codec.encodeHeaders(r, false, out);
  CHECK(out == "CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n");
  h.feed("HTTP/1.1 200 Connection Established\r\n\r\ntunnel-bytes");
  REQUIRE(h.status.ok());
  CHECK(h.codec.upgraded());
  CHECK(h.buffer == "tunnel-bytes");
}

TEST_CASE("client codec decides keep-alive from the response", "[codec][http1_client]") {
  struct Case {
    std::string response;
    bool reusable;
  };
  const Case c = GENERATE(values<Case>({
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", true},
  }));
  ClientHarness h;
  h.request();
  h.feed(c.response);
  REQUIRE(h.status.ok());
  CHECK(h.codec.canReuse() == c.reusable);
}

TEST_CASE("client codec is not reusable after asking for close", "[codec][http1_client]") {
  ClientHarness h;
  RequestHead r;
  r.method = "GET";
  r.path = "/";
  r.authority = "a";
  r.close_connection = true;
  std::string out;
  h.codec.encodeHeaders(r, true, out);
  CHECK(out == "GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
  h.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  CHECK_FALSE(h.codec.canReuse());
}

TEST_CASE("client codec rejects bad responses with a sticky 502 error", "[codec][http1_client]") {
  using C = CodecErrorCode;
  struct Case {
    const char* name;
    std::string bytes;
    C code;
  };
  const Case c = GENERATE(values<Case>({
      {"invalid content-length", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
       C::kInvalidContentLength},
      {"differing content-lengths",
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       C::kInvalidContentLength},
      {"content-length and chunked",
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
       C::kContentLengthAndChunked},
      {"gzip transfer-encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
       C::kInvalidTransferEncoding},
      {"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", C::kObsFold},
      {"too many headers",
       [] {
         std::string s = "HTTP/1.1 200 OK\r\n";
         for (int i = 0; i < 101; ++i) s += "X: v\r\n";
         return s + "\r\n";
       }(),
       C::kTooManyHeaders},
      {"headers too large", "HTTP/1.1 200 OK\r\nX: " + std::string(61 * 1024, 'v') + "\r\n\r\n",
       C::kHeadersTooLarge},
      {"bad status code", "HTTP/1.1 2x0 OK\r\n\r\n", C::kInvalidStatus},
      {"bad version", "HTTP/2.0 200 OK\r\n\r\n", C::kInvalidStatus},
      {"status below 100", "HTTP/1.1 010 Odd\r\n\r\n", C::kInvalidStatus},
      {"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", C::kInvalidStatus},
      {"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", C::kInvalidChunk},
      {"response with nothing outstanding", "", C::kUnexpectedResponse},
  }));
  INFO(c.name);
  ClientHarness h;
  if (c.code == C::kUnexpectedResponse) {
    h.feed("HTTP/1.1 200 OK\r\n\r\n");
  } else {
    h.request();
    h.feed(c.bytes);
  }
  REQUIRE_FALSE(h.status.ok());
  CHECK(h.codec.error() == c.code);
  CHECK(h.status.message() == std::string(codecErrorInfo(c.code).details));
  CHECK_FALSE(h.codec.canReuse());
  CHECK(h.codec.decode(std::string_view("HTTP/1.1 200 OK\r\n\r\n")).status() == h.status);
}

TEST_CASE("client codec reports a premature EOF", "[codec][http1_client]") {
  SECTION("inside a sized body") {
    ClientHarness h;
    h.request();
    h.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    h.eof();
    CHECK(h.codec.error() == CodecErrorCode::kPrematureEof);
  }
  SECTION("before any response byte") {
    ClientHarness h;
    h.request();
    h.eof();
    CHECK(h.codec.error() == CodecErrorCode::kPrematureEof);
  }
  SECTION("idle connection closed by upstream is not an error") {
    ClientHarness h;
    h.eof();
    CHECK(h.status.ok());
    CHECK_FALSE(h.codec.canReuse());
  }
}

TEST_CASE("client codec emits identical events for any split of a response",
          "[codec][http1_client]") {
  const std::string input =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4;a=b\r\nwiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n"
      "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnah";
  ClientHarness whole;
  whole.request();
  whole.request();
  whole.feed(input);
  REQUIRE(whole.status.ok());
  REQUIRE(whole.events.size() == 10);
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    ClientHarness h;
    h.request();
    h.request();
    std::size_t pos = 0;
    while (pos < input.size()) {
      const std::size_t n = round == 0 ? 1 : std::min<std::size_t>(1 + rng() % 13, input.size() - pos);
      h.feed(std::string_view(input).substr(pos, n));
      pos += n;
    }
    CHECK(h.events == whole.events);
  }
}

TEST_CASE("client codec encodes requests with exact framing", "[codec][http1_client]") {
  ClientHarness h;
  RequestHead r;
  r.method = "POST";
  r.path = "/upload?x=1";
  r.authority = "svc:8080";
  r.headers.add("Host", "ignored");
  r.headers.add("Connection", "keep-alive");
  r.headers.add("Content-Type", "text/plain");
  SECTION("unsized body is chunked, with trailers") {
    std::string out;
    h.codec.encodeHeaders(r, false, out);
    h.codec.encodeData(std::span<const char>("abc", 3), false, out);
    HeaderMap t;
    t.add("x-sum", "1");
    h.codec.encodeTrailers(t, out);
    CHECK(out ==
          "POST /upload?x=1 HTTP/1.1\r\nhost: svc:8080\r\ntransfer-encoding: chunked\r\n"
          "content-type: text/plain\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 1\r\n\r\n");
  }
  SECTION("sized body is sent as is") {
    r.headers.add("content-length", "3");
    std::string out;
    h.codec.encodeHeaders(r, false, out);
    h.codec.encodeData(std::span<const char>("abc", 3), true, out);
    CHECK(out ==
          "POST /upload?x=1 HTTP/1.1\r\nhost: svc:8080\r\ncontent-type: text/plain\r\n"
          "content-length: 3\r\n\r\nabc");
  }
  SECTION("bodiless POST gets content-length 0, GET gets nothing") {
    std::string out;
    h.codec.encodeHeaders(r, true, out);
    CHECK(out ==
          "POST /upload?x=1 HTTP/1.1\r\nhost: svc:8080\r\ncontent-length: 0\r\n"
          "content-type: text/plain\r\n\r\n");
    RequestHead g;
    g.method = "GET";
    g.authority = "a";
    out.clear();
    h.codec.encodeHeaders(g, true, out);
    CHECK(out == "GET / HTTP/1.1\r\nhost: a\r\n\r\n");
  }
  SECTION("upgrade request") {
    RequestHead u;
    u.method = "GET";
    u.path = "/ws";
    u.authority = "a";
    u.upgrade = true;
    u.headers.add("upgrade", "websocket");
    std::string out;
    h.codec.encodeHeaders(u, true, out);
    CHECK(out ==
          "GET /ws HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n");
  }
}

TEST_CASE(
    "heads in the common shape and every other head give the same events with the fast "
    "path on and off",
    "[codec][http1_client]") {
  // The fast path (no Beast) takes the first few; the rest must fall back to
  // Beast from the head's first byte and come out exactly as before.
  const std::vector<std::string> responses = {
      // nginx's shape, then a 404 with padding and OWS, then Connection: close.
      "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 10:00:00 GMT\r\n"
      "Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
      "HTTP/1.1 404 Not Found\r\ncontent-length: 005\r\nx:  a b \t\r\nempty:\r\n\r\nhello",
      "HTTP/1.1 503 \r\nContent-Length: 0\r\nConnection: CLOSE\r\n\r\n",
      // Outside the common shape: Beast's.
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 \xe9t\xe9\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 200 OK\r\nX: caf\xc3\xa9\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 200 OK\r\nX: a\x01b\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 200 OK\r\nX : a\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 200 OK\r\nConnection: upgrade\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nz",
      "HTTP/1.1 200 OK\r\n\r\nclose-delimited",
      "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 099 Low\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 600 High\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 20x OK\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 200OK\r\nContent-Length: 1\r\n\r\nz",
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ntruncated",
  };
  for (const std::string& r : responses) {
    for (const bool split : {false, true}) {
      CAPTURE(r, split);
      Http1Settings fast;
      Http1Settings beast;
      beast.common_head_fast_path = false;
      ClientHarness a(fast), b(beast);
      for (ClientHarness* h : {&a, &b}) {
        h->request();
        h->request();
        if (split) {
          for (const char c : r) h->feed(std::string_view(&c, 1));
        } else {
          h->feed(r);
        }
      }
      CHECK(a.events == b.events);
      CHECK(a.status == b.status);
      CHECK(a.codec.canReuse() == b.codec.canReuse());
      a.eof();
      b.eof();
      CHECK(a.events == b.events);
      CHECK(a.status == b.status);
    }
  }
  // Two common responses back to back on one connection.
  ClientHarness h;
  h.request();
  h.request();
  h.feed(responses[0] + responses[1]);
  REQUIRE(h.status.ok());
  CHECK(h.events == std::vector<std::string>{
                        "begin",
                        "headers 200 OK ka=1 end=0 [server:nginx/1.22.1] [date:Sun, 06 Dec 2026 "
                        "10:00:00 GMT] [content-type:text/plain] [content-length:2] "
                        "[connection:keep-alive]",
                        "data ok end=1", "complete", "begin",
                        "headers 404 Not Found ka=1 end=0 [content-length:5] [x:a b] [empty:]",
                        "data hello end=1", "complete"});
  CHECK(h.codec.canReuse());
}

TEST_CASE("EOF inside a head that follows a HEAD response is a premature EOF, no more",
          "[codec][http1_client]") {
  // Found by the fuzzer: the HEAD response went through Beast; the next head
  // (fast path) was cut by EOF, and the previous message's Beast parser
  // finished a second time.
  ClientHarness h;
  h.request("HEAD");
  h.request();
  h.feed("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nHTTP/1.1 200 OK\r\nConte");
  REQUIRE(h.status.ok());
  h.eof();
  CHECK(h.status.message() == "http1.premature_eof");
  CHECK(std::count(h.events.begin(), h.events.end(), "complete") == 1);
}

}  // namespace
}  // namespace turnout::proxy::http1
