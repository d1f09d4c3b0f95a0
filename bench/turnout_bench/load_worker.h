#pragma once

// One load thread: its own io_context, its share of the connections (one
// coroutine each), its own RunStats. Nothing is shared with other workers
// while the run lasts except the immutable RunPlan and two progress counters
// that only this thread writes.
//
// Closed loop: a stream (one per HTTP/1.1 connection, --streams per h2c
// connection) sends its next request as soon as the previous response is
// complete. Open loop: the connection's free streams take the requests of
// its RateSchedule in order and send each at its due time, or as soon as one
// is free if none was then (the request is late); latency counts from the
// due time either way. A request the server never processed (a stale
// keep-alive connection, a stream refused after GOAWAY) is sent again on the
// next connection with its original due time.
//
// The measurement window (MeasureWindow): closed loop counts what completes
// in it and stops at its end. Open loop counts every request due in it: at
// its end the timetable stops, but what is due in it is still sent and
// awaited until end + --timeout, when whatever is left counts as a timeout.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "bench/turnout_bench/bench_options.h"
#include "bench/turnout_bench/client_session.h"
#include "bench/turnout_bench/key_mix.h"
#include "bench/turnout_bench/measure_window.h"
#include "bench/turnout_bench/rate_schedule.h"
#include "bench/turnout_bench/request_set.h"
#include "bench/turnout_bench/run_stats.h"
#include "bench/turnout_bench/transport.h"

namespace turnout::bench {

// The run as every worker sees it. Immutable while workers run.
struct RunPlan {
  const BenchOptions* options = nullptr;
  const RequestSet* requests = nullptr;
  asio::ip::tcp::endpoint endpoint;
  Clock::time_point start;          // origin of the open-loop timetable
  Clock::time_point measure_start;  // start + warm-up
  Clock::time_point measure_end;    // the end of the window (always finite)
  Clock::duration timeout{};
  uint32_t total_connections = 0;
};

class LoadWorker {
 public:
  // Connections [first_connection, first_connection + connections) of the
  // run. `quota`: stop after this many finished requests (responses and
  // request errors) in the window; nullopt = until the window is over
  // (closed loop: measure_end; open loop: every request due before it has
  // finished, or measure_end + timeout).
  LoadWorker(const RunPlan& plan, uint32_t first_connection, uint32_t connections,
             std::optional<uint64_t> quota);
  ~LoadWorker();
  LoadWorker(const LoadWorker&) = delete;
  LoadWorker& operator=(const LoadWorker&) = delete;

  // The worker thread's body: returns when the window is over, the quota is
  // met, or stop()/abort() was called.
  void run();
  // Any thread: ends the run gracefully (in-flight requests are not counted).
  void stop();
  // Any thread: stops the io_context at once (the runner's hard deadline).
  void abort();

  // After run() has returned.
  const RunStats& stats() const { return stats_; }
  // Any thread, approximate: responses and errors so far, warm-up included.
  uint64_t progressResponses() const { return progress_responses_.load(std::memory_order_relaxed); }
  uint64_t progressErrors() const { return progress_errors_.load(std::memory_order_relaxed); }

 private:
  struct Connection;

  // Connects (and reconnects) connection `slot` and runs its streams.
  Awaitable<void> connectionLoop(uint32_t slot);
  // One request at a time on connection `slot` until it closes: HTTP/1.1
  // runs one per connection, h2c --streams of them.
  Awaitable<void> streamLoop(uint32_t slot, uint32_t stream);
  Awaitable<void> watchdog();
  // Whether a connection may send another request, due at `due`, now.
  bool mayIssue(Clock::time_point due, Clock::time_point now) const;
  // Whether connection `c` has anything left to send: always in closed
  // loop; in open loop, a retry or a request due before measure_end.
  bool hasWork(const Connection& c) const;
  const RequestTemplate& nextRequest();
  void finish(const RequestTemplate& request, const ExchangeResult& result,
              Clock::time_point due, Clock::time_point sent, Clock::time_point done, bool late);
  // The window's deadline: in open loop, whatever is still due in the
  // window counts as a timeout; then shutdown().
  void deadlineReached();
  void shutdown();
  static void bump(std::atomic<uint64_t>& counter) {
    counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  const RunPlan& plan_;
  const MeasureWindow window_;
  std::optional<uint64_t> quota_;
  asio::io_context io_{1};
  SteadyTimer end_timer_;
  SteadyTimer watchdog_timer_;
  std::unique_ptr<asio::ssl::context> tls_;  // https:// only; this worker's
  Transport transport_;                      // what the sessions connect with
  std::vector<std::unique_ptr<Connection>> connections_;
  WeightedSequence keys_;
  uint32_t next_route_ = 0;
  RunStats stats_;
  uint64_t finished_ = 0;   // responses and request errors in the window
  uint64_t in_flight_ = 0;  // -n: requests in flight that will count when they finish
  // Open loop: requests due in the window taken from a timetable and not
  // finished yet (waiting for their due time, in flight, or queued for a retry).
  uint64_t outstanding_ = 0;
  uint32_t live_loops_ = 0;
  bool stopping_ = false;
  std::atomic<uint64_t> progress_responses_{0};
  std::atomic<uint64_t> progress_errors_{0};
};

}  // namespace turnout::bench
