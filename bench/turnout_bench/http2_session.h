#pragma once

// HTTP/2 over cleartext TCP with prior knowledge (h2c, Stream = TcpStream)
// or over TLS with ALPN h2 (Stream = TlsStream): several requests in flight
// on one connection (the worker runs --streams of them), each an exchange()
// awaited by its own coroutine.
//
// The protocol is the proxy's sans-I/O HTTP/2 client codec
// (proxy/codec/http2_client_codec.h, docs/http2_codec.md): the bench and the
// proxy share one HTTP/2 stack. Http2ClientState adapts the codec to the
// bench's exchanges (request templates in, status and byte counts out);
// Http2Session<Stream> does the I/O: one reader coroutine per connection,
// and whichever coroutine has frames to send flushes them, one write at a
// time. Stream states are pooled, so a request allocates nothing once the
// pools and buffers have grown.
//
// isOpen() is false from the server's GOAWAY on (streams already running
// still complete); a stream the server refused (REFUSED_STREAM, or above
// GOAWAY's last stream id, or never sent because of it) comes back as a
// retry; a stream past its deadline is reset alone. bytes_read of an
// exchange counts its stream's frames (9-byte headers included). Response
// bodies are dropped as they arrive, and acknowledged at once.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bench/turnout_bench/client_session.h"
#include "bench/turnout_bench/transport.h"
#include "proxy/codec/http2_client_codec.h"

namespace turnout::bench {

class Http2ClientState;

// One request in flight: the codec's events for its response. `done` is
// cancelled when it ends.
struct Http2Stream final : proxy::ResponseDecoderCallbacks {
  Http2Stream(asio::io_context& io, Http2ClientState& owner) : done(io), state(owner) {}

  // proxy::ResponseDecoderCallbacks
  void onMessageBegin() override {}
  void onInformational(proxy::ResponseHead&) override {}
  void onHeaders(proxy::ResponseHead& head, bool) override { status = head.status; }
  void onData(std::span<const char> data, bool) override;
  void onTrailers(proxy::HeaderMap&) override {}
  void onMessageComplete() override;
  void onReset(proxy::StreamResetReason reason) override;

  SteadyTimer done;
  Http2ClientState& state;
  proxy::http2::ClientStreamPtr codec;  // held until the exchange ends
  Clock::time_point deadline;
  uint16_t status = 0;
  uint64_t bytes = 0;
  ErrorKind error = ErrorKind::kNone;
  bool closed = false;
  bool refused = false;
};

// The I/O-free half of an HTTP/2 client connection: a ClientCodec plus the
// exchanges in flight. One per session, on its worker thread.
class Http2ClientState final : public proxy::http2::ConnectionCallbacks {
 public:
  explicit Http2ClientState(asio::io_context& io) : io_(io) {}
  ~Http2ClientState() override;
  Http2ClientState(const Http2ClientState&) = delete;
  Http2ClientState& operator=(const Http2ClientState&) = delete;

  // A new codec with our SETTINGS queued.
  bool start();
  bool live() const { return codec_ != nullptr; }
  // Live and no GOAWAY received.
  bool acceptsStreams() const { return codec_ != nullptr && codec_->acceptsStreams(); }
  // Queues `request`; nullptr if the codec refuses it. The stream is the
  // caller's until release().
  Http2Stream* submit(const RequestTemplate& request, Clock::time_point deadline);
  void release(Http2Stream* s) { free_.push_back(s); }
  // Feeds received bytes; false on a protocol error.
  bool receive(const char* data, size_t n);
  // Appends frames to send to `out` until it holds `limit` bytes or nothing
  // is left; false on a protocol error.
  bool takeOutput(std::string& out, size_t limit);
  // Ends the connection: every stream in flight completes with `kind`.
  void failAll(ErrorKind kind);
  // Resets the streams past their deadline (they complete with kTimeout);
  // true if any was reset, so there are frames to send.
  bool expire(Clock::time_point now);

  // proxy::http2::ConnectionCallbacks
  void onSettings(const proxy::http2::PeerSettings&) override {}
  void onGoAway(int32_t, uint32_t) override {}

  // The exchange ended (response complete, reset, failed): releases its
  // codec stream and wakes its coroutine.
  void complete(Http2Stream* s);

 private:
  // The request head for `request`, built on its first use.
  const proxy::RequestHead& headFor(const RequestTemplate& request);

  asio::io_context& io_;
  std::unique_ptr<proxy::http2::ClientCodec> codec_;
  std::optional<ErrorKind> failing_;  // set while failAll() ends the streams
  std::unordered_map<const RequestTemplate*, proxy::RequestHead> heads_;
  std::vector<Http2Stream*> active_;
  std::vector<std::unique_ptr<Http2Stream>> pool_;
  std::vector<Http2Stream*> free_;
};

template <typename Stream>
class Http2Session final : public ClientSession {
 public:
  // `transport` must outlive the session.
  Http2Session(asio::io_context& io, const Transport& transport);
  ~Http2Session() override;

  // ClientSession
  Awaitable<ErrorKind> connect(Clock::time_point deadline) override;
  bool isOpen() const override { return state_.acceptsStreams(); }
  Awaitable<ExchangeResult> exchange(const RequestTemplate& request,
                                     Clock::time_point deadline) override;
  void close() override;
  void expireIfPast(Clock::time_point now) override;

 private:
  Awaitable<void> readLoop(uint64_t generation);
  // Sends whatever the state has queued; returns at once if another
  // coroutine is already sending (it sends this caller's frames too).
  Awaitable<void> flush();
  // Ends the connection: every stream in flight completes with `kind`.
  void fail(ErrorKind kind);
  void closeSocket();

  asio::io_context& io_;
  const Transport& transport_;
  std::optional<Stream> stream_;  // a fresh one per connection
  Http2ClientState state_;
  uint64_t generation_ = 0;  // which connection the reader belongs to
  bool writing_ = false;
  Clock::time_point connect_deadline_ = Clock::time_point::max();
  std::vector<char> rbuf_;
  std::string wbuf_;
};

}  // namespace turnout::bench
