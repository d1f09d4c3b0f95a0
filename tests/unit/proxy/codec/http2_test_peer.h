#pragma once

// An nghttp2 server session driven from tests, sans-I/O like the codec under
// test: bytes are pumped between the two in memory. It records every request
// and answers only when a test tells it to.

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

namespace turnout::proxy::http2::test {

using Fields = std::vector<std::pair<std::string, std::string>>;

struct PeerRequest {
  Fields headers;
  std::string body;
  Fields trailers;
  bool ended = false;
  bool reset = false;
  uint32_t reset_code = 0;
  std::string get(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return "<none>";
  }
};

class TestPeer {
 public:
  explicit TestPeer(std::vector<nghttp2_settings_entry> settings = {}) {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, onClose);
    nghttp2_session_server_new(&session, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  }
  ~TestPeer() { nghttp2_session_del(session); }
  TestPeer(const TestPeer&) = delete;
  TestPeer& operator=(const TestPeer&) = delete;

  // Feeds client bytes; false on a fatal nghttp2 error.
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
    nghttp2_data_provider provider{};
    provider.source.ptr = out.get();
    provider.read_callback = readBody;
    const bool has_data = !out->body.empty() || !out->trailers.empty();
    nghttp2_submit_response(session, id, nv.data(), nv.size(), has_data ? &provider : nullptr);
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
  size_t openStreams() const { return open; }
  size_t maxOpenStreams() const { return max_open; }

  nghttp2_session* session = nullptr;
  std::map<int32_t, PeerRequest> requests;

 private:
  struct Outgoing {
    std::string body;
    size_t offset = 0;
    Fields trailers;
    std::vector<nghttp2_nv> nv;
  };

  static nghttp2_nv field(const std::string& n, const std::string& v) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                      NGHTTP2_NV_FLAG_NONE};
  }
  static TestPeer& self(void* user) { return *static_cast<TestPeer*>(user); }

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
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    PeerRequest& r = self(user).requests[frame->hd.stream_id];
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
      ++p.open;
      p.max_open = std::max(p.max_open, p.open);
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
    if (p.requests.count(id) != 0 && p.open > 0) --p.open;
    return 0;
  }

  std::map<int32_t, std::unique_ptr<Outgoing>> outgoing;
  size_t open = 0;
  size_t max_open = 0;
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
