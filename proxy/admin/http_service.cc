#include "proxy/admin/http_service.h"

#include <fstream>
#include <type_traits>

#include <boost/beast/ssl.hpp>

#include "absl/strings/str_cat.h"
#include "proxy/common/log.h"
#include "proxy/common/spawn.h"

namespace turnout::proxy::admin {
namespace {

namespace http = beast::http;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<TcpStream>;

// How long a TLS connection waits for the peer's close_notify at the end.
constexpr std::chrono::seconds kTlsShutdownTimeout{2};

}  // namespace

std::string hostPort(std::string_view host, uint32_t port) {
  const absl::string_view h(host.data(), host.size());
  if (h.find(':') != absl::string_view::npos) return absl::StrCat("[", h, "]:", port);
  return absl::StrCat(h, ":", port);
}

HttpResponse HttpService::textError(unsigned status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = std::string(message) + "\n";
  return r;
}

HttpService::HttpService(asio::io_context& ioc, Options options, Handler handler,
                         ErrorResponder error_responder)
    : ioc_(ioc),
      options_(std::move(options)),
      handler_(std::move(handler)),
      error_responder_(std::move(error_responder)),
      acceptor_(ioc) {}

HttpService::~HttpService() { stop(); }

absl::StatusOr<std::unique_ptr<HttpService>> HttpService::create(asio::io_context& ioc, Options options,
                                                                 Handler handler,
                                                                 ErrorResponder error_responder) {
  std::unique_ptr<HttpService> service(
      new HttpService(ioc, std::move(options), std::move(handler), std::move(error_responder)));
  const Options& o = service->options_;
  boost::system::error_code ec;
  const asio::ip::address ip = asio::ip::make_address(o.address, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat(o.address_name, ": invalid IP '", o.address, "'"));
  const tcp::endpoint endpoint(ip, o.port);
  auto& acceptor = service->acceptor_;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat(o.address_name, ": cannot listen on ",
                                               hostPort(o.address, o.port), ": ", ec.message()));
  }
  service->port_ = acceptor.local_endpoint().port();
  if (!o.address_path.empty()) {
    std::ofstream f(o.address_path, std::ios::trunc);
    f << service->boundAddress();
    f.close();
    if (!f) return absl::InternalError(absl::StrCat(o.address_path_name, ": cannot write ", o.address_path));
  }
  return service;
}

std::string HttpService::boundAddress() const { return hostPort(options_.address, port_); }

void HttpService::start() {
  asio::co_spawn(ioc_, acceptLoop(), LogEscapedException{options_.log_component, "HTTP accept loop"});
}

void HttpService::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (TcpStream* s : sessions_) {
    s->socket().shutdown(TcpSocket::shutdown_both, ec);
    s->socket().close(ec);
  }
}

Awaitable<void> HttpService::acceptLoop() {
  while (!stopped_) {
    boost::system::error_code ec;
    TcpSocket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (stopped_ || ec == asio::error::operation_aborted) co_return;
      continue;  // e.g. EMFILE: keep serving
    }
    if (options_.tls_context) {
      tls::ServerContextConstSharedPtr context = options_.tls_context();
      TlsStream stream(TcpStream(std::move(socket)), context->sslContext());
      asio::co_spawn(ioc_, session(std::move(stream), std::move(context)),
                     LogEscapedException{options_.log_component, "HTTPS session"});
    } else {
      asio::co_spawn(ioc_, session(TcpStream(std::move(socket)), nullptr),
                     LogEscapedException{options_.log_component, "HTTP session"});
    }
  }
}

template <class Stream>
Awaitable<void> HttpService::session(Stream stream, tls::ServerContextConstSharedPtr context) {
  constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  TcpStream& lowest = beast::get_lowest_layer(stream);
  (void)context;  // held: the SSL inside `stream` was made from it
  sessions_.insert(&lowest);
  beast::flat_buffer buffer;
  boost::system::error_code ec;
  if constexpr (kTls) {
    lowest.expires_after(options_.handshake_timeout);
    co_await stream.async_handshake(asio::ssl::stream_base::server,
                                    asio::redirect_error(use_awaitable, ec));
    if (ec) {
      // Plaintext on the TLS port, an untrusted client, a scanner: no answer.
      TURNOUT_LOG(debug, options_.log_component, "TLS handshake failed: {}", ec.message());
      sessions_.erase(&lowest);
      lowest.socket().close(ec);
      co_return;
    }
  }
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(options_.max_request_header_bytes));
    parser.body_limit(options_.max_request_body_bytes);
    lowest.expires_after(options_.idle_timeout);
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
    HttpResponse response;
    bool keep_alive = false;
    bool head = false;
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::operation_aborted || ec == beast::error::timeout || stopped_) {
      break;
    } else if (ec == http::error::body_limit) {
      response = error_responder_(413, "request body too large");
    } else if (ec == http::error::header_limit) {
      response = error_responder_(431, "request headers too large");
    } else if (ec) {
      if (!parser.got_some()) break;
      response = error_responder_(400, absl::StrCat("bad request: ", ec.message()));
    } else {
      keep_alive = parser.get().keep_alive();
      head = parser.get().method() == http::verb::head;
      response = handler_(parser.get());
    }
    http::response<http::string_body> res{static_cast<http::status>(response.status), 11};
    res.set(http::field::content_type, response.content_type);
    res.set(http::field::cache_control, "no-cache, max-age=0");
    res.set("x-content-type-options", "nosniff");
    for (const auto& [name, value] : response.headers) res.set(name, value);
    res.keep_alive(keep_alive && !stopped_);
    res.body() = std::move(response.body);
    res.prepare_payload();
    // HEAD: the GET's headers, Content-Length included (RFC 9110 9.3.2), and
    // no body.
    if (head) res.body().clear();
    lowest.expires_after(options_.write_timeout);
    co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
    if (response.after_write) asio::post(ioc_, std::move(response.after_write));
    if (ec || !res.keep_alive()) break;
  }
  sessions_.erase(&lowest);
  if constexpr (kTls) {
    if (!stopped_ && lowest.socket().is_open()) {
      lowest.expires_after(kTlsShutdownTimeout);  // close_notify, bounded
      co_await stream.async_shutdown(asio::redirect_error(use_awaitable, ec));
    }
  }
  lowest.socket().shutdown(TcpSocket::shutdown_send, ec);
}

}  // namespace turnout::proxy::admin
