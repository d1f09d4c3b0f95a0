#include "proxy/filters/grpc_stats_filter.h"

#include <catch2/catch.hpp>

#include <string>

#include "proxy/stats/store.h"

namespace turnout::proxy {
namespace {

std::string frame(const std::string& body) {
  const auto prefix = grpcFramePrefix(body.size());
  return std::string(prefix.data(), prefix.size()) + body;
}

struct Fixture {
  stats::Store store{1};
  stats::ClusterStats cluster = stats::makeClusterStats(store, "svc", "");
  GrpcStatsFilterConfig config{.upstream_stats = true};
  GrpcStatsTracker tracker{cluster.grpc(), store.shard(0), config};
  uint64_t counter(const std::string& suffix) {
    return store.counterValue("cluster.svc.grpc." + suffix);
  }
};

HeaderMap headers(std::initializer_list<std::pair<std::string, std::string>> fields) {
  HeaderMap h;
  for (const auto& [k, v] : fields) h.add(k, v);
  return h;
}

TEST_CASE("a gRPC service path has exactly two non-empty segments", "[grpc_stats]") {
  CHECK(isGrpcServicePath("/pkg.Service/Method"));
  CHECK(isGrpcServicePath("/s/m?x=1"));
  CHECK(isGrpcServicePath("//s//m/"));  // Envoy's split skips empty segments
  CHECK_FALSE(isGrpcServicePath("/"));
  CHECK_FALSE(isGrpcServicePath("/only"));
  CHECK_FALSE(isGrpcServicePath("/a/b/c"));
  CHECK_FALSE(isGrpcServicePath("/a?/b"));
  CHECK_FALSE(isGrpcServicePath(""));
}

TEST_CASE("a streamed call counts its messages and the status in its trailers", "[grpc_stats]") {
  Fixture f;
  const std::string up = frame("a") + frame("bb");
  f.tracker.onRequestData({up.data(), 3});
  f.tracker.onRequestData({up.data() + 3, up.size() - 3});
  f.tracker.onResponseHeaders(200, headers({{"content-type", "application/grpc"}}), false);
  const std::string down = frame("x") + frame("") + frame("yyy");
  f.tracker.onResponseData({down.data(), down.size()});
  CHECK(f.counter("total") == 0);  // no status yet
  f.tracker.onResponseTrailers(headers({{"grpc-status", "0"}}));
  f.tracker.onUpstreamComplete(std::chrono::milliseconds(4));
  CHECK(f.counter("request_message_count") == 2);
  CHECK(f.counter("response_message_count") == 3);
  CHECK(f.counter("0") == 1);
  CHECK(f.counter("success") == 1);
  CHECK(f.counter("total") == 1);
  CHECK(f.store.histogramValue("cluster.svc.grpc.upstream_rq_time").sample_count == 1);
}

TEST_CASE("a trailers-only response counts its status from the headers", "[grpc_stats]") {
  Fixture f;
  f.tracker.onResponseHeaders(
      200, headers({{"content-type", "application/grpc"}, {"grpc-status", "14"}}), true);
  CHECK(f.counter("14") == 1);
  CHECK(f.counter("failure") == 1);
  CHECK(f.counter("total") == 1);
}

TEST_CASE("the body of a response that is not a gRPC 200 is not counted as messages",
          "[grpc_stats]") {
  Fixture f;
  const std::string body = frame("x");
  f.tracker.onResponseHeaders(503, headers({{"content-type", "application/grpc"}}), false);
  f.tracker.onResponseData({body.data(), body.size()});
  f.tracker.onResponseHeaders(200, headers({{"content-type", "text/plain"}}), false);
  f.tracker.onResponseData({body.data(), body.size()});
  CHECK(f.counter("response_message_count") == 0);
  CHECK(f.counter("total") == 0);  // and no status: nothing charged
}

TEST_CASE("without enable_upstream_stats no upstream time is recorded", "[grpc_stats]") {
  Fixture f;
  f.config.upstream_stats = false;
  f.tracker.onUpstreamComplete(std::chrono::milliseconds(4));
  CHECK(f.store.histogramValue("cluster.svc.grpc.upstream_rq_time").sample_count == 0);
}

}  // namespace
}  // namespace turnout::proxy
