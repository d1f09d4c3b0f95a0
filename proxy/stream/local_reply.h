#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "proxy/codec/codec.h"

namespace turnout::proxy {

class DownstreamStream;

// Envoy's local replies: a response the proxy answers itself (no route,
// no healthy upstream, timeouts, bad requests, direct responses).
// `body` non-empty adds `content-type: text/plain` (or `content_type` when
// given); `date` and `server` are always set, as Envoy does.
struct LocalReply {
  uint16_t status = 200;
  std::string_view body;
  std::string_view content_type;  // empty: text/plain when there is a body
  std::string_view location;      // redirects
  bool close_connection = false;
  bool head_request = false;      // HEAD: headers only
  bool overloaded = false;        // x-envoy-overloaded: true (circuit-breaker overflow)
  // The request is gRPC (isGrpcContentType): the reply goes out as Envoy's
  // gRPC trailers-only response instead: HTTP 200, content-type
  // application/grpc, grpc-status from httpToGrpcStatus(status), grpc-message
  // the percent-encoded body, no body and no content-length.
  bool grpc = false;
  int grpc_status = -1;  // >= 0: this grpc-status instead of httpToGrpcStatus(status)
  // gRPC-Web (proxy/filters/grpc_web_filter.h): the gRPC reply's
  // content-type instead of application/grpc.
  std::string_view grpc_content_type;
  // The gRPC reply keeps `status` and says content-length: 0 (Envoy's
  // gRPC-Web translation of a reply that was not gRPC).
  bool grpc_keep_status = false;
  // Called on the finished head before it is encoded (the route's
  // response_headers_to_add/remove, as Envoy's router does for its replies).
  const std::function<void(HeaderMap&)>* modify_headers = nullptr;
};

// Encodes `reply` into `stream` (which flushes it), reusing `head` as scratch.
void encodeLocalReply(DownstreamStream& stream, const LocalReply& reply, std::string_view date,
                      std::string_view server_name, ResponseHead& head);

// Envoy's Grpc::Common::hasGrpcContentType: exactly "application/grpc" or
// "application/grpc+<subtype>" (application/grpc-web is not gRPC).
bool isGrpcContentType(std::string_view content_type);

// Envoy's local-reply body texts.
inline constexpr std::string_view kBodyDurationTimeout = "downstream duration timeout";
inline constexpr std::string_view kBodyNoHealthyUpstream = "no healthy upstream";
inline constexpr std::string_view kBodyUpstreamTimeout = "upstream request timeout";
inline constexpr std::string_view kBodyStreamTimeout = "stream timeout";
inline constexpr std::string_view kBodyConnectFailure =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
inline constexpr std::string_view kBodyConnectTimeout =
    "upstream connect error or disconnect/reset before headers. reset reason: connection timeout";
inline constexpr std::string_view kBodyUpstreamReset =
    "upstream connect error or disconnect/reset before headers. reset reason: connection "
    "termination";
inline constexpr std::string_view kBodyOverflow =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";
inline constexpr std::string_view kBodyProtocolError =
    "upstream connect error or disconnect/reset before headers. reset reason: protocol error";

}  // namespace turnout::proxy
