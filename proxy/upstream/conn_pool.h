#pragma once

// The upstream side's protocol-neutral seam (Envoy's ConnectionPool::Instance
// and RequestEncoder/ResponseDecoder; stage 7 of docs/life_of_a_request.md).
//
// A ConnPool belongs to one host of one cluster on one worker and hands out
// UpstreamStreams: one request/response exchange each. The router's
// UpstreamRequest drives a stream only through this interface, so that an
// HTTP/2 pool (N streams multiplexed on one connection) can stand behind it
// without the router knowing. The HTTP/1 pool (Http1ConnPool) hands out its
// connections themselves: an HTTP/1 connection is the one-stream case.
//
// Who calls it: the worker thread only. Nothing here is thread-safe.
// Lifetime: an UpstreamStreamPtr keeps its stream until finish() or its
// destructor gives it back to the pool; the caller must keep the
// WorkerCluster (a shared_ptr) alive for as long as it holds a stream.

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "proxy/common/asio.h"
#include "proxy/common/resume.h"

#include "proxy/codec/codec.h"

namespace turnout::proxy {

struct UpstreamConnection;
class PendingRequest;


// One request/response exchange on an upstream connection.
//
// Request side: the encode*() calls append wire bytes to the stream's output;
// send() writes them. Backpressure is the awaited send(): a stream never has
// more than one write outstanding, so a slow upstream slows the request body
// pump instead of making the proxy buffer (Envoy's write watermarks).
//
// Response side: receive() waits for bytes from the peer and decodes them into
// the ResponseDecoderCallbacks given to setResponseCallbacks() (codec.h's
// event order). It returns Progress after some bytes were decoded (events may
// or may not have fired), or the reset that ended the stream; after a reset
// the stream only accepts finish(false).
//
// send() and receive() may run at the same time (the request body pump and
// the response reader of a full-duplex exchange), one of each at most.
// resetStream() makes both return promptly (the watchdog and the router use
// it); a stream that was reset is never reused.
class UpstreamStream {
 public:
  virtual ~UpstreamStream() = default;

  virtual void setResponseCallbacks(ResponseDecoderCallbacks* callbacks) = 0;

  // Request encoders; each may be called once per attempt in this order:
  // headers, data*, trailers?; end of stream exactly once.
  virtual void encodeHeaders(const RequestHead& head, bool end_stream) = 0;
  virtual void encodeData(std::span<const char> data, bool end_stream) = 0;
  virtual void encodeTrailers(const HeaderMap& trailers) = 0;
  // Writes what the encoders produced. False: the stream was reset
  // (connection failure, or resetStream()).
  virtual Awaitable<bool> send() = 0;
  // send() without waiting, where the stream can: true when everything went
  // (or there was nothing), false as send()'s false, empty when send() must
  // be awaited for the rest (the socket's buffer was full, or the stream
  // writes only from a coroutine). Saves the coroutine frame and the
  // scheduler round trip of a request that fits the socket buffer.
  virtual std::optional<bool> trySend() { return std::nullopt; }

  struct ReceiveResult {
    bool reset = false;  // false: Progress
    StreamResetReason reason = StreamResetReason::kConnectionTermination;
    // The peer closed cleanly (EOF) rather than failing; the codec was told,
    // so a close-delimited response has completed through the callbacks.
    bool eof = false;
  };
  virtual Awaitable<ReceiveResult> receive() = 0;

  // receive() in two halves, for a caller that would rather not make a
  // coroutine frame per call (UpstreamRequest::run(): with hundreds of
  // requests in flight that frame, made when the request went up, was five
  // cold cache lines by the time the response came). tryReceive() is
  // receive() up to its first wait: the result, or empty where receive()
  // would wait; then, where waitsInPlace(), `co_await receiveWait()` waits
  // as receive() would (no frame: the caller's coroutine is resumed) and
  // tryReceive() goes on from there. Elsewhere (a TLS upstream, whose read
  // is a coroutine) the caller awaits receive().
  virtual std::optional<ReceiveResult> tryReceive() { return std::nullopt; }
  virtual bool waitsInPlace() const { return false; }
  struct ReceiveWait {
    UpstreamStream* stream;
    resume_detail::Thread* operator()(resume_detail::Frame* frame) {
      stream->startReceiveWait(frame);
      return nullptr;
    }
  };
  ReceiveWait receiveWait() { return ReceiveWait{this}; }
  // Starts receiveWait()'s wait: resumes `frame`'s thread when it is over.
  virtual void startReceiveWait(resume_detail::Frame* frame) {
    (void)frame;  // only where waitsInPlace()
  }

  // Stops the stream: outstanding send()/receive() return promptly and the
  // stream is not reused.
  virtual void resetStream(StreamResetReason reason) = 0;

  // The stream runs on a connection that served an earlier request: the
  // peer may have closed it while idle, so a failure before any response
  // byte may be retried once (Envoy's behaviour for stale pooled connections).
  virtual bool reused() const = 0;
  // After a complete exchange: the connection may serve another request.
  virtual bool canReuse() const = 0;
  // A 101 response switched the connection to another protocol.
  virtual bool upgraded() const = 0;
  // The HTTP/1 connection under the stream, for a tunnel after an upgrade;
  // null for a multiplexed stream.
  virtual UpstreamConnection* http1Connection() { return nullptr; }

 protected:
  friend class UpstreamStreamPtr;
  // Gives the stream back to its pool: `reusable` says the exchange ended
  // cleanly and the connection may serve another request. May destroy *this.
  virtual void release(bool reusable) = 0;
};

// Owns one stream until finish() (or destruction, which gives it back as not
// reusable: the connection closes).
class UpstreamStreamPtr {
 public:
  UpstreamStreamPtr() = default;
  explicit UpstreamStreamPtr(UpstreamStream* s) : s_(s) {}
  UpstreamStreamPtr(UpstreamStreamPtr&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  UpstreamStreamPtr& operator=(UpstreamStreamPtr&& o) noexcept {
    if (this != &o) {
      finish(false);
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  UpstreamStreamPtr(const UpstreamStreamPtr&) = delete;
  UpstreamStreamPtr& operator=(const UpstreamStreamPtr&) = delete;
  ~UpstreamStreamPtr() { finish(false); }

  void finish(bool reusable) {
    if (UpstreamStream* s = std::exchange(s_, nullptr)) s->release(reusable);
  }
  UpstreamStream* get() const { return s_; }
  UpstreamStream* operator->() const { return s_; }
  UpstreamStream& operator*() const { return *s_; }
  explicit operator bool() const { return s_ != nullptr; }

 private:
  UpstreamStream* s_ = nullptr;
};

// The streams of one host of one cluster on one worker, for one protocol.
class ConnPool {
 public:
  virtual ~ConnPool() = default;

  // A stream at once when one is ready without waiting (an idle HTTP/1
  // connection, spare capacity on an HTTP/2 one), else empty.
  virtual UpstreamStreamPtr tryNewStream() = 0;

  struct NewStreamResult {
    enum class Status { Ready, Overflow, ConnectFailure, Timeout, Cancelled };
    Status status = Status::Ready;
    UpstreamStreamPtr stream;        // Ready
    bool connect_timed_out = false;  // ConnectFailure: the connect itself timed out
    // ConnectFailure from an auto_config pool's HTTP/2 side: the host's ALPN
    // chose HTTP/1.1, so the request belongs to the HTTP/1 side (AutoConnPool
    // asks again; the router never sees it).
    bool protocol_changed = false;
  };
  // A stream, waiting as a pending request within the cluster's breakers
  // until `deadline` (Timeout) or pending.cancel() (Cancelled).
  // Coroutine parameters by value (STYLE.md R8c): `pending` must outlive the
  // call.
  virtual Awaitable<NewStreamResult> newStream(PendingRequest* pending,
                                               std::chrono::steady_clock::time_point deadline) = 0;
};

}  // namespace turnout::proxy
