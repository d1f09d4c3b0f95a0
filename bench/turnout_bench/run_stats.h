#pragma once

// What a run measured. Each LoadWorker fills its own RunStats on its thread
// (plain fields, no atomics); the runner merges them after the workers have
// stopped. Only requests of the measurement window are counted: those that
// complete inside it (closed loop) or are due inside it (open loop; see
// MeasureWindow).

#include <array>
#include <cstdint>
#include <vector>

#include "bench/turnout_bench/client_session.h"
#include "bench/turnout_bench/latency_histogram.h"

namespace turnout::bench {

struct RunStats {
  RunStats(uint32_t routes, uint32_t keys);

  // Adds `other` (same routes and keys).
  void merge(const RunStats& other);
  uint64_t errorTotal() const;

  // Closed loop: from send to response. Open loop: from the request's
  // intended send time (coordinated omission corrected).
  LatencyHistogram latency;
  // Open loop only: from the actual send time, as an uncorrected tool reports.
  LatencyHistogram uncorrected;
  // Per route, when there are several routes (empty otherwise).
  std::vector<LatencyHistogram> route_latency;
  std::vector<uint64_t> route_requests;
  std::vector<uint64_t> key_requests;
  // Responses by status code; [0] holds codes outside 100..599.
  std::array<uint64_t, 600> status{};
  std::array<uint64_t, kErrorKindCount> errors{};
  uint64_t requests = 0;  // responses received
  uint64_t bytes_read = 0;
  // Open loop: requests whose connection was still busy (or reconnecting) at
  // their intended send time, so they went out late.
  uint64_t late = 0;
  uint64_t connections_opened = 0;
  Clock::time_point last_completion{};
};

}  // namespace turnout::bench
