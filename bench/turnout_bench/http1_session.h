#pragma once

// HTTP/1.1 keep-alive over TCP or TLS (Stream = TcpStream or TlsStream,
// both instantiated in the .cc): one request at a time on one connection,
// responses parsed by the proxy's own sans-I/O ClientCodec. The request
// bytes are the template's pre-serialised head plus the shared body, written
// with one gathered write; the read buffer is reused for the connection's
// life, so a request allocates nothing once the buffer has grown to fit the
// largest response head.

#include <chrono>
#include <optional>
#include <vector>

#include "bench/turnout_bench/client_session.h"
#include "bench/turnout_bench/transport.h"
#include "proxy/codec/http1_client_codec.h"

namespace turnout::bench {

template <typename Stream>
class Http1Session final : public ClientSession, private proxy::ResponseDecoderCallbacks {
 public:
  // `transport` must outlive the session.
  Http1Session(asio::io_context& io, const Transport& transport);
  ~Http1Session() override;

  // ClientSession
  Awaitable<ErrorKind> connect(Clock::time_point deadline) override;
  bool isOpen() const override { return stream_ && stream_->lowest_layer().is_open(); }
  Awaitable<ExchangeResult> exchange(const RequestTemplate& request,
                                     Clock::time_point deadline) override;
  void close() override;
  void expireIfPast(Clock::time_point now) override;

 private:
  // ResponseDecoderCallbacks
  void onMessageBegin() override {}
  void onHeaders(proxy::ResponseHead& head, bool) override { status_ = head.status; }
  void onData(std::span<const char>, bool) override {}
  void onTrailers(proxy::HeaderMap&) override {}
  void onMessageComplete() override { complete_ = true; }
  void onInformational(proxy::ResponseHead&) override {}

  // Feeds the buffered bytes to the codec; false on a parse error.
  bool decodeBuffered();
  ErrorKind failed(ErrorKind kind);
  // The result of a write or read that failed before any response byte.
  ExchangeResult staleOrFailed(ErrorKind kind);

  asio::io_context& io_;
  const Transport& transport_;
  std::optional<Stream> stream_;  // a fresh one per connection
  std::optional<proxy::http1::ClientCodec> codec_;
  std::vector<char> buf_;
  size_t begin_ = 0;  // unconsumed bytes are [begin_, end_)
  size_t end_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
  uint64_t responses_ = 0;  // on this connection
  bool timed_out_ = false;
  bool complete_ = false;
  uint16_t status_ = 0;
};

}  // namespace turnout::bench
