#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/codec/header_map.h"

namespace turnout::proxy::access_log {

// Envoy's core response flags, in Envoy's enum order (CoreResponseFlag in
// envoy/stream_info/stream_info.h; CORE_RESPONSE_FLAGS in
// source/common/stream_info/utility.h), which is also the rendering order.
enum class ResponseFlag : uint8_t {
  FailedLocalHealthCheck,            // LH
  NoHealthyUpstream,                 // UH
  UpstreamRequestTimeout,            // UT
  LocalReset,                        // LR
  UpstreamRemoteReset,               // UR
  UpstreamConnectionFailure,         // UF
  UpstreamConnectionTermination,     // UC
  UpstreamOverflow,                  // UO
  NoRouteFound,                      // NR
  DelayInjected,                     // DI
  FaultInjected,                     // FI
  RateLimited,                       // RL
  UnauthorizedExternalService,       // UAEX
  RateLimitServiceError,             // RLSE
  DownstreamConnectionTermination,   // DC
  UpstreamRetryLimitExceeded,        // URX
  StreamIdleTimeout,                 // SI
  InvalidEnvoyRequestHeaders,        // IH
  DownstreamProtocolError,           // DPE
  UpstreamMaxStreamDurationReached,  // UMSDR
  ResponseFromCacheFilter,           // RFCF
  NoFilterConfigFound,               // NFCF
  DurationTimeout,                   // DT
  UpstreamProtocolError,             // UPE
  NoClusterFound,                    // NC
  OverloadManager,                   // OM
  DnsResolutionFailed,               // DF
  DropOverLoad,                      // DO
  DownstreamRemoteReset,             // DR
  kCount,
};

std::string_view responseFlagShortName(ResponseFlag flag);

class ResponseFlags {
 public:
  void set(ResponseFlag f) { bits_ |= 1u << static_cast<uint8_t>(f); }
  bool has(ResponseFlag f) const { return (bits_ & (1u << static_cast<uint8_t>(f))) != 0; }
  bool empty() const { return bits_ == 0; }
  // Envoy's %RESPONSE_FLAGS%: short names comma-joined in enum order, or "-".
  std::string toShortString() const;

 private:
  uint32_t bits_ = 0;
};

// What an access log line is made from: filled in by ActiveStream as the
// request runs and read once, on the worker, at ActiveStream::onComplete.
// Header maps are borrowed for the duration of the log call only.
struct StreamInfo {
  std::chrono::system_clock::time_point start_time;
  // Durations since start_time; unset values print "-".
  std::optional<std::chrono::nanoseconds> last_downstream_rx_byte;   // %REQUEST_DURATION%
  std::optional<std::chrono::nanoseconds> first_upstream_rx_byte;    // %RESPONSE_DURATION%
  std::optional<std::chrono::nanoseconds> duration;                  // %DURATION% (last tx byte)

  // Fallbacks for the pseudo-headers when request_headers lacks them.
  std::string method;         // :method
  std::string path;           // :path
  std::string original_path;  // x-envoy-original-path
  std::string authority;      // :authority
  std::string scheme;         // :scheme
  std::string protocol = "HTTP/1.1";

  std::optional<uint32_t> response_code;
  ResponseFlags response_flags;
  std::string response_code_details;
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;

  const HeaderMap* request_headers = nullptr;
  const HeaderMap* response_headers = nullptr;
  const HeaderMap* response_trailers = nullptr;

  std::string upstream_host;     // ip:port
  std::string upstream_cluster;
  std::string downstream_remote_address;  // ip:port
  std::string downstream_local_address;   // ip:port
  std::string route_name;
  std::optional<uint64_t> connection_id;
  std::string routing_key;
};

}  // namespace turnout::proxy::access_log
