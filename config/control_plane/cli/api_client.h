#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace turnout::control_plane::cli {

// One answer of turnout-cp's REST API.
struct ApiReply {
  unsigned status = 0;
  std::string body;
  std::string etag;  // the ETag header, "" without one
};

// A small blocking HTTP/1.1 client for the CLI: one connection per request,
// over Asio/Beast, with a deadline on the whole exchange.
class ApiClient {
 public:
  // `server` is "http://HOST:PORT" (an optional trailing "/"); https is refused.
  static absl::StatusOr<ApiClient> forUrl(std::string_view server);

  // A connection or protocol failure is an Unavailable error naming the
  // server; any HTTP status is a reply.
  absl::StatusOr<ApiReply> request(std::string_view method, std::string_view path, std::string_view body = {},
                                   std::optional<std::string> if_match = {}) const;

  const std::string& url() const { return url_; }

 private:
  ApiClient(std::string url, std::string host, std::string port)
      : url_(std::move(url)), host_(std::move(host)), port_(std::move(port)) {}

  std::string url_;
  std::string host_;
  std::string port_;
  std::chrono::seconds timeout_{10};
};

}  // namespace turnout::control_plane::cli
