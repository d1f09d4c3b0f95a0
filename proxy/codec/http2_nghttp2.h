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

// A field name turnout knows: its lowercase literal (static storage) and
// whether its value is new on (nearly) every request.
struct KnownName {
  const char* literal = nullptr;  // null: not a known name
  bool never_indexed = false;
  std::uint8_t seed_bit = 0;  // never_indexed: its bit in NameSeeds::seeded
};

// Which never-indexed names (KnownName::seed_bit) one HPACK encoder has
// sent indexed. A never-indexed literal (RFC 7541 §6.2.3) may still name
// its field by a table index, and nghttp2's encoder does when a table
// entry has the name; without one, the name goes as a Huffman-coded
// string on every request (x-envoy-upstream-service-time: 29 bytes per
// response, x-request-id: 12 per request). So the first field of each
// such name an encoder sends is indexed, one entry whose name the later
// never-indexed fields point at. The table evicts oldest first: the seeds
// are sown again every kReseedBlocks header blocks, one entry per name
// each time, in case other fields have pushed them out.
struct NameSeeds {
  static constexpr std::uint32_t kReseedBlocks = 1024;
  std::uint32_t seeded = 0;
  std::uint32_t blocks = 0;
  // Called once per header block, before its fields.
  void onBlock() {
    if (++blocks == kReseedBlocks) {
      blocks = 0;
      seeded = 0;
    }
  }
};

// Fields whose value is new on (nearly) every request: request ids and
// trace context. Indexed, each would enter the HPACK dynamic table (ours
// and the peer's) to be evicted unused, pushing out entries that repeat,
// and nghttp2 compares every new field with each table entry of its name:
// at 100 streams an upstream connection held ~50 x-request-id entries, and
// those comparisons were a fifth of an h2-to-h2 request's instructions
// (bench/compare/instructions.sh --h2-origin). Sent as never-indexed
// literals (RFC 7541 §6.2.3), which a peer forwards as such; all but the
// first of each name per encoder (NameSeeds).
//
// x-envoy-upstream-service-time too: its value is the upstream's latency in
// milliseconds, and each new value took a table entry. nghttp2's encoder
// looks a field up by walking every entry of its name, newest first, so a
// common value sat behind the rare ones added since: ~20 entries per
// response with this benchmark's latencies, ~60 with a spread of real ones
// (a simulation of nghttp2's table), each in memory that had gone cold.
// nghttp2_hd_deflate_hd_bufs went from 4.4 % to 1.1-1.3 % of the CPU
// samples of a TLS h2 load of 32 connections (perf, 2026-12-07); the
// Huffman-coded literal name costs 0.2 %.
//
// The other names are the fields most responses and requests carry: for
// those nghttp2 keeps a pointer to the literal instead of copying and
// lowercasing the name of every field it is handed (8 names per proxied
// h2-to-h2 request, ~100 instructions each). A map's names are lowercase
// already (HeaderMap), so a name found here is the literal's equal.
inline KnownName knownName(std::string_view name) {
#define TURNOUT_NAME(lit)             \
  if (name == lit) return KnownName { \
      lit, false                      \
    }
#define TURNOUT_NEVER_INDEXED(lit, bit) \
  if (name == lit) return KnownName {   \
      lit, true, bit                    \
    }
  switch (name.size()) {
    case 2:
      TURNOUT_NEVER_INDEXED("b3", 0);
      TURNOUT_NAME("te");
      break;
    case 3:
      TURNOUT_NEVER_INDEXED("sw8", 1);
      TURNOUT_NAME("age");
      TURNOUT_NAME("via");
      break;
    case 4:
      TURNOUT_NAME("date");
      TURNOUT_NAME("etag");
      TURNOUT_NAME("vary");
      TURNOUT_NAME("link");
      break;
    case 6:
      TURNOUT_NAME("server");
      TURNOUT_NAME("accept");
      TURNOUT_NAME("cookie");
      TURNOUT_NAME("origin");
      break;
    case 7:
      TURNOUT_NAME("baggage");
      TURNOUT_NAME("expires");
      TURNOUT_NAME("referer");
      break;
    case 8:
      TURNOUT_NAME("location");
      break;
    case 10:
      TURNOUT_NEVER_INDEXED("tracestate", 2);
      TURNOUT_NAME("user-agent");
      TURNOUT_NAME("set-cookie");
      break;
    case 11:
      TURNOUT_NEVER_INDEXED("traceparent", 3);
      TURNOUT_NEVER_INDEXED("x-b3-spanid", 4);
      TURNOUT_NAME("grpc-status");
      break;
    case 12:
      TURNOUT_NAME("content-type");
      TURNOUT_NEVER_INDEXED("x-request-id", 5);
      TURNOUT_NEVER_INDEXED("x-b3-traceid", 6);
      TURNOUT_NAME("grpc-message");
      TURNOUT_NAME("grpc-timeout");
      TURNOUT_NAME("x-b3-sampled");
      break;
    case 13:
      TURNOUT_NAME("last-modified");
      TURNOUT_NAME("accept-ranges");
      TURNOUT_NAME("cache-control");
      TURNOUT_NAME("grpc-encoding");
      TURNOUT_NAME("authorization");
      TURNOUT_NAME("if-none-match");
      TURNOUT_NEVER_INDEXED("uber-trace-id", 7);
      break;
    case 14:
      TURNOUT_NAME("content-length");
      break;
    case 15:
      TURNOUT_NAME("accept-encoding");
      TURNOUT_NAME("x-forwarded-for");
      TURNOUT_NAME("accept-language");
      TURNOUT_NEVER_INDEXED("x-amzn-trace-id", 8);
      break;
    case 16:
      TURNOUT_NAME("content-encoding");
      break;
    case 17:
      TURNOUT_NAME("x-forwarded-proto");
      TURNOUT_NAME("if-modified-since");
      TURNOUT_NEVER_INDEXED("x-b3-parentspanid", 9);
      TURNOUT_NEVER_INDEXED("x-client-trace-id", 10);
      break;
    case 18:
      TURNOUT_NEVER_INDEXED("x-datadog-trace-id", 11);
      break;
    case 19:
      TURNOUT_NEVER_INDEXED("x-datadog-parent-id", 12);
      break;
    case 20:
      TURNOUT_NAME("grpc-accept-encoding");
      break;
    case 21:
      TURNOUT_NEVER_INDEXED("x-cloud-trace-context", 13);
      TURNOUT_NAME("x-envoy-attempt-count");
      TURNOUT_NAME("x-turnout-routing-key");
      break;
    case 29:
      TURNOUT_NEVER_INDEXED("x-envoy-upstream-service-time", 14);
      break;
    case 30:
      TURNOUT_NAME("x-envoy-expected-rq-timeout-ms");
      break;
    default:
      break;
  }
#undef TURNOUT_NAME
#undef TURNOUT_NEVER_INDEXED
  return {};
}

// A header-map field (its name lowercase): a known name is the literal's
// pointer (not copied), and never indexed when its value is per request,
// but for the encoder's seed of its name (`seeds`; null: never indexed).
// `never_indexed`: the peer sent it so (HeaderMap), and so it goes on
// (RFC 7541 §6.2.3), whatever the name.
inline nghttp2_nv headerField(std::string_view name, std::string_view value, NameSeeds* seeds,
                              bool never_indexed = false) {
  nghttp2_nv nv = field(name, value);
  const KnownName known = knownName(name);
  if (known.literal != nullptr) {
    nv.name = const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(known.literal));
    nv.flags |= NGHTTP2_NV_FLAG_NO_COPY_NAME;
  }
  if (never_indexed) {
    nv.flags |= NGHTTP2_NV_FLAG_NO_INDEX;
  } else if (known.never_indexed) {
    const std::uint32_t bit = std::uint32_t{1} << known.seed_bit;
    if (seeds != nullptr && (seeds->seeded & bit) == 0) {
      seeds->seeded |= bit;
    } else {
      nv.flags |= NGHTTP2_NV_FLAG_NO_INDEX;
    }
  }
  return nv;
}

inline void appendFields(const HeaderMap& fields, std::vector<nghttp2_nv>& nv, NameSeeds* seeds) {
  fields.forEachMarked([&](std::string_view name, std::string_view value, bool never_indexed) {
    if (!connectionSpecific(name, value)) {
      nv.push_back(headerField(name, value, seeds, never_indexed));
    }
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
  nghttp2_settings_entry entries[6];
  std::size_t n = 0;
  if (client) entries[n++] = {NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  if (settings.enable_connect_protocol) {
    entries[n++] = {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1};
  }
  entries[n++] = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings.max_concurrent_streams};
  entries[n++] = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                  clampWindow(settings.initial_stream_window_size)};
  entries[n++] = {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, settings.hpack_table_size};
  entries[n++] = {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, entries, n);
  const auto conn_window =
      static_cast<std::int32_t>(clampWindow(settings.initial_connection_window_size));
  if (conn_window > static_cast<std::int32_t>(kMinInitialWindowSize)) {
    nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, conn_window);
  }
}

}  // namespace turnout::proxy::http2
