#include "bench/turnout_bench/transport.h"

#include <openssl/ssl.h>


namespace turnout::bench {
namespace {

void setWhy(std::string* why, std::string_view step, const boost::system::error_code& ec) {
  if (why == nullptr) return;
  *why = std::string(step);
  if (!why->empty()) *why += ": ";
  *why += ec.message();
}

// The TCP part, shared by both stream types.
Awaitable<ErrorKind> connectTcp(TcpSocket* socket, const Transport* transport, std::string* why) {
  boost::system::error_code ec;
  socket->open(transport->endpoint.protocol(), ec);
  if (ec) {
    setWhy(why, "socket", ec);
    co_return ErrorKind::kConnect;
  }
  socket->set_option(asio::ip::tcp::no_delay(true), ec);
  co_await socket->async_connect(transport->endpoint, asio::redirect_error(use_awaitable, ec));
  if (ec || !socket->is_open()) {
    setWhy(why, "", ec ? ec : asio::error::timed_out);
    co_return ErrorKind::kConnect;
  }
  co_return ErrorKind::kNone;
}

}  // namespace

std::unique_ptr<asio::ssl::context> makeClientTlsContext(std::string_view alpn) {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_verify_mode(asio::ssl::verify_none);
  std::string wire(1, static_cast<char>(alpn.size()));
  wire.append(alpn);
  SSL_CTX_set_alpn_protos(ctx->native_handle(), reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned>(wire.size()));
  return ctx;
}

std::string_view alpnSelected(TlsStream& stream) {
  const unsigned char* data = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(stream.native_handle(), &data, &len);
  return data == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(data), len);
}

Awaitable<ErrorKind> openStream(asio::io_context* io, std::optional<TcpStream>* stream,
                                const Transport* transport, std::string* why) {
  stream->emplace(*io);
  co_return co_await connectTcp(&**stream, transport, why);
}

Awaitable<ErrorKind> openStream(asio::io_context* io, std::optional<TlsStream>* stream,
                                const Transport* transport, std::string* why) {
  stream->emplace(*io, *transport->tls);
  TlsStream& s = **stream;
  if (const ErrorKind e = co_await connectTcp(&s.next_layer(), transport, why);
      e != ErrorKind::kNone) {
    co_return e;
  }
  SSL_set_tlsext_host_name(s.native_handle(), transport->server_name.c_str());
  boost::system::error_code ec;
  co_await s.async_handshake(asio::ssl::stream_base::client,
                             asio::redirect_error(use_awaitable, ec));
  if (ec) {
    setWhy(why, "TLS handshake", ec);
    co_return ErrorKind::kConnect;
  }
  if (transport->h2 && alpnSelected(s) != "h2") {
    if (why != nullptr) *why = "the server did not select h2 in the TLS handshake (ALPN)";
    co_return ErrorKind::kConnect;
  }
  co_return ErrorKind::kNone;
}

}  // namespace turnout::bench
