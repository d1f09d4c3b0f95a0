#pragma once

// A whole load run on the main thread: resolve the target and check that it
// accepts a connection, start one LoadWorker per thread, show progress, end
// the run (window over, -n met, SIGINT/SIGTERM, or a hard deadline that
// always fires), then merge the workers' stats.

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "bench/turnout_bench/bench_options.h"
#include "bench/turnout_bench/request_set.h"
#include "bench/turnout_bench/run_stats.h"

namespace turnout::bench {

struct RunOutcome {
  explicit RunOutcome(const RequestSet& requests)
      : stats(requests.routeCount(), requests.keyCount()) {}

  RunStats stats;
  double measured_s = 0;     // the measurement window actually covered
  double drain_s = 0;        // open loop: how long after it the last request finished
  bool interrupted = false;  // ended early by a signal
  bool aborted = false;      // a worker had to be stopped by the hard deadline
  std::chrono::system_clock::time_point started_at;
  std::string address;  // the address connected to, e.g. 127.0.0.1:8080
};

// `progress`: write a progress line to stderr once a second.
// Errors: Unavailable when the host does not resolve or refuses the probe
// connection (the message says which and why).
absl::StatusOr<RunOutcome> runLoad(const BenchOptions& options, const RequestSet& requests,
                                   bool progress);

}  // namespace turnout::bench
