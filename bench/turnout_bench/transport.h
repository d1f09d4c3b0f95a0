#pragma once

// What the sessions run on: plain TCP or TLS over TCP. Http1Session and
// Http2Session are templates over the stream type, so the hot path has no
// extra indirection; this header holds the part that differs, opening a
// connection, in one place.
//
// TLS here is a load generator's TLS: the server's certificate is not
// verified (targets under test often use self-signed ones), SNI carries the
// URL's host, and ALPN offers h2 or http/1.1 to match --h2.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ssl.hpp>

#include "bench/turnout_bench/client_session.h"

namespace turnout::bench {

using TcpStream = TcpSocket;
using TlsStream = asio::ssl::stream<TcpSocket>;

// How to reach the target. Immutable for the run; one TLS context per worker.
struct Transport {
  asio::ip::tcp::endpoint endpoint;
  asio::ssl::context* tls = nullptr;  // null for http://
  std::string server_name;            // SNI
  bool h2 = false;                    // TLS: ALPN must select h2
};

// A client context for `alpn` ("h2" or "http/1.1"), without verification.
std::unique_ptr<asio::ssl::context> makeClientTlsContext(std::string_view alpn);

// The protocol ALPN selected on a TLS stream ("" if none).
std::string_view alpnSelected(TlsStream& stream);

// Opens `*stream` afresh on `io`: TCP connect (no_delay), then for TLS the
// handshake and the ALPN check. The caller's watchdog closes the socket if
// it passes its deadline, which fails the step in progress. On failure,
// `*why` (if given) says what failed. Pointers, not references, because
// these are coroutines; the caller owns them and awaits the result.
Awaitable<ErrorKind> openStream(asio::io_context* io, std::optional<TcpStream>* stream,
                                const Transport* transport, std::string* why);
Awaitable<ErrorKind> openStream(asio::io_context* io, std::optional<TlsStream>* stream,
                                const Transport* transport, std::string* why);

}  // namespace turnout::bench
