#include "proxy/codec/http2_client_codec.h"

#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/codec/http2_nghttp2.h"
#include "tests/unit/proxy/codec/http2_test_peer.h"

namespace turnout::proxy::http2 {
namespace {

using test::Fields;
using test::pump;
using test::TestPeer;

struct ConnRecorder : ConnectionCallbacks {
  void onSettings(const PeerSettings& s) override { settings.push_back(s); }
  void onGoAway(std::int32_t last, std::uint32_t code) override {
    goaway_last = last;
    goaway_code = code;
  }
  std::vector<PeerSettings> settings;
  std::optional<std::int32_t> goaway_last;
  std::uint32_t goaway_code = 0;
};

// Records one response; acknowledges body bytes as they come unless told not to.
struct StreamRecorder : ResponseDecoderCallbacks {
  void onMessageBegin() override { events += "B|"; }
  void onInformational(ResponseHead& h) override { events += "I" + std::to_string(h.status) + "|"; }
  void onHeaders(ResponseHead& h, bool end) override {
    events += "H" + std::to_string(h.status) + (end ? "E|" : "|");
    status = h.status;
    headers = h.headers;
    content_length = h.content_length;
  }
  void onData(std::span<const char> d, bool end) override {
    body.append(d.data(), d.size());
    if (end) events += "DE|";
    if (consume && stream != nullptr) stream->consumed(d.size());
  }
  void onTrailers(HeaderMap& t) override {
    events += "T|";
    trailers = t;
  }
  void onMessageComplete() override {
    events += "C|";
    complete = true;
  }
  void onReset(StreamResetReason r) override {
    events += "R|";
    reset = r;
  }

  ClientStream* stream = nullptr;
  bool consume = true;
  std::string events;
  std::uint16_t status = 0;
  HeaderMap headers;
  HeaderMap trailers;
  std::optional<std::uint64_t> content_length;
  std::string body;
  bool complete = false;
  std::optional<StreamResetReason> reset;
};

RequestHead get(std::string path) {
  RequestHead h;
  h.method = "GET";
  h.path = std::move(path);
  h.authority = "backend.local";
  return h;
}

// A connected client: preface and SETTINGS exchanged both ways.
struct Connected {
  explicit Connected(const Http2Settings& settings = {},
                     std::vector<nghttp2_settings_entry> peer_settings = {})
      : peer(std::move(peer_settings)), client(conn, settings) {
    REQUIRE(pump(client, peer));
  }
  ClientStreamPtr start(StreamRecorder& r, RequestHead head, bool end_stream = true) {
    ClientStreamPtr s = client.newStream(r);
    REQUIRE(s != nullptr);
    r.stream = s.get();
    REQUIRE(s->encodeHeaders(head, end_stream).ok());
    return s;
  }
  ConnRecorder conn;
  TestPeer peer;
  ClientCodec client;
};

TEST_CASE("h2 client sends headers, body and trailers and decodes them back", "[h2codec]") {
  Connected c;
  StreamRecorder r;
  RequestHead head = get("/echo?x=1");
  head.method = "POST";
  head.headers.add("x-turnout-routing-key", "feat-a");
  head.headers.add("connection", "keep-alive");
  head.headers.add("transfer-encoding", "chunked");
  head.headers.add("host", "ignored.example");
  head.headers.add("te", "trailers");
  ClientStreamPtr s = c.start(r, head, false);
  s->encodeData(std::span<const char>("hello ", 6), false);
  s->encodeData(std::span<const char>("world", 5), false);
  HeaderMap trailers;
  trailers.add("x-checksum", "abc");
  s->encodeTrailers(trailers);
  REQUIRE(pump(c.client, c.peer));

  REQUIRE(s->id() == 1);
  const test::PeerRequest& req = c.peer.requests.at(1);
  CHECK(req.get(":method") == "POST");
  CHECK(req.get(":scheme") == "http");
  CHECK(req.get(":authority") == "backend.local");
  CHECK(req.get(":path") == "/echo?x=1");
  CHECK(req.get("x-turnout-routing-key") == "feat-a");
  CHECK(req.get("te") == "trailers");
  CHECK(req.get("connection") == "<none>");
  CHECK(req.get("transfer-encoding") == "<none>");
  CHECK(req.get("host") == "<none>");
  CHECK(req.body == "hello world");
  CHECK(req.trailers == Fields{{"x-checksum", "abc"}});
  CHECK(req.ended);

  c.peer.respond(1, "200", {{"content-type", "text/plain"}, {"content-length", "5"}}, "howdy",
                 {{"grpc-status", "0"}});
  REQUIRE(pump(c.client, c.peer));
  CHECK(r.events == "B|H200|T|C|");
  CHECK(r.status == 200);
  CHECK(r.headers.get("content-type") == "text/plain");
  CHECK(r.content_length == 5u);
  CHECK(r.body == "howdy");
  CHECK(r.trailers.get("grpc-status") == "0");
  CHECK(s->wireBytesReceived() > 5 + 3 * 9);
  CHECK(c.client.activeStreams() == 0);
}

TEST_CASE("h2 request ids and trace context go as never-indexed literals", "[h2codec]") {
  // New on every request: indexed, they would only churn both HPACK tables.
  // The first of each name on a connection is indexed (one entry), so that
  // the later literals name the field by its index, not as a string.
  Connected c;
  auto request = [](const std::string& id) {
    RequestHead head = get("/");
    head.headers.add("x-request-id", id);
    head.headers.add("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    head.headers.add("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7");
    head.headers.add("x-app", "1");
    head.headers.add("baggage", "routing-key=feat-a");
    return head;
  };
  StreamRecorder r1, r2;
  ClientStreamPtr s1 = c.start(r1, request("0f9a2c1e-8d4b-4f6a-9c3e-1b2d3e4f5a6b"), true);
  REQUIRE(pump(c.client, c.peer));
  ClientStreamPtr s2 = c.start(r2, request("7c3d2e1f-0a9b-4c8d-8e7f-6a5b4c3d2e1f"), true);
  REQUIRE(pump(c.client, c.peer));
  const test::PeerRequest& first = c.peer.requests.at(1);
  CHECK(first.get("x-request-id") == "0f9a2c1e-8d4b-4f6a-9c3e-1b2d3e4f5a6b");
  CHECK(first.get("x-app") == "1");
  CHECK(first.never_indexed.empty());
  const test::PeerRequest& second = c.peer.requests.at(3);
  CHECK(second.get("x-request-id") == "7c3d2e1f-0a9b-4c8d-8e7f-6a5b4c3d2e1f");
  CHECK(second.get("traceparent") == first.get("traceparent"));
  CHECK(second.never_indexed ==
        std::vector<std::string>{"x-request-id", "traceparent", "x-b3-traceid"});
  // Every other field is indexed now (1 byte each, 7); the three literals
  // are their name's index (2), the value's length (1) and the value,
  // Huffman-coded (36, 55 and 32 characters: ~27 + 37 + 24 bytes).
  CHECK(second.header_block_bytes < 7 + 3 * 3 + 36 + 55 + 32);
  CHECK(second.header_block_bytes < first.header_block_bytes - 30);
}

TEST_CASE("h2 a field the map marks never-indexed goes as a never-indexed literal", "[h2codec]") {
  // RFC 7541 §6.2.3: what a peer sent so is re-encoded so by an intermediary.
  Connected c;
  StreamRecorder r;
  RequestHead head = get("/");
  head.headers.addLowercase("x-api-key", "k-1", /*never_indexed=*/true);
  head.headers.addLowercase("x-request-id", "id-1", /*never_indexed=*/true);  // not the seed
  head.headers.addLowercase("x-app", "1");
  ClientStreamPtr s = c.start(r, head, true);
  REQUIRE(pump(c.client, c.peer));
  const test::PeerRequest& req = c.peer.requests.at(1);
  CHECK(req.get("x-api-key") == "k-1");
  CHECK(req.never_indexed == std::vector<std::string>{"x-api-key", "x-request-id"});
}

TEST_CASE("h2 client opts out of RFC 7540 priorities", "[h2codec]") {
  Connected c;
  CHECK(nghttp2_session_get_remote_settings(c.peer.session,
                                            NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES) == 1);
}

TEST_CASE("h2 an encoder indexes one field of each never-indexed name, again every 1024 blocks",
          "[h2codec]") {
  http2::NameSeeds seeds;
  auto indexed = [&](std::string_view name) {
    return (http2::headerField(name, "v", &seeds).flags & NGHTTP2_NV_FLAG_NO_INDEX) == 0;
  };
  seeds.onBlock();
  CHECK(indexed("x-request-id"));
  CHECK_FALSE(indexed("x-request-id"));
  CHECK(indexed("traceparent"));  // each name its own
  CHECK(indexed("x-envoy-upstream-service-time"));
  CHECK(indexed("x-app"));  // not a never-indexed name
  CHECK(indexed("x-app"));
  for (uint32_t i = 2; i < http2::NameSeeds::kReseedBlocks; ++i) {  // blocks 2..1023
    seeds.onBlock();
    CHECK_FALSE(indexed("x-request-id"));
  }
  seeds.onBlock();
  CHECK(indexed("x-request-id"));
  CHECK_FALSE(indexed("x-request-id"));
  // Trailers (no encoder state passed): never indexed.
  CHECK((http2::headerField("x-request-id", "v", nullptr).flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0);
}

TEST_CASE("h2 known field names go as literals nghttp2 need not copy, whatever becomes of the map",
          "[h2codec]") {
  // Strings of their own: equal literals may share storage.
  for (const std::string& n :
       std::vector<std::string>{"content-type", "x-request-id", "traceparent", "user-agent",
                                "x-envoy-expected-rq-timeout-ms", "grpc-accept-encoding", "te",
                                "x-envoy-upstream-service-time"}) {
    INFO(n);
    const http2::KnownName k = http2::knownName(n);
    REQUIRE(k.literal != nullptr);
    CHECK(std::string_view(k.literal) == n);
    CHECK(k.literal != n.data());  // the literal's storage, not the caller's
    CHECK(k.never_indexed ==
          (n == "x-request-id" || n == "traceparent" || n == "x-envoy-upstream-service-time"));
  }
  CHECK(http2::knownName("x-app").literal == nullptr);
  CHECK(http2::knownName("content-typf").literal == nullptr);
  CHECK(http2::knownName("").literal == nullptr);

  // The request's map is overwritten before the frame is written: a name
  // nghttp2 did not copy must not point into it.
  Connected c;
  StreamRecorder r;
  auto head = std::make_unique<RequestHead>(get("/"));
  head->headers.add("User-Agent", "curl/7.88");
  head->headers.add("x-request-id", "id-1");
  head->headers.add("x-app", "1");
  head->headers.add("accept", "*/*");
  ClientStreamPtr s = c.start(r, *head, true);
  head->headers.clear();
  head->headers.add("zzzzzzzzzz", "overwritten");
  head->headers.add("yyyyyyyyyyyy", "overwritten");
  head.reset();
  REQUIRE(pump(c.client, c.peer));
  const test::PeerRequest& req = c.peer.requests.at(1);
  CHECK(req.get("user-agent") == "curl/7.88");
  CHECK(req.get("x-request-id") == "id-1");
  CHECK(req.get("x-app") == "1");
  CHECK(req.get("accept") == "*/*");
  CHECK(req.never_indexed.empty());  // the first x-request-id is indexed (the name's seed)
}

TEST_CASE("h2 response without trailers ends with an empty end-of-stream onData", "[h2codec]") {
  Connected c;
  StreamRecorder r, empty;
  ClientStreamPtr s = c.start(r, get("/a"));
  ClientStreamPtr e = c.start(empty, get("/b"));
  c.peer.respond(1, "404", {}, "nope");
  c.peer.respond(3, "204");
  REQUIRE(pump(c.client, c.peer));
  CHECK(r.events == "B|H404|DE|C|");
  CHECK(r.body == "nope");
  CHECK(empty.events == "B|H204E|C|");
}

TEST_CASE("h2 1xx heads arrive as onInformational before the final head", "[h2codec]") {
  Connected c;
  StreamRecorder r;
  ClientStreamPtr s = c.start(r, get("/"));
  c.peer.informational(1, "103");
  c.peer.respond(1, "200", {{"x-final", "1"}}, "ok");
  REQUIRE(pump(c.client, c.peer));
  CHECK(r.events == "I103|B|H200|DE|C|");
  CHECK(r.headers.get("x-final") == "1");
}

TEST_CASE("h2 CONNECT sends only :method and :authority", "[h2codec]") {
  Connected c;
  StreamRecorder r;
  RequestHead head;
  head.method = "CONNECT";
  head.authority = "db.internal:5432";
  ClientStreamPtr s = c.start(r, head, false);
  REQUIRE(pump(c.client, c.peer));
  const test::PeerRequest& req = c.peer.requests.at(1);
  CHECK(req.get(":authority") == "db.internal:5432");
  CHECK(req.get(":path") == "<none>");
  CHECK(req.get(":scheme") == "<none>");
}

TEST_CASE("h2 an upgrade is sent as an extended CONNECT and its 2xx is a 101", "[h2codec]") {
  // RFC 8441 §4; the peer accepts :protocol only after it sent the setting.
  Connected c({}, {{NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}});
  StreamRecorder r;
  RequestHead head = get("/chat?room=1");
  head.upgrade = true;
  head.headers.add("upgrade", "websocket");
  head.headers.add("connection", "upgrade");
  head.headers.add("content-length", "0");
  head.headers.add("sec-websocket-key", "k");
  head.content_length = 0;
  ClientStreamPtr s = c.start(r, head, false);
  s->encodeData(std::span<const char>("hello", 5), false);
  REQUIRE(pump(c.client, c.peer));
  const test::PeerRequest& req = c.peer.requests.at(1);
  CHECK(req.get(":method") == "CONNECT");
  CHECK(req.get(":protocol") == "websocket");
  CHECK(req.get(":path") == "/chat?room=1");
  CHECK(req.get(":scheme") == "http");
  CHECK(req.get(":authority") == "backend.local");
  CHECK(req.get("sec-websocket-key") == "k");
  // No content-length: the tunnel's payload follows as DATA.
  CHECK(req.get("content-length") == "<none>");
  CHECK(req.get("upgrade") == "<none>");
  CHECK(req.get("connection") == "<none>");
  CHECK(req.body == "hello");
  CHECK_FALSE(req.ended);
  c.peer.respond(1, "200", {{"sec-websocket-protocol", "chat"}}, "welcome");
  REQUIRE(pump(c.client, c.peer));
  CHECK(r.events == "B|H101|DE|C|");  // the peer ended its side after the body
  CHECK(r.headers.get("upgrade") == "websocket");
  CHECK(r.headers.get("sec-websocket-protocol") == "chat");
  CHECK(r.body == "welcome");
}

TEST_CASE("h2 an extended CONNECT refused by its upstream keeps the refusal's status",
          "[h2codec]") {
  Connected c({}, {{NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}});
  StreamRecorder r;
  RequestHead head = get("/ws");
  head.upgrade = true;
  head.headers.add("upgrade", "websocket");
  ClientStreamPtr s = c.start(r, head, false);
  REQUIRE(pump(c.client, c.peer));
  c.peer.respond(1, "403", {}, "no");
  REQUIRE(pump(c.client, c.peer));
  CHECK(r.events == "B|H403|DE|C|");
  CHECK(r.headers.get("upgrade").data() == nullptr);
  // A plain request on the same stream object later is a plain request.
  StreamRecorder r2;
  ClientStreamPtr s2 = c.start(r2, get("/after"));
  REQUIRE(pump(c.client, c.peer));
  CHECK(c.peer.requests.at(3).get(":method") == "GET");
  CHECK(c.peer.requests.at(3).get(":protocol") == "<none>");
}

TEST_CASE("h2 many concurrent streams complete independently", "[h2codec]") {
  Connected c;
  constexpr int kStreams = 300;
  std::vector<StreamRecorder> rec(kStreams);
  std::vector<ClientStreamPtr> streams;
  for (int i = 0; i < kStreams; ++i)
    streams.push_back(c.start(rec[i], get("/s" + std::to_string(i))));
  REQUIRE(pump(c.client, c.peer));
  REQUIRE(c.peer.requests.size() == kStreams);
  CHECK(c.client.activeStreams() == kStreams);
  // Answer in reverse order, each with its own path as the body.
  for (int i = kStreams - 1; i >= 0; --i) {
    const int32_t id = streams[i]->id();
    c.peer.respond(id, "200", {}, c.peer.requests.at(id).get(":path"));
  }
  REQUIRE(pump(c.client, c.peer));
  for (int i = 0; i < kStreams; ++i) {
    INFO(i);
    CHECK(rec[i].events == "B|H200|DE|C|");
    CHECK(rec[i].body == "/s" + std::to_string(i));
  }
  CHECK(c.client.activeStreams() == 0);
  // Released streams are recycled: a second wave allocates nothing new and
  // still gets fresh ids.
  streams.clear();
  StreamRecorder again;
  ClientStreamPtr s = c.start(again, get("/again"));
  CHECK(s->id() == 2 * kStreams + 1);
}

TEST_CASE("h2 the peer's SETTINGS max_concurrent_streams is reported and respected", "[h2codec]") {
  Connected c({}, {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 2},
                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 100000}});
  REQUIRE(c.conn.settings.size() == 1);
  CHECK(c.conn.settings[0].max_concurrent_streams == 2);
  CHECK(c.conn.settings[0].initial_window_size == 100000);
  CHECK(c.client.peerSettings().max_concurrent_streams == 2);

  std::vector<StreamRecorder> rec(5);
  std::vector<ClientStreamPtr> streams;
  for (auto& r : rec) streams.push_back(c.start(r, get("/")));
  REQUIRE(pump(c.client, c.peer));
  CHECK(c.peer.requests.size() == 2);  // the others wait in the codec
  for (int round = 0; round < 3; ++round) {
    for (auto& [id, req] : c.peer.requests) {
      if (!req.ended || c.peer.responded(id)) continue;
      c.peer.respond(id, "200");
    }
    REQUIRE(pump(c.client, c.peer));
  }
  CHECK(c.peer.maxOpenStreams() == 2);
  for (auto& r : rec) CHECK(r.events == "B|H200E|C|");
}

TEST_CASE("h2 RST_STREAM from the peer reaches onReset", "[h2codec]") {
  Connected c;
  StreamRecorder a, b;
  ClientStreamPtr sa = c.start(a, get("/a"));
  ClientStreamPtr sb = c.start(b, get("/b"));
  REQUIRE(pump(c.client, c.peer));
  c.peer.reset(1, NGHTTP2_INTERNAL_ERROR);
  c.peer.reset(3, NGHTTP2_REFUSED_STREAM);
  REQUIRE(pump(c.client, c.peer));
  CHECK(a.events == "R|");
  CHECK(a.reset == StreamResetReason::kRemoteReset);
  CHECK(b.reset == StreamResetReason::kRemoteRefusedStreamReset);
  CHECK(isRefusedStream(*b.reset));
  CHECK_FALSE(isRefusedStream(*a.reset));
  CHECK(c.client.acceptsStreams());
  CHECK(c.client.activeStreams() == 0);
}

TEST_CASE("h2 a reset after the first bytes of a response still reports onReset", "[h2codec]") {
  Connected c;
  StreamRecorder r;
  ClientStreamPtr s = c.start(r, get("/"));
  REQUIRE(pump(c.client, c.peer));
  nghttp2_nv status{(uint8_t*)":status", (uint8_t*)"200", 7, 3, NGHTTP2_NV_FLAG_NONE};
  nghttp2_submit_headers(c.peer.session, NGHTTP2_FLAG_NONE, 1, nullptr, &status, 1, nullptr);
  REQUIRE(pump(c.client, c.peer));
  c.peer.reset(1, NGHTTP2_CANCEL);
  REQUIRE(pump(c.client, c.peer));
  CHECK(r.events == "B|H200|R|");
  CHECK(r.reset == StreamResetReason::kRemoteReset);
}

TEST_CASE("h2 GOAWAY refuses the streams above its last stream id only", "[h2codec]") {
  Connected c;
  std::vector<StreamRecorder> rec(3);
  std::vector<ClientStreamPtr> s;
  for (auto& r : rec) s.push_back(c.start(r, get("/")));
  REQUIRE(pump(c.client, c.peer));
  c.peer.goAway(3, NGHTTP2_NO_ERROR);
  c.peer.respond(1, "200", {}, "one");
  c.peer.respond(3, "200", {}, "three");
  REQUIRE(pump(c.client, c.peer));
  REQUIRE(c.conn.goaway_last == 3);
  CHECK(c.conn.goaway_code == 0u);
  CHECK(rec[0].events == "B|H200|DE|C|");
  CHECK(rec[1].events == "B|H200|DE|C|");
  CHECK(rec[2].events == "R|");
  CHECK(rec[2].reset == StreamResetReason::kRemoteRefusedStreamReset);
  CHECK_FALSE(c.client.acceptsStreams());
  StreamRecorder late;
  CHECK(c.client.newStream(late) == nullptr);
  CHECK_FALSE(c.client.wantsRead());  // nothing left: the owner closes
}

TEST_CASE("h2 a request still queued when GOAWAY arrives is refused, never sent", "[h2codec]") {
  Connected c;
  StreamRecorder r;
  c.peer.goAway(0, NGHTTP2_NO_ERROR);
  const std::string goaway = c.peer.send();
  ClientStreamPtr s = c.start(r, get("/"));  // HEADERS queued, not yet drained
  REQUIRE(c.client.dispatch(goaway).ok());
  REQUIRE(pump(c.client, c.peer));
  CHECK(r.events == "R|");
  CHECK(r.reset == StreamResetReason::kRemoteRefusedStreamReset);
  CHECK(c.peer.requests.empty());
}

TEST_CASE("h2 a stream that never consumes stops receiving after its window", "[h2codec]") {
  Http2Settings settings;
  settings.initial_stream_window_size = 65535;
  settings.initial_connection_window_size = 1 << 20;
  Connected c(settings);
  StreamRecorder slow, fast;
  slow.consume = false;
  ClientStreamPtr ss = c.start(slow, get("/slow"));
  ClientStreamPtr fs = c.start(fast, get("/fast"));
  REQUIRE(pump(c.client, c.peer));
  const std::string big(200000, 'x');
  c.peer.respond(1, "200", {}, big);
  c.peer.respond(3, "200", {}, big);
  REQUIRE(pump(c.client, c.peer));
  // The stalled stream holds exactly one window; the other is unaffected.
  CHECK(slow.body.size() == 65535);
  CHECK(ss->unconsumedBytes() == 65535);
  CHECK_FALSE(slow.complete);
  CHECK(fast.complete);
  CHECK(fast.body.size() == big.size());

  // Acknowledging what was written on lets the rest through.
  for (int i = 0; i < 10 && !slow.complete; ++i) {
    ss->consumed(ss->unconsumedBytes());
    REQUIRE(pump(c.client, c.peer));
  }
  CHECK(slow.complete);
  CHECK(slow.body == big);
}

TEST_CASE("h2 unconsumed bytes also hold the connection window until released", "[h2codec]") {
  Http2Settings settings;
  settings.initial_stream_window_size = 65535;
  settings.initial_connection_window_size = 65535;
  Connected c(settings);
  StreamRecorder slow, next;
  slow.consume = false;
  ClientStreamPtr ss = c.start(slow, get("/slow"));
  REQUIRE(pump(c.client, c.peer));
  c.peer.respond(1, "200", {}, std::string(100000, 'a'));
  REQUIRE(pump(c.client, c.peer));
  CHECK(slow.body.size() == 65535);

  ClientStreamPtr ns = c.start(next, get("/next"));
  REQUIRE(pump(c.client, c.peer));
  c.peer.respond(3, "200", {}, "fits");
  REQUIRE(pump(c.client, c.peer));
  CHECK(next.events == "B|H200|");  // the connection window is spent
  ss.reset();                       // release: acknowledges and cancels the slow stream
  REQUIRE(pump(c.client, c.peer));
  CHECK(next.events == "B|H200|DE|C|");
  CHECK(next.body == "fits");
  CHECK(c.peer.requests.at(1).reset_code == NGHTTP2_CANCEL);
}

TEST_CASE("h2 request body waits for the peer's window and reports it buffered", "[h2codec]") {
  Connected c({}, {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1000}});
  StreamRecorder r;
  RequestHead head = get("/upload");
  head.method = "PUT";
  head.content_length = 5000;
  ClientStreamPtr s = c.start(r, head, false);
  const std::string body(5000, 'u');
  s->encodeData(body, true);
  // Before the peer acknowledges anything, one window's worth goes out.
  std::string out;
  REQUIRE(c.client.drainOutput(out).ok());
  CHECK(s->bufferedBytes() == 4000);
  REQUIRE(c.peer.receive(out));
  REQUIRE(pump(c.client, c.peer));
  CHECK(c.peer.requests.at(1).body == body);
  CHECK(c.peer.requests.at(1).get("content-length") == "5000");
  CHECK(s->bufferedBytes() == 0);
}

TEST_CASE("h2 a response header block over the limits resets the stream", "[h2codec]") {
  Http2Settings settings;
  settings.max_headers_count = 5;
  Connected c(settings);
  StreamRecorder r, ok;
  ClientStreamPtr s = c.start(r, get("/"));
  ClientStreamPtr o = c.start(ok, get("/"));
  Fields many;
  for (int i = 0; i < 10; ++i) many.emplace_back("x-h" + std::to_string(i), "v");
  c.peer.respond(1, "200", many);
  c.peer.respond(3, "200", {{"x-one", "1"}});
  REQUIRE(pump(c.client, c.peer));
  CHECK(r.events == "R|");
  CHECK(r.reset == StreamResetReason::kProtocolError);
  CHECK(ok.events == "B|H200E|C|");
  CHECK(c.client.status().ok());
}

// Regression (fuzz): nghttp2 only checks that :status has three digits.
TEST_CASE("h2 a :status below 100 resets the stream as a protocol error", "[h2codec]") {
  Connected c;
  StreamRecorder r;
  ClientStreamPtr s = c.start(r, get("/"));
  c.peer.respond(1, "003");
  REQUIRE(pump(c.client, c.peer));
  CHECK(r.events == "R|");
  CHECK(r.reset == StreamResetReason::kProtocolError);
}

TEST_CASE("h2 resetStream sends RST_STREAM and no callback follows", "[h2codec]") {
  Connected c;
  StreamRecorder r;
  ClientStreamPtr s = c.start(r, get("/"), false);
  REQUIRE(pump(c.client, c.peer));
  s->resetStream(StreamResetReason::kLocalReset);
  c.peer.respond(1, "200", {}, "late");
  REQUIRE(pump(c.client, c.peer));
  CHECK(c.peer.requests.at(1).reset_code == NGHTTP2_CANCEL);
  CHECK(r.events.empty());
  CHECK(c.client.activeStreams() == 0);
}

TEST_CASE("h2 EOF resets every open stream, and refuses those never sent", "[h2codec]") {
  Connected c;
  StreamRecorder sent, queued;
  ClientStreamPtr a = c.start(sent, get("/"));
  REQUIRE(pump(c.client, c.peer));
  ClientStreamPtr b = c.start(queued, get("/"));
  c.client.onEof();
  CHECK(sent.reset == StreamResetReason::kConnectionTermination);
  CHECK(queued.reset == StreamResetReason::kLocalRefusedStreamReset);
  CHECK_FALSE(c.client.acceptsStreams());
  CHECK_FALSE(c.client.dispatch("x").ok());
}

TEST_CASE("h2 a peer that breaks the protocol ends the session with a codec error", "[h2codec]") {
  Connected c;
  StreamRecorder r;
  ClientStreamPtr s = c.start(r, get("/"));
  REQUIRE(pump(c.client, c.peer));
  // A SETTINGS frame on stream 1 is a connection error (RFC 9113 §6.5).
  const std::string bad("\x00\x00\x00\x04\x00\x00\x00\x00\x01", 9);
  (void)c.client.dispatch(bad);
  std::string out;
  const absl::Status st = c.client.drainOutput(out);
  CHECK(st.message() == "http2.codec_error");
  CHECK_FALSE(out.empty());  // the GOAWAY to send before closing
  CHECK_FALSE(c.client.wantsRead());
  CHECK_FALSE(c.client.dispatch("more").ok());
  c.client.onEof();
  CHECK(r.reset == StreamResetReason::kProtocolError);
}

TEST_CASE("h2 releasing a stream inside its own callback is safe", "[h2codec]") {
  Connected c;
  struct Releasing : StreamRecorder {
    void onHeaders(ResponseHead& h, bool end) override {
      StreamRecorder::onHeaders(h, end);
      handle.reset();
    }
    void onReset(StreamResetReason reason) override {
      StreamRecorder::onReset(reason);
      handle.reset();
    }
    ClientStreamPtr handle;
  };
  Releasing a, b;
  a.handle = c.start(a, get("/a"));
  b.handle = c.start(b, get("/b"));
  REQUIRE(pump(c.client, c.peer));
  c.peer.respond(1, "200", {}, std::string(1000, 'z'));
  c.peer.reset(3, NGHTTP2_INTERNAL_ERROR);
  REQUIRE(pump(c.client, c.peer));
  CHECK(a.events == "B|H200|");  // nothing after the release
  CHECK(b.events == "R|");
  CHECK(c.client.activeStreams() == 0);
  StreamRecorder next;
  ClientStreamPtr n = c.start(next, get("/n"));
  c.peer.respond(n->id(), "200");
  REQUIRE(pump(c.client, c.peer));
  CHECK(next.events == "B|H200E|C|");
}

}  // namespace
}  // namespace turnout::proxy::http2

namespace turnout::proxy::http2 {
namespace {

TEST_CASE("h2 client counts the upstream's resets and gives its gauges back", "[h2codec][stats]") {
  test::CodecStatsFixture f;
  ConnRecorder conn;
  TestPeer peer;
  auto client = std::make_unique<ClientCodec>(conn, Http2Settings{}, f.sink);
  REQUIRE(pump(*client, peer));
  StreamRecorder a, b;
  ClientStreamPtr sa = client->newStream(a);
  a.stream = sa.get();
  REQUIRE(sa->encodeHeaders(get("/a"), true).ok());
  ClientStreamPtr sb = client->newStream(b);
  b.stream = sb.get();
  RequestHead post = get("/b");
  post.method = "POST";
  REQUIRE(sb->encodeHeaders(post, false).ok());
  REQUIRE(pump(*client, peer));
  CHECK(f.gauge("streams_active") == 2);

  peer.reset(sa->id(), NGHTTP2_INTERNAL_ERROR);
  REQUIRE(pump(*client, peer));
  CHECK(a.reset == StreamResetReason::kRemoteReset);
  CHECK(f.counter("rx_reset") == 1);
  CHECK(f.gauge("streams_active") == 1);

  sb->encodeData(std::span<const char>("unsent", 6), false);
  CHECK(f.gauge("pending_send_bytes") == 6);
  client->detachStats();  // the owner's stat scope ends first
  CHECK(f.gauge("streams_active") == 0);
  CHECK(f.gauge("pending_send_bytes") == 0);
  sa.reset();
  sb.reset();
  client.reset();
  CHECK(f.gauge("streams_active") == 0);
  CHECK(f.counter("tx_reset") == 0);  // nothing counted after detachStats
}

}  // namespace
}  // namespace turnout::proxy::http2
