#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "proxy/stats/stats_render.h"
#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"

namespace turnout::proxy::stats {
namespace {

StatsFilter filter(std::string regex, bool used_only = false) {
  return *StatsFilter::create(used_only, std::move(regex));
}

TEST_CASE("twenty thousand clusters all get stats that count and render", "[stats][scope]") {
  Store store(2);
  std::vector<ClusterStats> clusters;
  clusters.reserve(20000);
  for (int i = 0; i < 20000; ++i) clusters.push_back(makeClusterStats(store, "c" + std::to_string(i), ""));
  CHECK(store.overflowCount() == 0);
  CHECK(store.scopeCount() == 20000);
  const ClusterStats& last = clusters.back();
  CHECK_FALSE(last.upstream_rq_total() == clusters.front().upstream_rq_total());
  store.shard(1).inc(last.upstream_rq_total());
  last.countResponse(store.shard(0), 503);
  store.shard(0).record(last.upstream_rq_time(), 7);
  CHECK(store.counterValue("cluster.c19999.upstream_rq_total") == 1);
  CHECK(store.counterValue("cluster.c19999.upstream_rq_503") == 1);
  CHECK(store.counterValue("cluster.c19998.upstream_rq_total") == 0);
  const std::string text = renderText(store, filter(R"(^cluster\.c19999\.upstream_rq_(total|503|time)$)"));
  CHECK(text.find("cluster.c19999.upstream_rq_total: 1\n") != std::string::npos);
  CHECK(text.find("cluster.c19999.upstream_rq_503: 1\n") != std::string::npos);
  CHECK(text.find("cluster.c19999.upstream_rq_time: P0(") != std::string::npos);
  // usedonly skips the 19,999 clusters nothing wrote.
  CHECK(renderText(store, filter(R"(^cluster\.)", true)) ==
        "cluster.c19999.upstream_rq_503: 1\n"
        "cluster.c19999.upstream_rq_5xx: 1\n"
        "cluster.c19999.upstream_rq_total: 1\n" +
            text.substr(text.find("cluster.c19999.upstream_rq_time")));
}

// The schema's stats listed before any is written (not lazy); `scalars`:
// counters and gauges only.
uint32_t listedCount(const StatSchema& schema, bool scalars) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < schema.size(); ++i) {
    if (!schema.lazy(i) && !(scalars && schema.kind(i) == StatKind::Histogram)) ++n;
  }
  return n;
}

TEST_CASE("every cluster stat field has its Envoy name", "[stats][scope]") {
  for (bool maglev : {false, true}) {
    Store store(1);
    const ClusterStats s = makeClusterStats(store, "c", "", maglev);
    Shard& w = store.shard(0);
    w.inc(s.upstream_cx_connect_timeout());
    w.inc(s.upstream_rq_retry_limit_exceeded(), 2);
    w.inc(s.health_check_failure(), 3);
    w.inc(s.update_no_rebuild(), 4);
    w.set(s.breakers_high().rq_retry_open, 1);
    w.set(s.breakers_default().cx_open, 1);
    w.set(s.membership_total(), 6);
    w.add(s.upstream_rq_pending_active(), 2);
    s.countRetriedResponse(w, 504);
    s.countResponse(w, 100);
    w.record(s.upstream_rq_time(), 9);
    CHECK(store.counterValue("cluster.c.upstream_cx_connect_timeout") == 1);
    CHECK(store.counterValue("cluster.c.upstream_rq_retry_limit_exceeded") == 2);
    CHECK(store.counterValue("cluster.c.health_check.failure") == 3);
    CHECK(store.counterValue("cluster.c.update_no_rebuild") == 4);
    CHECK(store.gaugeValue("cluster.c.circuit_breakers.high.rq_retry_open") == 1);
    CHECK(store.gaugeValue("cluster.c.circuit_breakers.default.cx_open") == 1);
    CHECK(store.gaugeValue("cluster.c.membership_total") == 6);
    CHECK(store.gaugeValue("cluster.c.upstream_rq_pending_active") == 2);
    CHECK(store.counterValue("cluster.c.retry.upstream_rq_504") == 1);
    CHECK(store.counterValue("cluster.c.retry.upstream_rq_5xx") == 1);
    CHECK(store.counterValue("cluster.c.upstream_rq_100") == 1);
    CHECK(store.counterValue("cluster.c.upstream_rq_1xx") == 1);
    CHECK(store.histogramValue("cluster.c.upstream_rq_time").sample_count == 1);
    const std::string maglev_stats = renderText(store, filter(R"(maglev_lb)"));
    CHECK(maglev_stats.empty() == !maglev);
    if (maglev) {
      w.set(s.maglev_max_entries_per_host(), 11);
      CHECK(store.gaugeValue("cluster.c.maglev_lb.max_entries_per_host") == 11);
    } else {
      w.set(s.maglev_max_entries_per_host(), 11);  // not in the plain schema: a sink
      CHECK(store.gaugeValue("cluster.c.membership_total") == 6);
      CHECK(renderText(store, filter(R"(maglev_lb)")).empty());
    }
    // Exactly the schema's stats render, once each; the lazy ones (http2.*,
    // grpc.*) once written.
    const std::string all = renderText(store, filter(R"(^cluster\.c\.)"));
    CHECK(static_cast<uint32_t>(std::count(all.begin(), all.end(), '\n')) ==
          listedCount(clusterStatSchema(maglev), false));
    w.inc(s.http2().goaway_sent, 0);  // a codec was made: all 15 http2.*
    s.grpc().chargeStatus(w, "0");    // grpc.0, grpc.success, grpc.total
    const std::string more = renderText(store, filter(R"(^cluster\.c\.)"));
    CHECK(static_cast<uint32_t>(std::count(more.begin(), more.end(), '\n')) ==
          listedCount(clusterStatSchema(maglev), false) + 15 + 3);
    // The groups are computed from the scope's first slot, field by field.
    w.inc(s.http2().tx_reset, 2);
    w.add(s.http2().streams_active, 3);
    w.record(s.grpc().upstream_rq_time, 4);
    w.set(s.breakers_default().rq_retry_open, 1);
    CHECK(store.counterValue("cluster.c.http2.tx_reset") == 2);
    CHECK(store.gaugeValue("cluster.c.http2.streams_active") == 3);
    CHECK(store.histogramValue("cluster.c.grpc.upstream_rq_time").sample_count == 1);
    CHECK(store.gaugeValue("cluster.c.circuit_breakers.default.rq_retry_open") == 1);
    CHECK(store.gaugeValue("cluster.c.circuit_breakers.high.rq_retry_open") == 1);
  }
}

TEST_CASE("cluster stats without a scope write only the sinks", "[stats][scope]") {
  // The ids are computed (first slot + the schema's offsets), so a cluster
  // costs a handle, a slot and a pointer, not a struct of ids.
  STATIC_REQUIRE(sizeof(ClusterStats) <= 32);
  Store store(1);
  const ClusterStats real = makeClusterStats(store, "c", "");
  const ClusterStats none;  // as a ClusterRuntime built without a store, or slots exhausted
  Shard& w = store.shard(0);
  w.inc(none.upstream_rq_total(), 5);
  w.set(none.membership_total(), 7);
  w.record(none.upstream_rq_time(), 3);
  none.countResponse(w, 200);
  none.countRetriedResponse(w, 503);
  w.inc(none.http2().tx_reset);
  none.grpc().chargeStatus(w, "0");
  w.set(none.breakers_default().cx_open, 1);
  w.set(none.maglev_min_entries_per_host(), 1);
  CHECK(store.counterValue("cluster.c.upstream_rq_total") == 0);
  CHECK(store.gaugeValue("cluster.c.membership_total") == 0);
  CHECK(store.counterValue("cluster.c.upstream_rq_200") == 0);
  CHECK(store.counterValue("cluster.c.upstream_rq_2xx") == 0);
  CHECK(store.histogramValue("cluster.c.upstream_rq_time").sample_count == 0);
  CHECK(renderText(store, filter(R"(\.(http2|grpc)\.)")).empty());
  CHECK(store.gaugeValue("cluster.c.circuit_breakers.default.cx_open") == 0);
  // The real scope still counts in its own slots.
  real.countResponse(w, 200);
  CHECK(store.counterValue("cluster.c.upstream_rq_200") == 1);
}

TEST_CASE("a removed cluster's stats are freed and their slots recycled", "[stats][scope]") {
  Store store(2);
  // Page tables are kept; write a loose stat everywhere so they exist already.
  const StatId warm = store.counter("warm");
  for (size_t w = 0; w < 2; ++w) store.shard(w).inc(warm);
  store.mainShard().inc(warm);
  const size_t empty_bytes = store.shardBytes();
  std::optional<ClusterStats> gone = makeClusterStats(store, "gone", "");
  const ClusterStats kept = makeClusterStats(store, "kept", "");
  store.shard(0).inc(gone->upstream_rq_total());
  store.shard(1).inc(gone->upstream_cx_total());
  store.shard(1).record(gone->upstream_rq_time(), 5);
  store.mainShard().set(gone->membership_total(), 1);
  store.resetCounters();  // leaves baselines behind for the slots
  store.flushHistogramIntervals();
  CHECK(store.shardBytes() > empty_bytes);
  const StatId old_total = gone->upstream_rq_total();

  ClusterStats copy = *gone;  // a second snapshot still holding the cluster
  gone.reset();
  CHECK(store.reclaim() == 0);
  CHECK(store.gaugeValue("cluster.gone.membership_total") == 1);
  copy = kept;  // the last holder lets go
  CHECK(store.reclaim() == 1);
  CHECK(store.scopeCount() == 1);
  CHECK(store.shardBytes() == empty_bytes);
  CHECK(store.gaugeValue("cluster.gone.membership_total") == 0);
  CHECK(renderText(store, filter("gone")).empty());
  CHECK_FALSE(renderText(store, filter(R"(^cluster\.kept\.upstream_rq_total$)")).empty());

  // The next cluster reuses the slots and starts from zero, unused.
  const ClusterStats next = makeClusterStats(store, "next", "");
  CHECK(next.upstream_rq_total() == old_total);
  CHECK(store.counterValue("cluster.next.upstream_rq_total") == 0);
  CHECK(renderText(store, filter(R"(^cluster\.next\.)", true)).empty());
  store.shard(0).inc(next.upstream_rq_total());
  CHECK(store.counterValue("cluster.next.upstream_rq_total") == 1);
  CHECK(store.histogramValue("cluster.next.upstream_rq_time").empty());
}

TEST_CASE("a cluster registered again while it lives keeps its stats", "[stats][scope]") {
  Store store(1);
  std::optional<ClusterStats> v1 = makeClusterStats(store, "c", "");
  store.shard(0).inc(v1->upstream_rq_total(), 3);
  const ClusterStats v2 = makeClusterStats(store, "c", "");  // the cluster's config changed
  CHECK(v2.upstream_rq_total() == v1->upstream_rq_total());
  v1.reset();
  CHECK(store.reclaim() == 0);
  store.shard(0).inc(v2.upstream_rq_total());
  CHECK(store.counterValue("cluster.c.upstream_rq_total") == 4);
  // A MAGLEV cluster of that name has another schema: it takes the name over.
  const ClusterStats maglev = makeClusterStats(store, "c", "", true);
  CHECK(store.counterValue("cluster.c.upstream_rq_total") == 0);
  CHECK(renderText(store, filter(R"(^cluster\.c\.upstream_rq_total$)")) == "cluster.c.upstream_rq_total: 0\n");
}

TEST_CASE("a cluster dropped on a worker thread is freed by the main thread", "[stats][scope]") {
  Store store(1);
  ClusterStats stats = makeClusterStats(store, "w", "");
  std::thread worker([&shard = store.shard(0), s = std::move(stats)]() mutable {
    shard.inc(s.upstream_rq_total());
    shard.record(s.upstream_rq_time(), 1);
    ClusterStats dropped = std::move(s);
  });
  worker.join();
  CHECK(store.reclaim() == 1);
  CHECK(store.scopeCount() == 0);
  CHECK(store.counterValue("cluster.w.upstream_rq_total") == 0);
}

TEST_CASE("cluster stats may outlive their store", "[stats][scope]") {
  std::unique_ptr<ClusterStats> stats;  // (std::optional trips GCC 12's maybe-uninitialized)
  {
    Store store(1);
    stats = std::make_unique<ClusterStats>(makeClusterStats(store, "late", ""));
  }
  stats.reset();  // the retire list is closed: nothing to do, nothing touched
}

TEST_CASE("an idle cluster's stats allocate nothing on worker shards", "[stats][scope]") {
  Store store(2);
  const size_t worker_empty = store.shard(0).allocatedBytes();
  std::vector<ClusterStats> clusters;
  for (int i = 0; i < 1000; ++i) {
    clusters.push_back(makeClusterStats(store, "idle" + std::to_string(i), ""));
    store.mainShard().set(clusters.back().membership_total(), 1);
    store.mainShard().set(clusters.back().membership_healthy(), 1);
    store.mainShard().inc(clusters.back().health_check_attempt());
  }
  CHECK(store.shard(0).allocatedBytes() == worker_empty);
  CHECK(store.shard(1).allocatedBytes() == worker_empty);
  // The main thread's stats share one 16-slot page per cluster.
  const size_t main_bytes = store.mainShard().allocatedBytes() - worker_empty;
  CHECK(main_bytes / clusters.size() <= 256);
}

}  // namespace
}  // namespace turnout::proxy::stats

namespace turnout::proxy::stats {
namespace {

std::vector<std::string> scalarNames(const Store& store) {
  std::vector<std::string> names;
  store.forEachScalar([&](const Store::ScalarView& v) { names.emplace_back(v.name); });
  return names;
}

TEST_CASE("stats are visited in name order, also when a cluster name extends another's",
          "[stats][scope]") {
  const uint32_t scalars = listedCount(clusterStatSchema(false), true);
  for (bool dotted : {false, true}) {
    Store store(1);
    const ClusterStats b = makeClusterStats(store, "b", "");
    const ClusterStats a = makeClusterStats(store, "a", "");
    std::optional<ClusterStats> ab;
    if (dotted) {
      ab = makeClusterStats(store, "a.b", "");
      store.counter("cluster.a.loose");  // a loose name inside cluster a's names
    } else {
      store.counter("cluster.loose");
    }
    store.counter("aaa");
    const std::vector<std::string> names = scalarNames(store);
    CHECK(std::is_sorted(names.begin(), names.end()));
    CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
    CHECK(names.size() == (dotted ? 3 : 2) * scalars + 2);
  }
}

TEST_CASE("interleaving runs of nested cluster names are each merged in name order",
          "[stats][scope]") {
  // Runs that interleave ("a" with "a.b" and "a.b.c"; "b" with "b.x"),
  // names next to them that do not ("a-b", "a0", "ab"), loose stats inside
  // and outside the runs.
  const uint32_t scalars = listedCount(clusterStatSchema(false), true);
  Store store(1);
  std::vector<ClusterStats> clusters;
  for (const char* name : {"b.x", "a0", "a.b.c", "ab", "a", "b", "a-b", "a.b"}) {
    clusters.push_back(makeClusterStats(store, name, ""));
  }
  store.counter("cluster.a.b.loose");
  store.counter("cluster.b.zzz");
  store.counter("cluster.a0.loose");
  store.counter("zzz");
  store.counter("aaa");
  const std::vector<std::string> names = scalarNames(store);
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
  CHECK(names.size() == 8 * scalars + 5);
}

TEST_CASE("a removed listener's listener and http stats are freed with its last holder",
          "[stats][scope]") {
  Store store(1);
  std::optional<ListenerStats> listener = makeListenerStats(store, "127.0.0.1:8080", "extra");
  std::optional<ListenerHttpStats> http = makeListenerHttpStats(store, *listener, "extra_http");
  std::optional<HttpConnManagerStats> hcm = makeHttpConnManagerStats(store, "extra_http");
  // A second HCM on the same stat_prefix shares the scope (Envoy shares the names).
  std::optional<HttpConnManagerStats> shared = makeHttpConnManagerStats(store, "extra_http");
  CHECK(shared->downstream_rq_total == hcm->downstream_rq_total);
  store.shard(0).inc(listener->downstream_cx_total);
  http->countResponse(store.shard(0), 200);
  store.shard(0).inc(hcm->downstream_rq_total, 2);
  store.shard(0).record(hcm->downstream_rq_time, 3);
  CHECK(store.counterValue("listener.extra.downstream_cx_total") == 1);
  CHECK(store.counterValue("listener.extra.http.extra_http.downstream_rq_2xx") == 1);
  CHECK(store.counterValue("http.extra_http.downstream_rq_total") == 2);

  listener.reset();
  http.reset();
  hcm.reset();
  CHECK(store.reclaim() == 2);  // the HCM scope lives on in `shared`
  CHECK(renderText(store, filter(R"(^listener\.extra\.)")).empty());
  CHECK(store.counterValue("http.extra_http.downstream_rq_total") == 2);
  shared.reset();
  CHECK(store.reclaim() == 1);
  CHECK(store.scopeCount() == 0);
  CHECK(renderText(store, filter("extra")).empty());
  // The slots are recycled: the next listener starts from zero.
  const ListenerStats next = makeListenerStats(store, "127.0.0.1:9090", "next");
  CHECK(store.counterValue("listener.next.downstream_cx_total") == 0);
}

}  // namespace
}  // namespace turnout::proxy::stats
