#include "proxy/filters/grpc_stats_filter.h"

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/stats/store.h"
#include "tests/support/eventually.h"

namespace turnout::proxy {
namespace {

std::string frame(const std::string& body) {
  const auto prefix = grpcFramePrefix(body.size());
  return std::string(prefix.data(), prefix.size()) + body;
}

GrpcStatsFilterConfig withUpstreamStats() {
  GrpcStatsFilterConfig c;
  c.upstream_stats = true;
  return c;
}

struct Fixture {
  stats::Store store{1};
  stats::ClusterStats cluster = stats::makeClusterStats(store, "svc", "");
  GrpcStatsFilterConfig config = withUpstreamStats();
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

// methodStatName's answer as a string (nullopt: the cluster's grpc.*).
std::optional<std::string> nameOf(const GrpcStatsFilterConfig& c, std::string_view path) {
  GrpcStatsFilterConfig::MethodNameBuffer buffer;
  auto name = c.methodStatName(path, buffer);
  if (!name) return std::nullopt;
  return std::string(*name);
}

TEST_CASE("a call is named after its method when the allowlist has it", "[grpc_stats]") {
  GrpcStatsFilterConfig c;
  CHECK_FALSE(nameOf(c, "/pkg.S/M"));  // neither field: the cluster's grpc.*
  c.allowlist = {"pkg.S/M", "other/Call"};
  CHECK(nameOf(c, "/pkg.S/M") == "pkg.S.M");
  CHECK(nameOf(c, "//pkg.S//M/?q=1") == "pkg.S.M");  // Envoy's split
  CHECK_FALSE(nameOf(c, "/pkg.S/N"));
  CHECK_FALSE(nameOf(c, "/pkg.S/M/x"));
  CHECK_FALSE(nameOf(c, "/pkg.S"));
  c.replace_dots = true;  // applies with stats_for_all_methods only (as Envoy's)
  CHECK(nameOf(c, "/pkg.S/M") == "pkg.S.M");
}

TEST_CASE("stats_for_all_methods names every service path, with dots replaced on request",
          "[grpc_stats]") {
  GrpcStatsFilterConfig c;
  c.all_methods = true;
  CHECK(nameOf(c, "/a.b.Svc/Do") == "a.b.Svc.Do");
  CHECK_FALSE(nameOf(c, "/a/b/c"));
  c.replace_dots = true;
  CHECK(nameOf(c, "/a.b.Svc/Do.It") == "a_b_Svc.Do.It");  // the service's dots only
  // Nothing a stat name could not carry: such calls count in the cluster's grpc.*.
  CHECK_FALSE(nameOf(c, "/svc/a b"));
  CHECK_FALSE(nameOf(c, std::string("/svc/a\x01", 7)));
  CHECK_FALSE(nameOf(c, "/svc/" + std::string(129, 'm')));
  CHECK(nameOf(c, "/svc/" + std::string(128, 'm')));
}

// A worker's io_context and a store whose main thread is a queue the test
// runs.
struct MethodFixture {
  stats::Store store{1};
  std::vector<std::function<void()>> main_queue;
  asio::io_context io;
  Mailbox worker{io};
  stats::ClusterStats cluster = stats::makeClusterStats(store, "svc", "");
  GrpcStatsFilterConfig config = withUpstreamStats();
  MethodFixture() {
    store.setMainThreadPoster(
        [this](std::function<void()> fn) { main_queue.push_back(std::move(fn)); });
  }
  void runMain() {
    auto jobs = std::move(main_queue);
    main_queue.clear();
    for (auto& j : jobs) j();
  }
  uint64_t counter(const std::string& suffix) {
    return store.counterValue("cluster.svc.grpc." + suffix);
  }
  // Runs the worker until `method` has its ids.
  bool ready(const GrpcMethodStats& method) {
    return test::eventually(
        io, [&] { return method.ready; }, std::chrono::milliseconds(5000));
  }
};

void unaryCall(GrpcStatsTracker& t, const std::string& status) {
  const std::string msg = frame("m");
  t.onRequestData({msg.data(), msg.size()});
  t.onResponseHeaders(200, headers({{"content-type", "application/grpc"}}), false);
  t.onResponseData({msg.data(), msg.size()});
  t.onResponseTrailers(headers({{"grpc-status", status}}));
  t.onUpstreamComplete(std::chrono::milliseconds(3));
}

TEST_CASE("a method's calls before its stats are registered are counted once they are",
          "[grpc_stats]") {
  MethodFixture f;
  auto method = requestGrpcMethodStats(f.store, f.worker, "cluster.svc.grpc.pkg.S.M.");
  CHECK_FALSE(method->ready);
  {
    GrpcStatsTracker t(f.cluster.grpc(), f.store.shard(0), f.config, method);
    const std::string msg = frame("a") + frame("b");
    t.onRequestData({msg.data(), msg.size()});  // pending: the main thread has not run
    f.runMain();                                // registers, posts the ids to the worker
    CHECK_FALSE(method->ready);
    REQUIRE(f.ready(*method));
    CHECK(f.counter("pkg.S.M.request_message_count") == 0);  // still held by the call
    t.onResponseHeaders(200, headers({{"content-type", "application/grpc"}}), false);
    t.onResponseTrailers(headers({{"grpc-status", "0"}}));  // flushes, then charges
    CHECK(f.counter("pkg.S.M.request_message_count") == 2);
    CHECK(f.counter("pkg.S.M.success") == 1);
    CHECK(f.counter("pkg.S.M.0") == 1);
    CHECK(f.counter("pkg.S.M.total") == 1);
  }
  {
    GrpcStatsTracker t(f.cluster.grpc(), f.store.shard(0), f.config, method);
    unaryCall(t, "14");
  }
  CHECK(f.counter("pkg.S.M.14") == 1);
  CHECK(f.counter("pkg.S.M.failure") == 1);
  CHECK(f.counter("pkg.S.M.total") == 2);
  CHECK(f.counter("pkg.S.M.response_message_count") == 1);
  CHECK(f.store.histogramValue("cluster.svc.grpc.pkg.S.M.upstream_rq_time").sample_count == 1);
  // Nothing went to the cluster's own grpc.*, as Envoy counts a named call there not at all.
  CHECK(f.counter("total") == 0);
  CHECK(f.counter("request_message_count") == 0);
}

TEST_CASE(
    "a call that ended before its method's stats were registered is counted by the "
    "main thread",
    "[grpc_stats]") {
  MethodFixture f;
  auto method = requestGrpcMethodStats(f.store, f.worker, "cluster.svc.grpc.pkg.S.M.");
  {
    GrpcStatsTracker t(f.cluster.grpc(), f.store.shard(0), f.config, method);
    unaryCall(t, "0");
    unaryCall(t, "0");  // a retried call's second attempt: two samples, counters added up
  }
  REQUIRE(f.main_queue.size() == 2);  // the registration, then the call's charges
  f.runMain();
  CHECK(f.counter("pkg.S.M.success") == 2);
  CHECK(f.counter("pkg.S.M.total") == 2);
  CHECK(f.counter("pkg.S.M.request_message_count") == 2);
  CHECK(f.counter("pkg.S.M.response_message_count") == 2);
  CHECK(f.store.histogramValue("cluster.svc.grpc.pkg.S.M.upstream_rq_time").sample_count == 2);
  CHECK(f.ready(*method));
  CHECK(f.counter("total") == 0);
}

TEST_CASE("a method's stats are listed only once a call charged them, as Envoy creates them",
          "[grpc_stats]") {
  MethodFixture f;
  auto method = requestGrpcMethodStats(f.store, f.worker, "cluster.svc.grpc.pkg.S.M.");
  f.runMain();
  REQUIRE(f.ready(*method));
  std::vector<std::string> listed;
  auto names = [&] {
    listed.clear();
    f.store.forEachScalar([&](const stats::Store::ScalarView& v) {
      if (std::string_view(v.name).starts_with("cluster.svc.grpc.")) listed.emplace_back(v.name);
    });
    return listed;
  };
  CHECK(names().empty());
  {
    GrpcStatsTracker t(f.cluster.grpc(), f.store.shard(0), f.config, method);
    t.onResponseHeaders(200, headers({{"content-type", "application/grpc"}, {"grpc-status", "5"}}),
                        true);
  }
  CHECK(names() == std::vector<std::string>{"cluster.svc.grpc.pkg.S.M.5",
                                            "cluster.svc.grpc.pkg.S.M.failure",
                                            "cluster.svc.grpc.pkg.S.M.total"});
}

}  // namespace
}  // namespace turnout::proxy
