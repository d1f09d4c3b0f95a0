#pragma once

// The HTTP/2 ConnPool of one host of one cluster on one worker
// (docs/http2_codec.md, "The upstream pool"; Envoy's Http2::ConnPoolImpl).
// h2c only: plaintext with prior knowledge.
//
// Streams are multiplexed: a new stream goes on a ready connection with
// spare capacity (the peer's SETTINGS_MAX_CONCURRENT_STREAMS, capped by the
// cluster's Http2ProtocolOptions.max_concurrent_streams; 100 until the
// peer's SETTINGS arrive), else the request waits as a pending request and a
// new connection is opened within the cluster's breakers when the
// connections being opened do not already have room for every pending
// request (Envoy's rule). A connection that received GOAWAY, reached
// max_requests_per_connection or was idle for the cluster's idle_timeout
// drains: it takes no new stream and closes once its streams have ended.
//
// Each connection has one reader coroutine (socket -> ClientCodec::
// dispatch) and a writer started whenever the codec wants to write (one
// write outstanding at a time); both share the connection's shared_ptr
// (STYLE.md R8b), and so does each stream, so the codec outlives every
// ClientStream. Response events are queued per stream and handed to the
// router inside receive(), never from the reader, so the router sees them
// only while it is not writing to its client; DATA handed over by one
// receive() is acknowledged to the peer (ClientStream::consumed) at the next
// receive() or at release, so a slow client holds the upstream to its h2
// windows.
//
// Worker thread only. The HostState owns the pool; the pool's connections
// are closed when it is destroyed (no stream can exist then: a stream's
// holder keeps the WorkerCluster, which owns the HostState, alive).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "proxy/codec/http2_client_codec.h"
#include "proxy/common/send_now.h"
#include "proxy/common/signal.h"
#include "proxy/tls/tls_transport.h"
#include "proxy/upstream/cluster_manager.h"
#include "proxy/upstream/conn_pool.h"

namespace turnout::proxy {

class Http2ConnPool;
class Http2PoolStream;

// One upstream HTTP/2 connection of an Http2ConnPool. Shared by its reader,
// its writer and its streams; the pool holds it while it is open.
class Http2PoolConnection final : public http2::ConnectionCallbacks,
                                  public std::enable_shared_from_this<Http2PoolConnection> {
 public:
  enum class State : uint8_t { Connecting, Ready, Draining, Closed };

  Http2PoolConnection(Http2ConnPool& pool, Executor ex, const http2::Http2Settings& settings,
                      const http2::CodecStatsSink& stats);
  ~Http2PoolConnection() override;
  Http2PoolConnection(const Http2PoolConnection&) = delete;
  Http2PoolConnection& operator=(const Http2PoolConnection&) = delete;

  // http2::ConnectionCallbacks
  void onSettings(const http2::PeerSettings& settings) override;
  void onGoAway(std::int32_t last_stream_id, std::uint32_t error_code) override;

  State state() const { return state_; }
  // Streams this connection may carry at once now.
  uint32_t capacity() const { return capacity_; }
  uint32_t activeStreams() const { return active_; }
  uint64_t streamsTotal() const { return streams_total_; }
  // Writer coroutines started (sends that did not complete inline). For tests.
  uint64_t writerRuns() const { return writer_runs_; }
  // Receivers resumed right after a dispatch(), not posted (for tests).
  uint64_t inlineWakes() const { return inline_wakes_; }
  // Ready, accepting streams, below its capacity and its request limit.
  bool hasRoom() const;

 private:
  friend class Http2ConnPool;
  friend class Http2PoolStream;

  // Starts the writer if the codec has output and none is running.
  void kickWriter();
  Awaitable<void> writeLoop(std::shared_ptr<Http2PoolConnection> self);
  // Drains the codec into the socket without waiting (TLS: encrypted
  // first); kSome leaves the rest in unsent_ for the writer.
  SendNow sendPending();
  // Wakes every stream whose send() waits (its bytes may have left).
  void notifySenders();
  // No new stream; closes once the last one ended (GOAWAY then close).
  void drain();
  // Closes the socket when the session is over and nothing is left to write.
  void maybeClose();
  void closeSocket();
  void armIdleTimer();
  void onStreamEnd(Http2PoolStream& s);
  void wakeReceivers();

  Http2ConnPool* pool_;  // null once the pool is gone
  TcpStream stream_;
  // TLS clusters: the session cache (kept alive for the transport) and the
  // transport between the socket and the codec; null for h2c.
  std::shared_ptr<tls::ClientSessionCache> tls_sessions_;
  std::unique_ptr<tls::TlsTransport> tls_;
  std::string tls_plaintext_;
  http2::ClientCodec codec_;
  SteadyTimer idle_timer_;
  uint64_t idle_generation_ = 0;
  State state_ = State::Connecting;
  uint32_t capacity_;
  uint32_t active_ = 0;
  uint64_t streams_total_ = 0;
  uint64_t writer_runs_ = 0;
  uint64_t inline_wakes_ = 0;
  // Streams whose send() waits for their bytes to leave the codec
  // (Http2PoolStream::waiting_send_), and the list being notified.
  std::vector<Http2PoolStream*> senders_;
  std::vector<Http2PoolStream*> notifying_;
  // Streams whose receive() had an event during dispatch() (listed once,
  // Http2PoolStream::queued_wake_), resumed by wakeReceivers() once it
  // returned; and the list being resumed (a stream released meanwhile is
  // nulled in either).
  std::vector<Http2PoolStream*> receivers_;
  std::vector<Http2PoolStream*> waking_;
  std::string out_;
  std::string wire_;  // TLS: out_ encrypted
  // What an inline send (sendPending) left for the writer: out_ or wire_.
  std::string* unsent_ = nullptr;
  std::vector<char> read_buffer_;
  bool writing_ = false;
  bool dispatching_ = false;  // the reader is inside codec_.dispatch()
  bool closing_ = false;   // closeSocket() was called by us
  bool counted_ = true;    // still counted in the cluster's cx stats and breaker
  bool remote_close_ = false;
  bool alpn_http1_ = false;  // auto_config: the handshake chose http/1.1
};
using Http2PoolConnectionSharedPtr = std::shared_ptr<Http2PoolConnection>;

// One request/response exchange on an Http2PoolConnection: the router's
// UpstreamStream over an http2::ClientStream. Made by the pool, destroyed
// by release().
class Http2PoolStream final : public UpstreamStream, public ResponseDecoderCallbacks {
 public:
  Http2PoolStream(Http2PoolConnectionSharedPtr conn, bool reused);
  ~Http2PoolStream() override = default;
  Http2PoolStream(const Http2PoolStream&) = delete;
  Http2PoolStream& operator=(const Http2PoolStream&) = delete;

  // UpstreamStream
  void setResponseCallbacks(ResponseDecoderCallbacks* callbacks) override { target_ = callbacks; }
  void encodeHeaders(const RequestHead& head, bool end_stream) override;
  void encodeData(std::span<const char> data, bool end_stream) override;
  void encodeTrailers(const HeaderMap& trailers) override;
  Awaitable<bool> send() override;
  std::optional<bool> trySend() override;
  Awaitable<ReceiveResult> receive() override;
  std::optional<ReceiveResult> tryReceive() override;
  bool waitsInPlace() const override { return true; }
  void startReceiveWait(resume_detail::Frame* frame) override;
  void resetStream(StreamResetReason reason) override;
  bool reused() const override { return reused_; }
  bool canReuse() const override;
  bool upgraded() const override { return false; }

  // ResponseDecoderCallbacks: the codec's events, queued for receive().
  void onMessageBegin() override {}
  void onHeaders(ResponseHead& head, bool end_stream) override;
  void onData(std::span<const char> data, bool end_stream) override;
  void onTrailers(HeaderMap& trailers) override;
  void onMessageComplete() override;
  void onInformational(ResponseHead& head) override;
  void onReset(StreamResetReason reason) override;

  // Response bytes handed to the router and not yet acknowledged, and
  // bytes received and not yet handed over.
  std::size_t unacknowledged() const { return delivered_; }
  std::size_t queuedResponseBytes() const { return data_.size(); }
  std::int32_t id() const { return h2_ ? h2_->id() : -1; }

 protected:
  void release(bool reusable) override;

 private:
  friend class Http2PoolConnection;
  friend class Http2ConnPool;
  // Hands queued events to the router; true if any went.
  bool deliver();
  void markReset(StreamResetReason reason);
  void wake();
  // receive() has something to deliver: resumed after the reader's
  // dispatch() returns when inside it (no trip through the scheduler),
  // else posted.
  void wakeReceiver();

  // Declared before h2_: the ClientStream is released before the codec goes.
  Http2PoolConnectionSharedPtr conn_;
  http2::ClientStreamPtr h2_;
  ResponseDecoderCallbacks* target_ = nullptr;
  Signal recv_signal_;  // notify() wakes receive()
  boost::system::error_code wait_ec_;  // receiveWait()'s (not looked at)
  // notify() wakes send(); made by its first wait (only a request the
  // codec cannot frame at once waits), a line fewer per stream.
  std::unique_ptr<Signal> send_signal_;
  bool reused_;
  bool reset_ = false;
  bool waiting_send_ = false;  // listed in conn_->senders_
  bool queued_wake_ = false;   // listed in conn_->receivers_ or waking_
  StreamResetReason reason_ = StreamResetReason::kLocalReset;
  // Queued response events, in codec.h's order.
  std::vector<ResponseHead> informational_;
  ResponseHead* head_ = nullptr;  // the codec's, valid until h2_ is released
  bool head_end_ = false;
  bool head_delivered_ = false;
  std::string data_;
  std::string delivering_;
  bool data_end_ = false;
  bool data_end_delivered_ = false;
  HeaderMap* trailers_ = nullptr;
  bool trailers_delivered_ = false;
  bool complete_ = false;
  bool complete_delivered_ = false;
  std::size_t delivered_ = 0;
};

class Http2ConnPool final : public ConnPool {
 public:
  // `alpn_auto`: auto_config's HTTP/2 side: ALPN offers h2 and http/1.1, the
  // first handshake records the host's choice (HostState::alpn_protocol),
  // and once it is HTTP/1.1 this pool hands its requests back
  // (NewStreamResult::protocol_changed).
  Http2ConnPool(WorkerCluster& cluster, HostState& host, bool alpn_auto = false);
  ~Http2ConnPool() override;  // closes every connection
  Http2ConnPool(const Http2ConnPool&) = delete;
  Http2ConnPool& operator=(const Http2ConnPool&) = delete;

  // ConnPool
  UpstreamStreamPtr tryNewStream() override;
  Awaitable<NewStreamResult> newStream(PendingRequest* pending,
                                       std::chrono::steady_clock::time_point deadline) override;

  // Open connections (connecting, ready or draining), for tests and admin.
  const std::vector<Http2PoolConnectionSharedPtr>& connections() const { return conns_; }
  const http2::Http2Settings& settings() const { return settings_; }

  // The cluster's Http2ProtocolOptions as codec settings.
  static http2::Http2Settings settingsFor(const config::ClusterConfig& config);

 private:
  friend class Http2PoolConnection;
  friend class Http2PoolStream;

  UpstreamStreamPtr attach(Http2PoolConnection& c);
  // Room that connections still connecting will have for pending requests.
  uint64_t connectingCapacity() const;
  void startConnect(Executor ex);
  Awaitable<void> run(Http2PoolConnectionSharedPtr c);
  // TLS clusters: the handshake after connect (ALPN h2 required).
  Awaitable<boost::system::error_code> handshake(Http2PoolConnection& c);
  // The connection is usable: up to its room of pending requests retry.
  void onReady(Http2PoolConnection& c);
  void onIdleTimeout(Http2PoolConnection& c);
  // A stream ended on `c`: one pending request may take its place.
  void onStreamEnd(Http2PoolConnection& c);
  // `c` closed (or failed to connect): uncounted and forgotten.
  void onClosed(Http2PoolConnection& c);
  void uncount(Http2PoolConnection& c);
  void wakePending(uint64_t n);

  WorkerCluster& cluster_;
  HostState& host_;
  http2::Http2Settings settings_;
  uint32_t configured_streams_;  // the cluster's max_concurrent_streams
  std::vector<Http2PoolConnectionSharedPtr> conns_;
  uint32_t pending_ = 0;  // this pool's requests in newStream()
  bool last_connect_timed_out_ = false;
  bool alpn_auto_ = false;
};

}  // namespace turnout::proxy
