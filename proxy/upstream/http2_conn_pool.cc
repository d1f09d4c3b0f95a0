#include "proxy/upstream/http2_conn_pool.h"

#include <algorithm>
#include <utility>

#include "proxy/common/inq_read.h"
#include "proxy/common/log.h"
#include "proxy/common/resume.h"
#include "proxy/common/send_now.h"
#include "proxy/common/spawn.h"
#include "proxy/upstream/source_address.h"
#include "proxy/upstream/upstream_tls.h"

namespace turnout::proxy {
namespace {

constexpr const char* kLogComponent = "upstream";

using Clock = std::chrono::steady_clock;

// Streams a connection may start before the peer's SETTINGS arrive (what
// nghttp2 holds a client to meanwhile, and Envoy's assumption too).
constexpr uint32_t kStreamsBeforeSettings = 100;
constexpr std::size_t kReadBuffer = 64 * 1024;
constexpr std::size_t kWriteBatch = 64 * 1024;

}  // namespace

// --- Http2PoolConnection ------------------------------------------------------------

Http2PoolConnection::Http2PoolConnection(Http2ConnPool& pool, Executor ex,
                                         const http2::Http2Settings& settings,
                                         const http2::CodecStatsSink& stats)
    : pool_(&pool),
      stream_(ex),
      codec_(*this, settings, stats),
      idle_timer_(ex),
      capacity_(std::min(kStreamsBeforeSettings, pool.configured_streams_)),
      read_buffer_(kReadBuffer) {}

Http2PoolConnection::~Http2PoolConnection() = default;

bool Http2PoolConnection::hasRoom() const {
  if (state_ != State::Ready || !codec_.acceptsStreams() || active_ >= capacity_) return false;
  return true;
}

void Http2PoolConnection::onSettings(const http2::PeerSettings& settings) {
  const uint32_t configured = pool_ != nullptr ? pool_->configured_streams_ : capacity_;
  const uint32_t before = capacity_;
  capacity_ = std::max<uint32_t>(1, std::min(settings.max_concurrent_streams, configured));
  if (settings.max_concurrent_streams == 0) capacity_ = 0;  // the peer takes no stream now
  if (capacity_ > before && pool_ != nullptr && state_ == State::Ready) {
    pool_->wakePending(capacity_ - before);
  }
}

void Http2PoolConnection::onGoAway(std::int32_t, std::uint32_t) {
  // Streams above the last id are refused by the codec right after this;
  // the rest finish, then the session ends and the connection closes.
  if (state_ == State::Ready || state_ == State::Connecting) state_ = State::Draining;
}

void Http2PoolConnection::kickWriter() {
  if (writing_ || closing_ || state_ == State::Closed || state_ == State::Connecting) return;
  if (!codec_.wantsWrite() && !(tls_ && tls_->hasOutput())) {
    notifySenders();
    maybeClose();
    return;
  }
  if (active_ <= 1 && !dispatching_) {
    // One stream (a client that waits for each answer, a lone gRPC call):
    // what the writer would do, done here, with no coroutine made and no
    // scheduler trip before the bytes leave. With more streams the writer
    // runs once they all had their turn and batches their frames into one
    // write. Never inside the codec's dispatch (nghttp2 cannot send from
    // its own callbacks).
    switch (sendPending()) {
      case SendNow::kAll:
        notifySenders();
        maybeClose();
        return;
      case SendNow::kFailed:
        closeSocket();  // the reader sees it and ends the connection
        notifySenders();
        return;
      case SendNow::kSome:
        break;  // the socket is full: the writer sends the rest
    }
  }
  writing_ = true;
  ++writer_runs_;
  asio::co_spawn(stream_.get_executor(), writeLoop(shared_from_this()),
                 LogEscapedException{"pool", "http2 writer"});
}

SendNow Http2PoolConnection::sendPending() {
  for (;;) {
    out_.clear();
    (void)codec_.drainOutput(out_, kWriteBatch);
    std::string* bytes = &out_;
    if (tls_) {
      if (!out_.empty() && !tls_->write(std::span<const char>(out_.data(), out_.size()))) {
        return SendNow::kFailed;
      }
      wire_.clear();
      tls_->takeOutput(wire_);
      bytes = &wire_;
    }
    if (bytes->empty()) return SendNow::kAll;
    const SendNow r = sendNow(stream_.socket(), *bytes);
    if (r != SendNow::kAll) {
      if (r == SendNow::kSome) unsent_ = bytes;
      return r;
    }
    // The codec may hold more than one batch.
  }
}

Awaitable<void> Http2PoolConnection::writeLoop(std::shared_ptr<Http2PoolConnection> self) {
  // What kickWriter() does inline, until the codec has nothing left; only
  // what the socket did not take is awaited (as the downstream's writer).
  while (!closing_ && state_ != State::Closed) {
    if (unsent_ == nullptr) {
      const SendNow r = sendPending();
      notifySenders();
      if (r == SendNow::kFailed) {
        closeSocket();  // the reader sees it and ends the connection
        break;
      }
      if (r == SendNow::kAll) break;
    }
    boost::system::error_code ec;
    co_await writeAll(stream_, asio::buffer(*std::exchange(unsent_, nullptr)), &ec);
    if (ec) {
      closeSocket();
      break;
    }
  }
  unsent_ = nullptr;
  writing_ = false;
  notifySenders();
  maybeClose();
  (void)self;
}

void Http2PoolConnection::notifySenders() {
  // Only the streams whose send() waits: walking all of a connection's
  // streams each time the writer ran was O(streams) per write.
  if (senders_.empty()) return;
  notifying_.swap(senders_);
  for (Http2PoolStream* s : notifying_) {
    s->waiting_send_ = false;
    if (s->send_signal_) s->send_signal_->notify();
  }
  notifying_.clear();
}

void Http2PoolConnection::wakeReceivers() {
  // Each in turn, to its next wait, on this call: the router writes the
  // response on downstream as it would from a posted wake-up, without the
  // scheduler trip (and the reactor poll Asio puts before a posted
  // handler). Only the reader calls this, outside dispatch(), so nothing
  // adds to the list while it is walked; a stream released by another's
  // turn is nulled in it (onStreamEnd).
  if (receivers_.empty()) return;
  waking_.swap(receivers_);
  for (std::size_t i = 0; i < waking_.size(); ++i) {
    Http2PoolStream* s = waking_[i];
    if (s == nullptr) continue;
    s->queued_wake_ = false;
    ++inline_wakes_;
    s->recv_signal_.notifyNow();
  }
  waking_.clear();
}

void Http2PoolConnection::drain() {
  if (state_ == State::Closed) return;
  state_ = State::Draining;
  if (active_ == 0) {
    codec_.goAway(http2::kNoError);
    kickWriter();
    maybeClose();
  }
}

void Http2PoolConnection::maybeClose() {
  if (state_ == State::Closed || closing_ || writing_ || codec_.wantsWrite()) return;
  if (!codec_.wantsRead() || (state_ == State::Draining && active_ == 0)) closeSocket();
}

void Http2PoolConnection::closeSocket() {
  if (closing_) return;
  closing_ = true;
  ++idle_generation_;
  idle_timer_.cancel();
  boost::system::error_code ec;
  stream_.socket().shutdown(TcpSocket::shutdown_both, ec);
  stream_.socket().close(ec);
}

void Http2PoolConnection::armIdleTimer() {
  if (pool_ == nullptr) return;
  const std::chrono::milliseconds timeout = pool_->cluster_.idleTimeout();
  if (timeout.count() <= 0) return;
  const uint64_t generation = ++idle_generation_;
  idle_timer_.expires_after(timeout);
  idle_timer_.async_wait([weak = weak_from_this(), generation](const boost::system::error_code& ec) {
    if (ec) return;
    std::shared_ptr<Http2PoolConnection> c = weak.lock();
    if (!c || c->idle_generation_ != generation || c->active_ != 0 ||
        c->state_ == State::Closed || c->pool_ == nullptr) {
      return;
    }
    c->pool_->onIdleTimeout(*c);
  });
}

void Http2PoolConnection::onStreamEnd(Http2PoolStream& s) {
  if (s.waiting_send_) {
    senders_.erase(std::find(senders_.begin(), senders_.end(), &s));
    s.waiting_send_ = false;
  }
  if (s.queued_wake_) {
    s.queued_wake_ = false;
    for (auto* list : {&receivers_, &waking_}) {
      std::replace(list->begin(), list->end(), &s, static_cast<Http2PoolStream*>(nullptr));
    }
  }
  --active_;
  kickWriter();  // an RST_STREAM, window updates
  if (pool_ == nullptr || state_ == State::Closed) return;
  if (state_ == State::Draining || !codec_.acceptsStreams()) {
    if (active_ == 0) drain();
    maybeClose();
    return;
  }
  if (active_ == 0) armIdleTimer();
  pool_->onStreamEnd(*this);
}

// --- Http2PoolStream ----------------------------------------------------------------

Http2PoolStream::Http2PoolStream(Http2PoolConnectionSharedPtr conn, bool reused)
    : conn_(std::move(conn)), recv_signal_(conn_->stream_.get_executor()), reused_(reused) {}

void Http2PoolStream::encodeHeaders(const RequestHead& head, bool end_stream) {
  if (reset_ || !h2_) return;
  // A CONNECT or an upgrade (an extended CONNECT, RFC 8441) is a stream
  // like any other: its payload is the stream's DATA both ways.
  absl::Status st = h2_->encodeHeaders(head, end_stream);
  if (!st.ok()) {
    // The connection could no longer start streams: never sent, safe to retry.
    markReset(StreamResetReason::kLocalRefusedStreamReset);
    return;
  }
}

void Http2PoolStream::encodeData(std::span<const char> data, bool end_stream) {
  if (!reset_ && h2_) h2_->encodeData(data, end_stream);
}

void Http2PoolStream::encodeTrailers(const HeaderMap& trailers) {
  if (!reset_ && h2_) h2_->encodeTrailers(trailers);
}

std::optional<bool> Http2PoolStream::trySend() {
  conn_->kickWriter();
  // Nothing of ours waits in the codec (a request's HEADERS, or a body the
  // writer framed already): done, with no coroutine for send().
  if (reset_ || !h2_ || h2_->bufferedBytes() == 0) return !reset_;
  return std::nullopt;
}

Awaitable<bool> Http2PoolStream::send() {
  conn_->kickWriter();
  boost::system::error_code ec;
  // Our bytes have left the codec's buffer once bufferedBytes() is 0: framed
  // into the connection's output, which the writer sends one batch at a time.
  while (!reset_ && h2_ && h2_->bufferedBytes() > 0) {
    if (!waiting_send_) {
      waiting_send_ = true;
      conn_->senders_.push_back(this);
    }
    if (!send_signal_) send_signal_ = std::make_unique<Signal>(conn_->stream_.get_executor());
    co_await waitOn(*send_signal_, &ec);
  }
  co_return !reset_;
}

Awaitable<UpstreamStream::ReceiveResult> Http2PoolStream::receive() {
  boost::system::error_code ec;
  for (;;) {
    if (std::optional<ReceiveResult> r = tryReceive()) co_return *r;
    co_await waitOn(recv_signal_, &ec);
  }
}

std::optional<UpstreamStream::ReceiveResult> Http2PoolStream::tryReceive() {
  // The router has written on what the previous call handed it (a no-op
  // when repeated after a wait).
  if (delivered_ > 0 && h2_) {
    h2_->consumed(delivered_);
    delivered_ = 0;
    conn_->kickWriter();
  }
  if (deliver()) return ReceiveResult{};
  if (reset_) {
    ReceiveResult r;
    r.reset = true;
    r.reason = reason_;
    return r;
  }
  return std::nullopt;
}

void Http2PoolStream::startReceiveWait(resume_detail::Frame* frame) {
  recv_signal_.async_wait(resume_detail::Handler<boost::system::error_code>(
      frame->detach_thread(), std::tuple<boost::system::error_code*>(&wait_ec_)));
}

bool Http2PoolStream::deliver() {
  if (target_ == nullptr) return false;
  bool progress = false;
  if (!informational_.empty()) {
    std::vector<ResponseHead> heads = std::move(informational_);
    informational_.clear();
    for (ResponseHead& h : heads) target_->onInformational(h);
    progress = true;
  }
  if (head_ != nullptr && !head_delivered_) {
    head_delivered_ = true;
    target_->onMessageBegin();
    target_->onHeaders(*head_, head_end_);
    progress = true;
  }
  if (!data_.empty() || (data_end_ && !data_end_delivered_)) {
    delivering_.clear();
    delivering_.swap(data_);
    data_end_delivered_ = data_end_;
    delivered_ += delivering_.size();
    target_->onData(std::span<const char>(delivering_.data(), delivering_.size()), data_end_);
    progress = true;
  }
  if (trailers_ != nullptr && !trailers_delivered_) {
    trailers_delivered_ = true;
    target_->onTrailers(*trailers_);
    progress = true;
  }
  if (complete_ && !complete_delivered_) {
    complete_delivered_ = true;
    target_->onMessageComplete();
    progress = true;
  }
  return progress;
}

void Http2PoolStream::resetStream(StreamResetReason reason) {
  if (!reset_ && h2_) h2_->resetStream(reason);  // no callback follows
  markReset(reason);
  conn_->kickWriter();
}

void Http2PoolStream::markReset(StreamResetReason reason) {
  if (!reset_) {
    reset_ = true;
    reason_ = reason;
  }
  wake();
}

void Http2PoolStream::wake() {
  if (send_signal_) send_signal_->notify();
  wakeReceiver();
}

void Http2PoolStream::wakeReceiver() {
  if (!recv_signal_.waiting()) return;  // receive() looks before it waits
  if (!conn_->dispatching_) {
    recv_signal_.notify();
    return;
  }
  if (!queued_wake_) {
    queued_wake_ = true;
    conn_->receivers_.push_back(this);
  }
}

bool Http2PoolStream::canReuse() const {
  return !reset_ && conn_->state_ == Http2PoolConnection::State::Ready &&
         conn_->codec_.acceptsStreams();
}

void Http2PoolStream::onHeaders(ResponseHead& head, bool end_stream) {
  head_ = &head;
  head_end_ = end_stream;
  wakeReceiver();
}

void Http2PoolStream::onData(std::span<const char> data, bool end_stream) {
  data_.append(data.data(), data.size());
  if (end_stream) data_end_ = true;
  wakeReceiver();
}

void Http2PoolStream::onTrailers(HeaderMap& trailers) {
  trailers_ = &trailers;
  wakeReceiver();
}

void Http2PoolStream::onMessageComplete() {
  complete_ = true;
  wakeReceiver();
}

void Http2PoolStream::onInformational(ResponseHead& head) {
  informational_.push_back(head);  // the codec reuses its head for the final one
  wakeReceiver();
}

void Http2PoolStream::onReset(StreamResetReason reason) { markReset(reason); }

void Http2PoolStream::release(bool) {
  // Whatever the router did not take is acknowledged by the codec; a stream
  // still open is cancelled (RST_STREAM CANCEL). The connection stays: one
  // stream's end says nothing about it.
  h2_.reset();
  Http2PoolConnectionSharedPtr conn = std::move(conn_);
  conn->onStreamEnd(*this);
  delete this;
}

// --- Http2ConnPool ------------------------------------------------------------------

http2::Http2Settings Http2ConnPool::settingsFor(const config::ClusterConfig& config) {
  http2::Http2Settings s;
  http2::applyProtocolOptions(config.http2, s);
  return s;
}

Http2ConnPool::Http2ConnPool(WorkerCluster& cluster, HostState& host, bool alpn_auto)
    : cluster_(cluster),
      host_(host),
      settings_(settingsFor(cluster.config())),
      configured_streams_(std::max<uint32_t>(1, cluster.config().http2.max_concurrent_streams)),
      alpn_auto_(alpn_auto) {}

Http2ConnPool::~Http2ConnPool() {
  for (auto& c : conns_) {
    // The connection may outlive the cluster's stat scope.
    c->codec_.detachStats();
    uncount(*c);
    c->pool_ = nullptr;
    c->closeSocket();
  }
}

UpstreamStreamPtr Http2ConnPool::tryNewStream() {
  for (auto& c : conns_) {
    if (c->hasRoom()) return attach(*c);
  }
  return {};
}

UpstreamStreamPtr Http2ConnPool::attach(Http2PoolConnection& c) {
  auto* s = new Http2PoolStream(c.shared_from_this(), c.streams_total_ > 0);
  s->h2_ = c.codec_.newStream(*s);
  ++c.active_;
  ++c.streams_total_;
  ++c.idle_generation_;  // not idle: a pending idle timeout is void
  if (!s->h2_) s->markReset(StreamResetReason::kLocalRefusedStreamReset);
  const uint32_t max_requests = cluster_.config().max_requests_per_connection;
  if (max_requests > 0 && c.streams_total_ >= max_requests &&
      c.state_ == Http2PoolConnection::State::Ready) {
    cluster_.shard_->inc(cluster_.runtime().stats.upstream_cx_max_requests());
    c.state_ = Http2PoolConnection::State::Draining;
  }
  return UpstreamStreamPtr(s);
}

uint64_t Http2ConnPool::connectingCapacity() const {
  uint64_t room = 0;
  for (const auto& c : conns_) {
    if (c->state_ == Http2PoolConnection::State::Connecting) room += c->capacity_;
  }
  return room;
}

void Http2ConnPool::startConnect(Executor ex) {
  const auto& stats = cluster_.runtime().stats;
  auto c = std::make_shared<Http2PoolConnection>(
      *this, ex, settings_, http2::CodecStatsSink{stats.http2(), cluster_.shard_});
  cluster_.resources_->connections.inc(cluster_.thresholds_.max_connections, *cluster_.shard_,
                                       stats.breakers_default().cx_open);
  ++host_.cx_active;
  cluster_.shard_->inc(stats.upstream_cx_total());
  if (!alpn_auto_)
    cluster_.shard_->inc(stats.upstream_cx_http2_total());  // auto: once h2 is chosen
  cluster_.shard_->add(stats.upstream_cx_active(), 1);
  conns_.push_back(c);
  cluster_.startOriginalDstCleanup(ex);
  asio::co_spawn(ex, run(c), LogEscapedException{"pool", "http2 connection"});
}

Awaitable<void> Http2ConnPool::run(Http2PoolConnectionSharedPtr c) {
  boost::system::error_code ec;
  {
    const auto& stats = cluster_.runtime().stats;
    c->stream_.expires_after(cluster_.config().connect_timeout);
    ec = bindSourceAddress(c->stream_.socket(), cluster_.config(), host_.endpoint);
    if (!ec) {
      co_await c->stream_.async_connect(host_.endpoint, asio::redirect_error(use_awaitable, ec));
    }
    if (!ec && c->pool_ != nullptr && !c->closing_ && cluster_.runtime().tls) {
      ec = co_await handshake(*c);
    }
    c->stream_.expires_never();
    if (c->pool_ == nullptr) co_return;  // the pool went away meanwhile
    if (c->alpn_http1_ && !c->closing_) {
      // auto_config: the host speaks HTTP/1.1. Not a connect failure: the
      // waiting requests go to the HTTP/1 side, which connects afresh.
      c->state_ = Http2PoolConnection::State::Closed;
      c->closeSocket();
      WorkerCluster::wakeAll(host_, PendingRequest::Wake::Slot);
      onClosed(*c);
      co_return;
    }
    if (ec || c->closing_) {
      last_connect_timed_out_ = ec == beast::error::timeout;
      cluster_.shard_->inc(last_connect_timed_out_ ? stats.upstream_cx_connect_timeout()
                                                   : stats.upstream_cx_connect_fail());
      c->state_ = Http2PoolConnection::State::Closed;
      WorkerCluster::wakeAll(host_, PendingRequest::Wake::ConnectFailure);
      onClosed(*c);
      co_return;
    }
    c->stream_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
    enableInq(c->stream_.socket());  // see proxy/common/inq_read.h
    if (c->state_ == Http2PoolConnection::State::Connecting) {
      c->state_ = Http2PoolConnection::State::Ready;
    }
    c->kickWriter();  // the preface and our SETTINGS
    onReady(*c);
    if (c->active_ == 0) c->armIdleTimer();
  }

  // The reader: every byte goes to the codec, whose events are queued on
  // their streams; then the writer sends what the codec has to say.
  while (!c->closing_) {
    std::span<const char> in;
    if (c->tls_) {
      c->tls_plaintext_.clear();
      ec = co_await readTls(c->stream_, *c->tls_, c->tls_plaintext_);
      in = std::span<const char>(c->tls_plaintext_);
      // What was decrypted before a close_notify still goes to the codec.
      if (ec && in.empty()) {
        if (!c->closing_) c->remote_close_ = true;
        break;
      }
    } else {
      std::size_t n = 0;
      co_await readInq(c->stream_.socket(), asio::buffer(c->read_buffer_), &ec, &n);
      if (ec) {
        if (!c->closing_) c->remote_close_ = true;
        break;
      }
      in = std::span<const char>(c->read_buffer_.data(), n);
    }
    const boost::system::error_code read_error = ec;
    c->dispatching_ = true;
    const absl::Status st = in.empty() ? absl::OkStatus() : c->codec_.dispatch(in);
    c->dispatching_ = false;
    c->wakeReceivers();
    c->kickWriter();
    if (read_error) {
      if (!c->closing_) c->remote_close_ = true;
      break;
    }
    if (!st.ok()) {
      // The codec queued its GOAWAY; the writer closes once it went out.
      if (c->state_ == Http2PoolConnection::State::Ready) c->state_ = Http2PoolConnection::State::Draining;
    }
    c->maybeClose();
  }
  c->closeSocket();
  c->state_ = Http2PoolConnection::State::Closed;
  c->codec_.onEof();  // every stream still open is reset
  if (c->pool_ != nullptr) onClosed(*c);
}

Awaitable<boost::system::error_code> Http2ConnPool::handshake(Http2PoolConnection& c) {
  // ALPN "h2" unless the context names its own protocols (Envoy's rule for
  // an HTTP/2 cluster); a server that does not select h2 is a connect
  // failure, never an HTTP/1 server spoken to in h2. The pool may be
  // destroyed during the handshake (the socket is closed then): nothing of
  // it is touched after the await unless c.pool_ is still set.
  c.tls_sessions_ = cluster_.tlsSessions();
  std::vector<std::string> alpn = {"h2"};
  if (alpn_auto_) alpn.push_back("http/1.1");
  c.tls_ = makeUpstreamTransport(cluster_.runtime(), host_.endpoint, std::move(alpn),
                                 c.tls_sessions_.get());
  if (!c.tls_) co_return asio::error::invalid_argument;
  boost::system::error_code ec = co_await runTlsHandshake(
      c.stream_, *c.tls_, cluster_.runtime().ssl_stats.toOptional(), *cluster_.shard_);
  if (!ec && alpn_auto_ && c.pool_ != nullptr) {
    // Envoy's auto_config: whatever the server picked (no ALPN is HTTP/1.1).
    const bool h2 = c.tls_->alpn() == "h2";
    host_.alpn_protocol = h2 ? HostState::AlpnProtocol::Http2 : HostState::AlpnProtocol::Http1;
    if (h2) {
      cluster_.shard_->inc(cluster_.runtime().stats.upstream_cx_http2_total());
    } else {
      c.alpn_http1_ = true;
    }
    co_return ec;
  }
  if (!ec && c.tls_->alpn() != "h2") {
    if (c.pool_ != nullptr) {
      TURNOUT_LOG(warn, kLogComponent, "cluster '{}': upstream {} did not select ALPN h2 ('{}')",
                  cluster_.config().name, host_.endpoint.address().to_string(), c.tls_->alpn());
    }
    ec = asio::error::no_protocol_option;
  }
  co_return ec;
}

void Http2ConnPool::onReady(Http2PoolConnection& c) { wakePending(c.capacity_); }

void Http2ConnPool::onIdleTimeout(Http2PoolConnection& c) {
  cluster_.shard_->inc(cluster_.runtime().stats.upstream_cx_idle_timeout());
  c.drain();
}

void Http2ConnPool::onStreamEnd(Http2PoolConnection& c) {
  if (c.hasRoom()) wakePending(1);
}

void Http2ConnPool::onClosed(Http2PoolConnection& c) {
  if (c.remote_close_) cluster_.shard_->inc(cluster_.runtime().stats.upstream_cx_destroy_remote());
  uncount(c);
  c.codec_.detachStats();  // it may outlive the pool, and the cluster's stat scope
  Http2PoolConnectionSharedPtr keep = c.shared_from_this();
  conns_.erase(std::remove(conns_.begin(), conns_.end(), keep), conns_.end());
  c.pool_ = nullptr;
  // A connection fewer: the oldest pending request may open one.
  wakePending(1);
}

void Http2ConnPool::uncount(Http2PoolConnection& c) {
  if (!c.counted_) return;
  c.counted_ = false;
  const auto& stats = cluster_.runtime().stats;
  --host_.cx_active;
  cluster_.resources_->connections.dec(cluster_.thresholds_.max_connections, *cluster_.shard_,
                                       stats.breakers_default().cx_open);
  cluster_.shard_->sub(stats.upstream_cx_active(), 1);
  cluster_.shard_->inc(stats.upstream_cx_destroy());
}

void Http2ConnPool::wakePending(uint64_t n) {
  for (; n > 0; --n) {
    PendingRequest* p = host_.pending_head;
    if (p == nullptr) return;
    WorkerCluster::dequeue(*p);
    p->wake(PendingRequest::Wake::Slot);
  }
}

Awaitable<ConnPool::NewStreamResult> Http2ConnPool::newStream(
    PendingRequest* pending, std::chrono::steady_clock::time_point deadline) {
  using Status = NewStreamResult::Status;
  using Wake = PendingRequest::Wake;
  const auto& stats = cluster_.runtime().stats;
  stats::Shard& shard = *cluster_.shard_;
  NewStreamResult r;
  auto choseHttp1 = [&] {
    return alpn_auto_ && host_.alpn_protocol == HostState::AlpnProtocol::Http1;
  };
  if (choseHttp1()) {
    r.status = Status::ConnectFailure;
    r.protocol_changed = true;
    co_return r;
  }
  if ((r.stream = tryNewStream())) co_return r;

  // A pending request from here on (Envoy's newPendingStream).
  if (!cluster_.resources_->pending.tryInc(cluster_.thresholds_.max_pending_requests, shard,
                                           stats.breakers_default().rq_pending_open)) {
    shard.inc(stats.upstream_rq_pending_overflow());
    r.status = Status::Overflow;
    co_return r;
  }
  shard.inc(stats.upstream_rq_pending_total());
  shard.add(stats.upstream_rq_pending_active(), 1);
  ++pending_;
  bool at_front = false;
  for (;;) {
    if (pending->cancelled_) {
      r.status = Status::Cancelled;
      break;
    }
    if (choseHttp1()) {
      r.status = Status::ConnectFailure;
      r.protocol_changed = true;
      break;
    }
    if ((r.stream = tryNewStream())) break;
    // Connections being opened count as room for the pending requests.
    if (connectingCapacity() < pending_) {
      const bool can_create =
          cluster_.resources_->connections.canCreate(cluster_.thresholds_.max_connections);
      if (!can_create) shard.inc(stats.upstream_cx_overflow());
      if (can_create || host_.cx_active == 0) startConnect(pending->timer_.get_executor());
    }
    cluster_.enqueue(host_, *pending, at_front);
    pending->timer_.expires_at(deadline);
    while (pending->wake_ == Wake::None && !pending->cancelled_ && Clock::now() < deadline) {
      boost::system::error_code ec;
      co_await waitOn(pending->timer_, &ec);
    }
    WorkerCluster::dequeue(*pending);
    const Wake why = std::exchange(pending->wake_, Wake::None);
    if (pending->cancelled_) {
      r.status = Status::Cancelled;
      break;
    }
    if (why == Wake::ConnectFailure) {
      shard.inc(stats.upstream_rq_pending_failure_eject());
      r.status = Status::ConnectFailure;
      r.connect_timed_out = last_connect_timed_out_;
      break;
    }
    if (why == Wake::None) {
      r.status = Status::Timeout;
      break;
    }
    at_front = true;  // a stream slot or a connection: try again first
  }
  --pending_;
  if (r.status == Status::Cancelled || r.status == Status::Timeout) {
    shard.inc(stats.upstream_rq_cancelled());
  }
  if (r.status == Status::Cancelled || r.status == Status::Timeout) {
    // A slot this request was woken for goes to the next one.
    for (const auto& c : conns_) {
      if (c->hasRoom()) {
        wakePending(1);
        break;
      }
    }
  }
  cluster_.resources_->pending.dec(cluster_.thresholds_.max_pending_requests, shard,
                                   stats.breakers_default().rq_pending_open);
  shard.sub(stats.upstream_rq_pending_active(), 1);
  co_return r;
}

}  // namespace turnout::proxy
