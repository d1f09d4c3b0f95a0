#include "config/control_plane/cli/api_client.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proxy/common/asio.h"

namespace turnout::control_plane::cli {
namespace {

namespace http = beast::http;
using tcp = asio::ip::tcp;

}  // namespace

absl::StatusOr<ApiClient> ApiClient::forUrl(std::string_view server) {
  constexpr std::string_view kScheme = "http://";
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--server: '", std::string(server), "' ", std::string(why),
                                                   " (expected http://HOST:PORT)"));
  };
  if (server.substr(0, kScheme.size()) != kScheme) {
    if (server.substr(0, 8) == "https://") return bad("uses https, which turnout-cp does not serve yet");
    return bad("is not an http:// URL");
  }
  std::string_view rest = server.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) return bad("has a path");
  std::string_view host;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("has an unclosed '['");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] != ':') return bad("has junk after ']'");
    port = close + 2 <= rest.size() ? rest.substr(close + 2) : std::string_view("80");
  } else {
    const size_t colon = rest.rfind(':');
    host = rest.substr(0, colon);
    port = colon == std::string_view::npos ? std::string_view("80") : rest.substr(colon + 1);
  }
  uint32_t port_number = 0;
  if (host.empty()) return bad("has no host");
  if (!absl::SimpleAtoi(absl::string_view(port.data(), port.size()), &port_number) || port_number == 0 ||
      port_number > 65535) {
    return bad("has no valid port");
  }
  return ApiClient(std::string(server), std::string(host), std::string(port));
}

absl::StatusOr<ApiReply> ApiClient::request(std::string_view method, std::string_view path, std::string_view body,
                                            std::optional<std::string> if_match) const {
  asio::io_context ioc;
  http::request<http::string_body> req;
  req.method_string(beast::string_view(method.data(), method.size()));
  req.target(beast::string_view(path.data(), path.size()));
  req.version(11);
  req.set(http::field::host, host_.find(':') == std::string::npos ? host_ + ":" + port_
                                                                   : "[" + host_ + "]:" + port_);
  req.set(http::field::user_agent, "turnout-cp-cli");
  req.set(http::field::connection, "close");
  if (if_match) req.set(http::field::if_match, *if_match);
  if (method == "PUT") {
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
  }
  req.prepare_payload();

  ApiReply reply;
  boost::system::error_code failure;
  auto exchange = [&]() -> Awaitable<void> {
    boost::system::error_code ec;
    auto redirect = asio::redirect_error(use_awaitable, ec);
    TcpResolver resolver(ioc);
    TcpStream stream(ioc);
    stream.expires_after(timeout_);
    auto endpoints = co_await resolver.async_resolve(host_, port_, redirect);
    if (!ec) co_await stream.async_connect(endpoints, redirect);
    if (!ec) co_await http::async_write(stream, req, redirect);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    if (!ec) co_await http::async_read(stream, buffer, parser, redirect);
    if (ec) {
      failure = ec;
      co_return;
    }
    reply.status = parser.get().result_int();
    reply.body = std::move(parser.get().body());
    if (auto it = parser.get().find(http::field::etag); it != parser.get().end()) {
      reply.etag = std::string(it->value().data(), it->value().size());
    }
    stream.socket().shutdown(TcpSocket::shutdown_both, ec);
  };
  asio::co_spawn(ioc, exchange(), [&](std::exception_ptr e) {
    if (e) failure = asio::error::fault;
  });
  ioc.run();
  if (failure) {
    return absl::UnavailableError(absl::StrCat("cannot reach turnout-cp at ", url_, ": ", failure.message()));
  }
  return reply;
}

}  // namespace turnout::control_plane::cli
