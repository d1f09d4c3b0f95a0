#pragma once

// HTTP/2 on nghttp2, over cleartext TCP with prior knowledge (h2c, Stream =
// TcpStream) or over TLS with ALPN h2 (Stream = TlsStream): several
// requests in flight on one connection (the worker runs --streams of them),
// each an exchange() awaited by its own coroutine.
//
// Split like the proxy's codecs (STYLE.md R6): Http2ClientState is the
// I/O-free part (the nghttp2 session, fed bytes with receive() and drained
// with takeOutput(), and the streams in flight); Http2Session<Stream> does
// the I/O: one reader coroutine per connection, and whichever coroutine has
// frames to send flushes them, one write at a time. Stream states are
// pooled, so a request allocates nothing once the pool and buffers have
// grown.
//
// isOpen() is false from the server's GOAWAY on (streams already running
// still complete); a stream the server refused (REFUSED_STREAM, or above
// GOAWAY's last stream id) comes back as a retry; a stream past its deadline
// is reset alone. bytes_read of an exchange counts its stream's frames
// (9-byte headers included).

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/turnout_bench/client_session.h"
#include "bench/turnout_bench/transport.h"

namespace turnout::bench {

// One request in flight. `done` is cancelled when it ends.
struct Http2Stream {
  explicit Http2Stream(asio::io_context& io) : done(io) {}
  asio::steady_timer done;
  const RequestTemplate* request = nullptr;
  std::string content_length;  // the field value, alive while the stream is
  size_t body_sent = 0;
  Clock::time_point deadline;
  int32_t id = -1;
  uint16_t status = 0;
  uint64_t bytes = 0;
  ErrorKind error = ErrorKind::kNone;
  bool closed = false;
  bool refused = false;
};

// The I/O-free half of an HTTP/2 client connection. One per session, on its
// worker thread.
class Http2ClientState {
 public:
  explicit Http2ClientState(asio::io_context& io) : io_(io) {}
  ~Http2ClientState();
  Http2ClientState(const Http2ClientState&) = delete;
  Http2ClientState& operator=(const Http2ClientState&) = delete;

  // A new nghttp2 session with our SETTINGS queued; false if nghttp2 fails.
  bool start();
  bool live() const { return session_ != nullptr; }
  // Live and no GOAWAY received.
  bool acceptsStreams() const { return session_ != nullptr && !goaway_; }
  // Queues `request`; nullptr if nghttp2 refuses it. The stream is the
  // caller's until release().
  Http2Stream* submit(const RequestTemplate& request, Clock::time_point deadline);
  void release(Http2Stream* s) { free_.push_back(s); }
  // Feeds received bytes; false on a protocol error.
  bool receive(const char* data, size_t n);
  // Appends frames to send to `out` until it holds `limit` bytes or nothing
  // is left; false on error.
  bool takeOutput(std::string& out, size_t limit);
  // Ends the session: every stream in flight completes with `kind`.
  void failAll(ErrorKind kind);
  // Resets the streams past their deadline (they complete with kTimeout);
  // true if any was reset, so there are frames to send.
  bool expire(Clock::time_point now);

  // From the nghttp2 callbacks.
  void onStreamHeader(int32_t stream_id, std::string_view name, std::string_view value);
  void onStreamFrame(int32_t stream_id, uint64_t bytes);
  void onStreamClose(int32_t stream_id, uint32_t error_code);
  void onGoaway(int32_t last_stream_id);

 private:
  Http2Stream* find(int32_t id) const;
  void complete(Http2Stream* s);

  asio::io_context& io_;
  nghttp2_session* session_ = nullptr;
  bool goaway_ = false;
  int32_t last_accepted_stream_ = INT32_MAX;  // from GOAWAY
  std::vector<nghttp2_nv> nv_;
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
  asio::awaitable<ErrorKind> connect(Clock::time_point deadline) override;
  bool isOpen() const override { return state_.acceptsStreams(); }
  asio::awaitable<ExchangeResult> exchange(const RequestTemplate& request,
                                           Clock::time_point deadline) override;
  void close() override;
  void expireIfPast(Clock::time_point now) override;

 private:
  asio::awaitable<void> readLoop(uint64_t generation);
  // Sends whatever the state has queued; returns at once if another
  // coroutine is already sending (it sends this caller's frames too).
  asio::awaitable<void> flush();
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
