#include "proxy/tls/tls_transport.h"

#include <openssl/err.h>

namespace turnout::proxy::tls {
namespace {

constexpr size_t kReadChunk = 16 * 1024;

}  // namespace

TlsTransport::TlsTransport(ServerContextConstSharedPtr context) : context_(std::move(context)) {
  init(context_->nativeHandle());
  SSL_set_accept_state(ssl_);
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
  return Result::kError;
}

TlsTransport::Result TlsTransport::read(std::string& out) {
  for (;;) {
    const size_t had = out.size();
    out.resize(had + kReadChunk);
    size_t n = 0;
    ERR_clear_error();
    const int rc = SSL_read_ex(ssl_, out.data() + had, kReadChunk, &n);
    out.resize(had + (rc == 1 ? n : 0));
    if (rc == 1) continue;
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
