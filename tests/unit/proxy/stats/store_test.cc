#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"

namespace turnout::proxy::stats {
namespace {

TEST_CASE("registering an existing name returns the same id", "[stats]") {
  Store store(2);
  const StatId a = store.counter("a.b");
  CHECK(store.counter("a.b") == a);
  CHECK(store.gauge("g") == store.gauge("g"));
  CHECK(store.histogram("h") == store.histogram("h"));
  CHECK_FALSE(store.counter("c") == a);
}

TEST_CASE("a name registered as another kind gets the sink id and counts an overflow", "[stats]") {
  Store store(1);
  store.counter("x");
  CHECK(store.gauge("x").index == kScalarSink);
  CHECK(store.histogram("x").index == kHistogramSink);
  CHECK(store.overflowCount() == 2);
  store.mainShard().record(store.histogram("x"), 3);  // harmless
  store.mainShard().record(StatId{}, 3);              // a default id too
}

TEST_CASE("counters and gauges merge across shards written by several threads", "[stats]") {
  Store store(4);
  const StatId c = store.counter("c");
  const StatId g = store.gauge("g");
  const StatId h = store.histogram("h");
  std::vector<std::thread> threads;
  for (size_t w = 0; w < 4; ++w) {
    threads.emplace_back([&store, w, c, g, h] {
      Shard& shard = store.shard(w);
      for (int i = 0; i < 10000; ++i) {
        shard.inc(c);
        shard.add(g, 2);
        shard.sub(g, 1);
        shard.record(h, 5);
      }
    });
  }
  for (auto& t : threads) t.join();
  store.mainShard().inc(c, 5);
  CHECK(store.counterValue("c") == 40005);
  CHECK(store.gaugeValue("g") == 40000);
  CHECK(store.histogramValue("h").sample_count == 40000);
}

TEST_CASE("gauges can go negative on one shard and still sum correctly", "[stats]") {
  Store store(2);
  const StatId g = store.gauge("active");
  store.shard(0).add(g, 3);
  store.shard(1).sub(g, 1);
  CHECK(store.gaugeValue("active") == 2);
  store.mainShard().set(g, 10);
  CHECK(store.gaugeValue("active") == 12);
}

TEST_CASE("reset_counters zeroes counters but leaves gauges and histograms", "[stats]") {
  Store store(1);
  const StatId c = store.counter("c");
  const StatId g = store.gauge("g");
  const StatId h = store.histogram("h");
  store.shard(0).inc(c, 7);
  store.shard(0).add(g, 3);
  store.shard(0).record(h, 1);
  store.resetCounters();
  CHECK(store.counterValue("c") == 0);
  CHECK(store.gaugeValue("g") == 3);
  CHECK(store.histogramValue("h").sample_count == 1);
  store.shard(0).inc(c, 2);
  CHECK(store.counterValue("c") == 2);
}

TEST_CASE("loose stats have no fixed capacity", "[stats]") {
  Store store(0);
  std::vector<StatId> ids;
  for (uint32_t i = 0; i < 100000; ++i) ids.push_back(store.counter("c" + std::to_string(i)));
  const StatId h = store.histogram("h.last");
  store.mainShard().inc(ids.back(), 2);
  store.mainShard().record(h, 3);
  CHECK(store.counterValue("c99999") == 2);
  CHECK(store.histogramValue("h.last").sample_count == 1);
  CHECK(store.overflowCount() == 0);
}

TEST_CASE("histogram buckets are exact below 128 us and within 1/64 above", "[stats]") {
  for (uint64_t v : {0ull, 1ull, 127ull}) {
    CHECK(HistogramBuckets::lowerBound(HistogramBuckets::index(v)) == v);
  }
  for (uint64_t v : {128ull, 1000ull, 5000ull, 123456ull, 3600000000ull}) {
    const uint32_t i = HistogramBuckets::index(v);
    CHECK(HistogramBuckets::lowerBound(i) <= v);
    CHECK(v < HistogramBuckets::lowerBound(i) + HistogramBuckets::width(i));
    CHECK(static_cast<double>(HistogramBuckets::width(i)) / static_cast<double>(HistogramBuckets::lowerBound(i)) <=
          1.0 / 64);
  }
  CHECK(HistogramBuckets::index(~uint64_t{0}) == HistogramBuckets::kCount - 1);
}

TEST_CASE("histogram quantiles of a uniform 1..1000 ms distribution are within 2%", "[stats]") {
  Store store(2);
  const StatId h = store.histogram("t");
  for (uint64_t v = 1; v <= 1000; ++v) store.shard(v % 2).record(h, v);
  const HistogramSnapshot snap = store.histogramValue("t");
  const auto q = snap.supportedQuantilesMs();
  const double expected[] = {1, 250, 500, 750, 900, 950, 990, 995, 999, 1000};
  for (size_t i = 0; i < q.size(); ++i) {
    INFO("quantile " << kSupportedQuantiles[i]);
    CHECK(q[i] == Approx(expected[i]).epsilon(0.02));
  }
  CHECK(snap.sumMs() == Approx(500500));
  CHECK(snap.countAtOrBelowMs(100) == 100);
  CHECK(snap.countAtOrBelowMs(0.5) == 0);
}

TEST_CASE("a histogram holds only the bucket chunks its samples fell in", "[stats]") {
  Store store(1);
  const StatId h = store.histogram("few");
  store.shard(0).inc(store.counter("other"));  // the shard's first leaf of page pointers
  const size_t empty = store.shard(0).allocatedBytes();
  store.shard(0).recordMicros(h, 5000);
  store.shard(0).recordMicros(h, 5100);
  // One page, the histogram's chunk table and one 64-bucket chunk: far from
  // the 13.5 KiB of all 1,728 buckets.
  const size_t one_chunk = store.shard(0).allocatedBytes() - empty;
  CHECK(one_chunk < 1024);
  // The smallest and the largest bucket are in other chunks; each adds one.
  store.shard(0).recordMicros(h, 0);
  store.shard(0).recordMicros(h, ~uint64_t{0});
  CHECK(store.shard(0).allocatedBytes() - empty == one_chunk + 2 * 64 * sizeof(uint64_t));
  const HistogramSnapshot snap = store.histogramValue("few");
  CHECK(snap.sample_count == 4);
  CHECK(snap.quantileMs(0) == 0);
  CHECK(snap.quantileMs(0.5) == Approx(5).epsilon(0.02));
  CHECK(snap.counts[HistogramBuckets::kCount - 1] == 1);
}

TEST_CASE("a constant distribution reports that value at every quantile", "[stats]") {
  Store store(1);
  const StatId h = store.histogram("c");
  for (int i = 0; i < 100; ++i) store.shard(0).record(h, 42);
  for (double q : store.histogramValue("c").supportedQuantilesMs()) CHECK(q == Approx(42).epsilon(0.016));
}

TEST_CASE("an empty histogram has NaN quantiles", "[stats]") {
  HistogramSnapshot empty;
  CHECK(std::isnan(empty.quantileMs(0.5)));
}

TEST_CASE("histogram intervals hold the samples since the previous flush", "[stats]") {
  Store store(1);
  const StatId h = store.histogram("h");
  store.shard(0).record(h, 10);
  store.flushHistogramIntervals();
  store.shard(0).record(h, 20);
  store.shard(0).record(h, 20);
  store.flushHistogramIntervals();
  bool seen = false;
  store.forEachHistogram([&](const Store::HistogramView& v) {
    seen = true;
    CHECK(v.interval->sample_count == 2);
    CHECK(v.cumulative->sample_count == 3);
    CHECK(v.interval->quantileMs(0) == Approx(20).epsilon(0.02));
  });
  CHECK(seen);
}

TEST_CASE("a name filter picks stats before their values are merged", "[stats]") {
  Store store(2);
  store.shard(0).record(store.histogram("cluster.a.upstream_rq_time"), 5);
  store.shard(1).record(store.histogram("cluster.b.upstream_rq_time"), 7);
  store.shard(0).inc(store.counter("cluster.a.upstream_rq_total"));
  store.shard(1).inc(store.counter("cluster.b.upstream_rq_total"));
  std::vector<std::string> asked;
  const Store::NameFilter only_b = [&](std::string_view name) {
    asked.emplace_back(name);
    return name.find("cluster.b.") == 0;
  };
  std::vector<std::string> histograms;
  store.forEachHistogram([&](const Store::HistogramView& v) {
    histograms.emplace_back(v.name);
    CHECK(v.cumulative->sample_count == 1);
  }, false, only_b);
  CHECK(histograms == std::vector<std::string>{"cluster.b.upstream_rq_time"});
  // a's name was asked about (and refused), not merged and handed over.
  CHECK(std::find(asked.begin(), asked.end(), "cluster.a.upstream_rq_time") != asked.end());
  std::vector<std::string> scalars;
  store.forEachScalar([&](const Store::ScalarView& v) {
    scalars.emplace_back(v.name);
    CHECK(v.counter == 1);
  }, false, only_b);
  CHECK(scalars == std::vector<std::string>{"cluster.b.upstream_rq_total"});
}

TEST_CASE("cluster stats use alt_stat_name and turn ':' into '_'", "[stats]") {
  Store store(1);
  const ClusterStats s = makeClusterStats(store, "outbound|80||a:b", "");
  store.shard(0).inc(s.upstream_rq_total());
  CHECK(store.counterValue("cluster.outbound|80||a_b.upstream_rq_total") == 1);
  const ClusterStats alt = makeClusterStats(store, "x", "alt:name");
  store.shard(0).inc(alt.upstream_cx_total());
  CHECK(store.counterValue("cluster.alt_name.upstream_cx_total") == 1);
}

TEST_CASE("cluster responses count the class and pre-registered codes only", "[stats]") {
  Store store(1);
  const ClusterStats s = makeClusterStats(store, "c", "");
  s.countResponse(store.shard(0), 200);
  s.countResponse(store.shard(0), 418);
  s.countRetriedResponse(store.shard(0), 503);
  CHECK(store.counterValue("cluster.c.upstream_rq_2xx") == 1);
  CHECK(store.counterValue("cluster.c.upstream_rq_200") == 1);
  CHECK(store.counterValue("cluster.c.upstream_rq_4xx") == 1);
  CHECK(store.counterValue("cluster.c.upstream_rq_418") == 0);
  CHECK(store.counterValue("cluster.c.retry.upstream_rq_503") == 1);
  CHECK(store.counterValue("cluster.c.retry.upstream_rq_5xx") == 1);
  CHECK(store.counterValue("cluster.c.upstream_rq_5xx") == 0);
}

TEST_CASE("listener stats are named by address with ':' as '_' or by stat_prefix", "[stats]") {
  Store store(1);
  const ListenerStats l = makeListenerStats(store, "0.0.0.0:10000", "");
  CHECK(l.prefix == "listener.0.0.0.0_10000.");
  const ListenerHttpStats lh = makeListenerHttpStats(store, l, "ingress_http");
  lh.countResponse(store.shard(0), 204);
  CHECK(store.counterValue("listener.0.0.0.0_10000.http.ingress_http.downstream_rq_2xx") == 1);
  CHECK(makeListenerStats(store, "0.0.0.0:1", "public").prefix == "listener.public.");
}

TEST_CASE("http connection manager stats carry the routing-key stats", "[stats]") {
  Store store(1);
  const HttpConnManagerStats s = makeHttpConnManagerStats(store, "ingress");
  store.shard(0).inc(s.routing_key_found);
  store.shard(0).inc(s.routing_key_error[1]);
  s.countResponse(store.shard(0), 503);
  CHECK(store.counterValue("http.ingress.routing_key.found") == 1);
  CHECK(store.counterValue("http.ingress.routing_key.malformed_baggage") == 1);
  CHECK(store.counterValue("http.ingress.downstream_rq_5xx") == 1);
  const ServerStats server = makeServerStats(store);
  store.mainShard().set(server.live, 1);
  CHECK(store.gaugeValue("server.live") == 1);
}

TEST_CASE("a lazy stat is listed only once a shard wrote its anchor", "[stats]") {
  Store store(1);
  const StatId eager = store.counter("a.eager");
  const StatId lazy = store.counter("a.lazy", StatId{});
  const StatId lazy_gauge = store.gauge("a.lazy_gauge", StatId{});
  const StatId group = store.counter("b.first", StatId{});
  store.counter("b.second", group);
  auto names = [&store] {
    std::vector<std::string> out;
    store.forEachScalar([&out](const Store::ScalarView& v) { out.emplace_back(v.name); });
    return out;
  };
  CHECK(names() == std::vector<std::string>{"a.eager"});
  store.shard(0).inc(lazy);
  CHECK(names() == std::vector<std::string>{"a.eager", "a.lazy"});
  // A gauge back at 0 was still created by its first write.
  store.shard(0).add(lazy_gauge, 1);
  store.shard(0).sub(lazy_gauge, 1);
  CHECK(names() == std::vector<std::string>{"a.eager", "a.lazy", "a.lazy_gauge"});
  // A group appears whole when its anchor is written, even by 0.
  store.shard(0).inc(group, 0);
  CHECK(names() == std::vector<std::string>{"a.eager", "a.lazy", "a.lazy_gauge", "b.first",
                                            "b.second"});
  store.mainShard().inc(eager);
}

TEST_CASE("a cluster's http2 and grpc stats appear when first used", "[stats]") {
  Store store(1);
  const ClusterStats c = makeClusterStats(store, "svc", "");
  auto has = [&store](std::string_view name) {
    bool found = false;
    store.forEachScalar([&](const Store::ScalarView& v) { found = found || v.name == name; });
    store.forEachHistogram([&](const Store::HistogramView& v) { found = found || v.name == name; });
    return found;
  };
  CHECK(has("cluster.svc.upstream_rq_total"));
  CHECK_FALSE(has("cluster.svc.http2.rx_reset"));
  CHECK_FALSE(has("cluster.svc.grpc.total"));
  CHECK_FALSE(has("cluster.svc.grpc.upstream_rq_time"));
  // http2.* appear together once the first (goaway_sent) is written, as
  // Envoy creates them with a codec; grpc.* one by one.
  store.shard(0).inc(c.http2().rx_reset);
  CHECK_FALSE(has("cluster.svc.http2.rx_reset"));
  store.shard(0).inc(c.http2().goaway_sent, 0);
  c.grpc().chargeStatus(store.shard(0), "14");
  store.shard(0).record(c.grpc().upstream_rq_time, 3);
  CHECK(has("cluster.svc.http2.rx_reset"));
  CHECK(has("cluster.svc.http2.tx_reset"));
  CHECK(has("cluster.svc.http2.streams_active"));
  CHECK(has("cluster.svc.grpc.14"));
  CHECK_FALSE(has("cluster.svc.grpc.0"));
  CHECK(has("cluster.svc.grpc.upstream_rq_time"));
  CHECK(store.counterValue("cluster.svc.grpc.failure") == 1);
  CHECK(store.counterValue("cluster.svc.grpc.total") == 1);
}

TEST_CASE("grpc statuses count their code only when it is one of 0..16 as written", "[stats]") {
  Store store(1);
  const ClusterStats c = makeClusterStats(store, "svc", "");
  Shard& shard = store.shard(0);
  for (const char* status : {"0", "0", "16", "7", "17", "07", "99", "", "x", "-1"}) {
    c.grpc().chargeStatus(shard, status);
  }
  CHECK(store.counterValue("cluster.svc.grpc.0") == 2);
  CHECK(store.counterValue("cluster.svc.grpc.16") == 1);
  CHECK(store.counterValue("cluster.svc.grpc.7") == 1);
  CHECK(store.counterValue("cluster.svc.grpc.1") == 0);
  CHECK(store.counterValue("cluster.svc.grpc.success") == 2);
  CHECK(store.counterValue("cluster.svc.grpc.failure") == 8);
  CHECK(store.counterValue("cluster.svc.grpc.total") == 10);
}

}  // namespace
}  // namespace turnout::proxy::stats
