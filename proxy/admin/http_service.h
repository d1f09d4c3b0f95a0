#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/common/asio.h"
#include "proxy/tls/tls_context.h"

namespace turnout::proxy::admin {

using HttpRequest = beast::http::request<beast::http::string_body>;

// One response, before it goes on the wire.
struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=UTF-8";
  std::string body;
  // Extra response headers (ETag, Allow, ...).
  std::vector<std::pair<std::string, std::string>> headers;
  // Runs after the response has been written (e.g. /quitquitquit).
  std::function<void()> after_write;
};

// A small HTTP/1.1 server on the MAIN thread's io_context, shared by turnout's
// admin interface and turnout-cp's REST API: Beast's parser and serializer over
// TcpStream, one coroutine per connection, keep-alive, header and body
// size limits and a deadline on every read and write. The handler runs
// synchronously on the io_context's thread, one request at a time per
// connection. Requests the parser refuses never reach it: 413 (body over the
// limit), 431 (headers over the limit) and 400 (malformed) come from
// `error_responder`, after which the connection is closed.
//
// With `Options::tls_context` set it serves HTTPS only (turnout-cp's admission
// webhook): every connection first completes a TLS handshake on the context
// the function returns at accept time (so a reloaded certificate serves new
// connections while old ones keep theirs), within `handshake_timeout`; a
// client that speaks plaintext or fails the handshake is closed without an
// HTTP answer.
class HttpService {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    uint16_t port = 0;         // 0: any free port; see port()
    std::string address_path;  // gets "127.0.0.1:PORT" once bound
    size_t max_request_header_bytes = 16 * 1024;
    size_t max_request_body_bytes = 64 * 1024;
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
    std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};
    // For errors and logs: the config field or flag the address came from
    // ("admin.address", "--http-address") and the flag of address_path.
    std::string address_name = "address";
    std::string address_path_name = "address path";
    const char* log_component = "admin";
    // HTTPS: the server context for each new connection (never null once
    // set); unset, plaintext HTTP.
    std::function<tls::ServerContextConstSharedPtr()> tls_context;
    std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};
  };
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // The response to a request the parser refused; `message` is a sentence.
  using ErrorResponder = std::function<HttpResponse(unsigned status, std::string_view message)>;
  static HttpResponse textError(unsigned status, std::string_view message);

  // Binds and listens (errors name options.address_name); call start() to
  // accept. Writes options.address_path when set.
  static absl::StatusOr<std::unique_ptr<HttpService>> create(asio::io_context& ioc, Options options,
                                                             Handler handler,
                                                             ErrorResponder error_responder = textError);
  ~HttpService();
  HttpService(const HttpService&) = delete;
  HttpService& operator=(const HttpService&) = delete;

  void start();
  // Stops accepting and closes open connections.
  void stop();
  uint16_t port() const { return port_; }
  // "127.0.0.1:PORT" (IPv6 as "[::1]:PORT").
  std::string boundAddress() const;

 private:
  HttpService(asio::io_context& ioc, Options options, Handler handler, ErrorResponder error_responder);
  Awaitable<void> acceptLoop();
  // One connection: `Stream` is TcpStream (plaintext) or
  // beast::ssl_stream<TcpStream> (HTTPS: the handshake first), whose
  // server context `context` is held for the connection's life.
  template <class Stream>
  Awaitable<void> session(Stream stream, tls::ServerContextConstSharedPtr context);

  asio::io_context& ioc_;
  Options options_;
  Handler handler_;
  ErrorResponder error_responder_;
  TcpAcceptor acceptor_;
  uint16_t port_ = 0;
  std::set<TcpStream*> sessions_;
  bool stopped_ = false;
};

// "host:port", brackets around an IPv6 host.
std::string hostPort(std::string_view host, uint32_t port);

}  // namespace turnout::proxy::admin
