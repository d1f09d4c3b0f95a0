#pragma once

// envoy.filters.http.grpc_web (Envoy's GrpcWebFilter; docs/grpc.md
// "gRPC-Web"): lets browsers and other gRPC-Web clients (grpc/doc/
// PROTOCOL-WEB.md) call gRPC services, over HTTP/1.1 or HTTP/2.
//
// A request whose content-type is exactly application/grpc-web,
// application/grpc-web+proto, application/grpc-web-text or
// application/grpc-web-text+proto goes upstream as gRPC: content-type
// application/grpc, te: trailers, grpc-accept-encoding (when the client sent
// none) identity,deflate,gzip, no content-length; a text request's body is
// base64-decoded on the way. The response comes back as gRPC-Web:
// content-type application/grpc-web+proto (application/grpc-web-text+proto
// when the client's accept asked for text, and the body base64-encoded), the
// gRPC trailers as the body's last message (flag 0x80, "name:value\r\n"
// lines). A response that is not gRPC (a 503 from somewhere, say) becomes a
// gRPC status: grpc-status from its HTTP status, grpc-message its body (up to
// 16 KiB), no body. Every other request passes untouched.
//
// turnout's filter chain is header-only and keeps no per-stream state
// (proxy/stream/filter.h): GrpcWebFilter::decodeHeaders rewrites the request
// head and starts a GrpcWebStream, which the stream holds and the router
// feeds with the request body and the response (as GrpcStatsTracker).
//
// Who calls it: the stream's worker thread.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "proxy/codec/base64.h"
#include "proxy/codec/codec.h"
#include "proxy/filters/grpc_stats_filter.h"
#include "proxy/stream/filter.h"

namespace turnout::proxy {

class GrpcWebFilter : public StreamFilter {
 public:
  FilterHeadersStatus decodeHeaders(StreamDecoderFilterCallbacks& callbacks) const override;
};

// One gRPC-Web call's translation, sans-I/O.
class GrpcWebStream {
 public:
  // Envoy's local reply to a text body that is not base64.
  static constexpr std::string_view kBadRequestBody = "Bad gRPC-web request, invalid base64 data.";
  // Envoy keeps at most this much of a non-gRPC response's body for its
  // grpc-message.
  static constexpr std::size_t kMaxHeldBody = 16384;

  GrpcWebStream(bool text_request, bool text_response)
      : text_request_(text_request), text_response_(text_response) {}

  // Envoy's grpc_web filter counts each call's grpc-status (from the
  // response headers, the trailers or a local reply; not the status a
  // non-gRPC response is turned into) in
  // cluster.<route target>.grpc-web.<service>.<method>.{<code>, success,
  // failure, total}, for every method (Grpc::Context's dynamic names). The
  // router sets it once the cluster is known; unset for a path that is not
  // /<service>/<method>, or one past the per-method limits (docs/grpc.md).
  std::optional<GrpcStatsTracker> stats;
  // Every method named, as Envoy's filter does, no upstream time.
  static const GrpcStatsFilterConfig& statsConfig();

  // ---- The request ----
  // Decodes a text request's body in place (a binary body is left as is);
  // `end_stream`: no more body follows. False: not valid base64 (details()
  // names why, in Envoy's words); the call must be answered with a 400.
  bool decodeRequestBody(std::string& body, bool end_stream);
  std::string_view details() const { return details_; }

  // ---- The response ----
  // The content-type every response to this call gets (local replies too).
  std::string_view contentType() const;
  // Rewrites the response head. False: the response is not gRPC and not
  // gRPC-Web and has a body, so its head is held (a copy) until the body
  // ends and finishHeld() turns it into a gRPC status.
  bool onResponseHeaders(ResponseHead& head, bool end_stream);
  bool holding() const { return held_.has_value(); }
  // Body of a held response (kept up to kMaxHeldBody, the rest dropped).
  void holdData(std::span<const char> data);
  // The held head with grpc-status (from its HTTP status), grpc-message (the
  // percent-encoded body) and content-length: 0; to be sent with end of
  // stream. Valid until this stream goes.
  ResponseHead& finishHeld();
  // What to send for response body `data`: itself (binary), or its base64
  // (text: each chunk padded on its own, as PROTOCOL-WEB.md allows). Valid
  // until the next call.
  std::span<const char> encodeData(std::span<const char> data);
  // The trailers as gRPC-Web's trailers message (base64 for text), to be
  // sent as the body's end. Valid until the next call.
  std::span<const char> encodeTrailers(const HeaderMap& trailers);

 private:
  bool text_request_;
  bool text_response_;
  Base64GroupDecoder decoder_;
  std::string scratch_;  // decoded request bytes, encoded response bytes
  std::string frame_;    // the trailers message before base64
  std::optional<ResponseHead> held_;
  std::string held_body_;
  std::string_view details_;
};

}  // namespace turnout::proxy
