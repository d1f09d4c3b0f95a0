#pragma once

// nghttp2 sessions driven from the HTTP/2 codec tests, sans-I/O like the
// codecs under test: bytes are pumped between the two in memory. TestPeer is
// the server the client codec talks to.

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/codec/http2_client_codec.h"
#include "proxy/stats/store.h"

namespace turnout::proxy::http2::test {

// http2.* registered in `store` the way makeHttp2CodecStats names them (the
// codec tests link no well_known_stats.cc), and a sink on its shard 0.
struct CodecStatsFixture {
  stats::Store store{1};
  CodecStatsSink sink;
  CodecStatsFixture() {
    stats::Http2CodecStats& i = sink.ids;
    auto c = [&](const char* n) { return store.counter(std::string("http2.") + n); };
    i.goaway_sent = c("goaway_sent");
    i.header_overflow = c("header_overflow");
    i.headers_cb_no_stream = c("headers_cb_no_stream");
    i.inbound_empty_frames_flood = c("inbound_empty_frames_flood");
    i.inbound_priority_frames_flood = c("inbound_priority_frames_flood");
    i.inbound_window_update_frames_flood = c("inbound_window_update_frames_flood");
    i.outbound_control_flood = c("outbound_control_flood");
    i.outbound_flood = c("outbound_flood");
    i.rx_messaging_error = c("rx_messaging_error");
    i.rx_reset = c("rx_reset");
    i.stream_refused_errors = c("stream_refused_errors");
    i.trailers = c("trailers");
    i.tx_reset = c("tx_reset");
    i.streams_active = store.gauge("http2.streams_active");
    i.pending_send_bytes = store.gauge("http2.pending_send_bytes");
    sink.shard = &store.shard(0);
  }
  uint64_t counter(const char* n) const { return store.counterValue(std::string("http2.") + n); }
  int64_t gauge(const char* n) const { return store.gaugeValue(std::string("http2.") + n); }
};

// One raw frame: the 9-byte header and `payload`.
inline std::string rawFrame(uint8_t type, uint8_t flags, uint32_t stream_id,
                            std::string_view payload = {}) {
  std::string f;
  const auto len = static_cast<uint32_t>(payload.size());
  f.push_back(static_cast<char>(len >> 16));
  f.push_back(static_cast<char>(len >> 8));
  f.push_back(static_cast<char>(len));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  for (int shift = 24; shift >= 0; shift -= 8) f.push_back(static_cast<char>(stream_id >> shift));
  f.append(payload);
  return f;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

// A message one test endpoint received.
struct TestMessage {
  Fields headers;
  std::string body;
  Fields trailers;
  bool ended = false;  // END_STREAM received
  std::string get(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return "<none>";
  }
};

// One side of an nghttp2 session driven from a test, sans-I/O like the codec
// under test: the owner moves bytes between the two in memory. TestPeer (a
// server) and the server codec tests' TestClient build on it.
class TestEndpoint {
 public:
  ~TestEndpoint() { nghttp2_session_del(session); }
  TestEndpoint(const TestEndpoint&) = delete;
  TestEndpoint& operator=(const TestEndpoint&) = delete;

  // Feeds the other side's bytes; false on a fatal nghttp2 error.
  bool receive(std::string_view bytes) {
    return nghttp2_session_mem_recv(session, reinterpret_cast<const uint8_t*>(bytes.data()),
                                    bytes.size()) == static_cast<ssize_t>(bytes.size());
  }
  std::string send() {
    std::string out;
    for (;;) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session, &data);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    return out;
  }

  nghttp2_session* session = nullptr;

 protected:
  // A body and trailers being sent, and the strings their fields point into.
  struct Outgoing {
    std::vector<std::string> strings;
    std::string body;
    size_t offset = 0;
    Fields trailers;
    std::vector<nghttp2_nv> nv;
  };

  TestEndpoint() = default;

  // Creates the session on our side with `cb` (deleted here) and queues
  // `settings`.
  void open(bool server, nghttp2_session_callbacks* cb, void* user,
            const std::vector<nghttp2_settings_entry>& settings) {
    if (server) {
      nghttp2_session_server_new(&session, cb, user);
    } else {
      nghttp2_session_client_new(&session, cb, user);
    }
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  }

  // The data provider for `out`, or nullptr when it has neither body nor
  // trailers (END_STREAM goes with the HEADERS).
  static const nghttp2_data_provider* provider(Outgoing& out, nghttp2_data_provider& p) {
    p = nghttp2_data_provider{};
    p.source.ptr = &out;
    p.read_callback = readBody;
    return out.body.empty() && out.trailers.empty() ? nullptr : &p;
  }

 public:
  static nghttp2_nv fieldOf(const std::string& n, const std::string& v) { return field(n, v); }

 protected:
  static nghttp2_nv field(const std::string& n, const std::string& v) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                      NGHTTP2_NV_FLAG_NONE};
  }

 private:
  static ssize_t readBody(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* out = static_cast<Outgoing*>(source->ptr);
    const size_t n = std::min(length, out->body.size() - out->offset);
    std::memcpy(buf, out->body.data() + out->offset, n);
    out->offset += n;
    if (out->offset == out->body.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!out->trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        for (const auto& [k, v] : out->trailers) out->nv.push_back(field(k, v));
        nghttp2_submit_trailer(session, id, out->nv.data(), out->nv.size());
      }
    }
    return static_cast<ssize_t>(n);
  }
};

struct PeerRequest : TestMessage {
  // Fields the client sent as never-indexed literals (RFC 7541 §6.2.3).
  std::vector<std::string> never_indexed;
  size_t header_block_bytes = 0;  // of the request's HEADERS frame
  bool reset = false;
  uint32_t reset_code = 0;
};

// An nghttp2 server session that records every request and answers only
// when a test tells it to.
class TestPeer : public TestEndpoint {
 public:
  explicit TestPeer(std::vector<nghttp2_settings_entry> settings = {}) {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, onClose);
    open(/*server=*/true, cb, this, settings);
  }

  // Queues a response: `status`, `headers`, then `body` (in DATA frames as
  // the client's windows allow) and `trailers`.
  void respond(int32_t id, std::string status, Fields headers = {}, std::string body = {},
               Fields trailers = {}) {
    auto out = std::make_unique<Outgoing>();
    out->body = std::move(body);
    out->trailers = std::move(trailers);
    std::vector<nghttp2_nv> nv;
    nv.push_back(field(":status", status));
    for (const auto& [n, v] : headers) nv.push_back(field(n, v));
    nghttp2_data_provider p;
    nghttp2_submit_response(session, id, nv.data(), nv.size(), provider(*out, p));
    outgoing[id] = std::move(out);
  }
  void informational(int32_t id, std::string status) {
    const nghttp2_nv nv[] = {field(":status", status)};
    nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, id, nullptr, nv, 1, nullptr);
  }
  void reset(int32_t id, uint32_t code) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, code);
  }
  void goAway(int32_t last_stream_id, uint32_t code) {
    nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, last_stream_id, code, nullptr, 0);
  }
  bool responded(int32_t id) const { return outgoing.count(id) != 0; }
  // Streams the peer has seen open and not closed.
  size_t openStreams() const { return open_; }
  size_t maxOpenStreams() const { return max_open_; }

  std::map<int32_t, PeerRequest> requests;

 private:
  static TestPeer& self(void* user) { return *static_cast<TestPeer*>(user); }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user) {
    PeerRequest& r = self(user).requests[frame->hd.stream_id];
    if ((flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0) {
      r.never_indexed.emplace_back(reinterpret_cast<const char*>(name), namelen);
    }
    auto& dst = frame->headers.cat == NGHTTP2_HCAT_REQUEST ? r.headers : r.trailers;
    dst.emplace_back(std::string(reinterpret_cast<const char*>(name), namelen),
                     std::string(reinterpret_cast<const char*>(value), valuelen));
    return 0;
  }
  static int onData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                    void* user) {
    self(user).requests[id].body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }
  static int onFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    TestPeer& p = self(user);
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      p.requests[frame->hd.stream_id].header_block_bytes = frame->hd.length;
      ++p.open_;
      p.max_open_ = std::max(p.max_open_, p.open_);
    }
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      p.requests[frame->hd.stream_id].ended = true;
    }
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
      p.requests[frame->hd.stream_id].reset = true;
      p.requests[frame->hd.stream_id].reset_code = frame->rst_stream.error_code;
    }
    return 0;
  }
  static int onClose(nghttp2_session*, int32_t id, uint32_t, void* user) {
    TestPeer& p = self(user);
    if (p.requests.count(id) != 0 && p.open_ > 0) --p.open_;
    return 0;
  }

  std::map<int32_t, std::unique_ptr<Outgoing>> outgoing;
  size_t open_ = 0;
  size_t max_open_ = 0;
};

// Moves bytes both ways until neither side has anything to send. Returns
// false if the client codec reported an error.
inline bool pump(ClientCodec& client, TestPeer& peer) {
  bool ok = true;
  for (int round = 0; round < 10000; ++round) {
    std::string out;
    if (!client.drainOutput(out).ok()) ok = false;
    if (!out.empty()) peer.receive(out);
    const std::string in = peer.send();
    if (!in.empty() && !client.dispatch(in).ok()) ok = false;
    if (out.empty() && in.empty()) break;
  }
  return ok;
}

}  // namespace turnout::proxy::http2::test
