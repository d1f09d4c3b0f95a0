#include "proxy/connection/http2_downstream_connection.h"

#include <algorithm>

#include "proxy/common/log.h"
#include "proxy/common/read_scratch.h"
#include "proxy/common/resume.h"
#include "proxy/common/spawn.h"
#include "proxy/server/worker.h"
#include "proxy/stream/active_stream.h"
#include "proxy/upstream/cluster_manager.h"

namespace turnout::proxy {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 16 * 1024;
// The most the writer takes from the codec per write: a stream's bytes beyond
// it stay in the codec (the stream's bufferedBytes()) until the socket drains.
constexpr size_t kWriteChunk = 64 * 1024;
// What a stream may leave queued in the codec when its flush() returns: one
// default-sized DATA frame. A slow client holds the upstream reader to this
// (plus one upstream read) per stream.
constexpr size_t kWriteBehindBytes = 16 * 1024;
// After the idle timeout's GOAWAY: how long the client gets to close first.
constexpr std::chrono::milliseconds kDelayedClose{1000};

Clock::time_point deadlineAfter(std::chrono::milliseconds t) {
  const auto now = Clock::now();
  return t >= ActiveStream::kForever ? Clock::time_point::max() : now + t;
}

http2::Http2Settings settingsFor(const FilterChainRuntime& chain) {
  http2::Http2Settings s;
  if (chain.hcm && chain.hcm->config != nullptr) {
    const auto& c = *chain.hcm->config;
    s.max_headers_kb = c.max_request_headers_kb;
    if (c.max_headers_count) s.max_headers_count = *c.max_headers_count;
    http2::applyProtocolOptions(c.http2, s);
  }
  return s;
}

http2::CodecStatsSink statsFor(Worker& worker, const FilterChainRuntime& chain) {
  if (!chain.hcm) return {};
  return http2::CodecStatsSink{chain.hcm->http2_stats, &worker.shard()};
}

}  // namespace

// One request stream: the DownstreamStream its ActiveStream serves, and the
// codec's callbacks for its request.
class Http2DownstreamConnection::Stream final : public DownstreamStream,
                                                public RequestDecoderCallbacks {
 public:
  Stream(Http2DownstreamConnection& conn, http2::ServerStreamPtr stream)
      : conn_(conn), stream_(std::move(stream)) {}

  // DownstreamStream: the connection.
  Worker& worker() override { return conn_.worker_; }
  uint64_t connectionId() const override { return conn_.id_; }
  const asio::ip::tcp::endpoint& remote() const override { return conn_.remote_; }
  const asio::ip::tcp::endpoint& local() const override { return conn_.local_; }
  DataPlaneConfigConstSharedPtr streamConfig() const override { return conn_.streamConfig(); }
  const FilterChainRuntime& filterChain(const DataPlaneConfig& config) const override {
    return conn_.filterChain(config);
  }
  bool draining() const override { return conn_.draining_; }
  std::string_view protocol() const override { return "HTTP/2"; }
  bool secure() const override { return conn_.tls_ != nullptr; }
  std::vector<routing::HeaderEntry>& entriesBuffer() override { return entries_; }

  // DownstreamStream: the request body.
  std::string& pendingBody() override { return body_; }
  bool requestComplete() const override { return complete_; }
  const HeaderMap* requestTrailers() const override { return trailers_; }
  CodecErrorCode codecError() const override { return CodecErrorCode::kNone; }

  Awaitable<bool> readBody(std::chrono::milliseconds timeout) override {
    // What the router took since the last call has gone upstream: give it
    // back to the client's windows now.
    const size_t taken = unacked_ - std::min(unacked_, body_.size());
    if (taken > 0 && stream_) {
      stream_->consumed(taken);
      unacked_ -= taken;
      conn_.wake();
    }
    const Clock::time_point deadline = deadlineAfter(timeout);
    for (;;) {
      if (!body_.empty() || complete_) co_return true;
      if (reset_ || read_stopped_ || conn_.closed_) co_return false;
      Waits& w = waits();
      w.read_deadline.expiresAt(deadline);
      boost::system::error_code ec;
      co_await waitOn(w.read_signal, &ec);
      w.read_deadline.clear();
      if (ec == asio::error::timed_out) co_return !body_.empty() || complete_;
    }
  }

  void stopReading() override {
    read_stopped_ = true;
    notifyRead();
  }

  void watchForClose(PendingRequest& pending) override {
    watched_ = &pending;
    if (reset_) pending.cancel();
  }
  Awaitable<void> stopWatching() override {
    watched_ = nullptr;
    co_return;
  }

  // DownstreamStream: the response. As on HTTP/1, encoding only queues (in
  // the codec): tryFlush(), flush() or the stream's end (finishStream())
  // sends, so that a response's head and body leave in one write.
  void encodeHeaders(ResponseHead& head, bool end_stream) override {
    if (!stream_) return;
    const absl::Status s = stream_->encodeHeaders(head, end_stream);
    if (!s.ok()) {
      TURNOUT_CONN_LOG(debug, "http2", conn_.id_, "stream {}: response head not sent: {}",
                       stream_->id(), std::string(s.message()));
    }
  }
  void encodeData(std::span<const char> data, bool end_stream) override {
    if (!stream_) return;
    stream_->encodeData(data, end_stream);
  }
  void encodeTrailers(const HeaderMap& trailers) override {
    if (!stream_) return;
    stream_->encodeTrailers(trailers);
  }
  void encode100Continue() override {
    ResponseHead head;
    head.status = 100;
    encodeHeaders(head, false);
  }
  void discardUnflushed() override {}
  // An extended CONNECT (the codec made it an upgrade GET; allow_connect
  // on) or a plain CONNECT (RFC 9113 §8.5) is tunnelled in the stream.
  bool canTunnel() const override {
    return head_ != nullptr && (head_->upgrade || head_->method == "CONNECT");
  }

  bool tryFlush() override {
    if (reset_ || conn_.closed_ || !stream_) return false;
    conn_.flushSoon();
    return !reset_ && !conn_.closed_ && stream_ && stream_->bufferedBytes() <= kWriteBehindBytes;
  }

  Awaitable<bool> flush(std::chrono::milliseconds timeout) override {
    conn_.flushSoon();
    const Clock::time_point deadline = deadlineAfter(timeout);
    for (;;) {
      if (reset_ || conn_.closed_ || !stream_) co_return false;
      // Write-behind: up to kWriteBehindBytes may wait for the writer
      // without holding the stream (as Envoy's watermark, which stops the
      // upstream only above its limit). A small response then ends without
      // a second wake-up, and its stream, released with the bytes queued,
      // stays in the codec until they went out (ServerStream::release).
      if (stream_->bufferedBytes() <= kWriteBehindBytes) co_return true;
      flush_waiting_ = true;
      if (!flush_listed_) {
        flush_listed_ = true;
        conn_.flushers_.push_back(this);
      }
      Waits& w = waits();
      w.write_deadline.expiresAt(deadline);
      boost::system::error_code ec;
      co_await waitOn(w.write_signal, &ec);
      w.write_deadline.clear();
      flush_waiting_ = false;
      if (ec == asio::error::timed_out) {
        co_return stream_ && !reset_ && stream_->bufferedBytes() <= kWriteBehindBytes;
      }
    }
  }

  // RequestDecoderCallbacks: the codec's events for this request.
  void onMessageBegin() override {}
  void onHeaders(RequestHead& head, bool end_stream) override {
    head_ = &head;
    if (end_stream) complete_ = true;
    conn_.startStream(this);
  }
  void onData(std::span<const char> data, bool end_stream) override {
    body_.append(data.data(), data.size());
    unacked_ += data.size();
    if (end_stream) complete_ = true;
    notifyRead();
  }
  void onTrailers(HeaderMap& trailers) override {
    trailers_ = &trailers;
    complete_ = true;
    notifyRead();
  }
  void onMessageComplete() override {
    complete_ = true;
    notifyRead();
  }
  void onReset(StreamResetReason reason) override {
    if (reason == StreamResetReason::kRemoteReset && conn_.filterChain().hcm) {
      conn_.worker_.shard().inc(conn_.filterChain().hcm->stats.downstream_rq_rx_reset);
    }
    if (!reset_ && !started_) conn_.unstarted_resets_.push_back(this);
    reset_ = true;
    if (watched_ != nullptr) watched_->cancel();
    notifyRead();
    notifyWrite();
  }

  // The writer drained the codec: a flush may be done.
  void onDrained() {
    flush_listed_ = false;
    if (flush_waiting_) notifyWrite();
  }

  Http2DownstreamConnection& conn_;
  http2::ServerStreamPtr stream_;
  std::list<Stream>::iterator self_;
  RequestHead* head_ = nullptr;
  std::string body_;
  size_t unacked_ = 0;  // request bytes delivered and not yet given back to the windows
  const HeaderMap* trailers_ = nullptr;
  bool complete_ = false;
  bool reset_ = false;
  bool read_stopped_ = false;
  bool started_ = false;  // its coroutine was spawned
  bool flush_waiting_ = false;
  bool flush_listed_ = false;  // in conn_.flushers_ (or flushing_)
  PendingRequest* watched_ = nullptr;
  // The stream's coroutine sleeps on these (one at a time); a wait's timeout
  // is a deadline in the worker's queue that fires the signal.
  static void onDeadline(void* signal) {
    static_cast<Signal*>(signal)->fire(asio::error::timed_out);
  }
  // What the stream's coroutines sleep on: the request body's reader and
  // the response's flush, each with its deadline in the worker's queue
  // that fires its signal. Made by the first wait: most streams never wait
  // (a GET's head ends its request; a small response fits the write-behind
  // allowance), and at 100 streams per connection the signals and
  // deadlines were two cache lines each stream wrote and read again
  // (docs/http2_codec.md). A notify() with no waiter does nothing.
  struct Waits {
    explicit Waits(Http2DownstreamConnection& conn)
        : read_signal(conn.worker_.io().get_executor()),
          write_signal(conn.worker_.io().get_executor()),
          read_deadline(conn.deadlines_, &onDeadline, &read_signal),
          write_deadline(conn.deadlines_, &onDeadline, &write_signal) {}
    Signal read_signal;
    Signal write_signal;
    DeadlineQueue::Deadline read_deadline;
    DeadlineQueue::Deadline write_deadline;
  };
  Waits& waits() {
    if (!waits_) waits_ = std::make_unique<Waits>(conn_);
    return *waits_;
  }
  void notifyRead() {
    if (waits_) waits_->read_signal.notify();
  }
  void notifyWrite() {
    if (waits_) waits_->write_signal.notify();
  }
  std::unique_ptr<Waits> waits_;
  std::vector<routing::HeaderEntry> entries_;
};

Http2DownstreamConnection::Http2DownstreamConnection(
    Worker& worker, DataPlaneConfigConstSharedPtr config, size_t listener_index, size_t chain_index,
    TcpSocket socket, asio::ip::tcp::endpoint remote, asio::ip::tcp::endpoint local)
    : worker_(worker),
      config_(std::move(config)),
      listener_index_(listener_index),
      chain_index_(chain_index),
      socket_(std::move(socket)),
      remote_(remote),
      local_(local),
      id_(Worker::next_connection_id_.fetch_add(1)),
      codec_(*this, settingsFor(config_->listeners[listener_index]->filter_chains[chain_index]),
             statsFor(worker, config_->listeners[listener_index]->filter_chains[chain_index])),
      deadlines_(worker.deadlines()),
      writer_signal_(worker.io().get_executor()),
      done_signal_(worker.io().get_executor()),
      idle_deadline_(deadlines_, &Http2DownstreamConnection::onIdleDeadline, this),
      runner_trim_(deadlines_, &Http2DownstreamConnection::onRunnerTrim, this),
      close_timer_(worker.io()),
      started_(Clock::now()) {
  registration_ = worker_.registerConnection(this);
}

Http2DownstreamConnection::~Http2DownstreamConnection() {
  // Every stream coroutine has finished (serve() waited): what is left was
  // never started.
  streams_.clear();
  worker_.unregisterConnection(registration_);
}

Awaitable<void> Http2DownstreamConnection::run(Worker& worker, DataPlaneConfigConstSharedPtr config,
                                               size_t listener_index, size_t chain_index,
                                               TcpSocket socket, asio::ip::tcp::endpoint remote,
                                               asio::ip::tcp::endpoint local, std::string initial,
                                               std::unique_ptr<tls::TlsTransport> tls) {
  Http2DownstreamConnection conn(worker, std::move(config), listener_index, chain_index,
                                 std::move(socket), remote, local);
  conn.tls_ = std::move(tls);
  const ListenerRuntime& l = conn.listener();
  const stats::HttpConnManagerStats& hcm = conn.filterChain().hcm->stats;
  stats::Shard& shard = worker.shard();
  shard.inc(l.stats.downstream_cx_total);
  shard.add(l.stats.downstream_cx_active, 1);
  shard.inc(hcm.downstream_cx_total);
  shard.add(hcm.downstream_cx_active, 1);
  shard.inc(hcm.downstream_cx_http2_total);
  shard.add(hcm.downstream_cx_http2_active, 1);
  co_await conn.serve(std::move(initial));
  shard.sub(hcm.downstream_cx_active, 1);
  shard.sub(hcm.downstream_cx_http2_active, 1);
  shard.inc(hcm.downstream_cx_destroy);
  shard.sub(l.stats.downstream_cx_active, 1);
  shard.inc(l.stats.downstream_cx_destroy);
  shard.record(l.stats.downstream_cx_length_ms,
               static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         Clock::now() - conn.started_)
                                         .count()));
}

DataPlaneConfigConstSharedPtr Http2DownstreamConnection::streamConfig() const {
  return streamConfigFor(worker_, config_, listener());
}

const FilterChainRuntime& Http2DownstreamConnection::filterChain(
    const DataPlaneConfig& config) const {
  return filterChainIn(config, config_, listener(), chain_index_);
}

void Http2DownstreamConnection::drain() {
  if (draining_ || closed_) return;
  draining_ = true;
  codec_.goAway();
  wake();
}

void Http2DownstreamConnection::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  socket_.shutdown(TcpSocket::shutdown_both, ec);
  socket_.close(ec);
  idle_deadline_.clear();
  wake();
}

void Http2DownstreamConnection::wake() {
  writer_signal_.notify();
  done_signal_.notify();
}

bool Http2DownstreamConnection::flushInline() {
  if (running_ > 1 || closed_ || unsent_ != nullptr || !writer_signal_.waiting()) return false;
  // The writer waits for work and has no write outstanding: what it would
  // do, done here. A write the socket did not take whole is left to it.
  if (sendPending() == SendNow::kSome) writer_signal_.notify();
  return true;
}

void Http2DownstreamConnection::flushSoon() {
  if (!flushInline()) wake();
}

RequestDecoderCallbacks& Http2DownstreamConnection::newStream(http2::ServerStreamPtr stream) {
  Stream& s = streams_.emplace_back(*this, std::move(stream));
  s.self_ = std::prev(streams_.end());
  return s;
}

struct Http2DownstreamConnection::Runner {
  explicit Runner(Executor ex) : wake(std::move(ex)) {}
  Stream* stream = nullptr;  // the next stream to run; null: end
  Signal wake;
  std::list<std::unique_ptr<Runner>>::iterator self;
};

void Http2DownstreamConnection::startStream(Stream* stream) {
  if (stream->started_) return;
  if (stream->reset_) {
    // Not expected (a reset stream gets no HEADERS), but sweep() must not
    // free a stream that runs.
    std::replace(unstarted_resets_.begin(), unstarted_resets_.end(), stream,
                 static_cast<Stream*>(nullptr));
  }
  stream->started_ = true;
  ++running_;
  idle_deadline_.clear();
  idle_goaway_sent_ = false;
  if (!idle_runners_.empty()) {
    // Resumed by startRunners() once dispatch() is done with the input:
    // not from inside the codec's callback that started the stream.
    Runner* r = idle_runners_.back();
    idle_runners_.pop_back();
    r->stream = stream;
    starting_.push_back(r);
    return;
  }
  Runner* r = runners_.emplace_back(std::make_unique<Runner>(worker_.io().get_executor())).get();
  r->self = std::prev(runners_.end());
  r->stream = stream;
  asio::co_spawn(worker_.io(), runnerLoop(r), LogEscapedException{"http2", "stream"});
}

Awaitable<void> Http2DownstreamConnection::runnerLoop(Runner* runner) {
  for (;;) {
    Stream* stream = std::exchange(runner->stream, nullptr);
    if (stream == nullptr) break;  // ended by endIdleRunners()
    try {
      ActiveStream active(*stream, *stream->head_);
      co_await active.run();
    } catch (const std::exception& e) {
      // The connection must still learn that the stream ended.
      TURNOUT_CONN_LOG(err, "http2", id_, "stream failed: {}", e.what());
    }
    finishStream(stream);
    // No stream can start once the reader is done; enough wait already.
    if (read_done_ || closed_ || idle_runners_.size() >= kMaxBusyRunners) break;
    idle_runners_.push_back(runner);
    boost::system::error_code ec;
    co_await waitOn(runner->wake, &ec);
  }
  runners_.erase(runner->self);
  done_signal_.notify();
}

void Http2DownstreamConnection::startRunners() {
  // Each is resumed in turn, to its first wait, on this call (a stream may
  // close the connection: the later ones then see it closed). Only
  // dispatch() adds to starting_, so it does not change meanwhile.
  for (size_t i = 0; i < starting_.size(); ++i) starting_[i]->wake.notifyNow();
  starting_.clear();
}

void Http2DownstreamConnection::onRunnerTrim(void* self) {
  auto& conn = *static_cast<Http2DownstreamConnection*>(self);
  if (conn.running_ > 0) return;  // armed again when the last stream ends
  if (conn.idle_runners_.size() <= kMaxIdleRunners) return;
  // The least recently used are at the front.
  const size_t ended = conn.idle_runners_.size() - kMaxIdleRunners;
  for (size_t i = 0; i < ended; ++i) {
    conn.idle_runners_[i]->stream = nullptr;
    conn.idle_runners_[i]->wake.notify();
  }
  conn.idle_runners_.erase(conn.idle_runners_.begin(),
                           conn.idle_runners_.begin() + static_cast<std::ptrdiff_t>(ended));
  TURNOUT_CONN_LOG(debug, "http2", conn.id_, "idle: {} stream runners ended, {} kept", ended,
                   conn.idle_runners_.size());
}

void Http2DownstreamConnection::endIdleRunners() {
  for (Runner* r : std::exchange(idle_runners_, {})) {
    r->stream = nullptr;
    r->wake.notify();
  }
}

void Http2DownstreamConnection::finishStream(Stream* stream) {
  // Releasing the codec stream ends it on the wire: nothing more if the
  // response went out whole, RST_STREAM(NO_ERROR) when the request was still
  // uploading, RST_STREAM(CANCEL) when the response was cut short.
  stream->stream_.reset();
  if (stream->flush_listed_) {
    // Its flush() timed out and it ended before a drain woke the list.
    for (auto* list : {&flushers_, &flushing_}) {
      std::replace(list->begin(), list->end(), stream, static_cast<Stream*>(nullptr));
    }
  }
  streams_.erase(stream->self_);
  --running_;
  if (running_ == 0) {
    armIdleTimer();
    // This stream's runner joins the idle ones after this returns.
    if (idle_runners_.size() >= kMaxIdleRunners) runner_trim_.expiresAfter(kRunnerTrimDelay);
  }
  // The last stream's end (the usual one-stream connection): its response
  // goes out from here, with no trip through the scheduler for the writer.
  // The writer is still woken when the connection may be over.
  if (running_ == 0 && !read_done_ && codec_.wantsRead() && flushInline()) {
    done_signal_.notify();
    return;
  }
  wake();
}

void Http2DownstreamConnection::sweep() {
  // Reset before they started (a client's RST_STREAM right after HEADERS,
  // or a stream the codec refused): no coroutine will end them. Listed
  // once, at the reset (Stream::onReset); a stream starts only from its
  // HEADERS, which a reset stream no longer gets.
  for (Stream* s : unstarted_resets_) {
    if (s != nullptr) streams_.erase(s->self_);
  }
  unstarted_resets_.clear();
}

void Http2DownstreamConnection::armIdleTimer() {
  const auto& hcm = *filterChain().hcm->config;
  if (hcm.idle_timeout.count() == 0 || closed_) return;
  idle_goaway_sent_ = false;
  idle_deadline_.expiresAfter(hcm.idle_timeout);
}

void Http2DownstreamConnection::onIdleDeadline(void* self) {
  auto& conn = *static_cast<Http2DownstreamConnection*>(self);
  if (conn.running_ > 0 || conn.closed_) return;
  if (conn.idle_goaway_sent_) {
    conn.close();
    return;
  }
  // Envoy's idle timeout on HTTP/2: GOAWAY, then close once the client had
  // a moment to see it.
  conn.drain();
  conn.idle_goaway_sent_ = true;
  conn.idle_deadline_.expiresAfter(kDelayedClose);
}

void Http2DownstreamConnection::noteCodecError() {
  if (codec_error_counted_) return;
  codec_error_counted_ = true;
  worker_.shard().inc(filterChain().hcm->stats.downstream_cx_protocol_error);
  TURNOUT_CONN_LOG(debug, "http2", id_, "protocol error: {}",
                   std::string(codec_.status().message()));
}

Awaitable<void> Http2DownstreamConnection::serve(std::string initial) {
  asio::co_spawn(worker_.io(), writeLoop(), LogEscapedException{"http2", "connection writer"});
  armIdleTimer();
  bool protocol_error = false;
  auto dispatch = [&](std::span<const char> bytes) {
    const absl::Status s = codec_.dispatch(bytes);
    sweep();
    startRunners();
    // The writer only when the input left it something to do: frames to
    // send (a SETTINGS or PING ack, a WINDOW_UPDATE, a RST_STREAM, a
    // GOAWAY) or a session that ended. A request's HEADERS leave neither,
    // and a wake-up for nothing cost a trip through the scheduler (and the
    // reactor poll that trip brings) per request. Streams wake it
    // themselves when they encode.
    if (codec_.wantsWrite() || !codec_.wantsRead()) {
      wake();
    } else {
      done_signal_.notify();
    }
    if (!s.ok()) {
      protocol_error = true;
      noteCodecError();
    }
    return s.ok();
  };
  // TLS: records that came with the handshake's last flight hold the start.
  bool tls_closed = false;
  if (tls_) tls_closed = tls_->read(initial) != tls::TlsTransport::Result::kOk;
  bool ok = initial.empty() || dispatch(std::span<const char>(initial.data(), initial.size()));
  std::string().swap(initial);
  // Reading (WaitingReader): a small buffer of its own to wait in, the
  // thread's scratch for what does not fit. dispatch() copies what it keeps
  // (the codec's partial frames, the streams' bodies), so nothing points
  // into either buffer once it returns.
  boost::system::error_code nb_ec;
  socket_.non_blocking(true, nb_ec);
  while (ok && !tls_closed && !closed_ && codec_.wantsRead()) {
    std::span<const char> data;
    boost::system::error_code ec;
    if (!reader_.readNow(&socket_, kReadChunk, &data, &ec)) {
      co_await reader_.wait(&socket_, &ec);
      if (!ec) data = reader_.waited();
    }
    if (ec) break;  // EOF, reset, close()
    if (!tls_) {
      ok = dispatch(data);
      continue;
    }
    tls_->feed(data);
    std::string& plain = readScratch().plain;
    plain.clear();
    // close_notify or a TLS error ends the input as EOF does.
    tls_closed = tls_->read(plain) != tls::TlsTransport::Result::kOk;
    if (!plain.empty()) ok = dispatch(std::span<const char>(plain.data(), plain.size()));
    if (tls_->hasOutput()) wake();  // a TLS 1.3 key update answer
  }
  read_done_ = true;
  endIdleRunners();
  if (protocol_error) {
    // Envoy's FlushWriteAndDelay: the GOAWAY gets delayed_close_timeout to
    // go out, then the socket closes anyway. A client that floods and never
    // reads would otherwise hold the connection (and its writer) for ever.
    close_timer_.expires_after(kDelayedClose);
    close_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) close();
    });
  }
  if (!protocol_error) {
    // The client is gone (or we closed): every open stream is reset, so
    // their coroutines end promptly.
    codec_.onEof();
    sweep();
  }
  wake();
  // Streams finish (a protocol error's GOAWAY went out first: the writer
  // keeps draining meanwhile), then the writer.
  while (running_ > 0 || !writer_done_ || !runners_.empty()) {
    if (protocol_error && running_ > 0 && !codec_.wantsWrite()) {
      codec_.onEof();
      protocol_error = false;
      sweep();
    }
    boost::system::error_code ec;
    co_await waitOn(done_signal_, &ec);
  }
  sweep();
  idle_deadline_.clear();
  runner_trim_.clear();
  close_timer_.cancel();
  boost::system::error_code ec;
  socket_.shutdown(TcpSocket::shutdown_both, ec);
  socket_.close(ec);
  closed_ = true;
}

SendNow Http2DownstreamConnection::sendPending() {
  for (;;) {
    out_.clear();
    // A GOAWAY with an error that nghttp2 queued on its own (the peer broke
    // the protocol inside a frame nghttp2 answers itself, e.g. DATA on
    // stream 0) fails the codec as it goes out, not in dispatch().
    if (!codec_.drainOutput(out_, kWriteChunk).ok()) noteCodecError();
    if (!flushers_.empty()) {
      // A woken flush() runs later (posted): nothing adds to flushing_
      // while it is walked, and an ended stream is nulled in it.
      flushing_.swap(flushers_);
      for (Stream* st : flushing_) {
        if (st != nullptr) st->onDrained();
      }
      flushing_.clear();
    }
    std::string* bytes = &out_;
    if (tls_) {
      wire_.clear();
      if (!tls_->write(std::span<const char>(out_.data(), out_.size()))) {
        close();
        return SendNow::kFailed;
      }
      tls_->takeOutput(wire_);
      bytes = &wire_;
    }
    if (bytes->empty() || closed_) return SendNow::kAll;
    switch (sendNow(socket_, *bytes)) {
      case SendNow::kAll:
        continue;  // the codec may hold more than one chunk
      case SendNow::kSome:
        unsent_ = bytes;
        return SendNow::kSome;
      case SendNow::kFailed:
        close();
        return SendNow::kFailed;
    }
  }
}

Awaitable<void> Http2DownstreamConnection::writeLoop() {
  for (;;) {
    if (unsent_ == nullptr && sendPending() == SendNow::kFailed) break;
    if (unsent_ != nullptr) {
      boost::system::error_code ec;
      co_await writeAll(socket_, asio::buffer(*std::exchange(unsent_, nullptr)), &ec);
      if (ec) {
        close();
        break;
      }
      continue;
    }
    if (closed_) break;
    if (!codec_.wantsRead() && !codec_.wantsWrite()) {
      // GOAWAY exchanged and no stream left (or a protocol error's GOAWAY
      // is out): the connection is over; end the reader's wait too.
      boost::system::error_code ec;
      socket_.cancel(ec);
      if (read_done_ && running_ == 0) break;
    }
    if (read_done_ && running_ == 0) break;
    boost::system::error_code ec;
    co_await waitOn(writer_signal_, &ec);
  }
  writer_done_ = true;
  done_signal_.notify();
}

}  // namespace turnout::proxy
