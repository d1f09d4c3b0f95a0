// Bad input on the HTTP/1.1 codecs (RFC 9110/9112), in both directions:
// Content-Length lists, Host validation, and a table of chunked-framing
// variants, each of which must be decoded exactly or rejected with a specific
// error, for every split of the bytes and for every truncation followed by EOF.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "proxy/codec/http1_client_codec.h"
#include "proxy/codec/http1_server_codec.h"

namespace turnout::proxy::http1 {
namespace {

using C = CodecErrorCode;

std::string fields(const HeaderMap& m) {
  std::string s;
  m.forEach([&](std::string_view n, std::string_view v) {
    s += "[" + std::string(n) + ":" + std::string(v) + "]";
  });
  return s;
}

// Records a message as: head fields, body bytes, trailers, completion.
struct Recorder {
  std::string head;
  std::string body;
  std::string trailers;
  bool end_seen = false;
  int completed = 0;

  void onData(std::span<const char> d, bool end) {
    body.append(d.data(), d.size());
    if (end) end_seen = true;
  }
  void onTrailers(const HeaderMap& t) {
    trailers = fields(t);
    end_seen = true;
  }
};

// The decoder callbacks both harnesses share: the head kept, the message
// recorded in `rec`.
template <class Head, class Callbacks>
class Recording : public Callbacks {
 public:
  void onMessageBegin() override {}
  void onHeaders(Head& h, bool end) override {
    head = h;
    rec.head = fields(h.headers);
    if (end) rec.end_seen = true;
  }
  void onData(std::span<const char> d, bool end) override { rec.onData(d, end); }
  void onTrailers(HeaderMap& t) override { rec.onTrailers(t); }
  void onMessageComplete() override { rec.completed++; }

  std::string buffer;
  absl::Status status;
  std::optional<Head> head;
  Recorder rec;
};

class Server : public Recording<RequestHead, RequestDecoderCallbacks> {
 public:
  Server() : codec(*this) {}
  void feed(std::string_view bytes) {
    buffer.append(bytes);
    while (status.ok()) {
      auto r = codec.decode(buffer);
      if (!r.ok()) {
        status = r.status();
        return;
      }
      buffer.erase(0, *r);
      if (codec.paused()) {
        ResponseHead h;
        std::string out;
        codec.encodeHeaders(h, true, out);
        continue;
      }
      if (*r == 0) return;
    }
  }
  void eof() {
    if (status.ok()) status = codec.onEof();
  }

  ServerCodec codec;
};

class Client : public Recording<ResponseHead, ResponseDecoderCallbacks> {
 public:
  Client() : codec(*this) {
    RequestHead r;
    r.method = "GET";
    r.authority = "up";
    std::string out;
    codec.encodeHeaders(r, true, out);
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

  void onInformational(ResponseHead&) override {}

  ClientCodec codec;
};

// Occurrences of `needle` in `hay`.
std::size_t countOf(std::string_view hay, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t p = hay.find(needle); p != std::string_view::npos; p = hay.find(needle, p + 1)) {
    ++n;
  }
  return n;
}

// ---------------------------------------------------------------------------
// Content-Length

TEST_CASE("equal Content-Length values are collapsed to one field before forwarding upstream",
          "[codec][hardening]") {
  const std::string cl = GENERATE(as<std::string>{}, "Content-Length: 5, 5\r\n",
                                  "Content-Length: 5,5\r\n",
                                  "Content-Length: 5\r\nContent-Length: 5\r\n",
                                  "Content-Length: 5\r\ncontent-length: 5, 5\r\n",
                                  "Content-Length: 005\r\n", "Content-Length: 5, 05\r\n");
  INFO(cl);
  Server s;
  s.feed("POST /p HTTP/1.1\r\nHost: a\r\n" + cl + "X: y\r\n\r\nhello");
  REQUIRE(s.status.ok());
  CHECK(s.rec.head == "[host:a][content-length:5][x:y]");
  CHECK(s.rec.body == "hello");
  CHECK(s.rec.end_seen);
  CHECK(s.head->content_length == 5u);
  // What the router sends upstream: one content-length field with one value.
  Client up;
  std::string wire;
  up.codec.encodeHeaders(*s.head, false, wire);
  CHECK(countOf(wire, "content-length") == 1);
  CHECK(countOf(wire, "content-length: 5\r\n") == 1);
}

TEST_CASE("equal Content-Length values in a response are collapsed before forwarding downstream",
          "[codec][hardening]") {
  const std::string cl =
      GENERATE(as<std::string>{}, "Content-Length: 3, 3\r\n",
               "Content-Length: 3\r\nContent-Length: 3\r\n", "Content-Length: 03\r\n");
  INFO(cl);
  Client c;
  c.feed("HTTP/1.1 200 OK\r\n" + cl + "\r\nabc");
  REQUIRE(c.status.ok());
  CHECK(c.rec.head == "[content-length:3]");
  CHECK(c.rec.body == "abc");
  // Encoded to the client by the server codec: one field, one value.
  Server down;
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  REQUIRE(down.codec.decode(req).ok());
  std::string out;
  down.codec.encodeHeaders(*c.head, false, out);
  CHECK(countOf(out, "content-length") == 1);
  CHECK(countOf(out, "content-length: 3\r\n") == 1);
}

TEST_CASE("unequal, empty, signed, non-digit or overflowing Content-Length is rejected",
          "[codec][hardening]") {
  const std::string cl = GENERATE(
      as<std::string>{}, "5, 6", "5\r\nContent-Length: 6", "5,,5", "5, ", ", 5", ",", "", " ",
      "5 5", "+5", "-5", "0x5", "5.0", "5;", "five", "18446744073709551616",
      "99999999999999999999999", "5, 18446744073709551621");
  INFO("Content-Length: " << cl);
  SECTION("request: 400 http1.invalid_content_length") {
    Server s;
    s.feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + cl + "\r\n\r\nhello");
    REQUIRE_FALSE(s.status.ok());
    CHECK(s.codec.error() == C::kInvalidContentLength);
    CHECK(s.status.message() == "http1.invalid_content_length");
    CHECK(codecErrorInfo(C::kInvalidContentLength).downstream_status == 400);
    CHECK_FALSE(s.head.has_value());  // never surfaced, so never forwarded
  }
  SECTION("response: protocol error") {
    Client c;
    c.feed("HTTP/1.1 200 OK\r\nContent-Length: " + cl + "\r\n\r\nhello");
    REQUIRE_FALSE(c.status.ok());
    CHECK(c.codec.error() == C::kInvalidContentLength);
    CHECK_FALSE(c.head.has_value());
    CHECK_FALSE(c.codec.canReuse());
  }
}

TEST_CASE("client codec applies Envoy's framing rules to 1xx and 204 responses",
          "[codec][hardening]") {
  SECTION("204 with a non-zero Content-Length is http1.content_length_not_allowed") {
    Client c;
    c.feed("HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n");
    CHECK(c.codec.error() == C::kContentLengthNotAllowed);
    CHECK(c.status.message() == "http1.content_length_not_allowed");
  }
  SECTION("100 Continue with a non-zero Content-Length is rejected") {
    Client c;
    c.feed("HTTP/1.1 100 Continue\r\nContent-Length: 1\r\n\r\n");
    CHECK(c.codec.error() == C::kContentLengthNotAllowed);
  }
  SECTION("204 with Transfer-Encoding is http1.transfer_encoding_not_allowed") {
    Client c;
    c.feed("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n");
    CHECK(c.codec.error() == C::kTransferEncodingNotAllowed);
    CHECK(c.status.message() == "http1.transfer_encoding_not_allowed");
  }
  SECTION("204 with Content-Length 0 is accepted and the field dropped") {
    Client c;
    c.feed("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX: y\r\n\r\n");
    REQUIRE(c.status.ok());
    CHECK(c.rec.head == "[x:y]");
    CHECK_FALSE(c.head->content_length.has_value());
    CHECK(c.rec.completed == 1);
    CHECK(c.codec.canReuse());
  }
  SECTION("304 keeps its Content-Length, which describes the selected representation") {
    Client c;
    c.feed("HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n");
    REQUIRE(c.status.ok());
    CHECK(c.rec.head == "[content-length:3]");
    CHECK(c.rec.completed == 1);
  }
}

// ---------------------------------------------------------------------------
// Host

TEST_CASE("server codec accepts every valid Host authority", "[codec][hardening]") {
  const std::string host = GENERATE(
      as<std::string>{}, "a", "svc.local", "svc.local:8080", "127.0.0.1", "127.0.0.1:80",
      "[::1]", "[::1]:8080", "[2001:db8::7]:443", "[v1.fe:x]", "xn--bcher-kva.example", "a_b-c~d",
      "%41bc", "a:65535", "a:0", "sub!$&'()*+,;=delims");
  INFO("Host: " << host);
  Server s;
  s.feed("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
  REQUIRE(s.status.ok());
  CHECK(s.head->authority == host);
}

TEST_CASE("server codec rejects an invalid Host with 400 http.invalid_authority",
          "[codec][hardening]") {
  const std::string host = GENERATE(
      as<std::string>{}, "a b", "a\tb", "user@a", "user:pw@a", "@a", "a:port", "a:", "a:65536",
      "a:123456", "a:-1", "a:80:90", ":80", "[::1", "[::g]", "[::1]x", "[::1]:", "[]", "::1",
      "a/b", "a?b", "a#b", "a\"b", "a<b", "a\\b", "a{b}", "%zz", "a%4", "a%", "\xc3\xa9.example",
      "", "[fe80::1%25eth0]");
  INFO("Host: " << host);
  Server s;
  s.feed("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
  REQUIRE_FALSE(s.status.ok());
  CHECK(s.codec.error() == C::kInvalidHost);
  CHECK(s.status.message() == "http.invalid_authority");
  CHECK(codecErrorInfo(C::kInvalidHost).downstream_status == 400);
  CHECK(s.codec.shouldClose());
  CHECK_FALSE(s.head.has_value());
}

TEST_CASE("server codec keeps its missing, repeated and HTTP/1.0 Host behaviour",
          "[codec][hardening]") {
  SECTION("missing on HTTP/1.1") {
    Server s;
    s.feed("GET / HTTP/1.1\r\n\r\n");
    CHECK(s.codec.error() == C::kMissingHost);
  }
  SECTION("repeated, even if equal") {
    Server s;
    s.feed("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n");
    CHECK(s.codec.error() == C::kMultipleHost);
  }
  SECTION("repeated with one invalid is still a repeated Host") {
    Server s;
    s.feed("GET / HTTP/1.1\r\nHost: a\r\nHost: a b\r\n\r\n");
    CHECK(s.codec.error() == C::kMultipleHost);
  }
  SECTION("missing on HTTP/1.0") {
    Server s;
    s.feed("GET / HTTP/1.0\r\n\r\n");
    REQUIRE(s.status.ok());
    CHECK(s.head->authority.empty());
  }
  SECTION("empty on HTTP/1.0 means none") {
    Server s;
    s.feed("GET / HTTP/1.0\r\nHost:\r\n\r\n");
    REQUIRE(s.status.ok());
    CHECK(s.head->authority.empty());
  }
  SECTION("invalid on HTTP/1.0") {
    Server s;
    s.feed("GET / HTTP/1.0\r\nHost: u@a\r\n\r\n");
    CHECK(s.codec.error() == C::kInvalidHost);
  }
}

TEST_CASE("an absolute-form target's authority replaces Host (RFC 9112 3.2.2)",
          "[codec][hardening]") {
  SECTION("a different valid Host is normalised to the target's authority") {
    Server s;
    s.feed("GET http://real.example:8080/x HTTP/1.1\r\nHost: other\r\nX: y\r\n\r\n");
    REQUIRE(s.status.ok());
    CHECK(s.head->authority == "real.example:8080");
    CHECK(s.head->headers.get("host") == "real.example:8080");
    CHECK(s.head->headers.count("host") == 1);
    Client up;
    std::string wire;
    up.codec.encodeHeaders(*s.head, true, wire);
    CHECK(wire.starts_with("GET /x HTTP/1.1\r\nhost: real.example:8080\r\n"));
    CHECK(countOf(wire, "host:") == 1);
  }
  SECTION("an invalid Host is still a 400") {
    Server s;
    s.feed("GET http://real.example/x HTTP/1.1\r\nHost: u@other\r\n\r\n");
    CHECK(s.codec.error() == C::kInvalidHost);
  }
  SECTION("an invalid target authority is http1.invalid_url") {
    const std::string target =
        GENERATE(as<std::string>{}, "http://a%zz/", "http://a:99999/", "http://:80/",
                 "http://[::1/", "http://a:b/", "http://u@a/");
    INFO(target);
    Server s;
    s.feed("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(s.codec.error() == C::kInvalidUrl);
  }
  SECTION("CONNECT needs host:port") {
    const std::string target = GENERATE(as<std::string>{}, "db", "db:", "u@db:5432", "db:5432/x",
                                        "/db:5432", "db:99999");
    INFO(target);
    Server s;
    s.feed("CONNECT " + target + " HTTP/1.1\r\nHost: db\r\n\r\n");
    CHECK(s.codec.error() == C::kInvalidUrl);
  }
}

// ---------------------------------------------------------------------------
// Chunked framing

enum class Outcome { kDecoded, kRejected, kIncomplete };

struct ChunkCase {
  const char* name;
  std::string body;  // the bytes after a head with Transfer-Encoding: chunked
  Outcome outcome;
  std::string data;      // kDecoded: the body delivered
  std::string trailers;  // kDecoded: the trailers delivered
  C code = C::kNone;     // kRejected: the error
};

ChunkCase decoded(const char* name, std::string body, std::string data, std::string trailers = {}) {
  return {name, std::move(body), Outcome::kDecoded, std::move(data), std::move(trailers)};
}
ChunkCase rejected(const char* name, std::string body, C code) {
  return {name, std::move(body), Outcome::kRejected, {}, {}, code};
}
ChunkCase incomplete(const char* name, std::string body) {
  return {name, std::move(body), Outcome::kIncomplete, {}, {}};
}

std::vector<ChunkCase> chunkCases() {
  const std::string nul("a\0b", 3);
  return {
      decoded("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"),
      decoded("several chunks", "1\r\nh\r\n4\r\nello\r\n0\r\n\r\n", "hello"),
      decoded("binary data", "3\r\n" + nul + "\r\n0\r\n\r\n", nul),
      decoded("uppercase hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
      decoded("lowercase hex", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
      decoded("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello"),
      decoded("extension name", "5;flag\r\nhello\r\n0;last\r\n\r\n", "hello"),
      decoded("extension name=value", "5;name=value\r\nhello\r\n0\r\n\r\n", "hello"),
      decoded("extension quoted value", "5;n=\"a b;c\\\"d\"\r\nhello\r\n0\r\n\r\n", "hello"),
      decoded("several extensions", "5;a=1;b;c=\"x\"\r\nhello\r\n0\r\n\r\n", "hello"),
      decoded("extension with BWS", "5 ;\tn = v\r\nhello\r\n0\r\n\r\n", "hello"),
      decoded("trailers", "5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other: two\r\n\r\n", "hello",
              "[x-sum:1][x-other:two]"),
      decoded("forbidden trailers are dropped",
              "5\r\nhello\r\n0\r\nHost: evil\r\nConnection: close\r\nX-Sum: 1\r\nTE: trailers\r\n"
              "Upgrade: h2c\r\nTrailer: X-Sum\r\nKeep-Alive: 1\r\n\r\n",
              "hello", "[x-sum:1]"),
      decoded("only forbidden trailers end like no trailers", "5\r\nhello\r\n0\r\nHost: e\r\n\r\n",
              "hello"),
      decoded("empty body", "0\r\n\r\n", ""),
      rejected("extension with a control char", "5;n=\x01\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("extension with no name", "5;\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("extension with a separator in its name", "5;a/b\r\nhello\r\n0\r\n\r\n",
               C::kInvalidChunk),
      rejected("extension with an unterminated quote", "5;n=\"ab\r\nhello\r\n0\r\n\r\n",
               C::kInvalidChunk),
      rejected("extension quote closed after the line end",
               "5;n=\"ab\r\nhe\"lo\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("last chunk with an unterminated quote", "0;n=\"x\r\n\r\n", C::kInvalidChunk),
      rejected("bare LF inside a quoted extension", "5;n=\"a\nb\"\r\nhello\r\n0\r\n\r\n",
               C::kInvalidChunk),
      // Regression from codec_http1_server_fuzz: the bare LF decides, not the
      // length of the line Beast would otherwise take whole.
      rejected("bare LFs inside a quoted extension of an over-long last chunk",
               "0;e=\"" + std::string(4200, '\n') + "q\"\r\n\r\n", C::kInvalidChunk),
      rejected("control char inside a quoted extension",
               "5;n=\"a\x01b\"\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("extension with a space in a token", "5;n=a b\r\nhello\r\n0\r\n\r\n",
               C::kInvalidChunk),
      rejected("extension with DEL", "5;n\x7f\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("size followed by a space", "5 \r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("size followed by a tab", "5\t\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("size with a space inside", "1 0\r\n0123456789abcdef\r\n0\r\n\r\n",
               C::kInvalidChunk),
      rejected("size preceded by a space", " 5\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("size preceded by a tab", "\t5\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("empty size", "\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("negative size", "-5\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("non-hex size", "g\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("size overflowing 64 bits", "10000000000000000\r\nx\r\n0\r\n\r\n",
               C::kInvalidChunk),
      rejected("size overflowing with leading digits", "fffffffffffffffff0\r\nx\r\n",
               C::kInvalidChunk),
      rejected("data longer than its size", "3\r\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("no CRLF after data", "5\r\nhello0\r\n\r\n", C::kInvalidChunk),
      rejected("CR alone after data", "5\r\nhello\r0\r\n\r\n", C::kInvalidChunk),
      rejected("LF alone after data", "5\r\nhello\n0\r\n\r\n", C::kInvalidChunk),
      rejected("bare LF after the size", "5\nhello\r\n0\r\n\r\n", C::kInvalidChunk),
      rejected("LF-only line endings", "5\nhello\n0\n\n", C::kInvalidChunk),
      rejected("LF-only last chunk", "5\r\nhello\r\n0\n\n", C::kInvalidChunk),
      rejected("bare CR in the chunk line", "5\rhello\r\n0\r\n\r\n", C::kInvalidLineEnding),
      rejected("LF-only end of the chunked body", "5\r\nhello\r\n0\r\n\n", C::kInvalidLineEnding),
      rejected("LF-only trailer line", "5\r\nhello\r\n0\r\nX: 1\n\r\n", C::kInvalidLineEnding),
      rejected("LF-only trailer block", "5\r\nhello\r\n0\r\nX: 1\n\n", C::kInvalidLineEnding),
      rejected("bare CR in a trailer", "5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n",
               C::kInvalidLineEnding),
      rejected("trailer without a colon", "5\r\nhello\r\n0\r\nBad\r\n\r\n",
               C::kInvalidHeaderName),
      rejected("trailer with a space before its colon", "5\r\nhello\r\n0\r\nX : a\r\n\r\n",
               C::kInvalidHeaderName),
      rejected("trailer with a control char", "5\r\nhello\r\n0\r\nX: a\x01\r\n\r\n",
               C::kInvalidCharacters),
      rejected("trailer obs-fold", "5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n", C::kObsFold),
      // Regression from the codec fuzzers: the bare CR decides even though
      // Beast, given the whole block, stops at the obs-fold first.
      rejected("trailer obs-fold before a bare CR",
               "5\r\nhello\r\n0\r\nX: a\r\n b\r\n\rY: 1\r\n\r\n", C::kInvalidLineEnding),
      rejected("content-length trailer", "5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n",
               C::kContentLengthAndChunked),
      rejected("transfer-encoding trailer",
               "5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
               C::kInvalidTransferEncoding),
      rejected("next message where the final CRLF should be",
               "5\r\nhello\r\n0\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", C::kInvalidHeaderName),
      incomplete("huge chunk, data cut short", "ffffffffffffffff\r\nabc"),
      incomplete("no last chunk", "5\r\nhello\r\n"),
      incomplete("no CRLF after the last chunk's trailers", "5\r\nhello\r\n0\r\n"),
      incomplete("trailers never terminated", "5\r\nhello\r\n0\r\nX: 1\r\n"),
      incomplete("partial chunk line", "5;name=val"),
  };
}

const char* const kRequestHead = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
const char* const kResponseHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

struct Result {
  CodecErrorCode error;
  Recorder rec;
  bool operator==(const Result& o) const {
    return error == o.error && rec.head == o.rec.head && rec.body == o.rec.body &&
           rec.trailers == o.rec.trailers && rec.end_seen == o.rec.end_seen &&
           rec.completed == o.rec.completed;
  }
};

template <typename Side>
Result run(std::string_view input, std::size_t split, bool eof) {
  Side side;
  side.feed(input.substr(0, split));
  side.feed(input.substr(split));
  if (eof) side.eof();
  return {side.codec.error(), side.rec};
}

template <typename Side>
void checkChunkCase(const ChunkCase& c, std::string_view head) {
  const std::string input = std::string(head) + c.body;
  const Result whole = run<Side>(input, input.size(), /*eof=*/false);
  switch (c.outcome) {
    case Outcome::kDecoded:
      CHECK(whole.error == C::kNone);
      CHECK(whole.rec.body == c.data);
      CHECK(whole.rec.trailers == c.trailers);
      CHECK(whole.rec.end_seen);
      CHECK(whole.rec.completed == 1);
      break;
    case Outcome::kRejected:
      CHECK(whole.error == c.code);
      CHECK(whole.rec.completed == 0);
      break;
    case Outcome::kIncomplete:
      // Waiting for more bytes; the peer closing then is an error.
      CHECK(whole.error == C::kNone);
      CHECK(whole.rec.completed == 0);
      CHECK(run<Side>(input, input.size(), true).error == C::kPrematureEof);
      break;
  }
  // The outcome does not depend on how the bytes arrive.
  for (std::size_t i = 1; i < input.size(); ++i) {
    INFO("split at " << i);
    const Result part = run<Side>(input, i, false);
    CHECK(static_cast<int>(part.error) == static_cast<int>(whole.error));
    CHECK(part.rec.body == whole.rec.body);
    CHECK(part.rec.trailers == whole.rec.trailers);
    CHECK(part.rec.end_seen == whole.rec.end_seen);
    CHECK(part.rec.completed == whole.rec.completed);
    CHECK(part.rec.head == whole.rec.head);
  }
  // Cut at every byte, then EOF: never a complete message, never "waiting"
  // once the peer has gone; the case's own error where it is already visible.
  for (std::size_t i = 1; i < input.size(); ++i) {
    INFO("truncated to " << i << " bytes, then EOF");
    const Result cut = run<Side>(input.substr(0, i), i, true);
    CHECK(cut.rec.completed == 0);
    if (c.outcome == Outcome::kRejected) {
      CHECK((cut.error == C::kPrematureEof || cut.error == c.code));
    } else {
      CHECK(cut.error == C::kPrematureEof);
    }
  }
  // And the whole input then EOF: an exchange that completed stays fine.
  const Result closed = run<Side>(input, input.size(), true);
  if (c.outcome == Outcome::kDecoded) CHECK(closed.error == C::kNone);
  if (c.outcome == Outcome::kRejected) CHECK(closed.error == c.code);
}

TEST_CASE("every chunked-framing variant is decoded exactly or rejected, however it arrives",
          "[codec][hardening]") {
  const ChunkCase c = GENERATE(from_range(chunkCases()));
  INFO(c.name);
  SECTION("request (server codec)") { checkChunkCase<Server>(c, kRequestHead); }
  SECTION("response (client codec)") { checkChunkCase<Client>(c, kResponseHead); }
}

TEST_CASE("Transfer-Encoding variants are chunked exactly or rejected", "[codec][hardening]") {
  struct TeCase {
    const char* name;
    std::string fields;
    C code;  // kNone: a valid chunked request
  };
  const TeCase c = GENERATE(values<TeCase>({
      {"plain", "Transfer-Encoding: chunked\r\n", C::kNone},
      {"case-insensitive", "Transfer-Encoding: Chunked\r\n", C::kNone},
      {"surrounding whitespace", "Transfer-Encoding: \t chunked \t\r\n", C::kNone},
      {"repeated field", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
       C::kInvalidTransferEncoding},
      {"listed twice", "Transfer-Encoding: chunked, chunked\r\n", C::kInvalidTransferEncoding},
      {"chunked then gzip", "Transfer-Encoding: chunked, gzip\r\n", C::kInvalidTransferEncoding},
      {"gzip then chunked", "Transfer-Encoding: gzip, chunked\r\n", C::kInvalidTransferEncoding},
      {"split over two fields", "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
       C::kInvalidTransferEncoding},
      {"identity", "Transfer-Encoding: identity\r\n", C::kInvalidTransferEncoding},
      {"xchunked", "Transfer-Encoding: xchunked\r\n", C::kInvalidTransferEncoding},
      {"chunked with a parameter", "Transfer-Encoding: chunked;q=1\r\n",
       C::kInvalidTransferEncoding},
      {"quoted", "Transfer-Encoding: \"chunked\"\r\n", C::kInvalidTransferEncoding},
      {"empty", "Transfer-Encoding: \r\n", C::kInvalidTransferEncoding},
      {"space before the colon", "Transfer-Encoding : chunked\r\n", C::kInvalidHeaderName},
      {"tab before the colon", "Transfer-Encoding\t: chunked\r\n", C::kInvalidHeaderName},
      {"obs-fold", "Transfer-Encoding:\r\n chunked\r\n", C::kObsFold},
      {"vertical tab", "Transfer-Encoding: \x0b" "chunked\r\n", C::kInvalidCharacters},
      {"with Content-Length", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
       C::kContentLengthAndChunked},
      {"with Content-Length after", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
       C::kContentLengthAndChunked},
      {"with a Content-Length list", "Transfer-Encoding: chunked\r\nContent-Length: 5, 6\r\n",
       C::kContentLengthAndChunked},
  }));
  INFO(c.name);
  Server s;
  s.feed("POST / HTTP/1.1\r\nHost: a\r\n" + c.fields + "\r\n5\r\nhello\r\n0\r\n\r\n");
  CHECK(s.codec.error() == c.code);
  if (c.code == C::kNone) {
    CHECK(s.rec.body == "hello");
    CHECK(s.rec.completed == 1);
  } else {
    CHECK_FALSE(s.head.has_value());
    CHECK(codecErrorInfo(c.code).downstream_status >= 400);
  }
}

TEST_CASE("server codec reports EOF inside a request and accepts it between requests",
          "[codec][hardening]") {
  SECTION("between requests") {
    Server s;
    s.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    s.eof();
    CHECK(s.status.ok());
  }
  SECTION("before any byte") {
    Server s;
    s.eof();
    CHECK(s.status.ok());
  }
  SECTION("inside a head") {
    Server s;
    s.feed("GET / HTTP/1.1\r\nHo");
    s.eof();
    CHECK(s.codec.error() == C::kPrematureEof);
  }
  SECTION("inside a sized body") {
    Server s;
    s.feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    s.eof();
    CHECK(s.codec.error() == C::kPrematureEof);
    CHECK(s.codec.shouldClose());
  }
  SECTION("after a response that ended the exchange early") {
    Server s;
    s.feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    ResponseHead r;
    r.status = 413;
    std::string out;
    s.codec.encodeHeaders(r, true, out);
    s.eof();
    CHECK(s.status.ok());
  }
}

}  // namespace
}  // namespace turnout::proxy::http1
