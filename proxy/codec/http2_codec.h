#pragma once

// What every HTTP/2 codec on nghttp2 shares (docs/http2_codec.md): the
// settings we advertise, the peer's settings as the codec saw them, and the
// connection-level events. The proxy's upstream pool, turnout-bench and the
// xDS client all drive the same codecs (http2_client_codec.h), sans-I/O
// (STYLE.md R6): bytes in through dispatch(), bytes out through
// drainOutput(), on the owning connection's thread only.

#include <cstdint>
#include <limits>

#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"

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
  // Envoy's flood limits (Http2ProtocolOptions, same names and defaults). A
  // peer past one gets GOAWAY(ENHANCE_YOUR_CALM) and the connection ends
  // with status "http2.<stat name>" and the stat counted.
  // Frames queued for the peer (nghttp2's outbound queue, DATA aside).
  std::uint32_t max_outbound_frames = 10000;
  // Queued RST_STREAM, PING ACK and SETTINGS ACK (nghttp2's max_outbound_ack).
  std::uint32_t max_outbound_control_frames = 1000;
  // DATA, HEADERS and CONTINUATION frames in a row with no payload (padding
  // counts as payload) and no END_STREAM.
  std::uint32_t max_consecutive_inbound_frames_with_empty_payload = 1;
  // PRIORITY frames over the connection's life: at most this times (1 +
  // streams opened).
  std::uint32_t max_inbound_priority_frames_per_stream = 100;
  // WINDOW_UPDATE frames over the connection's life: at most 5 + 2 * (streams
  // opened + this times DATA frames sent).
  std::uint32_t max_inbound_window_update_frames_per_data_frame_sent = 10;
  // SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441; Envoy's allow_connect).
  // Server: clients may open WebSockets with an extended CONNECT
  // (:protocol), which the codec hands on as an HTTP/1.1 upgrade. Client:
  // only advertised, as Envoy does (upgrades go as extended CONNECTs
  // whatever it says).
  bool enable_connect_protocol = false;
};

// Copies the Http2ProtocolOptions turnout honours from a config struct that
// uses Envoy's field names (config::Http2OptionsConfig; a template so that
// the codec needs no config library).
template <class Options>
void applyProtocolOptions(const Options& o, Http2Settings& s) {
  s.max_concurrent_streams = o.max_concurrent_streams;
  s.initial_stream_window_size = o.initial_stream_window_size;
  s.initial_connection_window_size = o.initial_connection_window_size;
  s.hpack_table_size = o.hpack_table_size;
  s.max_outbound_frames = o.max_outbound_frames;
  s.max_outbound_control_frames = o.max_outbound_control_frames;
  s.max_consecutive_inbound_frames_with_empty_payload =
      o.max_consecutive_inbound_frames_with_empty_payload;
  s.max_inbound_priority_frames_per_stream = o.max_inbound_priority_frames_per_stream;
  s.max_inbound_window_update_frames_per_data_frame_sent =
      o.max_inbound_window_update_frames_per_data_frame_sent;
  s.enable_connect_protocol = o.allow_connect;
}

// Where a codec counts Envoy's HTTP/2 codec stats (stats::Http2CodecStats):
// the ids (copied) and the owning thread's shard, written without a lock.
// No shard: nothing is counted (turnout-bench, the xDS client, tests). The
// codec's gauge contributions (streams_active, pending_send_bytes) are taken
// back when it is destroyed or detachStats() is called, so a caller whose
// stat scope ends before the codec detaches it first.
struct CodecStatsSink {
  stats::Http2CodecStats ids;
  stats::Shard* shard = nullptr;
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
