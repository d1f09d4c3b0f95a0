#include "bench/turnout_bench/load_worker.h"

#include <algorithm>
#include <cstdio>
#include <exception>

#include "bench/turnout_bench/http1_session.h"
#include "bench/turnout_bench/http2_session.h"

namespace turnout::bench {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

constexpr milliseconds kWatchdogTick{20};
constexpr milliseconds kFirstBackoff{10};
constexpr milliseconds kMaxBackoff{1000};

uint64_t elapsedNs(Clock::time_point from, Clock::time_point to) {
  return to > from ? static_cast<uint64_t>(duration_cast<nanoseconds>(to - from).count()) : 0;
}

MeasureWindow windowOf(const RunPlan& plan) {
  return plan.options->rate
             ? MeasureWindow::openLoop(plan.measure_start, plan.measure_end, plan.timeout)
             : MeasureWindow::closedLoop(plan.measure_start, plan.measure_end);
}

}  // namespace

struct LoadWorker::Connection {
  Connection(asio::io_context& io, const RunPlan& plan, const Transport& transport,
             uint32_t index)
      : session(makeSession(io, *plan.options, transport)), timer(io), streams_done(io) {
    if (plan.options->rate) {
      schedule.emplace(*plan.options->rate, plan.total_connections, index);
    }
    for (uint32_t i = 0; i < plan.options->streams; ++i) {
      stream_timers.push_back(std::make_unique<SteadyTimer>(io));
    }
  }
  static std::unique_ptr<ClientSession> makeSession(asio::io_context& io, const BenchOptions& o,
                                                    const Transport& t) {
    if (o.h2) {
      if (t.tls != nullptr) return std::make_unique<Http2Session<TlsStream>>(io, t);
      return std::make_unique<Http2Session<TcpStream>>(io, t);
    }
    if (t.tls != nullptr) return std::make_unique<Http1Session<TlsStream>>(io, t);
    return std::make_unique<Http1Session<TcpStream>>(io, t);
  }

  // A request to send again on the next connection.
  struct Retry {
    Clock::time_point due;
    bool late;
    const RequestTemplate* request;
  };

  std::unique_ptr<ClientSession> session;
  SteadyTimer timer;         // reconnect back-off
  SteadyTimer streams_done;  // cancelled when the last stream loop ends
  std::vector<std::unique_ptr<SteadyTimer>> stream_timers;  // open-loop due times
  std::optional<RateSchedule> schedule;
  std::vector<Retry> retries;
  uint32_t live_streams = 0;
};

LoadWorker::LoadWorker(const RunPlan& plan, uint32_t first_connection, uint32_t connections,
                       std::optional<uint64_t> quota)
    : plan_(plan),
      window_(windowOf(plan)),
      quota_(quota),
      end_timer_(io_),
      watchdog_timer_(io_),
      keys_(plan.options->key_mix.weights()),
      stats_(plan.requests->routeCount(), plan.requests->keyCount()) {
  const BenchOptions& o = *plan.options;
  if (o.target.tls()) tls_ = makeClientTlsContext(o.h2 ? "h2" : "http/1.1");
  transport_ = Transport{plan.endpoint, tls_.get(), o.target.host, o.h2};
  connections_.reserve(connections);
  for (uint32_t i = 0; i < connections; ++i) {
    connections_.push_back(
        std::make_unique<Connection>(io_, plan, transport_, first_connection + i));
  }
}

LoadWorker::~LoadWorker() = default;

void LoadWorker::run() {
  if (quota_ && *quota_ == 0) return;
  live_loops_ = static_cast<uint32_t>(connections_.size());
  for (uint32_t i = 0; i < connections_.size(); ++i) {
    asio::co_spawn(io_, connectionLoop(i), [this](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "turnout-bench: connection loop failed: %s\n", ex.what());
        }
      }
      if (--live_loops_ == 0) shutdown();
    });
  }
  asio::co_spawn(io_, watchdog(), [](std::exception_ptr e) {
    if (e) std::fprintf(stderr, "turnout-bench: watchdog failed\n");
  });
  end_timer_.expires_at(window_.deadline());
  end_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) deadlineReached();
  });
  io_.run();
}

void LoadWorker::deadlineReached() {
  if (stopping_) return;
  if (window_.openLoop()) {
    // Requests due in the window that have not finished by now: taken from
    // a timetable (in flight, queued for a retry) or never sent at all.
    const auto offset = [&](Clock::time_point t) { return elapsedNs(plan_.start, t); };
    uint64_t timeouts = outstanding_;
    for (const auto& c : connections_) {
      timeouts += c->schedule->pendingIn(offset(window_.start()), offset(window_.end()));
    }
    if (quota_) timeouts = std::min(timeouts, *quota_ - std::min(*quota_, finished_));
    stats_.errors[static_cast<size_t>(ErrorKind::kTimeout)] += timeouts;
    finished_ += timeouts;
    progress_errors_.store(progress_errors_.load(std::memory_order_relaxed) + timeouts,
                           std::memory_order_relaxed);
  }
  shutdown();
}

void LoadWorker::stop() {
  asio::post(io_, [this] { shutdown(); });
}

void LoadWorker::abort() { io_.stop(); }

void LoadWorker::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  end_timer_.cancel();
  watchdog_timer_.cancel();
  for (auto& c : connections_) {
    c->session->close();
    c->timer.cancel();
    c->streams_done.cancel();
    for (auto& t : c->stream_timers) t->cancel();
  }
}

Awaitable<void> LoadWorker::watchdog() {
  boost::system::error_code ec;
  while (!stopping_) {
    watchdog_timer_.expires_after(kWatchdogTick);
    co_await watchdog_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stopping_) break;
    const Clock::time_point now = Clock::now();
    for (auto& c : connections_) c->session->expireIfPast(now);
  }
}

bool LoadWorker::mayIssue(Clock::time_point due, Clock::time_point now) const {
  if (!quota_ || !window_.counts(due, now)) return true;
  return finished_ + in_flight_ < *quota_;
}

bool LoadWorker::hasWork(const Connection& c) const {
  if (!c.schedule || !c.retries.empty()) return true;
  return window_.schedules(plan_.start + nanoseconds(c.schedule->peek()));
}

const RequestTemplate& LoadWorker::nextRequest() {
  const uint32_t key = static_cast<uint32_t>(keys_.next());
  const uint32_t route = next_route_;
  if (++next_route_ == plan_.requests->routeCount()) next_route_ = 0;
  return plan_.requests->get(route, key);
}

Awaitable<void> LoadWorker::connectionLoop(uint32_t slot) {
  Connection& c = *connections_[slot];
  const uint32_t streams = static_cast<uint32_t>(c.stream_timers.size());
  boost::system::error_code ec;
  Clock::duration backoff = kFirstBackoff;
  while (!stopping_ && hasWork(c)) {
    const ErrorKind err = co_await c.session->connect(Clock::now() + plan_.timeout);
    if (stopping_) break;
    if (err != ErrorKind::kNone) {
      bump(progress_errors_);
      if (window_.coversEvent(Clock::now())) {
        ++stats_.errors[static_cast<size_t>(ErrorKind::kConnect)];
      }
      c.timer.expires_after(backoff);
      co_await c.timer.async_wait(asio::redirect_error(use_awaitable, ec));
      backoff = std::min<Clock::duration>(backoff * 2, kMaxBackoff);
      continue;
    }
    backoff = kFirstBackoff;
    if (window_.coversEvent(Clock::now())) ++stats_.connections_opened;
    if (streams == 1) {
      co_await streamLoop(slot, 0);
    } else {
      c.live_streams = streams;
      for (uint32_t i = 0; i < streams; ++i) {
        asio::co_spawn(io_, streamLoop(slot, i), [&c](std::exception_ptr e) {
          if (e) std::fprintf(stderr, "turnout-bench: stream loop failed\n");
          if (--c.live_streams == 0) c.streams_done.cancel();
        });
      }
      if (c.live_streams > 0) {
        c.streams_done.expires_at(Clock::time_point::max());
        co_await c.streams_done.async_wait(asio::redirect_error(use_awaitable, ec));
      }
    }
    // Streams end with their connection, or when the quota (or, in open
    // loop, the end of the timetable) leaves nothing to send.
    if (c.session->isOpen()) break;
  }
}

Awaitable<void> LoadWorker::streamLoop(uint32_t slot, uint32_t stream) {
  Connection& c = *connections_[slot];
  SteadyTimer& timer = *c.stream_timers[stream];
  boost::system::error_code ec;
  while (!stopping_ && c.session->isOpen()) {
    Clock::time_point now = Clock::now();
    Clock::time_point due = now;
    bool late = false;
    const RequestTemplate* request = nullptr;
    if (!c.retries.empty()) {
      due = c.retries.back().due;
      late = c.retries.back().late;
      request = c.retries.back().request;
      c.retries.pop_back();
    } else if (c.schedule) {
      due = plan_.start + nanoseconds(c.schedule->peek());
      // The timetable ends with the window; what is due in it is still sent.
      if (!window_.schedules(due)) break;
      c.schedule->next();
      if (window_.awaits(due)) ++outstanding_;
      if (now < due) {
        timer.expires_at(due);
        co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
        if (stopping_) break;
        now = Clock::now();
      } else {
        late = true;
      }
      if (!c.session->isOpen()) {  // closed while we waited: send it on the next one
        c.retries.push_back({due, late, &nextRequest()});
        break;
      }
    }
    if (!mayIssue(due, now)) break;
    if (request == nullptr) request = &nextRequest();
    const bool counted = quota_ && window_.counts(due, now);
    if (counted) ++in_flight_;
    const ExchangeResult result = co_await c.session->exchange(*request, now + plan_.timeout);
    if (counted) --in_flight_;
    if (stopping_) break;
    if (result.retry) {
      c.retries.push_back({due, late, request});
      continue;
    }
    finish(*request, result, due, now, Clock::now(), late);
  }
}

void LoadWorker::finish(const RequestTemplate& request, const ExchangeResult& r,
                        Clock::time_point due, Clock::time_point sent, Clock::time_point done,
                        bool late) {
  bump(r.error != ErrorKind::kNone ? progress_errors_ : progress_responses_);
  if (window_.awaits(due)) --outstanding_;
  if (!window_.counts(due, done)) return;
  if (r.error != ErrorKind::kNone) ++stats_.errors[static_cast<size_t>(r.error)];
  if (quota_ && finished_ >= *quota_) return;
  ++finished_;
  stats_.bytes_read += r.bytes_read;
  if (r.error == ErrorKind::kNone) {
    const uint64_t latency = elapsedNs(due, done);
    stats_.latency.record(latency);
    if (plan_.options->rate) stats_.uncorrected.record(elapsedNs(sent, done));
    if (!stats_.route_latency.empty()) stats_.route_latency[request.route].record(latency);
    ++stats_.route_requests[request.route];
    ++stats_.key_requests[request.key];
    ++stats_.status[r.status >= 100 && r.status < 600 ? r.status : 0];
    ++stats_.requests;
    if (late) ++stats_.late;
  }
  stats_.last_completion = done;
  if (quota_ && finished_ >= *quota_) shutdown();
}

}  // namespace turnout::bench
