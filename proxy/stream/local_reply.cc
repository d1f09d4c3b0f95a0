#include "proxy/stream/local_reply.h"

#include <cstdio>
#include <span>
#include <string>

#include "proxy/codec/grpc_framing.h"
#include "proxy/connection/downstream_stream.h"

namespace turnout::proxy {

bool isGrpcContentType(std::string_view content_type) {
  constexpr std::string_view kGrpc = "application/grpc";
  return content_type.starts_with(kGrpc) &&
         (content_type.size() == kGrpc.size() || content_type[kGrpc.size()] == '+');
}

namespace {

// Envoy's Http::Utility::sendLocalReply for a gRPC request: a trailers-only
// response (one HEADERS frame with END_STREAM on HTTP/2).
void encodeGrpcLocalReply(DownstreamStream& stream, const LocalReply& reply, std::string_view date,
                          std::string_view server_name, ResponseHead& head) {
  head.clear();
  head.status = reply.grpc_keep_status ? reply.status : 200;
  head.close_connection = reply.close_connection;
  head.headers.addLowercase("content-type", reply.grpc_content_type.empty()
                                                ? std::string_view("application/grpc")
                                                : reply.grpc_content_type);
  char code[12];
  const uint32_t grpc_status = reply.grpc_status >= 0
                                   ? static_cast<uint32_t>(reply.grpc_status)
                                   : static_cast<uint32_t>(httpToGrpcStatus(reply.status));
  auto n = std::snprintf(code, sizeof(code), "%u", grpc_status);
  head.headers.addLowercase("grpc-status", std::string_view(code, static_cast<size_t>(n)));
  if (!reply.body.empty() && !reply.head_request) {
    head.headers.addLowercase("grpc-message", grpcPercentEncode(reply.body));
  }
  if (!reply.location.empty()) head.headers.addLowercase("location", reply.location);
  if (reply.overloaded) head.headers.addLowercase("x-envoy-overloaded", "true");
  head.headers.addLowercase("date", date);
  head.headers.addLowercase("server", server_name);
  if (reply.modify_headers != nullptr) (*reply.modify_headers)(head.headers);
  // As Envoy: modify_headers may have added one; a trailers-only response has no body.
  head.headers.remove("content-length");
  if (reply.grpc_keep_status) head.headers.addLowercase("content-length", "0");
  stream.encodeHeaders(head, true);
}

}  // namespace

void encodeLocalReply(DownstreamStream& stream, const LocalReply& reply, std::string_view date,
                      std::string_view server_name, ResponseHead& head) {
  if (reply.grpc) {
    encodeGrpcLocalReply(stream, reply, date, server_name, head);
    return;
  }
  head.clear();
  head.status = reply.status;
  head.close_connection = reply.close_connection;
  char len[24];
  auto n = std::snprintf(len, sizeof(len), "%zu", reply.body.size());
  head.headers.addLowercase("content-length", std::string_view(len, static_cast<size_t>(n)));
  if (!reply.body.empty()) {
    head.headers.addLowercase("content-type",
                              reply.content_type.empty() ? "text/plain" : reply.content_type);
  }
  if (!reply.location.empty()) head.headers.addLowercase("location", reply.location);
  if (reply.overloaded) head.headers.addLowercase("x-envoy-overloaded", "true");
  head.headers.addLowercase("date", date);
  head.headers.addLowercase("server", server_name);
  if (reply.modify_headers != nullptr) (*reply.modify_headers)(head.headers);
  const bool no_body = reply.body.empty() || reply.head_request;
  stream.encodeHeaders(head, no_body);
  if (!no_body) stream.encodeData(std::span<const char>(reply.body.data(), reply.body.size()), true);
}

}  // namespace turnout::proxy
