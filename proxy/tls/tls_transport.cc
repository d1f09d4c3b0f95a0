#include "proxy/tls/tls_transport.h"

#include <array>
#include <openssl/err.h>

#include <algorithm>

namespace turnout::proxy::tls {
namespace {

constexpr size_t kReadChunk = 16 * 1024;

// The SSL ex_data slot that leads the client hello callback to the transport
// whose context a selector picks.
int transportSlotIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

uint16_t be16(const unsigned char* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// RFC 6066 §3 ServerNameList: the first host_name entry.
std::string_view parseServerName(const unsigned char* p, size_t len) {
  if (len < 2) return {};
  const size_t end = std::min<size_t>(len, 2 + be16(p));
  for (size_t i = 2; i + 3 <= end;) {
    const size_t n = be16(p + i + 1);
    if (i + 3 + n > end) break;
    if (p[i] == TLSEXT_NAMETYPE_host_name) {
      return std::string_view(reinterpret_cast<const char*>(p + i + 3), n);
    }
    i += 3 + n;
  }
  return {};
}

// RFC 7301 §3.1 ProtocolNameList.
void parseAlpn(const unsigned char* p, size_t len, std::vector<std::string_view>& out) {
  if (len < 2) return;
  const size_t end = std::min<size_t>(len, 2 + be16(p));
  for (size_t i = 2; i < end;) {
    const size_t n = p[i];
    if (n == 0 || i + 1 + n > end) break;
    out.emplace_back(reinterpret_cast<const char*>(p + i + 1), n);
    i += 1 + n;
  }
}

}  // namespace

int serverClientHelloCallback(SSL* ssl, int* alert, void*) {
  auto* t = static_cast<TlsTransport*>(SSL_get_ex_data(ssl, transportSlotIndex()));
  return t == nullptr ? SSL_CLIENT_HELLO_SUCCESS : t->onClientHello(alert);
}

TlsTransport::TlsTransport(ServerContextConstSharedPtr context) : context_(std::move(context)) {
  init(context_->nativeHandle());
  SSL_set_accept_state(ssl_);
}

TlsTransport::TlsTransport(ServerContextConstSharedPtr initial, ServerContextSelector selector)
    : context_(std::move(initial)), selector_(std::move(selector)) {
  init(context_->nativeHandle());
  SSL_set_accept_state(ssl_);
  SSL_set_ex_data(ssl_, transportSlotIndex(), this);
}

int TlsTransport::onClientHello(int* alert) {
  // A second ClientHello (after a HelloRetryRequest) keeps the first's choice.
  if (selected_context_) return SSL_CLIENT_HELLO_SUCCESS;
  ClientHello hello;
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl_, TLSEXT_TYPE_server_name, &p, &len) == 1) {
    hello.server_name = parseServerName(p, len);
  }
  if (SSL_client_hello_get0_ext(ssl_, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
                                &len) == 1) {
    parseAlpn(p, len, hello.alpn);
  }
  ServerContextChoice choice = selector_(hello);
  if (!choice.context) {
    refused_ = true;
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_CLIENT_HELLO_ERROR;
  }
  selected_tag_ = choice.tag;
  selected_context_ = std::move(choice.context);
  if (selected_context_ != context_) selected_context_->adopt(ssl_);
  return SSL_CLIENT_HELLO_SUCCESS;
}

absl::StatusOr<std::unique_ptr<TlsTransport>> TlsTransport::createClient(
    ClientContextConstSharedPtr context, const ClientHandshakeOptions& options,
    ClientSessionCache* cache) {
  std::unique_ptr<TlsTransport> t(new TlsTransport());
  t->client_context_ = std::move(context);
  t->init(t->client_context_->nativeHandle());
  SSL_set_connect_state(t->ssl_);
  absl::Status st = t->client_context_->prepare(t->ssl_, options, cache);
  if (!st.ok()) return st;
  return t;
}

void TlsTransport::init(SSL_CTX* ctx) {
  ssl_ = SSL_new(ctx);
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  // An empty memory BIO reads as "retry", not EOF.
  BIO_set_mem_eof_return(in_, -1);
  SSL_set_bio(ssl_, in_, out_);
}

TlsTransport::~TlsTransport() { SSL_free(ssl_); }

void TlsTransport::feed(std::span<const char> ciphertext) {
  if (!ciphertext.empty()) BIO_write(in_, ciphertext.data(), static_cast<int>(ciphertext.size()));
}

TlsTransport::Result TlsTransport::handshake() {
  if (handshake_done_) return Result::kOk;
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    handshake_done_ = true;
    return Result::kOk;
  }
  const int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Result::kWantRead;
  error_ = ERR_peek_last_error();
  if (error_ == 0) error_ = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_UNEXPECTED_EOF_WHILE_READING);
  ERR_clear_error();
  // No filter chain: the connection closes without a word, as in Envoy.
  if (refused_) (void)BIO_reset(out_);
  return Result::kError;
}

TlsTransport::Result TlsTransport::read(std::string& out) {
  // Decrypted into the stack and appended: growing `out` by a whole chunk
  // first would zero-fill (and touch) 16 KiB per call.
  std::array<char, kReadChunk> chunk;
  for (;;) {
    size_t n = 0;
    ERR_clear_error();
    const int rc = SSL_read_ex(ssl_, chunk.data(), chunk.size(), &n);
    if (rc == 1) {
      out.append(chunk.data(), n);
      // Nothing decrypted left and no ciphertext to decrypt: another call
      // would only fail with WANT_READ (a partial record needs more bytes
      // anyway). One SSL_read_ex and the error queue's checks fewer per
      // read; an alert or a KeyUpdate behind the data is still bytes in_
      // holds, and read on.
      if (SSL_pending(ssl_) == 0 && BIO_ctrl_pending(in_) == 0) return Result::kOk;
      continue;
    }
    const int err = SSL_get_error(ssl_, rc);
    ERR_clear_error();
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Result::kOk;
    if (err == SSL_ERROR_ZERO_RETURN) return Result::kClosed;
    return Result::kError;
  }
}

bool TlsTransport::write(std::span<const char> plaintext) {
  while (!plaintext.empty()) {
    size_t n = 0;
    ERR_clear_error();
    const int rc = SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &n);
    if (rc != 1) {
      ERR_clear_error();
      return false;  // memory BIOs never block: any failure is fatal
    }
    plaintext = plaintext.subspan(n);
  }
  return true;
}

void TlsTransport::shutdown() {
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

void TlsTransport::takeOutput(std::string& out) {
  for (;;) {
    const size_t pending = BIO_ctrl_pending(out_);
    if (pending == 0) return;
    const size_t had = out.size();
    out.resize(had + pending);
    const int n = BIO_read(out_, out.data() + had, static_cast<int>(pending));
    out.resize(had + static_cast<size_t>(n > 0 ? n : 0));
    if (n <= 0) return;
  }
}

bool TlsTransport::hasOutput() const { return BIO_ctrl_pending(out_) > 0; }

HandshakeInfo TlsTransport::describe() const {
  boost::system::error_code ec;
  if (!handshake_done_) {
    ec = boost::system::error_code(static_cast<int>(error_), asio::error::get_ssl_category());
  }
  return describeHandshake(ssl_, ec);
}

std::string_view TlsTransport::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return p == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(p), len);
}

}  // namespace turnout::proxy::tls
