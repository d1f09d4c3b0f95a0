#pragma once

// One TLS connection, sans-I/O (STYLE.md R6; Envoy's SslSocket over its raw
// transport): OpenSSL runs over two BIOs that read from and write to this
// transport's buffers (the memory BIOs' work without their copies), so the connection that owns
// it keeps one socket type and one read/write path for plaintext and TLS.
// Ciphertext read from the socket goes in through feed(); handshake() and
// read() consume it; write() encrypts; what must go to the socket
// (handshake flights, records, alerts, TLS 1.3 session tickets) is taken with
// takeOutput() after every call.
//
// Who calls it: the connection's worker thread only. The context's
// shared_ptr is held for the transport's life, so a replaced context stays
// alive for the connections that use it.

#include <openssl/ssl.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/common/asio.h"

#include "proxy/tls/handshake_outcome.h"
#include "proxy/tls/tls_context.h"

namespace turnout::proxy::tls {

// What a ClientHello offers, for choosing the server context by it. Views
// into the ClientHello: valid during the selector's call only.
struct ClientHello {
  std::string_view server_name;  // SNI; empty when the client sent none
  std::vector<std::string_view> alpn;  // in the client's order
};

// The context to serve a ClientHello with, and a tag the transport keeps for
// its owner (the filter chain's index); a null context refuses the
// connection: the handshake fails without an alert, as Envoy closes a
// connection no filter chain matches.
struct ServerContextChoice {
  ServerContextConstSharedPtr context;
  size_t tag = 0;
};
using ServerContextSelector = std::function<ServerContextChoice(const ClientHello&)>;

class TlsTransport {
 public:
  enum class Result {
    kOk,        // done (handshake), or what could be decrypted was (read)
    kWantRead,  // handshake: send takeOutput(), then feed more
    kClosed,    // the peer sent close_notify
    kError,     // a fatal TLS error: send takeOutput() (the alert), then close
  };

  // A server-side transport on `context`.
  explicit TlsTransport(ServerContextConstSharedPtr context);
  // A server-side transport that starts on `initial` and, once the
  // ClientHello is read, moves to the context `selector` picks for it
  // (ServerContext::adopt). `selector` runs on this thread, inside
  // handshake().
  TlsTransport(ServerContextConstSharedPtr initial, ServerContextSelector selector);
  // A client-side transport on `context` (SSL_set_connect_state): SNI, ALPN
  // and the session to resume come from `options` through
  // ClientContext::prepare(); the session the server issues goes to `cache`
  // (may be null: no resumption), which must outlive the transport. create()
  // fails only when prepare() does (an SNI or ALPN override too long).
  static absl::StatusOr<std::unique_ptr<TlsTransport>> createClient(
      ClientContextConstSharedPtr context, const ClientHandshakeOptions& options,
      ClientSessionCache* cache);
  ~TlsTransport();
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  void feed(std::span<const char> ciphertext);
  Result handshake();
  // Appends the plaintext that what was fed decrypts to.
  Result read(std::string& out);
  // Encrypts all of `plaintext` into the output. False on a fatal error.
  bool write(std::span<const char> plaintext);
  // Queues close_notify.
  void shutdown();
  // Moves what must be sent to the socket into `out` (appended).
  void takeOutput(std::string& out);
  bool hasOutput() const;

  bool handshakeDone() const { return handshake_done_; }
  // The handshake's outcome and parameters, for ssl.* stats (after
  // handshake() returned kOk or kError).
  HandshakeInfo describe() const;
  // The ALPN protocol the handshake selected ("h2", "http/1.1"), or empty.
  std::string_view alpn() const;
  // The selector's tag for the ClientHello (none before it, or without a
  // selector).
  std::optional<size_t> selectedTag() const { return selected_tag_; }
  // The selector refused the ClientHello (handshake() failed for it).
  bool refused() const { return refused_; }
  // Whether the handshake resumed a session (client side: the cached one).
  bool sessionReused() const { return SSL_session_reused(ssl_) == 1; }
  SSL* native() const { return ssl_; }

  // Ciphertext waiting for OpenSSL (input) or for the socket (output): what
  // the transport's BIOs read from and write to (`consumed`: bytes of
  // `bytes` already read).
  struct Buffer {
    std::string bytes;
    size_t consumed = 0;
  };

 private:
  TlsTransport() = default;
  void init(SSL_CTX* ctx);
  friend int serverClientHelloCallback(SSL* ssl, int* alert, void* arg);
  int onClientHello(int* alert);

  // Exactly one is set: the context the SSL was made from stays alive.
  ServerContextConstSharedPtr context_;
  ClientContextConstSharedPtr client_context_;
  SSL* ssl_ = nullptr;
  // What the BIOs (owned by ssl_) read and write.
  Buffer in_;
  Buffer out_;
  // SNI selection: the selector, and the context and tag it chose.
  ServerContextSelector selector_;
  ServerContextConstSharedPtr selected_context_;
  std::optional<size_t> selected_tag_;
  bool refused_ = false;
  bool handshake_done_ = false;
  unsigned long error_ = 0;  // the OpenSSL error that failed the handshake
};

}  // namespace turnout::proxy::tls
