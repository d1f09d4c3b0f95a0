#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "proxy/common/asio.h"
#include "proxy/common/deadline_queue.h"
#include "proxy/common/read_scratch.h"
#include "proxy/common/send_now.h"
#include "proxy/common/signal.h"

#include "proxy/codec/http2_server_codec.h"
#include "proxy/connection/downstream_stream.h"
#include "proxy/server/data_plane_config.h"
#include "proxy/tls/tls_transport.h"

namespace turnout::proxy {

class Worker;

// One downstream HTTP/2 connection (h2c with prior knowledge; stage 2-3 of
// docs/life_of_a_request.md for HTTP/2). The socket and the sans-I/O
// http2::ServerCodec; every request stream runs its own ActiveStream
// coroutine beside the others, on this connection's worker.
//
// Three kinds of coroutine share the connection, all on one thread:
// - the reader (serve()): socket -> codec.dispatch(), which opens streams and
//   delivers their request events;
// - the writer (writeLoop()): codec.drainOutput() -> socket, woken by wake()
//   whenever a stream encoded something or the codec has frames to send; it
//   drains at most kWriteChunk at a time, so a stream's bytes wait in the
//   codec (its bufferedBytes()) until the socket takes them: that is the
//   backpressure Stream::flush() waits on, once more than a frame's worth
//   (16 KiB) is queued. It sends without waiting (sendPending()) and awaits
//   a write only for what the socket's buffer did not take;
// - one per stream: ActiveStream::run(), in a runner coroutine
//   (runnerLoop()) that, once its stream is done, waits for the
//   connection's next stream instead of ending: a connection that carries
//   one request after another spawns one runner, not a coroutine per
//   request (co_spawn's setup and teardown were about 4 % of an h2c
//   request's instructions). While streams run, up to kMaxBusyRunners wait
//   (a client that keeps 100 streams in flight sends them in batches: at
//   16, 86 % of its requests spawned a runner); kRunnerTrimDelay after the
//   last stream ended, runners beyond kMaxIdleRunners end (an idle
//   connection's memory), and all end once the reader is done.
// The connection ends when the client closes, on a protocol error (GOAWAY
// sent), or after drain()/the idle timeout (GOAWAY, in-flight streams
// complete); its frame outlives every stream coroutine (serve() waits).
//
// Flow control: request DATA is acknowledged to the client (WINDOW_UPDATE)
// only once the router has sent it upstream (Stream::readBody), so a slow
// upstream holds the client to its window instead of filling memory.
class Http2DownstreamConnection : public ConnectionHandle, public http2::ServerCallbacks {
 public:
  // Parameters by value (STYLE.md R8c). `initial`: bytes already read from
  // the socket (the client preface, when AUTO detection read it).
  static Awaitable<void> run(Worker& worker, DataPlaneConfigConstSharedPtr config,
                             size_t listener_index, size_t chain_index, TcpSocket socket,
                             asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint local,
                             std::string initial, std::unique_ptr<tls::TlsTransport> tls = nullptr);

  Http2DownstreamConnection(Worker& worker, DataPlaneConfigConstSharedPtr config,
                            size_t listener_index, size_t chain_index, TcpSocket socket,
                            asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint local);
  ~Http2DownstreamConnection() override;

  // ConnectionHandle
  const ListenerRuntime& listener() const override { return *config_->listeners[listener_index_]; }
  // The filter chain the connection was given when accepted.
  const FilterChainRuntime& filterChain() const { return listener().filter_chains[chain_index_]; }
  void drain() override;
  void close() override;

  // http2::ServerCallbacks
  RequestDecoderCallbacks& newStream(http2::ServerStreamPtr stream) override;
  void onSettings(const http2::PeerSettings&) override {}
  void onGoAway(std::int32_t, std::uint32_t) override {}

 private:
  class Stream;
  friend class Stream;

  Awaitable<void> serve(std::string initial);
  Awaitable<void> writeLoop();
  // The codec's output (through TLS) to the socket, as far as its buffer
  // takes it without waiting. kAll: the codec is drained; kSome: unsent_
  // holds what the socket did not take; kFailed: the connection closed.
  SendNow sendPending();
  // A stream has output to send (tryFlush(), flush()): sent here and now
  // when this stream is the only one running and the writer is idle (a
  // one-stream connection's response: no wake-up of the writer, no trip
  // through the scheduler); else the writer is woken, and sends what every
  // running stream queued in one write.
  void flushSoon();
  // flushSoon()'s inline case; false (nothing done) when it does not apply.
  bool flushInline();
  // The stream's request head is complete: its ActiveStream starts.
  void startStream(Stream* stream);
  // After a stream's ActiveStream: the stream released, the connection told.
  void finishStream(Stream* stream);
  struct Runner;
  Awaitable<void> runnerLoop(Runner* runner);
  // Resumes the runners startStream() gave a stream, one after the other.
  void startRunners();
  // Ends the runners waiting for a stream (no stream can start any more).
  void endIdleRunners();
  // Wakes the writer (output to drain) and anything waiting on the
  // connection's state.
  void wake();
  // Streams whose client reset them before their request head completed
  // (no coroutine runs them): released after dispatch().
  void sweep();
  // The config a new stream runs on.
  DataPlaneConfigConstSharedPtr streamConfig() const;
  const FilterChainRuntime& filterChain(const DataPlaneConfig& config) const;
  void armIdleTimer();
  // The idle deadline passed: GOAWAY first, then (kDelayedClose later, no
  // stream having come) close.
  static void onIdleDeadline(void* self);
  // The codec failed (in dispatch, or as nghttp2's own GOAWAY went out):
  // downstream_cx_protocol_error, once per connection.
  void noteCodecError();

  Worker& worker_;
  DataPlaneConfigConstSharedPtr config_;
  size_t listener_index_;
  size_t chain_index_;  // into listener().filter_chains
  TcpSocket socket_;
  asio::ip::tcp::endpoint remote_;
  asio::ip::tcp::endpoint local_;
  uint64_t id_;
  http2::ServerCodec codec_;
  std::list<Stream> streams_;  // one allocation per stream: the node holds it
  // Streams reset before they started (sweep() frees them after dispatch),
  // and those whose flush() waits for the writer (woken after each drain):
  // walking streams_ for either was O(streams) per read and per write.
  std::vector<Stream*> unstarted_resets_;
  std::vector<Stream*> flushers_;
  std::vector<Stream*> flushing_;  // flushers_ being woken
  size_t running_ = 0;  // stream coroutines not yet finished
  // Runner coroutines alive (serve() waits until none is), owned here so
  // that one waiting when the io_context is torn down is freed with the
  // connection; and those waiting for a stream.
  std::list<std::unique_ptr<Runner>> runners_;
  static constexpr size_t kMaxIdleRunners = 16;
  static constexpr size_t kMaxBusyRunners = 128;
  static constexpr std::chrono::milliseconds kRunnerTrimDelay{1000};
  static void onRunnerTrim(void* self);
  std::vector<Runner*> idle_runners_;
  // Idle runners given a stream by this dispatch(), resumed after it.
  std::vector<Runner*> starting_;
  std::string out_;     // what the writer is writing
  // What the socket did not take (out_ or wire_), for the writer's awaited
  // write; null when nothing waits.
  std::string* unsent_ = nullptr;
  // TLS (h2 by ALPN; null: h2c): out_ is encrypted into wire_ before writing.
  std::unique_ptr<tls::TlsTransport> tls_;
  std::string wire_;
  // The read loop's (serve()): it waits in 1 KiB, which a request's
  // HEADERS usually fit.
  WaitingReader<1024> reader_;
  DeadlineQueue& deadlines_;  // the worker's: the idle deadline and the streams'
  Signal writer_signal_;      // the writer waits on it
  Signal done_signal_;        // serve() waits on it for streams and the writer
  // The HCM idle_timeout while no stream is open, then the GOAWAY's grace.
  DeadlineQueue::Deadline idle_deadline_;
  // Armed when the last stream ends with more than kMaxIdleRunners waiting
  // (after deadlines_, which it is made with).
  DeadlineQueue::Deadline runner_trim_;
  bool codec_error_counted_ = false;
  bool idle_goaway_sent_ = false;     // idle_deadline_ is the grace after the GOAWAY
  SteadyTimer close_timer_;           // after a protocol error: the GOAWAY's last chance
  std::list<ConnectionHandle*>::iterator registration_;
  std::chrono::steady_clock::time_point started_;
  bool writer_done_ = false;
  bool read_done_ = false;
  bool draining_ = false;
  bool closed_ = false;
};

}  // namespace turnout::proxy
