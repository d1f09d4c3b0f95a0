#include "proxy/tls/tls_transport.h"

#include <array>
#include <openssl/err.h>

#include <algorithm>
#include <cstring>

namespace turnout::proxy::tls {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
// An emptied input buffer larger than this is freed (one socket read is
// at most 64 KiB).
constexpr size_t kMaxKeptBuffer = 64 * 1024;

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

// The transport's BIOs: OpenSSL reads ciphertext straight from the
// transport's input buffer and writes records straight into its output
// buffer. Memory BIOs cost a copy each way, and OpenSSL calls BIO_ctrl
// about 20 times per request (pending bytes, kTLS queries, flushes), each
// a walk through the memory BIO's BUF_MEM: about 2,000 instructions of a
// TLS request (bench/compare/instructions.sh --tls). An empty input reads
// as "retry", never as EOF.
TlsTransport::Buffer* bufferOf(BIO* b) {
  return static_cast<TlsTransport::Buffer*>(BIO_get_data(b));
}

int bufferRead(BIO* b, char* to, int len) {
  BIO_clear_retry_flags(b);
  TlsTransport::Buffer& in = *bufferOf(b);
  const size_t avail = in.bytes.size() - in.consumed;
  if (avail == 0) {
    BIO_set_retry_read(b);
    return -1;
  }
  const size_t n = std::min(avail, static_cast<size_t>(std::max(len, 0)));
  std::memcpy(to, in.bytes.data() + in.consumed, n);
  in.consumed += n;
  if (in.consumed == in.bytes.size()) {
    // Emptied: reused, unless a burst made it large.
    if (in.bytes.capacity() > kMaxKeptBuffer) {
      std::string().swap(in.bytes);
    } else {
      in.bytes.clear();
    }
    in.consumed = 0;
  }
  return static_cast<int>(n);
}

int bufferWrite(BIO* b, const char* from, int len) {
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  bufferOf(b)->bytes.append(from, static_cast<size_t>(len));
  return len;
}

long bufferCtrl(BIO* b, int cmd, long, void*) {
  TlsTransport::Buffer& buf = *bufferOf(b);
  switch (cmd) {
    case BIO_CTRL_PENDING:
      return static_cast<long>(buf.bytes.size() - buf.consumed);
    case BIO_CTRL_WPENDING:
      return 0;  // nothing waits inside the BIO: written is in the buffer
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_RESET:
      buf.bytes.clear();
      buf.consumed = 0;
      return 1;
    default:
      return 0;  // kTLS and the rest: not supported, as a memory BIO answers
  }
}

int bufferCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* bufferMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "turnout buffer");
    BIO_meth_set_read(m, bufferRead);
    BIO_meth_set_write(m, bufferWrite);
    BIO_meth_set_ctrl(m, bufferCtrl);
    BIO_meth_set_create(m, bufferCreate);
    return m;
  }();
  return method;
}

// OpenSSL wants the error queue empty before an SSL call whose result
// SSL_get_error() reads. Clearing an empty queue still rewrites all 16 of
// its entries (a dozen cache lines): peek first.
void clearErrors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
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
  BIO* in = BIO_new(bufferMethod());
  BIO* out = BIO_new(bufferMethod());
  BIO_set_data(in, &in_);
  BIO_set_data(out, &out_);
  SSL_set_bio(ssl_, in, out);
}

TlsTransport::~TlsTransport() { SSL_free(ssl_); }

void TlsTransport::feed(std::span<const char> ciphertext) {
  if (in_.consumed > 0) {
    // A partial record is left: keep it alone, so a stream of reads that
    // each end inside a record does not grow the buffer.
    in_.bytes.erase(0, in_.consumed);
    in_.consumed = 0;
  }
  in_.bytes.append(ciphertext.data(), ciphertext.size());
}

TlsTransport::Result TlsTransport::handshake() {
  if (handshake_done_) return Result::kOk;
  clearErrors();
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
  if (refused_) out_.bytes.clear();
  return Result::kError;
}

TlsTransport::Result TlsTransport::read(std::string& out) {
  // Decrypted into the stack and appended: growing `out` by a whole chunk
  // first would zero-fill (and touch) 16 KiB per call.
  std::array<char, kReadChunk> chunk;
  for (;;) {
    size_t n = 0;
    clearErrors();
    const int rc = SSL_read_ex(ssl_, chunk.data(), chunk.size(), &n);
    if (rc == 1) {
      out.append(chunk.data(), n);
      // Nothing decrypted left and no ciphertext to decrypt: another call
      // would only fail with WANT_READ (a partial record needs more bytes
      // anyway). One SSL_read_ex and the error queue's checks fewer per
      // read; an alert or a KeyUpdate behind the data is still bytes in_
      // holds, and read on.
      if (SSL_pending(ssl_) == 0 && in_.consumed == in_.bytes.size()) return Result::kOk;
      continue;
    }
    const int err = SSL_get_error(ssl_, rc);
    clearErrors();
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Result::kOk;
    if (err == SSL_ERROR_ZERO_RETURN) return Result::kClosed;
    return Result::kError;
  }
}

bool TlsTransport::write(std::span<const char> plaintext) {
  while (!plaintext.empty()) {
    size_t n = 0;
    clearErrors();
    const int rc = SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &n);
    if (rc != 1) {
      clearErrors();
      return false;  // the output buffer never blocks: any failure is fatal
    }
    plaintext = plaintext.subspan(n);
  }
  return true;
}

void TlsTransport::shutdown() {
  clearErrors();
  SSL_shutdown(ssl_);
  clearErrors();
}

void TlsTransport::takeOutput(std::string& out) {
  if (out.empty()) {
    out.swap(out_.bytes);  // no copy; `out`'s old buffer is the next one
  } else {
    out.append(out_.bytes);
  }
  out_.bytes.clear();
}

bool TlsTransport::hasOutput() const { return !out_.bytes.empty(); }

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
