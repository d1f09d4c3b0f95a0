#include "proxy/stream/local_reply.h"

#include <cstdio>
#include <span>

#include "proxy/connection/downstream_stream.h"

namespace turnout::proxy {

void encodeLocalReply(DownstreamStream& stream, const LocalReply& reply, std::string_view date,
                      std::string_view server_name, ResponseHead& head) {
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
