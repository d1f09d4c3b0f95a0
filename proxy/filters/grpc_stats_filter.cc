#include "proxy/filters/grpc_stats_filter.h"

#include "proxy/stream/local_reply.h"

namespace turnout::proxy {

bool isGrpcServicePath(std::string_view path) {
  // Envoy splits on '/' dropping empty tokens, and wants exactly two.
  path = path.substr(0, path.find('?'));
  int tokens = 0;
  bool in_token = false;
  for (char c : path) {
    if (c == '/') {
      in_token = false;
    } else if (!in_token) {
      in_token = true;
      ++tokens;
    }
  }
  return tokens == 2;
}

void GrpcStatsTracker::onRequestData(std::span<const char> data) {
  if (const uint64_t n = request_frames_.inspect(data); n > 0) {
    shard_.inc(stats_.request_message_count, n);
  }
}

void GrpcStatsTracker::onResponseHeaders(uint16_t status, const HeaderMap& headers,
                                         bool end_stream) {
  // Envoy's Grpc::Common::isGrpcResponseHeader.
  grpc_response_ = !end_stream && status == 200 &&
                   isGrpcContentType(headers.get("content-type"));
  chargeStatus(headers);
}

void GrpcStatsTracker::onResponseData(std::span<const char> data) {
  if (!grpc_response_) return;
  if (const uint64_t n = response_frames_.inspect(data); n > 0) {
    shard_.inc(stats_.response_message_count, n);
  }
}

void GrpcStatsTracker::onResponseTrailers(const HeaderMap& trailers) { chargeStatus(trailers); }

void GrpcStatsTracker::onUpstreamComplete(std::chrono::milliseconds elapsed) {
  if (config_.upstream_stats) {
    shard_.record(stats_.upstream_rq_time, static_cast<uint64_t>(elapsed.count()));
  }
}

void GrpcStatsTracker::chargeStatus(const HeaderMap& headers) {
  const std::string_view status = headers.get("grpc-status");
  if (status.data() != nullptr) stats_.chargeStatus(shard_, status);
}

}  // namespace turnout::proxy
