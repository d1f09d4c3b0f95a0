#pragma once

// nghttp2 helpers shared by the HTTP/2 codecs' .cc files (not a public
// interface: include it only from proxy/codec/http2_*.cc).

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "proxy/codec/header_map.h"
#include "proxy/codec/http2_codec.h"
#include "proxy/common/thread_cache.h"

namespace turnout::proxy::http2 {

// nghttp2's own allocations (a stream, copies of the header fields it
// sends, HPACK buffers: four or so per request) through the per-thread block
// cache that operator new uses (proxy/common/thread_cache.h), not malloc's
// arenas. The cache's blocks are malloc blocks, so realloc works on them.
// Null (nghttp2's default, plain malloc) under AddressSanitizer, which
// must see every allocation.
inline nghttp2_mem* sessionMem() {
#if defined(__SANITIZE_ADDRESS__)
  return nullptr;
#else
  static nghttp2_mem mem{nullptr,
                         [](std::size_t n, void*) -> void* { return thread_cache::tryAllocate(n); },
                         [](void* p, void*) { thread_cache::deallocateUnsized(p); },
                         [](std::size_t count, std::size_t size, void*) -> void* {
                           if (size != 0 && count > SIZE_MAX / size) return nullptr;
                           void* p = thread_cache::tryAllocate(count * size);
                           if (p != nullptr) std::memset(p, 0, count * size);
                           return p;
                         },
                         [](void* p, std::size_t n, void*) -> void* { return std::realloc(p, n); }};
  return &mem;
#endif
}

inline std::string_view view(const std::uint8_t* p, std::size_t n) {
  return std::string_view(reinterpret_cast<const char*>(p), n);
}

// A field nghttp2 copies when the frame is submitted.
inline nghttp2_nv field(std::string_view name, std::string_view value) {
  return nghttp2_nv{const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(name.data())),
                    const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(value.data())),
                    name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

// A field whose name is a lowercase string literal (a pseudo-header,
// content-length): nghttp2 keeps the pointer instead of copying and
// lowercasing the name for every request. Only for literals, whose storage
// outlives the frame.
template <std::size_t N>
inline nghttp2_nv literalNameField(const char (&lower_name)[N], std::string_view value) {
  nghttp2_nv nv = field(std::string_view(lower_name, N - 1), value);
  nv.flags = NGHTTP2_NV_FLAG_NO_COPY_NAME;
  return nv;
}

// Hop-by-hop fields RFC 9113 §8.2.2 forbids, plus host (sent as :authority)
// and any pseudo-header a map might hold.
inline bool connectionSpecific(std::string_view name, std::string_view value) {
  if (name.empty() || name[0] == ':') return true;
  switch (name.size()) {
    case 2:
      return name == "te" && value != "trailers";
    case 4:
      return name == "host";
    case 7:
      return name == "upgrade";
    case 10:
      return name == "connection" || name == "keep-alive";
    case 16:
      return name == "proxy-connection";
    case 17:
      return name == "transfer-encoding";
    default:
      return false;
  }
}

// Fields whose value is new on (nearly) every request: request ids and
// trace context. Indexed, each would enter the HPACK dynamic table (ours
// and the peer's) to be evicted unused, pushing out entries that repeat,
// and nghttp2 compares every new field with each table entry of its name:
// at 100 streams an upstream connection held ~50 x-request-id entries, and
// those comparisons were a fifth of an h2-to-h2 request's instructions
// (bench/compare/instructions.sh --h2-origin). Sent as never-indexed
// literals (RFC 7541 §6.2.3), which a peer forwards as such.
inline bool neverIndexed(std::string_view name) {
  switch (name.size()) {
    case 2:
      return name == "b3";
    case 3:
      return name == "sw8";
    case 10:
      return name == "tracestate";
    case 11:
      return name == "traceparent" || name == "x-b3-spanid";
    case 12:
      return name == "x-request-id" || name == "x-b3-traceid";
    case 13:
      return name == "uber-trace-id";
    case 15:
      return name == "x-amzn-trace-id";
    case 17:
      return name == "x-b3-parentspanid" || name == "x-client-trace-id";
    case 18:
      return name == "x-datadog-trace-id";
    case 19:
      return name == "x-datadog-parent-id";
    case 21:
      return name == "x-cloud-trace-context";
    default:
      return false;
  }
}

// A header-map field: never indexed when neverIndexed().
inline nghttp2_nv headerField(std::string_view name, std::string_view value) {
  nghttp2_nv nv = field(name, value);
  if (neverIndexed(name)) nv.flags = NGHTTP2_NV_FLAG_NO_INDEX;
  return nv;
}

inline void appendFields(const HeaderMap& fields, std::vector<nghttp2_nv>& nv) {
  fields.forEach([&](std::string_view name, std::string_view value) {
    if (!connectionSpecific(name, value)) nv.push_back(headerField(name, value));
  });
}

inline std::uint32_t clampWindow(std::uint32_t w) {
  return std::clamp(w, kMinInitialWindowSize, kMaxInitialWindowSize);
}

// Envoy-style details for a fatal nghttp2 error code.
inline std::string_view nghttp2Details(long rv) {
  switch (rv) {
    case NGHTTP2_ERR_FLOODED:
      return "http2.flood";
    case NGHTTP2_ERR_NOMEM:
      return "http2.no_memory";
    case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
      return "http2.bad_client_magic";
    default:
      return "http2.codec_error";
  }
}

// Submits our SETTINGS (ENABLE_PUSH 0 for a client; ENABLE_CONNECT_PROTOCOL
// with allow_connect, from either side as Envoy's sendSettings: from a
// client it asks nothing of the server) and the connection window. Flow
// control stays with the caller (no_auto_window_update).
inline void submitSettings(nghttp2_session* session, const Http2Settings& settings, bool client) {
  nghttp2_settings_entry entries[5];
  std::size_t n = 0;
  if (client) entries[n++] = {NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  if (settings.enable_connect_protocol) {
    entries[n++] = {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1};
  }
  entries[n++] = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings.max_concurrent_streams};
  entries[n++] = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                  clampWindow(settings.initial_stream_window_size)};
  entries[n++] = {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, settings.hpack_table_size};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, entries, n);
  const auto conn_window =
      static_cast<std::int32_t>(clampWindow(settings.initial_connection_window_size));
  if (conn_window > static_cast<std::int32_t>(kMinInitialWindowSize)) {
    nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, conn_window);
  }
}

}  // namespace turnout::proxy::http2
