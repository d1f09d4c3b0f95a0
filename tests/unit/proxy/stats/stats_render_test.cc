#include <catch2/catch.hpp>

#include "proxy/stats/stats_render.h"
#include "proxy/stats/store.h"

namespace turnout::proxy::stats {
namespace {

StatsFilter all() { return *StatsFilter::create(false, ""); }

// A small store: two used cluster counters, an unused counter, a gauge, one
// histogram with a single 100 us sample (exact bucket) and one unused.
struct SmallStore {
  Store store{1};
  SmallStore() {
    store.shard(0).inc(store.counter("cluster.x.upstream_rq_total"), 3);
    store.shard(0).inc(store.counter("cluster.x.upstream_rq_2xx"), 2);
    store.counter("zz.unused");
    store.mainShard().set(store.gauge("server.live"), 1);
    store.shard(0).recordMicros(store.histogram("cluster.x.upstream_rq_time"), 100);
    store.histogram("http.ingress.downstream_rq_time");
  }
};

TEST_CASE("text stats are sorted name: value lines with histograms last", "[stats][render]") {
  SmallStore s;
  CHECK(renderText(s.store, all()) ==
        "cluster.x.upstream_rq_2xx: 2\n"
        "cluster.x.upstream_rq_total: 3\n"
        "server.live: 1\n"
        "zz.unused: 0\n"
        "cluster.x.upstream_rq_time: P0(nan,0.1) P25(nan,0.10025) P50(nan,0.1005) "
        "P75(nan,0.10075) P90(nan,0.1009) P95(nan,0.10095) P99(nan,0.10099) "
        "P99.5(nan,0.100995) P99.9(nan,0.100999) P100(nan,0.101)\n"
        "http.ingress.downstream_rq_time: No recorded values\n");
}

TEST_CASE("usedonly hides stats that were never written", "[stats][render]") {
  SmallStore s;
  const std::string text = renderText(s.store, *StatsFilter::create(true, ""));
  CHECK(text.find("zz.unused") == std::string::npos);
  CHECK(text.find("http.ingress.downstream_rq_time") == std::string::npos);
  CHECK(text.find("server.live: 1\n") != std::string::npos);
}

TEST_CASE("filter is an RE2 partial match on the full name", "[stats][render]") {
  SmallStore s;
  CHECK(renderText(s.store, *StatsFilter::create(false, "rq_[0-9]xx")) == "cluster.x.upstream_rq_2xx: 2\n");
  CHECK(renderText(s.store, *StatsFilter::create(false, "^server")) == "server.live: 1\n");
}

TEST_CASE("an invalid filter regex is an error", "[stats][render]") {
  CHECK_FALSE(StatsFilter::create(false, "(").ok());
}

TEST_CASE("json stats list values then one histograms entry", "[stats][render]") {
  SmallStore s;
  CHECK(renderJson(s.store, *StatsFilter::create(false, "^(server|http)")) ==
        "{\"stats\":[{\"name\":\"server.live\",\"value\":1},{\"histograms\":{\"supported_quantiles\":"
        "[0,25,50,75,90,95,99,99.5,99.9,100],\"computed_quantiles\":[{\"name\":"
        "\"http.ingress.downstream_rq_time\",\"values\":["
        "{\"cumulative\":null,\"interval\":null},{\"cumulative\":null,\"interval\":null},"
        "{\"cumulative\":null,\"interval\":null},{\"cumulative\":null,\"interval\":null},"
        "{\"cumulative\":null,\"interval\":null},{\"cumulative\":null,\"interval\":null},"
        "{\"cumulative\":null,\"interval\":null},{\"cumulative\":null,\"interval\":null},"
        "{\"cumulative\":null,\"interval\":null},{\"cumulative\":null,\"interval\":null}]}]}}]}");
  CHECK(renderJson(s.store, *StatsFilter::create(false, "nothing")) == "{\"stats\":[]}");
}

TEST_CASE("tag extraction follows Envoy's default extractors", "[stats][render]") {
  auto t = extractTags("cluster.x.upstream_rq_200");
  CHECK(t.extracted == "cluster.upstream_rq");
  CHECK(t.tags == std::vector<std::pair<std::string, std::string>>{{"envoy.response_code", "200"},
                                                                     {"envoy.cluster_name", "x"}});
  t = extractTags("listener.0.0.0.0_10000.http.ingress.downstream_rq_2xx");
  CHECK(t.extracted == "listener.http.downstream_rq_xx");
  CHECK(t.tags == std::vector<std::pair<std::string, std::string>>{
                      {"envoy.response_code_class", "2"},
                      {"envoy.http_conn_manager_prefix", "ingress"},
                      {"envoy.listener_address", "0.0.0.0_10000"}});
  t = extractTags("http.ingress.downstream_rq_time");
  CHECK(t.extracted == "http.downstream_rq_time");
  t = extractTags("server.live");
  CHECK(t.extracted == "server.live");
  CHECK(t.tags.empty());
}

TEST_CASE("prometheus output groups by tag-extracted name with TYPE lines", "[stats][render]") {
  SmallStore s;
  CHECK(renderPrometheus(s.store, *StatsFilter::create(true, "^(cluster|server)")) ==
        "# TYPE envoy_cluster_upstream_rq_total counter\n"
        "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"x\"} 3\n"
        "\n"
        "# TYPE envoy_cluster_upstream_rq_xx counter\n"
        "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"x\"} 2\n"
        "\n"
        "# TYPE envoy_server_live gauge\n"
        "envoy_server_live{} 1\n"
        "\n"
        "# TYPE envoy_cluster_upstream_rq_time histogram\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"0.5\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"1\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"5\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"10\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"25\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"50\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"100\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"250\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"500\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"1000\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"2500\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"5000\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"10000\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"30000\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"60000\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"300000\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"600000\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"1800000\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"3600000\"} 1\n"
        "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"x\",le=\"+Inf\"} 1\n"
        "envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=\"x\"} 0.10000000000000000555111512312578\n"
        "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"x\"} 1\n"
        "\n");
}

}  // namespace
}  // namespace turnout::proxy::stats
