#include "proxy/upstream/upstream_tls.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "proxy/common/inq_read.h"
#include "proxy/common/log.h"
#include "proxy/server/data_plane_config.h"

namespace turnout::proxy {
namespace {

constexpr const char* kLogComponent = "upstream";

void countHandshake(stats::Shard& shard, const stats::SslStats& s, const tls::HandshakeInfo& info) {
  using tls::HandshakeOutcome;
  switch (info.outcome) {
    case HandshakeOutcome::Success: shard.inc(s.handshake); break;
    case HandshakeOutcome::FailVerifyError: shard.inc(s.fail_verify_error); break;
    case HandshakeOutcome::FailVerifySan: shard.inc(s.fail_verify_san); break;
    case HandshakeOutcome::FailVerifyNoCert: shard.inc(s.fail_verify_no_cert); break;
    default: shard.inc(s.connection_error); break;
  }
  if (info.outcome != HandshakeOutcome::Success) return;
  if (info.session_reused) shard.inc(s.session_reused);
  if (!info.peer_certificate) shard.inc(s.no_certificate);
}

}  // namespace

std::unique_ptr<tls::TlsTransport> makeUpstreamTransport(
    const ClusterRuntime& cluster, const asio::ip::tcp::endpoint& endpoint,
    std::vector<std::string> alpn_override, tls::ClientSessionCache* sessions) {
  if (!cluster.tls) return nullptr;
  tls::ClientHandshakeOptions options;
  if (cluster.tls->alpnProtocols().empty()) options.alpn_override = std::move(alpn_override);
  options.session_key = absl::StrCat(endpoint.address().to_string(), ":", endpoint.port());
  auto t = tls::TlsTransport::createClient(cluster.tls, options, sessions);
  if (!t.ok()) {
    TURNOUT_LOG(err, kLogComponent, "cluster '{}': {}", cluster.config->name,
                std::string(t.status().message()));
    return nullptr;
  }
  return *std::move(t);
}

Awaitable<boost::system::error_code> runTlsHandshake(TcpStream& stream, tls::TlsTransport& t,
                                                     std::optional<stats::SslStats> ssl_stats,
                                                     stats::Shard& shard) {
  std::array<char, 16 * 1024> buf;
  std::string out;
  boost::system::error_code ec;
  for (;;) {
    const tls::TlsTransport::Result r = t.handshake();
    out.clear();
    t.takeOutput(out);
    if (!out.empty()) {
      // The alert of a failed handshake goes out too; its write error, if
      // any, does not change the outcome.
      co_await asio::async_write(stream, asio::buffer(out),
                                 asio::redirect_error(use_awaitable, ec));
    }
    if (r == tls::TlsTransport::Result::kOk) {
      if (ec) break;
      if (ssl_stats) countHandshake(shard, *ssl_stats, t.describe());
      co_return boost::system::error_code();
    }
    if (r != tls::TlsTransport::Result::kWantRead) {
      // A ClientHello no filter chain takes is no TLS failure: the listener
      // counts it (no_filter_chain_match).
      if (ssl_stats && !t.refused()) countHandshake(shard, *ssl_stats, t.describe());
      co_return asio::error::connection_refused;
    }
    if (ec) break;
    const size_t n =
        co_await stream.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    t.feed(std::span<const char>(buf.data(), n));
  }
  // The socket failed or timed out mid-handshake: ssl.connection_error (the
  // transport saw no TLS error to classify).
  if (ssl_stats) shard.inc(ssl_stats->connection_error);
  co_return ec;
}

Awaitable<boost::system::error_code> readTls(TcpStream& stream, tls::TlsTransport& t,
                                             std::string& plaintext) {
  std::array<char, 16 * 1024> buf;
  boost::system::error_code ec;
  size_t n = 0;
  // The socket itself (the caller cleared the stream's timeout).
  co_await readInq(stream.socket(), asio::buffer(buf), &ec, &n);
  if (ec) co_return ec;
  t.feed(std::span<const char>(buf.data(), n));
  switch (t.read(plaintext)) {
    case tls::TlsTransport::Result::kClosed: co_return asio::error::eof;
    case tls::TlsTransport::Result::kError: co_return asio::error::connection_reset;
    default: break;
  }
  co_return ec;
}

Awaitable<boost::system::error_code> writeTls(TcpStream& stream, tls::TlsTransport& t,
                                              std::span<const char> plaintext) {
  boost::system::error_code ec;
  if (!plaintext.empty() && !t.write(plaintext)) co_return asio::error::connection_reset;
  std::string out;
  t.takeOutput(out);
  if (out.empty()) co_return ec;
  co_await asio::async_write(stream, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

}  // namespace turnout::proxy
