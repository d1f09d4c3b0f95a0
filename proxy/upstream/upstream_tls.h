#pragma once

// TLS on upstream connections (a cluster's UpstreamTlsContext; Envoy's
// SslSocket on the client side): the handshake right after connect, within
// the connect timeout, and the cluster.<name>.ssl.* counters of its outcome.
// Both pools (Http1ConnPool's UpstreamConnection, Http2PoolConnection) keep
// their one socket type (TcpStream) and put a sans-I/O
// tls::TlsTransport between it and their codec: ciphertext in and out of the
// socket, plaintext to and from the codec. docs/tls.md "Upstream TLS".

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proxy/common/asio.h"
#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"
#include "proxy/tls/tls_context.h"
#include "proxy/tls/tls_transport.h"

namespace turnout::proxy {

struct ClusterRuntime;

// The client transport for one new connection of `cluster` to `endpoint`:
// SNI from the context, ALPN `alpn_override` when the context names none
// (e.g. {"h2"} for an HTTP/2 cluster, as Envoy does), the session of
// `endpoint` offered from `sessions` (may be null) and the new one kept
// there. Null when the cluster is plaintext (or the override is invalid,
// which cannot happen with the fixed names the pools pass).
std::unique_ptr<tls::TlsTransport> makeUpstreamTransport(
    const ClusterRuntime& cluster, const asio::ip::tcp::endpoint& endpoint,
    std::vector<std::string> alpn_override, tls::ClientSessionCache* sessions);

// Runs the handshake of `t` (either side: the listeners' connections use it
// too) over the connected `stream` within the stream's current expiry (the
// caller's connect or idle timeout), then counts its outcome in `ssl_stats`
// (the cluster's or listener's ssl.*; a copy, which keeps its scope alive
// whatever happens to the config meanwhile) on `shard`, which must outlive
// the call. An error is a failed handshake: beast::error::timeout when it ran
// out of time.
Awaitable<boost::system::error_code> runTlsHandshake(TcpStream& stream, tls::TlsTransport& t,
                                                     std::optional<stats::SslStats> ssl_stats,
                                                     stats::Shard& shard);

// Reads once from `stream` (waiting for data) and appends what it decrypts
// to `plaintext` (possibly nothing: a TLS record split across reads, a
// session ticket). What the transport must send back (rare: a key update)
// stays in it for the connection's next writeTls(): a reader never writes,
// so it cannot interleave with the connection's writer. A close_notify reads
// as eof.
Awaitable<boost::system::error_code> readTls(TcpStream& stream, tls::TlsTransport& t,
                                             std::string& plaintext);

// Encrypts `plaintext` and writes it with whatever the transport has
// pending.
Awaitable<boost::system::error_code> writeTls(TcpStream& stream, tls::TlsTransport& t,
                                              std::span<const char> plaintext);

}  // namespace turnout::proxy
