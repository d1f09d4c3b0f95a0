#pragma once

// What every HTTP/2 codec on nghttp2 shares (docs/http2_codec.md): the
// settings we advertise, the peer's settings as the codec saw them, and the
// connection-level events. The proxy's upstream pool, turnout-bench and the
// xDS client all drive the same codecs (http2_client_codec.h), sans-I/O
// (STYLE.md R6): bytes in through dispatch(), bytes out through
// drainOutput(), on the owning connection's thread only.

#include <cstdint>
#include <limits>

namespace turnout::proxy::http2 {

// Envoy's Http2ProtocolOptions defaults (source/common/http/utility.h,
// Http2::Utility::OptionsLimits).
inline constexpr std::uint32_t kDefaultMaxConcurrentStreams = (1U << 31) - 1;
inline constexpr std::uint32_t kDefaultInitialStreamWindowSize = 256 * 1024 * 1024;
inline constexpr std::uint32_t kDefaultInitialConnectionWindowSize = 256 * 1024 * 1024;
// RFC 9113's initial window, also Envoy's minimum for both windows.
inline constexpr std::uint32_t kMinInitialWindowSize = 65535;
inline constexpr std::uint32_t kMaxInitialWindowSize = (1U << 31) - 1;

// HTTP/2 error codes (RFC 9113 §7) the API speaks.
inline constexpr std::uint32_t kNoError = 0x0;
inline constexpr std::uint32_t kProtocolErrorCode = 0x1;
inline constexpr std::uint32_t kInternalErrorCode = 0x2;
inline constexpr std::uint32_t kRefusedStreamCode = 0x7;
inline constexpr std::uint32_t kCancelCode = 0x8;

// Our side of the connection. Windows below kMinInitialWindowSize are raised
// to it, above kMaxInitialWindowSize lowered to it.
struct Http2Settings {
  // SETTINGS_MAX_CONCURRENT_STREAMS we advertise (streams the peer may open).
  std::uint32_t max_concurrent_streams = kDefaultMaxConcurrentStreams;
  // SETTINGS_INITIAL_WINDOW_SIZE: what one stream may receive unacknowledged.
  std::uint32_t initial_stream_window_size = kDefaultInitialStreamWindowSize;
  // What the whole connection may receive unacknowledged.
  std::uint32_t initial_connection_window_size = kDefaultInitialConnectionWindowSize;
  // SETTINGS_HEADER_TABLE_SIZE (HPACK dynamic table we let the peer use).
  std::uint32_t hpack_table_size = 4096;
  // A received header or trailer block above either limit resets its stream
  // (Envoy's max_request_headers_kb and max_headers_count defaults).
  std::uint32_t max_headers_kb = 60;
  std::uint32_t max_headers_count = 100;
};

// The peer's SETTINGS as applied. Before the first SETTINGS frame arrives the
// values are RFC 9113's initial ones (nghttp2 meanwhile holds a client to 100
// streams).
struct PeerSettings {
  std::uint32_t max_concurrent_streams = std::numeric_limits<std::uint32_t>::max();
  std::uint32_t initial_window_size = kMinInitialWindowSize;
  std::uint32_t max_frame_size = 16384;
  std::uint32_t max_header_list_size = std::numeric_limits<std::uint32_t>::max();
};

// Connection-level events, called from inside dispatch() (and, for the
// stream resets they cause, drainOutput()). Same thread as the codec; the
// callbacks may start, encode and release streams but must not call
// dispatch() or destroy the codec.
class ConnectionCallbacks {
 public:
  virtual ~ConnectionCallbacks() = default;
  // The peer's SETTINGS frame was applied (the first one and every later
  // one). A pool sizes its capacity from max_concurrent_streams.
  virtual void onSettings(const PeerSettings& settings) = 0;
  // The peer sent GOAWAY: no new stream starts on this connection. Streams
  // above last_stream_id were never processed; each is reset with
  // kRemoteRefusedStreamReset right after this call. Streams at or below it
  // still complete.
  virtual void onGoAway(std::int32_t last_stream_id, std::uint32_t error_code) = 0;
};

}  // namespace turnout::proxy::http2
