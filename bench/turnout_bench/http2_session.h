#pragma once

// h2c (HTTP/2 over cleartext TCP, prior knowledge) on nghttp2: several
// requests in flight on one connection (the worker runs --streams of them),
// each an exchange() awaited by its own coroutine. nghttp2 is used sans-I/O (mem_recv / mem_send): one
// reader coroutine per connection feeds it the socket's bytes, and whichever
// coroutine has frames to send flushes them, one write at a time. Stream
// state objects are pooled per session, so a request allocates nothing once
// the pool and buffers have grown.
//
// isOpen() is false from the server's GOAWAY on (streams already running
// still complete); a stream the server refused (REFUSED_STREAM, or above
// GOAWAY's last stream id) comes back as a retry. bytes_read of an exchange
// counts the frames (9-byte headers included) of its stream.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nghttp2/nghttp2.h>

#include "bench/turnout_bench/client_session.h"

namespace turnout::bench {

class Http2Session final : public ClientSession {
 public:
  Http2Session(asio::io_context& io, asio::ip::tcp::endpoint endpoint);
  ~Http2Session() override;

  // ClientSession
  asio::awaitable<ErrorKind> connect(Clock::time_point deadline) override;
  bool isOpen() const override;
  asio::awaitable<ExchangeResult> exchange(const RequestTemplate& request,
                                           Clock::time_point deadline) override;
  void close() override;
  void expireIfPast(Clock::time_point now) override;

  struct Stream;
  // nghttp2 callbacks (file-local trampolines call these).
  void onStreamHeader(int32_t stream_id, std::string_view name, std::string_view value);
  void onStreamFrame(int32_t stream_id, uint64_t bytes);
  void onStreamClose(int32_t stream_id, uint32_t error_code);
  void onGoaway(int32_t last_stream_id);

 private:
  asio::awaitable<void> readLoop(uint64_t generation);
  // Sends whatever nghttp2 has queued; returns at once if another coroutine
  // is already sending (it sends this caller's frames too).
  asio::awaitable<void> flush();
  // Ends the connection: every open stream completes with `kind`.
  void fail(ErrorKind kind);
  Stream* acquireStream();
  void releaseStream(Stream* s);

  asio::io_context& io_;
  asio::ip::tcp::socket socket_;
  asio::ip::tcp::endpoint endpoint_;
  nghttp2_session* session_ = nullptr;
  uint64_t generation_ = 0;  // which connection the reader belongs to
  bool goaway_ = false;
  bool writing_ = false;
  bool timed_out_ = false;
  Clock::time_point connect_deadline_ = Clock::time_point::max();
  std::vector<char> rbuf_;
  std::string wbuf_;
  std::vector<nghttp2_nv> nv_;
  std::vector<Stream*> active_;
  std::vector<std::unique_ptr<Stream>> pool_;
  std::vector<Stream*> free_;
  int32_t last_accepted_stream_ = INT32_MAX;  // from GOAWAY
};

}  // namespace turnout::bench
