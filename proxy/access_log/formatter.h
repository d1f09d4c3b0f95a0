#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/access_log/stream_info.h"

namespace google::protobuf {
class Struct;
class Value;
}  // namespace google::protobuf

namespace turnout::proxy::access_log {

// Envoy's default text format (access_log/usage.rst), newline included.
inline constexpr std::string_view kDefaultFormat =
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

// One access-log line format, compiled once at config time (main thread) and
// shared read-only by every worker. Supports Envoy's command operators
// %START_TIME[(fmt)]%, %REQ(X?Y):N%, %RESP(...)%, %TRAILER(...)%, %PROTOCOL%,
// %RESPONSE_CODE%, %RESPONSE_FLAGS%, %RESPONSE_CODE_DETAILS%, %BYTES_RECEIVED%,
// %BYTES_SENT%, %DURATION%, %REQUEST_DURATION%, %RESPONSE_DURATION%,
// %UPSTREAM_HOST%, %UPSTREAM_CLUSTER%, %DOWNSTREAM_REMOTE_ADDRESS[_WITHOUT_PORT]%,
// %DOWNSTREAM_LOCAL_ADDRESS[_WITHOUT_PORT]%, %ROUTE_NAME%, %CONNECTION_ID%,
// %HOSTNAME%, turnout's %ROUTING_KEY%, and %% for a literal '%'. Unset values
// render "-"; ":N" truncates to N bytes.
class Formatter {
 public:
  // Text format. An unknown operator fails with "Not supported field in
  // StreamInfo: X".
  static absl::StatusOr<Formatter> create(std::string_view format);
  // json_format: one JSON object per line; a value that is exactly one
  // numeric operator is emitted as a number (unless !preserve_types, as for
  // the deprecated FileAccessLog.json_format, whose values are all strings),
  // unset values as null.
  static absl::StatusOr<Formatter> createJson(const google::protobuf::Struct& json_format,
                                              bool preserve_types = true);

  std::string format(const StreamInfo& info) const;
  void formatTo(const StreamInfo& info, std::string& out) const;

  enum class Op : uint8_t {
    Literal, StartTime, Req, Resp, Trailer, Protocol, ResponseCode, ResponseFlags,
    ResponseCodeDetails, BytesReceived, BytesSent, Duration, RequestDuration, ResponseDuration,
    UpstreamHost, UpstreamCluster, DownstreamRemoteAddress, DownstreamRemoteAddressWithoutPort,
    DownstreamLocalAddress, DownstreamLocalAddressWithoutPort, RouteName, ConnectionId, Hostname,
    RoutingKey,
  };
  struct Segment {
    Op op = Op::Literal;
    std::string text;      // literal text, or the header name / time format
    std::string fallback;  // REQ(X?Y): Y
    std::optional<size_t> max_length;
  };
  struct JsonField;

 private:
  std::vector<Segment> text_;
  std::shared_ptr<const std::vector<JsonField>> json_;
};

struct Formatter::JsonField {
  std::string key;
  enum class Kind { Format, Number, Bool, Null, Object } kind = Kind::Format;
  std::vector<Segment> segments;  // Format
  bool typed = false;             // a single numeric operator
  std::string literal;            // Number / Bool
  std::vector<JsonField> children;  // Object
};

// Renders a system_clock time in UTC with Envoy's strftime extensions
// (%f and %1f..%9f fractional seconds, %s epoch seconds). An empty format is
// Envoy's default, "%Y-%m-%dT%H:%M:%S.%3fZ".
std::string formatStartTime(std::chrono::system_clock::time_point t, std::string_view format);

}  // namespace turnout::proxy::access_log
