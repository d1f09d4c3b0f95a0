#pragma once

// envoy.filters.http.grpc_stats (Envoy's GrpcStatsFilter without per-method
// names; docs/grpc.md "gRPC stats"): for a gRPC request routed to a cluster,
// counts in cluster.<route target>.grpc.* the call's grpc-status (grpc.<code>,
// success or failure, total, whether it came in the response headers of a
// trailers-only response, in the trailers, or in a local reply), the
// messages each way (request_message_count, response_message_count) and,
// with enable_upstream_stats, the upstream request time (upstream_rq_time).
//
// turnout's filter chain is header-only and keeps no per-stream state
// (proxy/stream/filter.h), so this filter is a GrpcStatsTracker the stream
// holds and the router feeds: RouterFilter makes one once the route's
// cluster is known, and ActiveStream's local replies pass through it.
//
// Who calls it: the stream's worker thread.

#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>

#include "proxy/codec/grpc_framing.h"
#include "proxy/codec/header_map.h"
#include "proxy/stats/well_known_stats.h"

namespace turnout::proxy {

// The filter's config, compiled into the HCM's runtime.
struct GrpcStatsFilterConfig {
  bool upstream_stats = false;  // enable_upstream_stats
};

// Envoy's Grpc::Common::resolveServiceAndMethod: a path (its query dropped)
// of exactly two non-empty segments, /<service>/<method> (empty segments are
// skipped, as Envoy's split does). Only such calls are counted.
bool isGrpcServicePath(std::string_view path);

class GrpcStatsTracker {
 public:
  GrpcStatsTracker(stats::GrpcClusterStats stats, stats::Shard& shard,
                   const GrpcStatsFilterConfig& config)
      : stats_(stats), shard_(shard), config_(config) {}

  // Request body bytes as they leave for the upstream (once each, whatever
  // the retries).
  void onRequestData(std::span<const char> data);
  // The response head sent to the client (the upstream's, or a local
  // reply's); `end_stream`: a trailers-only response.
  void onResponseHeaders(uint16_t status, const HeaderMap& headers, bool end_stream);
  void onResponseData(std::span<const char> data);
  void onResponseTrailers(const HeaderMap& trailers);
  // An upstream request completed after `elapsed`.
  void onUpstreamComplete(std::chrono::milliseconds elapsed);

 private:
  void chargeStatus(const HeaderMap& headers);

  const stats::GrpcClusterStats stats_;  // by value: ClusterStats::grpc() computes it
  stats::Shard& shard_;
  const GrpcStatsFilterConfig& config_;
  GrpcFrameCounter request_frames_;
  GrpcFrameCounter response_frames_;
  bool grpc_response_ = false;  // a 200 gRPC response whose body is messages
};

}  // namespace turnout::proxy
