#pragma once

// TLS contexts for both legs (Envoy's envoy.transport_sockets.tls):
// ServerContext from a listener filter chain's DownstreamTlsContext,
// ClientContext from a cluster's UpstreamTlsContext. Each wraps one OpenSSL
// SSL_CTX (an asio::ssl::context) configured from the proto: certificate and
// key, trust store and SAN matchers, protocol versions, ciphers, curves,
// ALPN, session resumption. docs/tls.md lists what is honoured and what is
// rejected.
//
// Threads: create() runs on the main thread (it reads files). The result is
// immutable and shared by every worker: OpenSSL's SSL_CTX is safe for
// concurrent SSL_new, and the callbacks installed here only read the context.
// A connection keeps its context's shared_ptr for its lifetime, so a context
// replaced by a config update or a certificate reload stays alive until its
// last connection ends.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "proxy/common/asio.h"
#include "proxy/tls/cert_validator.h"
#include "proxy/tls/secret_resolver.h"

#include <boost/asio/ssl.hpp>

namespace turnout::proxy::tls {

// Rejects, with its field path and a reason, every set field of a
// DownstreamTlsContext or UpstreamTlsContext (or a Secret) that turnout does
// not honour: the field policy's entries for the TLS messages
// (config/bootstrap/field_policy.cc). create() calls it first.
absl::Status checkTlsContextFields(const google::protobuf::Message& context,
                                   std::string_view field_path);

// What the two context kinds share: the SSL_CTX and the state its callbacks
// read. Not used directly.
class TlsContextBase {
 public:
  TlsContextBase(const TlsContextBase&) = delete;
  TlsContextBase& operator=(const TlsContextBase&) = delete;

  // For asio::ssl::stream<TcpSocket>(socket, sslContext()). Mutable because
  // Asio's stream takes a non-const reference; SSL_new on it is thread-safe.
  asio::ssl::context& sslContext() const { return ctx_; }
  SSL_CTX* nativeHandle() const { return ctx_.native_handle(); }

  // alpn_protocols in preference order.
  const std::vector<std::string>& alpnProtocols() const { return alpn_; }
  // Every file the context was built from (certificate chain, key, trusted
  // CA, directly or through static secrets), for reloading.
  const std::vector<std::string>& sourceFiles() const { return files_; }

 protected:
  explicit TlsContextBase(asio::ssl::context::method method) : ctx_(method) {}

  absl::Status configureCommon(
      const envoy::extensions::transport_sockets::tls::v3::CommonTlsContext& common,
      std::string_view common_path, const SecretResolver& secrets, bool server,
      bool require_peer_certificate);

  mutable asio::ssl::context ctx_;
  // What SSL_new copies from the context into each SSL (and SSL_set_SSL_CTX
  // does not): ServerContext::adopt() sets them again.
  std::string cipher_list_;
  std::string curve_list_;
  std::vector<std::string> alpn_;
  std::string alpn_wire_;  // length-prefixed, as TLS carries it
  std::optional<CertValidator> validator_;
  std::vector<std::string> files_;
  std::string fingerprint_;  // certificate + validation inputs, for the session id context
};

class ServerContext : public TlsContextBase {
 public:
  // `field_path` names the DownstreamTlsContext (e.g.
  // `static_resources.listeners[0].filter_chains[1].transport_socket.typed_config`).
  static absl::StatusOr<std::shared_ptr<const ServerContext>> create(
      const envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext& config,
      std::string_view field_path, const SecretResolver& secrets);

  bool requireClientCertificate() const { return require_client_certificate_; }

  // Moves `ssl`, a server SSL made from another ServerContext whose
  // ClientHello is being processed (the client hello callback), onto this
  // context: certificate and key, trust store and verification, protocol
  // versions, ciphers, curves, options, ALPN and the session id context
  // (SSL_set_SSL_CTX switches only some of them). The caller keeps this
  // context alive for the SSL's life.
  void adopt(SSL* ssl) const;

 private:
  ServerContext() : TlsContextBase(asio::ssl::context::tls_server) {}
  static int selectAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                        const unsigned char* in, unsigned int inlen, void* arg);

  bool require_client_certificate_ = false;
};

using ServerContextConstSharedPtr = std::shared_ptr<const ServerContext>;

// The client hello callback every ServerContext installs: a no-op unless the
// SSL belongs to a TlsTransport that picks its context from the ClientHello
// (SNI filter chain selection; defined in tls_transport.cc).
int serverClientHelloCallback(SSL* ssl, int* alert, void* arg);

// TLS sessions to resume, per upstream host. One per worker (or per pool):
// single-threaded, no locks. Keeps the latest resumable session of each key.
class ClientSessionCache {
 public:
  explicit ClientSessionCache(size_t max_entries = 4096) : max_entries_(max_entries) {}
  ClientSessionCache(const ClientSessionCache&) = delete;
  ClientSessionCache& operator=(const ClientSessionCache&) = delete;

  // Takes ownership of one reference to `session`.
  void put(const std::string& key, SSL_SESSION* session);
  // Borrowed; valid until the next put/erase for `key`.
  SSL_SESSION* find(std::string_view key) const;
  void erase(std::string_view key) { sessions_.erase(std::string(key)); }
  size_t size() const { return sessions_.size(); }

 private:
  struct SessionDeleter {
    void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
  };
  size_t max_entries_;
  absl::flat_hash_map<std::string, std::unique_ptr<SSL_SESSION, SessionDeleter>> sessions_;
};

// Per-connection choices the upstream pool makes (Envoy's transport socket
// options).
struct ClientHandshakeOptions {
  // Wins over UpstreamTlsContext.sni when set (Envoy's auto_sni).
  std::string sni_override;
  // Replaces alpn_protocols when set (e.g. {"h2"} for an HTTP/2 cluster whose
  // TLS context names none, as Envoy does).
  std::vector<std::string> alpn_override;
  // The upstream host the session cache is keyed by ("10.0.0.1:443"); no
  // resumption when empty.
  std::string session_key;
};

class ClientContext : public TlsContextBase {
 public:
  // `field_path` names the UpstreamTlsContext (e.g.
  // `static_resources.clusters[0].transport_socket.typed_config`).
  static absl::StatusOr<std::shared_ptr<const ClientContext>> create(
      const envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext& config,
      std::string_view field_path, const SecretResolver& secrets);

  // Call once per connection, before the handshake, with the stream's
  // native_handle(): sets SNI and ALPN, offers the cached session for
  // `options.session_key`, and arranges for the session the server issues to
  // be stored in `cache`. `cache` (may be null: no resumption) must outlive
  // `ssl`. Fails only on an invalid override (an SNI or ALPN name too long).
  absl::Status prepare(SSL* ssl, const ClientHandshakeOptions& options,
                       ClientSessionCache* cache) const;

  const std::string& sni() const { return sni_; }
  bool sessionResumption() const { return session_resumption_; }

 private:
  ClientContext() : TlsContextBase(asio::ssl::context::tls_client) {}
  static int onNewSession(SSL* ssl, SSL_SESSION* session);

  std::string sni_;
  bool session_resumption_ = true;  // max_session_keys != 0
};

using ClientContextConstSharedPtr = std::shared_ptr<const ClientContext>;

}  // namespace turnout::proxy::tls
