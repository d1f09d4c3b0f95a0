#include "bench/turnout_bench/run_stats.h"

#include <algorithm>

namespace turnout::bench {

RunStats::RunStats(uint32_t routes, uint32_t keys)
    : route_latency(routes > 1 ? routes : 0), route_requests(routes, 0), key_requests(keys, 0) {}

void RunStats::merge(const RunStats& o) {
  latency.merge(o.latency);
  uncorrected.merge(o.uncorrected);
  for (size_t i = 0; i < route_latency.size() && i < o.route_latency.size(); ++i) {
    route_latency[i].merge(o.route_latency[i]);
  }
  for (size_t i = 0; i < route_requests.size() && i < o.route_requests.size(); ++i) {
    route_requests[i] += o.route_requests[i];
  }
  for (size_t i = 0; i < key_requests.size() && i < o.key_requests.size(); ++i) {
    key_requests[i] += o.key_requests[i];
  }
  for (size_t i = 0; i < status.size(); ++i) status[i] += o.status[i];
  for (size_t i = 0; i < errors.size(); ++i) errors[i] += o.errors[i];
  requests += o.requests;
  bytes_read += o.bytes_read;
  late += o.late;
  connections_opened += o.connections_opened;
  last_completion = std::max(last_completion, o.last_completion);
}

uint64_t RunStats::errorTotal() const {
  uint64_t n = 0;
  for (uint64_t e : errors) n += e;
  return n;
}

}  // namespace turnout::bench
