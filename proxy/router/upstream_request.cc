#include "proxy/router/upstream_request.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "proxy/common/resume.h"
#include "proxy/common/spawn.h"
#include "proxy/upstream/cluster_manager.h"

namespace turnout::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

}  // namespace

UpstreamRequest::State UpstreamRequest::transition(State state, Event event) {
  switch (state) {
    case State::Sending:
      switch (event) {
        case Event::RequestSent: return State::AwaitingResponse;
        case Event::ResponseHeaders: return State::EarlyResponse;
        case Event::ResponseComplete: return state;  // no headers yet: not a response
        case Event::Discard: return State::Discarding;
        case Event::Reset: return State::Reset;
      }
      break;
    case State::AwaitingResponse:
      switch (event) {
        case Event::RequestSent: return state;
        case Event::ResponseHeaders: return State::Responding;
        case Event::ResponseComplete: return state;
        case Event::Discard: return State::Discarding;
        case Event::Reset: return State::Reset;
      }
      break;
    case State::EarlyResponse:
      switch (event) {
        case Event::RequestSent: return State::Responding;
        case Event::ResponseComplete: return State::CompleteEarly;
        case Event::Reset: return State::Reset;
        case Event::ResponseHeaders:
        case Event::Discard: return state;
      }
      break;
    case State::Responding:
      switch (event) {
        case Event::ResponseComplete: return State::Complete;
        case Event::Reset: return State::Reset;
        case Event::RequestSent:
        case Event::ResponseHeaders:
        case Event::Discard: return state;
      }
      break;
    case State::CompleteEarly:
      return event == Event::RequestSent ? State::Complete : state;
    case State::Complete:
    case State::Discarding:
    case State::Reset: return state;
  }
  return state;
}

UpstreamRequest::UpstreamRequest(UpstreamRequestParent& parent, WorkerCluster& cluster,
                                 HostState& host, stats::Shard& shard, UpstreamStreamPtr stream,
                                 const routing::RetryPolicy* policy, const Executor& ex,
                                 DeadlineQueue& deadlines)
    : parent_(parent),
      cluster_(cluster),
      host_(host),
      shard_(shard),
      stream_(std::move(stream)),
      policy_(policy),
      ex_(ex),
      watchdog_(
          deadlines, [](void* self) { static_cast<UpstreamRequest*>(self)->onWatchdog(); }, this) {}

UpstreamRequest::~UpstreamRequest() { finish(false); }

bool UpstreamRequest::start() {
  const auto& stats = cluster_.runtime().stats;
  if (!cluster_.tryStartRequest()) {
    shard_.inc(stats.upstream_rq_pending_overflow());
    // The connection did nothing wrong: it goes back to the pool.
    finished_ = true;
    stream_.finish(true);
    return false;
  }
  started_ = true;
  ++host_.active_requests;
  ++host_.rq_total;
  shard_.inc(stats.upstream_rq_total());
  shard_.add(stats.upstream_rq_active(), 1);
  start_ = Clock::now();
  last_activity_ = start_;
  return true;
}

void UpstreamRequest::finish(bool reusable) {
  if (finished_) return;
  finished_ = true;
  if (started_) {
    --host_.active_requests;
    cluster_.endRequest();
    shard_.sub(cluster_.runtime().stats.upstream_rq_active(), 1);
  }
  stream_.finish(reusable);
}

Awaitable<UpstreamRequest::Result> UpstreamRequest::run() {
  // Every co_await here is assigned to a local before it is tested: GCC 12
  // miscompiles `if (!co_await virtualCall())` when the callee suspends (the
  // caller's frame was resumed with a stale state; seen as a crash in
  // RouterFilter::flushResponse).
  std::optional<bool> sent = sendStart();
  if (!sent) sent = co_await stream_->send();
  onStartSent(*sent);
  // A mirror is rare: receive() (a frame per call) rather than the
  // frameless tryReceive()/receiveWait() of the router's copy of this loop
  // (ActiveStream::run()).
  while (receiving()) {
    const UpstreamStream::ReceiveResult got = co_await stream_->receive();
    if (onReceived(got)) {
      const bool flushed = co_await parent_.flushResponse();
      onFlushed(flushed);
    }
  }
  if (pump_running_) co_await stopPump();
  co_return result();
}

std::optional<bool> UpstreamRequest::sendStart() {
  UpstreamStream& s = *stream_;
  s.setResponseCallbacks(this);
  // The head and every body byte received so far (a retry replays what an
  // earlier attempt sent); then the pump streams the rest beside the reader.
  parent_.encodeRequestStart(s);
  // Whether that was the whole request, decided now and not after send():
  // an HTTP/2 client's body keeps arriving while send() waits (for the
  // connection being opened, or for the upstream's window), and what came
  // then, up to the end of the request, is the pump's to forward. Deciding
  // it after send() lost that tail: the upstream waited for the rest of a
  // message that never came (a gRPC client stream ended DEADLINE_EXCEEDED).
  whole_request_encoded_ = parent_.requestComplete();
  // Mostly the request fits the socket's buffer and goes at once.
  return s.trySend();
}

void UpstreamRequest::onStartSent(bool sent) {
  if (!sent) {
    upstream_write_failed_ = true;
    armWatchdog();
  } else if (whole_request_encoded_) {
    onRequestSent();
  } else {
    pump_running_ = true;
    asio::co_spawn(ex_, pumpRequestBody(), LogEscapedException{"router", "request body pump"});
    armWatchdog();
  }
}

bool UpstreamRequest::onReceived(const UpstreamStream::ReceiveResult& got) {
  if (!got.reset) last_activity_ = Clock::now();
  got_reset_ = got.reset;
  eof_ = got.eof;
  reset_reason_ = got.reason;
  // What the events produced goes to the client, also after a clean EOF
  // that completed a close-delimited response.
  if ((!got.reset || got.eof) && !parent_.tryFlushResponse()) return true;
  afterFlush();
  return false;
}

void UpstreamRequest::onFlushed(bool flushed) {
  if (flushed) {
    afterFlush();
  } else {
    // The parent saw the client fail; the upstream's reset, if any, is not
    // what ended the exchange.
    stopped_ = true;
    eof_ = false;
    reset_reason_ = StreamResetReason::kLocalReset;
  }
}

void UpstreamRequest::afterFlush() {
  if (!got_reset_) {
    eof_ = false;
    reset_reason_ = StreamResetReason::kLocalReset;
    return;
  }
  stopped_ = true;
  apply(Event::Reset);
}

UpstreamRequest::Result UpstreamRequest::result() {
  watchdog_.clear();  // nothing refers to this once cleared: no handler is outstanding
  if (upstream_write_failed_ || fired_ != Timeout::None || parent_.downstreamFailed()) {
    apply(Event::Reset);
  }
  Result r;
  r.reset_reason = reset_reason_;
  r.eof = eof_;
  // A refused stream (HTTP/2) also fails its send(); it keeps its reason so
  // that the router can send it again.
  if (upstream_write_failed_ && !isRefusedStream(r.reset_reason)) {
    r.reset_reason = StreamResetReason::kConnectionTermination;
  }
  if (fired_ != Timeout::None) r.reset_reason = StreamResetReason::kLocalReset;
  r.state = state_;
  r.response_started = response_started_;
  r.request_sent = request_sent_;
  r.timeout = fired_;
  r.upstream_write_failed = upstream_write_failed_;
  r.status = status_;
  return r;
}

void UpstreamRequest::onRequestSent() {
  request_sent_ = true;
  apply(Event::RequestSent);
  if (policy_ != nullptr && policy_->per_try_timeout && policy_->per_try_timeout->count() > 0) {
    try_deadline_ = Clock::now() + *policy_->per_try_timeout;
  }
  parent_.onRequestSent();
  armWatchdog();
}

Awaitable<void> UpstreamRequest::pumpRequestBody() {
  UpstreamStream& s = *stream_;
  while (!stop_pump_) {
    const bool more = co_await parent_.encodeMoreRequest(&s);
    if (!more) {
      if (stop_pump_) break;
      // The client went away or sent a malformed body mid-request: the
      // reader stops too.
      s.resetStream(StreamResetReason::kLocalReset);
      break;
    }
    const bool complete = parent_.requestComplete();
    std::optional<bool> sent_now = s.trySend();
    bool sent = false;
    if (sent_now) {
      sent = *sent_now;
    } else {
      sent = co_await s.send();
    }
    if (!sent) {
      upstream_write_failed_ = !stop_pump_;
      break;
    }
    last_activity_ = Clock::now();
    if (complete) {
      onRequestSent();
      break;
    }
  }
  pump_running_ = false;
  if (pump_done_) pump_done_->notify();
}

void UpstreamRequest::armWatchdog() {
  Clock::time_point at = parent_.routeDeadline();
  // Envoy ignores the per-try timeout once the response has started.
  if (!response_started_) at = std::min(at, try_deadline_);
  if (request_sent_ && policy_ != nullptr && policy_->per_try_idle_timeout &&
      policy_->per_try_idle_timeout->count() > 0) {
    at = std::min(at, last_activity_ + *policy_->per_try_idle_timeout);
  }
  const milliseconds idle = parent_.streamIdle();
  if (idle.count() > 0) at = std::min(at, last_activity_ + idle);
  watchdog_.expiresAt(at);  // max() clears it
}

void UpstreamRequest::onWatchdog() {
  if (fired_ != Timeout::None) return;
  const Clock::time_point now = Clock::now();
  const milliseconds idle = parent_.streamIdle();
  if (now >= parent_.routeDeadline()) {
    fired_ = Timeout::Global;
  } else if (!response_started_ && now >= try_deadline_) {
    fired_ = Timeout::PerTry;
  } else if (request_sent_ && policy_ != nullptr && policy_->per_try_idle_timeout &&
             policy_->per_try_idle_timeout->count() > 0 &&
             now >= last_activity_ + *policy_->per_try_idle_timeout) {
    fired_ = Timeout::PerTryIdle;
  } else if (idle.count() > 0 && now >= last_activity_ + idle) {
    fired_ = Timeout::StreamIdle;
  } else {
    armWatchdog();  // activity since it was armed: not idle yet
    return;
  }
  // Wakes the reader (and the pump's upstream write); both see `fired_`.
  stream_->resetStream(StreamResetReason::kLocalReset);
}

Awaitable<void> UpstreamRequest::stopPump() {
  stop_pump_ = true;
  // Nothing else is outstanding on either side now: the reader is done.
  parent_.stopRequestBody();
  stream_->resetStream(StreamResetReason::kLocalReset);
  boost::system::error_code ec;
  while (pump_running_) {
    if (!pump_done_) pump_done_ = std::make_unique<Signal>(ex_);
    co_await waitOn(*pump_done_, &ec);
  }
}

void UpstreamRequest::onHeaders(ResponseHead& head, bool end_stream) {
  status_ = head.status;
  if (!response_started_ && parent_.onUpstreamHeaders(head, end_stream)) {
    apply(Event::Discard);
    return;
  }
  response_started_ = true;
  apply(Event::ResponseHeaders);
  armWatchdog();  // the per-try timeout no longer applies
  if (end_stream) apply(Event::ResponseComplete);
}

void UpstreamRequest::onData(std::span<const char> data, bool end_stream) {
  if (state_ == State::Discarding) return;
  parent_.onUpstreamData(data, end_stream);
  if (end_stream) apply(Event::ResponseComplete);
}

void UpstreamRequest::onTrailers(HeaderMap& trailers) {
  if (state_ == State::Discarding) return;
  parent_.onUpstreamTrailers(trailers);
  apply(Event::ResponseComplete);
}

void UpstreamRequest::onMessageComplete() {
  if (state_ != State::Discarding) apply(Event::ResponseComplete);
}

}  // namespace turnout::proxy
