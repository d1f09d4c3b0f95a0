#pragma once

// UpstreamRequest: one attempt of a request on one upstream stream (stage 8 of
// docs/life_of_a_request.md; Envoy's router/upstream_request.cc). The request
// body pump and the response reader run side by side (full duplex), one
// watchdog enforces the attempt's timeouts, and an explicit State records
// where the exchange stands.
//
// Who calls it: the RouterFilter for each attempt of a client's request
// (ActiveStream::run() awaits run()'s steps itself), and a request mirror
// for its copy (run()); both implement UpstreamRequestParent. Worker
// thread only. Lives in its caller's coroutine frame (the router's, in
// the stream's frame); once result() has been taken neither the pump nor
// the watchdog refers to it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "proxy/common/asio.h"
#include "proxy/common/deadline_queue.h"
#include "proxy/common/signal.h"

#include "proxy/codec/codec.h"
#include "proxy/upstream/conn_pool.h"
#include "routing/route_config.h"

namespace turnout::proxy {

class WorkerCluster;
struct HostState;
namespace stats {
class Shard;
}

// What an UpstreamRequest needs from whoever sends the request.
class UpstreamRequestParent {
 public:
  virtual ~UpstreamRequestParent() = default;

  // Request side.
  // Encodes the request as it stands into `stream` for a new attempt: the
  // head and every body byte received so far, with the end of the request
  // once it has been received.
  virtual void encodeRequestStart(UpstreamStream& stream) = 0;
  // The whole request has been received (and so encoded).
  virtual bool requestComplete() const = 0;
  // Waits for more of the request (body, trailers, its end) and encodes it
  // into `stream`. False when the client failed (the parent records why) or
  // stopRequestBody() was called.
  virtual Awaitable<bool> encodeMoreRequest(UpstreamStream* stream) = 0;
  // Makes an outstanding encodeMoreRequest() return promptly.
  virtual void stopRequestBody() = 0;
  // The whole request went upstream on this attempt.
  virtual void onRequestSent() = 0;
  // The client failed while its request body was read.
  virtual bool downstreamFailed() const = 0;

  // Timeouts. The route timeout's deadline (max: none, or the request has
  // not ended yet) and the stream idle timeout (0: none).
  virtual std::chrono::steady_clock::time_point routeDeadline() const = 0;
  virtual std::chrono::milliseconds streamIdle() const = 0;

  // Response side. onUpstreamHeaders() returns true to drop this response
  // so that the request is retried (a retriable status).
  virtual bool onUpstreamHeaders(ResponseHead& head, bool end_stream) = 0;
  virtual void onUpstreamData(std::span<const char> data, bool end_stream) = 0;
  virtual void onUpstreamTrailers(HeaderMap& trailers) = 0;
  // Writes to the client what the response events produced. False: the
  // client is gone.
  virtual Awaitable<bool> flushResponse() = 0;
  // flushResponse() when it would complete at once with true (HTTP/2 with
  // the bytes within the stream's write-behind allowance): does it and
  // returns true, with no coroutine made and resumed. False: nothing done,
  // await flushResponse().
  virtual bool tryFlushResponse() { return false; }
};

class UpstreamRequest : public ResponseDecoderCallbacks {
 public:
  // Where the exchange stands. The request side (is the whole request sent?)
  // and the response side (none, started, complete, dropped) move
  // independently; each combination the router must tell apart is a state.
  enum class State : uint8_t {
    Sending,           // request still going up; no response yet
    AwaitingResponse,  // whole request sent; no response yet
    EarlyResponse,     // response started before the request was sent whole
    Responding,        // whole request sent; response started
    CompleteEarly,     // response complete before the request was sent whole
    Complete,          // whole request sent and whole response received
    Discarding,        // a retriable response is being read and dropped
    Reset,             // the stream ended without a complete response
  };
  enum class Event : uint8_t { RequestSent, ResponseHeaders, ResponseComplete, Discard, Reset };
  // The one transition function; an event that does not apply leaves the
  // state as it is (e.g. a reset after the response completed).
  static State transition(State state, Event event);

  // Why the watchdog ended the attempt.
  enum class Timeout : uint8_t { None, Global, PerTry, PerTryIdle, StreamIdle };

  struct Result {
    State state = State::Sending;
    bool response_started = false;  // response headers went to the parent
    bool request_sent = false;      // the end of the request went upstream
    Timeout timeout = Timeout::None;
    StreamResetReason reset_reason = StreamResetReason::kLocalReset;
    bool eof = false;                 // the upstream closed the connection
    bool upstream_write_failed = false;
    uint32_t status = 0;  // response status seen (0: none), dropped ones included
  };

  // `policy`: the retry policy whose per_try_timeout and
  // per_try_idle_timeout apply (null: none).
  UpstreamRequest(UpstreamRequestParent& parent, WorkerCluster& cluster, HostState& host,
                  stats::Shard& shard, UpstreamStreamPtr stream, const routing::RetryPolicy* policy,
                  const Executor& ex, DeadlineQueue& deadlines);
  ~UpstreamRequest() override;  // finish(false) if not finished
  UpstreamRequest(const UpstreamRequest&) = delete;
  UpstreamRequest& operator=(const UpstreamRequest&) = delete;

  // The max_requests breaker (Envoy checks it when a request is attached to
  // a connection); false: overflow, upstream_rq_pending_overflow counted, and
  // the stream is given back. Then the request counts as active.
  bool start();
  // Sends the request and reads the response until it completes, is
  // dropped, fails or times out (a request mirror's exchange).
  Awaitable<Result> run();

  // run()'s steps, for a caller that awaits them in its own coroutine:
  // ActiveStream::run() does, and a request makes one coroutine frame fewer
  // (with hundreds of requests in flight each frame is cache lines made on
  // the way up and read, cold, when the response comes). run() is
  //   std::optional<bool> sent = u.sendStart();
  //   if (!sent) sent = co_await u.stream().send();
  //   u.onStartSent(*sent);
  //   while (u.receiving()) {
  //     got = co_await receive();  (ActiveStream::run(): tryReceive(), else
  //           co_await receiveWait() where the stream waitsInPlace(), else
  //           co_await receive(); no frame per response)
  //     if (u.onReceived(got)) u.onFlushed(co_await parent.flushResponse());
  //   }
  //   if (u.pumpRunning()) co_await u.stopPump();
  //   return u.result();
  // The head and every request byte received so far, encoded and sent
  // where the socket takes them at once: send()'s result, or empty where
  // send() must be awaited.
  std::optional<bool> sendStart();
  // send()'s result for sendStart()'s bytes; starts the request body pump
  // where the request has not ended yet.
  void onStartSent(bool sent);
  // The response is still being read.
  bool receiving() const {
    return !stopped_ && !ended() && fired_ == Timeout::None && !parent_.downstreamFailed();
  }
  // A receive()'s result: true when what the response events produced must
  // still go to the client (await the parent's flushResponse() and pass its
  // result to onFlushed()).
  bool onReceived(const UpstreamStream::ReceiveResult& got);
  void onFlushed(bool flushed);
  bool pumpRunning() const { return pump_running_; }
  // Ends a request body pump still running (the response ended first) and
  // waits until it has.
  Awaitable<void> stopPump();
  // How the exchange ended, once it has (after stopPump()).
  Result result();
  // Gives the stream back (`reusable`: the exchange ended cleanly) and ends
  // the request's accounting. Once.
  void finish(bool reusable);

  UpstreamStream& stream() { return *stream_; }
  State state() const { return state_; }
  std::chrono::steady_clock::time_point startTime() const { return start_; }

  // ResponseDecoderCallbacks (the stream's response events).
  void onMessageBegin() override {}
  void onHeaders(ResponseHead& head, bool end_stream) override;
  void onData(std::span<const char> data, bool end_stream) override;
  void onTrailers(HeaderMap& trailers) override;
  void onMessageComplete() override;
  void onInformational(ResponseHead&) override {}

 private:
  void apply(Event e) { state_ = transition(state_, e); }
  bool ended() const {
    return state_ == State::Complete || state_ == State::CompleteEarly ||
           state_ == State::Discarding || state_ == State::Reset;
  }
  Awaitable<void> pumpRequestBody();
  void onRequestSent();
  // What follows a receive() once its events went to the client.
  void afterFlush();
  // (Re)arms the watchdog to the earliest pending timeout.
  void armWatchdog();
  void onWatchdog();

  // Three 64-byte lines, as the router's fields (router_filter.h).
  UpstreamRequestParent& parent_;
  WorkerCluster& cluster_;
  HostState& host_;
  stats::Shard& shard_;
  UpstreamStreamPtr stream_;
  const routing::RetryPolicy* policy_;
  std::chrono::steady_clock::time_point start_;
  // Per-try timeout, from the end of the request on this attempt; max = none.
  std::chrono::steady_clock::time_point try_deadline_ = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point last_activity_;  // upstream bytes either way
  Executor ex_;
  DeadlineQueue::Deadline watchdog_;  // the earliest of the timeouts
  uint32_t status_ = 0;
  State state_ = State::Sending;
  bool started_ = false;
  bool finished_ = false;
  bool pump_running_ = false;
  bool stop_pump_ = false;
  bool upstream_write_failed_ = false;
  bool request_sent_ = false;
  bool response_started_ = false;
  Timeout fired_ = Timeout::None;
  bool whole_request_encoded_ = false;  // by sendStart()
  bool stopped_ = false;                // the reader is done (a reset, or the client failed)
  // The last receive()'s reset, applied once its events were flushed.
  bool got_reset_ = false;
  bool eof_ = false;
  StreamResetReason reset_reason_ = StreamResetReason::kLocalReset;
  // Notified when the pump ends; made by stopPump()'s first wait (most
  // requests have no pump, or one that ended before the response).
  std::unique_ptr<Signal> pump_done_;
};

}  // namespace turnout::proxy
