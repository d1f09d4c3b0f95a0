#pragma once

// A run's results as text (wrk-like, for people) and as JSON (everything,
// for scripts and `compare`), and a JSON report read back.
//
// JSON format 1, top level: tool, format, label, target, address, started_at,
// config{mode, protocol (http/1.1, h2c, h2), tls, streams, threads, connections, rate, duration_s, requests_limit,
// warmup_s, timeout_s, method, paths, headers, body_size, key_header,
// key_mix}, interrupted, duration_s, window (completion-time in closed loop,
// intended-send-time in open loop: which requests the window counts),
// drain_s, requests, rps, bytes_read, bytes_per_s,
// connections_opened, late, latency{basis, us{min, mean, stdev, p50, p75,
// p90, p99, p99.9, p99.99, max}, histogram}, uncorrected_latency (open loop),
// status{"200": n}, errors{connect, read, write, timeout, parse, total},
// keys[{key, weight, requests}], routes[{path, requests, latency_us?}].
// A histogram is {unit: "ns", significant_digits, count, min, max, sum,
// sum_sq, buckets: [[lowest, highest, count], ...]} with non-empty buckets
// only; recording `count` at `lowest` rebuilds it exactly.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "bench/turnout_bench/bench_options.h"
#include "bench/turnout_bench/latency_histogram.h"
#include "bench/turnout_bench/load_run.h"

namespace turnout::bench {

std::string renderText(const BenchOptions& options, const RunOutcome& outcome);
std::string renderJson(const BenchOptions& options, const RunOutcome& outcome);

// "56.78us", "1.23ms", "2.00s" (two decimals; ns below 1 us).
std::string formatLatency(uint64_t ns);

// What `compare` needs from a saved report.
struct SavedReport {
  std::string path;
  std::string label;
  std::string mode;  // "closed-loop" or "open-loop"
  std::optional<double> rate;
  uint32_t threads = 0;
  uint32_t connections = 0;
  double duration_s = 0;
  uint64_t requests = 0;
  double rps = 0;
  uint64_t errors = 0;
  LatencyHistogram latency;
};

// Reads a report written by --json. Errors name the file and the field.
absl::StatusOr<SavedReport> loadReport(const std::string& path);

}  // namespace turnout::bench
