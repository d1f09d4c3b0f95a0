#include "proxy/codec/http2_server_codec.h"

#include <nghttp2/nghttp2.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/unit/proxy/codec/http2_test_peer.h"

namespace turnout::proxy::http2 {
namespace {

using test::Fields;

// An nghttp2 client session driven from the test, sans-I/O like the codec.
class TestClient : public test::TestEndpoint {
 public:
  struct Response : test::TestMessage {
    // Fields the server sent as never-indexed literals (RFC 7541 §6.2.3).
    std::vector<std::string> never_indexed;
    size_t header_block_bytes = 0;  // of the last HEADERS frame
    bool closed = false;
    bool in_trailers = false;
    uint32_t close_code = 0;
  };

  explicit TestClient(std::vector<nghttp2_settings_entry> settings = {}) {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, onBegin);
    nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, onClose);
    open(/*server=*/false, cb, this, settings);
  }

  // Submits a request; `body` and `trailers` follow when given.
  int32_t request(std::string method, std::string path, Fields extra = {}, std::string body = {},
                  Fields trailers = {}) {
    auto out = std::make_unique<Outgoing>();
    out->body = std::move(body);
    out->trailers = std::move(trailers);
    out->strings = {":method", method, ":scheme", "http", ":authority", "svc.local", ":path", path};
    for (auto& [n, v] : extra) {
      out->strings.push_back(n);
      out->strings.push_back(v);
    }
    std::vector<nghttp2_nv> nv;
    for (size_t i = 0; i < out->strings.size(); i += 2) {
      nv.push_back(field(out->strings[i], out->strings[i + 1]));
    }
    nghttp2_data_provider p;
    const int32_t id = nghttp2_submit_request(session, nullptr, nv.data(), nv.size(),
                                              provider(*out, p), nullptr);
    outgoing[id] = std::move(out);
    return id;
  }

  std::map<int32_t, Response> responses;
  std::optional<int32_t> goaway_last;

 private:
  static TestClient& self(void* user) { return *static_cast<TestClient*>(user); }
  static int onBegin(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    Response& r = self(user).responses[frame->hd.stream_id];
    r.in_trailers = !r.headers.empty() && r.get(":status")[0] != '1';
    return 0;
  }
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user) {
    Response& r = self(user).responses[frame->hd.stream_id];
    std::string n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if ((flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0) r.never_indexed.push_back(n);
    if (n == ":status") r.headers.clear();  // a final head replaces a 1xx one
    (r.in_trailers ? r.trailers : r.headers).emplace_back(std::move(n), std::move(v));
    return 0;
  }
  static int onData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                    void* user) {
    self(user).responses[id].body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }
  static int onFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_GOAWAY) self(user).goaway_last = frame->goaway.last_stream_id;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      self(user).responses[frame->hd.stream_id].header_block_bytes = frame->hd.length;
    }
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      self(user).responses[frame->hd.stream_id].ended = true;
    }
    return 0;
  }
  static int onClose(nghttp2_session*, int32_t id, uint32_t code, void* user) {
    Response& r = self(user).responses[id];
    r.closed = true;
    r.close_code = code;
    return 0;
  }
  std::map<int32_t, std::unique_ptr<Outgoing>> outgoing;
};

struct RequestRecorder : RequestDecoderCallbacks {
  void onMessageBegin() override { events += "B|"; }
  void onHeaders(RequestHead& h, bool end) override {
    events += "H" + std::string(end ? "E|" : "|");
    method = h.method;
    path = h.path;
    authority = h.authority;
    scheme = h.scheme;
    headers = h.headers;
  }
  void onData(std::span<const char> d, bool end) override {
    body.append(d.data(), d.size());
    if (end) events += "DE|";
    if (consume) stream->consumed(d.size());
  }
  void onTrailers(HeaderMap& t) override {
    events += "T|";
    trailers = t;
  }
  void onMessageComplete() override { events += "C|"; }
  void onReset(StreamResetReason r) override {
    events += "R|";
    reset = r;
  }

  ServerStreamPtr stream;
  bool consume = true;
  std::string events, method, path, authority, scheme, body;
  HeaderMap headers, trailers;
  std::optional<StreamResetReason> reset;
};

struct Server : ServerCallbacks {
  explicit Server(const Http2Settings& settings = {},
                  std::vector<nghttp2_settings_entry> client_settings = {},
                  const CodecStatsSink& stats = {})
      : client(std::move(client_settings)), codec(*this, settings, stats) {
    pump();
  }
  RequestDecoderCallbacks& newStream(ServerStreamPtr stream) override {
    auto r = std::make_unique<RequestRecorder>();
    r->stream = std::move(stream);
    r->consume = consume;
    RequestRecorder& ref = *r;
    requests[ref.stream->id()] = std::move(r);
    return ref;
  }
  void onSettings(const PeerSettings& s) override { settings.push_back(s); }
  void onGoAway(std::int32_t, std::uint32_t) override {}

  bool pump() {
    bool ok = true;
    for (int round = 0; round < 10000; ++round) {
      const std::string in = client.send();
      if (!in.empty() && !codec.dispatch(in).ok()) ok = false;
      std::string out;
      if (!codec.drainOutput(out).ok()) ok = false;
      if (!out.empty()) client.receive(out);
      if (in.empty() && out.empty()) break;
    }
    return ok;
  }
  RequestRecorder& at(int32_t id) { return *requests.at(id); }

  TestClient client;
  ServerCodec codec;
  bool consume = true;
  std::vector<PeerSettings> settings;
  // Declared after the codec: the streams they hold are released first.
  std::map<int32_t, std::unique_ptr<RequestRecorder>> requests;
};

ResponseHead status(std::uint16_t code) {
  ResponseHead h;
  h.status = code;
  return h;
}

TEST_CASE("h2 server decodes a request with body and trailers and encodes the response",
          "[h2codec]") {
  Server s;
  const int32_t id = s.client.request("POST", "/upload?q=1", {{"x-turnout-routing-key", "k1"}},
                                      "request body", {{"x-req-trailer", "t"}});
  REQUIRE(s.pump());
  RequestRecorder& r = s.at(id);
  CHECK(r.events == "B|H|T|C|");
  CHECK(r.method == "POST");
  CHECK(r.path == "/upload?q=1");
  CHECK(r.authority == "svc.local");
  CHECK(r.scheme == "http");
  CHECK(r.headers.get("x-turnout-routing-key") == "k1");
  CHECK(r.body == "request body");
  CHECK(r.trailers.get("x-req-trailer") == "t");

  ResponseHead cont = status(103);
  cont.headers.add("link", "</style.css>");
  REQUIRE(r.stream->encodeHeaders(cont, false).ok());
  ResponseHead head = status(200);
  head.headers.add("content-type", "text/plain");
  head.headers.add("connection", "close");
  head.content_length = 4;
  REQUIRE(r.stream->encodeHeaders(head, false).ok());
  r.stream->encodeData(std::string_view("pong"), false);
  HeaderMap trailers;
  trailers.add("grpc-status", "0");
  r.stream->encodeTrailers(trailers);
  REQUIRE(s.pump());
  const TestClient::Response& resp = s.client.responses.at(id);
  CHECK(resp.get(":status") == "200");
  CHECK(resp.get("content-type") == "text/plain");
  CHECK(resp.get("content-length") == "4");
  CHECK(resp.get("connection") == "<none>");
  CHECK(resp.body == "pong");
  CHECK(resp.trailers == Fields{{"grpc-status", "0"}});
  CHECK(resp.ended);
  CHECK(s.codec.activeStreams() == 0);
  CHECK(r.events == "B|H|T|C|");  // no reset after a complete exchange
}

TEST_CASE("h2 server sends the upstream's service time as a never-indexed literal", "[h2codec]") {
  // Its value is a latency: indexed, each new one took an HPACK table entry
  // that nghttp2 then walked on every later response. The first response
  // indexes one, so that the later literals name the field by its index
  // rather than as a 29-byte string.
  Server s;
  std::vector<int32_t> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(s.client.request("GET", "/", {}, "", {}));
  REQUIRE(s.pump());
  for (size_t i = 0; i < ids.size(); ++i) {
    ResponseHead head = status(200);
    head.headers.add("content-type", "text/plain");
    head.headers.add("x-envoy-upstream-service-time", std::to_string(i));
    REQUIRE(s.at(ids[i]).stream->encodeHeaders(head, true).ok());
  }
  REQUIRE(s.pump());
  for (size_t i = 0; i < ids.size(); ++i) {
    INFO(i);
    const TestClient::Response& resp = s.client.responses.at(ids[i]);
    CHECK(resp.get("x-envoy-upstream-service-time") == std::to_string(i));
    CHECK(resp.get("content-type") == "text/plain");
    if (i == 0) {
      CHECK(resp.never_indexed.empty());
      CHECK(resp.header_block_bytes > 29);  // the name, Huffman-coded, is ~21
    } else {
      CHECK(resp.never_indexed == std::vector<std::string>{"x-envoy-upstream-service-time"});
      // :status and content-type indexed (1 byte each); the field: its
      // name's index (2), the value's length and the value (2).
      CHECK(resp.header_block_bytes <= 6);
    }
  }
}

TEST_CASE("h2 server serves many concurrent streams", "[h2codec]") {
  Server s;
  std::vector<int32_t> ids;
  for (int i = 0; i < 200; ++i) ids.push_back(s.client.request("GET", "/r" + std::to_string(i)));
  REQUIRE(s.pump());
  REQUIRE(s.requests.size() == 200);
  CHECK(s.codec.activeStreams() == 200);
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    RequestRecorder& r = s.at(*it);
    CHECK(r.events == "B|HE|C|");
    REQUIRE(r.stream->encodeHeaders(status(200), false).ok());
    r.stream->encodeData(r.path, true);
  }
  REQUIRE(s.pump());
  for (int i = 0; i < 200; ++i) {
    CHECK(s.client.responses.at(ids[i]).body == "/r" + std::to_string(i));
  }
  CHECK(s.codec.activeStreams() == 0);
}

TEST_CASE("h2 server sees the client's SETTINGS", "[h2codec]") {
  Server s({}, {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 7},
                {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 12345}});
  REQUIRE(s.settings.size() == 1);
  CHECK(s.settings[0].max_concurrent_streams == 7);
  CHECK(s.codec.peerSettings().initial_window_size == 12345);
}

TEST_CASE("h2 server opts out of RFC 7540 priorities, and a self-dependency is no error",
          "[h2codec]") {
  // RFC 9113 deprecates the dependency tree and RFC 9218 section 2.1 lets
  // an endpoint say it ignores it: nghttp2 then keeps no tree, PRIORITY
  // frames cost it nothing, and it schedules by RFC 9218 urgency.
  Server s;
  CHECK(nghttp2_session_get_remote_settings(s.client.session,
                                            NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES) == 1);
  const int32_t a = s.client.request("GET", "/a");
  REQUIRE(s.pump());
  // RFC 7540 made a stream depending on itself an error; RFC 9113 has no
  // such rule and the frame is only read.
  const uint32_t id = static_cast<uint32_t>(a);
  const std::string self_dependency =
      test::rawFrame(NGHTTP2_PRIORITY, 0, id,
                     std::string{static_cast<char>(id >> 24), static_cast<char>(id >> 16),
                                 static_cast<char>(id >> 8), static_cast<char>(id), '\x0f'});
  CHECK(s.codec.dispatch(self_dependency).ok());
  REQUIRE(s.pump());
  REQUIRE(s.at(a).stream->encodeHeaders(status(200), true).ok());
  REQUIRE(s.pump());
  CHECK(s.client.responses.at(a).get(":status") == "200");
  CHECK_FALSE(s.client.goaway_last.has_value());
}

TEST_CASE("h2 server reports a client RST_STREAM, even after the request completed", "[h2codec]") {
  Server s;
  const int32_t a = s.client.request("GET", "/a");
  const int32_t b = s.client.request("POST", "/b", {}, "partial");
  REQUIRE(s.pump());
  REQUIRE(s.at(a).stream->encodeHeaders(status(200), false).ok());  // response in progress
  nghttp2_submit_rst_stream(s.client.session, NGHTTP2_FLAG_NONE, a, NGHTTP2_CANCEL);
  nghttp2_submit_rst_stream(s.client.session, NGHTTP2_FLAG_NONE, b, NGHTTP2_CANCEL);
  REQUIRE(s.pump());
  CHECK(s.at(a).events == "B|HE|C|R|");
  CHECK(s.at(a).reset == StreamResetReason::kRemoteReset);
  CHECK(s.at(b).reset == StreamResetReason::kRemoteReset);
  CHECK(s.codec.activeStreams() == 0);
}

TEST_CASE("h2 server GOAWAY carries the last stream id it saw", "[h2codec]") {
  Server s;
  s.client.request("GET", "/1");
  const int32_t last = s.client.request("GET", "/2");
  REQUIRE(s.pump());
  s.codec.goAway();
  REQUIRE(s.pump());
  CHECK(s.client.goaway_last == last);
  for (auto& [id, r] : s.requests) {
    REQUIRE(r->stream->encodeHeaders(status(204), true).ok());
  }
  REQUIRE(s.pump());
  CHECK(s.client.responses.at(last).get(":status") == "204");
  CHECK_FALSE(s.codec.wantsRead());
  CHECK(s.codec.status().ok());
}

TEST_CASE("h2 server stops receiving a request body that is not consumed", "[h2codec]") {
  Http2Settings settings;
  settings.initial_stream_window_size = 65535;
  settings.initial_connection_window_size = 1 << 20;
  Server s(settings);
  s.consume = false;
  const std::string big(150000, 'q');
  const int32_t slow = s.client.request("PUT", "/slow", {}, big);
  REQUIRE(s.pump());
  s.consume = true;
  const int32_t fast = s.client.request("PUT", "/fast", {}, big);
  REQUIRE(s.pump());
  CHECK(s.at(slow).body.size() == 65535);
  CHECK(s.at(slow).stream->unconsumedBytes() == 65535);
  CHECK(s.at(fast).body == big);
  for (int i = 0; i < 10 && s.at(slow).body.size() < big.size(); ++i) {
    s.at(slow).stream->consumed(s.at(slow).stream->unconsumedBytes());
    REQUIRE(s.pump());
  }
  CHECK(s.at(slow).body == big);
  CHECK(s.at(slow).events == "B|H|DE|C|");
}

TEST_CASE("h2 server EOF resets the streams whose response was not sent", "[h2codec]") {
  Server s;
  const int32_t a = s.client.request("GET", "/a");
  REQUIRE(s.pump());
  s.codec.onEof();
  CHECK(s.at(a).events == "B|HE|C|R|");
  CHECK(s.at(a).reset == StreamResetReason::kConnectionTermination);
  CHECK(s.codec.activeStreams() == 0);
}

TEST_CASE("h2 server rejects a connection without the client preface", "[h2codec]") {
  Server s;
  ServerCodec fresh(s);
  CHECK(fresh.dispatch(std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).message() ==
        "http2.bad_client_magic");
}

}  // namespace
}  // namespace turnout::proxy::http2

namespace turnout::proxy::http2 {
namespace {

using test::CodecStatsFixture;
using test::rawFrame;

TEST_CASE("h2 server counts trailers, resets both ways and active streams", "[h2codec][stats]") {
  CodecStatsFixture f;
  Server s({}, {}, f.sink);
  const int32_t a = s.client.request("POST", "/a", {}, "body", {{"x-t", "1"}});
  const int32_t b = s.client.request("GET", "/b");
  const int32_t c = s.client.request("GET", "/c");
  REQUIRE(s.pump());
  CHECK(f.counter("trailers") == 1);
  CHECK(f.gauge("streams_active") == 3);

  nghttp2_submit_rst_stream(s.client.session, NGHTTP2_FLAG_NONE, a, NGHTTP2_CANCEL);
  s.at(b).stream->resetStream();
  REQUIRE(s.at(c).stream->encodeHeaders(status(200), false).ok());
  s.at(c).stream->encodeData(std::string_view("pending"), false);
  CHECK(f.gauge("pending_send_bytes") == 7);
  REQUIRE(s.pump());
  CHECK(f.counter("rx_reset") == 1);
  CHECK(f.counter("tx_reset") == 1);
  CHECK(f.gauge("streams_active") == 1);
  CHECK(f.gauge("pending_send_bytes") == 0);  // framed

  s.at(c).stream->encodeData(std::string_view("more"), false);
  CHECK(f.gauge("pending_send_bytes") == 4);
  s.codec.onEof();
  s.requests.clear();  // releases the streams: their unsent bytes are no longer pending
  CHECK(f.gauge("streams_active") == 0);
  CHECK(f.gauge("pending_send_bytes") == 0);
}

TEST_CASE("h2 server counts a header block over the limits as header_overflow", "[h2codec][stats]") {
  CodecStatsFixture f;
  Http2Settings settings;
  settings.max_headers_count = 4;
  Server s(settings, {}, f.sink);
  Fields many;
  for (int i = 0; i < 8; ++i) many.emplace_back("x-h" + std::to_string(i), "v");
  const int32_t id = s.client.request("GET", "/", many);
  s.pump();
  CHECK(f.counter("header_overflow") == 1);
  CHECK(f.counter("tx_reset") == 1);
  CHECK(s.client.responses[id].closed);
}

TEST_CASE("h2 server counts a request nghttp2 rejects as rx_messaging_error", "[h2codec][stats]") {
  CodecStatsFixture f;
  Server s({}, {}, f.sink);
  s.client.request("GET", "/", {{"connection", "close"}});  // forbidden in HTTP/2
  s.pump();
  CHECK(f.counter("rx_messaging_error") == 1);
  CHECK(f.counter("tx_reset") == 1);
}

// A request whose body has not started (HEADERS without END_STREAM).
int32_t openUpload(TestClient& client) {
  const std::string m = ":method", post = "POST", sc = ":scheme", http = "http", a = ":authority",
                    host = "svc.local", p = ":path", slash = "/";
  const nghttp2_nv nv[] = {test::TestEndpoint::fieldOf(m, post), test::TestEndpoint::fieldOf(sc, http),
                           test::TestEndpoint::fieldOf(a, host), test::TestEndpoint::fieldOf(p, slash)};
  return nghttp2_submit_headers(client.session, NGHTTP2_FLAG_NONE, -1, nullptr, nv, 4, nullptr);
}

// Raw frames after a valid preface: the client session's preface and
// SETTINGS first, then bytes no nghttp2 client would send.
absl::Status floodWith(Server& s, const std::string& frames) {
  s.pump();
  return s.codec.dispatch(frames);
}

TEST_CASE("h2 server ends a connection flooded with empty DATA frames", "[h2codec][stats]") {
  CodecStatsFixture f;
  Server s({}, {}, f.sink);
  const int32_t id = openUpload(s.client);
  s.pump();
  // One empty frame is allowed (Envoy's default), the second is a flood.
  const std::string empty = rawFrame(NGHTTP2_DATA, 0, static_cast<uint32_t>(id));
  CHECK(s.codec.dispatch(empty).ok());
  const absl::Status st = s.codec.dispatch(empty);
  CHECK(st.message() == "http2.inbound_empty_frames_flood");
  CHECK(f.counter("inbound_empty_frames_flood") == 1);
  std::string out;
  (void)s.codec.drainOutput(out);
  s.client.receive(out);
  CHECK(f.counter("goaway_sent") == 1);
  CHECK(s.client.goaway_last.has_value());
  CHECK_FALSE(s.codec.wantsRead());
  CHECK_FALSE(s.codec.wantsWrite());
}

// One flood per row: `allowed` frames pass (under `limit` set to `value`, or
// the default when `limit` is null), one more ends the connection.
struct FloodCase {
  const char* name;
  std::uint32_t Http2Settings::*limit;
  std::uint32_t value;
  std::string frame;
  int allowed;
  const char* status;
  const char* stat;
};

TEST_CASE("h2 server ends a flooding connection and counts the flood", "[h2codec][stats]") {
  const FloodCase c = GENERATE(
      FloodCase{"PRIORITY: limit * (1 + 0 streams)",
                &Http2Settings::max_inbound_priority_frames_per_stream, 3,
                rawFrame(NGHTTP2_PRIORITY, 0, 1, std::string("\0\0\0\0\x0f", 5)), 3,
                "http2.inbound_priority_frames_flood", "inbound_priority_frames_flood"},
      FloodCase{"WINDOW_UPDATE: 5 + 2 * (0 streams + 10 * 0 DATA frames sent)", nullptr, 0,
                rawFrame(NGHTTP2_WINDOW_UPDATE, 0, 0, std::string("\0\0\0\x01", 4)), 5,
                "http2.inbound_window_update_frames_flood", "inbound_window_update_frames_flood"},
      FloodCase{"PING ACKs never drained", &Http2Settings::max_outbound_control_frames, 10,
                rawFrame(NGHTTP2_PING, 0, 0, std::string(8, 'p')), 10, "http2.flood",
                "outbound_control_flood"});
  INFO(c.name);
  CodecStatsFixture f;
  Http2Settings settings;
  if (c.limit != nullptr) settings.*c.limit = c.value;
  Server s(settings, {}, f.sink);
  std::string frames;
  for (int i = 0; i < c.allowed; ++i) frames += c.frame;
  CHECK(floodWith(s, frames).ok());
  CHECK(s.codec.dispatch(c.frame).message() == c.status);
  CHECK(f.counter(c.stat) == 1);
}

TEST_CASE("h2 server honours a larger empty-frame limit", "[h2codec][stats]") {
  CodecStatsFixture f;
  Http2Settings settings;
  settings.max_consecutive_inbound_frames_with_empty_payload = 3;
  Server s(settings, {}, f.sink);
  const int32_t id = openUpload(s.client);
  s.pump();
  const std::string empty = rawFrame(NGHTTP2_DATA, 0, static_cast<uint32_t>(id));
  CHECK(s.codec.dispatch(empty + empty + empty).ok());
  CHECK_FALSE(s.codec.dispatch(empty).ok());
  CHECK(f.counter("inbound_empty_frames_flood") == 1);
}

TEST_CASE("h2 server turns an extended CONNECT into an upgrade with allow_connect", "[h2codec]") {
  Http2Settings settings;
  settings.enable_connect_protocol = true;
  Server s(settings);
  const int32_t id =
      s.client.request("CONNECT", "/chat?room=1",
                       {{":protocol", "websocket"}, {"sec-websocket-version", "13"}}, "hello");
  REQUIRE(s.pump());
  RequestRecorder& r = s.at(id);
  // RFC 8441 as Envoy's transformUpgradeRequestFromH2toH1: GET + Upgrade.
  CHECK(r.method == "GET");
  CHECK(r.path == "/chat?room=1");
  CHECK(r.headers.get("upgrade") == "websocket");
  CHECK(r.headers.get("sec-websocket-version") == "13");
  CHECK(r.body == "hello");
  // The switch: a 200 whose stream goes on, then bytes back.
  REQUIRE(r.stream->encodeHeaders(status(200), false).ok());
  r.stream->encodeData(std::string_view("echo:hello"), false);
  REQUIRE(s.pump());
  const TestClient::Response& resp = s.client.responses.at(id);
  CHECK(resp.get(":status") == "200");
  CHECK(resp.body == "echo:hello");
  CHECK_FALSE(resp.ended);
}

TEST_CASE("h2 server refuses :protocol without allow_connect", "[h2codec]") {
  Server s;
  const int32_t id = s.client.request("CONNECT", "/chat", {{":protocol", "websocket"}}, "x");
  s.pump();
  const TestClient::Response& resp = s.client.responses.at(id);
  CHECK(resp.closed);
  CHECK(resp.close_code == NGHTTP2_PROTOCOL_ERROR);
  CHECK(resp.get(":status") == "<none>");
  for (const auto& [sid, r] : s.requests) CHECK(r->method.empty());
}

TEST_CASE("h2 server sends a headers-only reply before it stops a request still sending",
          "[h2codec]") {
  // A 404 (no body) to an upload the client is still sending: the HEADERS
  // with END_STREAM, then RST_STREAM(NO_ERROR) (RFC 9113 §8.1). Submitting
  // the reset at once used to lose the HEADERS.
  Http2Settings settings;
  settings.initial_stream_window_size = 65535;
  Server s(settings);
  s.consume = false;
  const int32_t id = s.client.request("POST", "/nowhere", {}, std::string(150000, 'u'));
  REQUIRE(s.pump());
  RequestRecorder& r = s.at(id);
  REQUIRE(r.events == "B|H|");
  REQUIRE(r.stream->encodeHeaders(status(404), true).ok());
  r.stream.reset();  // released, as the stream's owner does once it answered
  REQUIRE(s.pump());
  const TestClient::Response& resp = s.client.responses.at(id);
  CHECK(resp.get(":status") == "404");
  CHECK(resp.ended);
  CHECK(resp.closed);
  CHECK(resp.close_code == NGHTTP2_NO_ERROR);
}

}  // namespace
}  // namespace turnout::proxy::http2
