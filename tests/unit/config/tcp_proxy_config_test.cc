#include <catch2/catch.hpp>

#include <string>

#include "absl/strings/str_cat.h"
#include "config/bootstrap/bootstrap_loader.h"
#include "config/snapshot/snapshot_builder.h"

// The TCP proxy network filter and ORIGINAL_DST clusters, from bootstrap to
// Snapshot: Envoy's defaults, what is honoured, and what is refused with its
// field path (docs/tcp_proxy.md, docs/upstream.md "Original destination").

namespace turnout::config {
namespace {

constexpr const char* kTcpPath = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

// What `turnout --mode validate` answers (the call it makes).
std::string validate(const std::string& yaml) {
  BootstrapLoadOptions options;
  options.config_yaml = yaml;
  auto loaded = SnapshotBuilder::load(options);
  return loaded.ok() ? "OK" : std::string(loaded.status().message());
}

SnapshotConstSharedPtr build(const std::string& yaml) {
  BootstrapLoadOptions options;
  options.config_yaml = yaml;
  auto loaded = SnapshotBuilder::load(options);
  INFO(loaded.status().ToString());
  REQUIRE(loaded.ok());
  return loaded->snapshot;
}

// A listener whose one filter is a TCP proxy with `tcp_fields`, and the
// clusters a, b (STATIC) and o (ORIGINAL_DST), plus `extra_clusters`.
std::string tcpBootstrap(const std::string& tcp_fields, const std::string& chain_extra = "",
                         const std::string& extra_clusters = "") {
  return absl::StrCat(R"(
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
)", tcp_fields, chain_extra, R"(
  clusters:
  - name: a
    load_assignment: {cluster_name: a, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}
  - name: b
    load_assignment: {cluster_name: b, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 2}}}}]}]}
  - {name: o, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED}
)", extra_clusters);
}

TEST_CASE("a tcp_proxy chain gets Envoy's defaults", "[config][tcp_proxy]") {
  auto s = build(tcpBootstrap("          stat_prefix: db\n          cluster: a\n"));
  REQUIRE(s->listeners.size() == 1);
  const FilterChainConfig& chain = s->listeners[0].filter_chains[0];
  CHECK_FALSE(chain.http_connection_manager.has_value());
  REQUIRE(chain.tcp_proxy.has_value());
  const TcpProxyConfig& t = *chain.tcp_proxy;
  CHECK(t.stat_prefix == "db");
  CHECK(t.cluster == "a");
  CHECK(t.weighted_clusters.empty());
  CHECK(t.idle_timeout == std::chrono::hours(1));
  CHECK(t.max_connect_attempts == 1);
  CHECK(t.access_logs.empty());
}

TEST_CASE("tcp_proxy honours idle_timeout, max_connect_attempts, weighted_clusters and access_log",
          "[config][tcp_proxy]") {
  auto s = build(tcpBootstrap(R"(          stat_prefix: db
          weighted_clusters: {clusters: [{name: a, weight: 3}, {name: b, weight: 1}]}
          idle_timeout: 0s
          max_connect_attempts: 3
          access_log:
          - name: log
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
)"));
  const TcpProxyConfig& t = *s->listeners[0].filter_chains[0].tcp_proxy;
  CHECK(t.cluster.empty());
  REQUIRE(t.weighted_clusters.size() == 2);
  CHECK(t.weighted_clusters[0].name == "a");
  CHECK(t.weighted_clusters[0].weight == 3);
  CHECK(t.weighted_clusters[1].name == "b");
  CHECK(t.total_weight == 4);
  CHECK(t.idle_timeout.count() == 0);  // 0 disables it
  CHECK(t.max_connect_attempts == 3);
  REQUIRE(t.access_logs.size() == 1);
  CHECK(t.access_logs[0].sink == AccessLogConfig::Sink::Stdout);
}

TEST_CASE("tcp_proxy fields turnout does not honour are refused with their path",
          "[config][tcp_proxy]") {
  struct Case {
    std::string fields;
    std::string want;
  };
  const std::string base = "          stat_prefix: db\n          cluster: a\n";
  auto c = GENERATE_COPY(values<Case>({
      {base + "          tunneling_config: {hostname: h}\n",
       absl::StrCat(kTcpPath, ".tunneling_config: tunneling TCP over HTTP (CONNECT) is not supported")},
      {base + "          hash_policy: [{source_ip: {}}]\n",
       absl::StrCat(kTcpPath, ".hash_policy: hash policies on a TCP proxy are not supported")},
      {base + "          max_downstream_connection_duration: 10s\n",
       absl::StrCat(kTcpPath, ".max_downstream_connection_duration: ")},
      {base + "          metadata_match: {filter_metadata: {envoy.lb: {v: 1}}}\n",
       absl::StrCat(kTcpPath, ".metadata_match: subset load balancing")},
      {base + "          on_demand: {}\n", absl::StrCat(kTcpPath, ".on_demand: on-demand cluster discovery")},
      {base + "          downstream_idle_timeout: 5s\n", absl::StrCat(kTcpPath, ".downstream_idle_timeout: ")},
      {base + "          access_log_options: {flush_access_log_on_connected: true}\n",
       absl::StrCat(kTcpPath, ".access_log_options: ")},
      {"          stat_prefix: db\n          weighted_clusters: {clusters: [{name: a, weight: 1, metadata_match: {filter_metadata: {envoy.lb: {v: 1}}}}]}\n",
       absl::StrCat(kTcpPath, ".weighted_clusters.clusters[0].metadata_match: subset load balancing")},
      // PGV: stat_prefix is required, and so is a cluster specifier.
      {"          cluster: a\n", absl::StrCat(kTcpPath, ".stat_prefix")},
      {"          stat_prefix: db\n", kTcpPath},
      // Inline names are checked like a route's clusters.
      {"          stat_prefix: db\n          cluster: nope\n",
       absl::StrCat(kTcpPath, ".cluster: unknown cluster 'nope'")},
      {"          stat_prefix: db\n          weighted_clusters: {clusters: [{name: a, weight: 1}, {name: nope, weight: 1}]}\n",
       absl::StrCat(kTcpPath, ".weighted_clusters.clusters[1].name: unknown cluster 'nope'")},
      {"          stat_prefix: db\n          weighted_clusters: {clusters: [{name: a, weight: 0}]}\n",
       absl::StrCat(kTcpPath, ".weighted_clusters.clusters[0].weight")},
  }));
  CAPTURE(c.fields);
  const std::string got = validate(tcpBootstrap(c.fields));
  CAPTURE(got);
  CHECK(got.rfind(c.want, 0) == 0);
}

TEST_CASE("a tcp_proxy must be the last network filter of its chain", "[config][tcp_proxy]") {
  const std::string got = validate(tcpBootstrap("          stat_prefix: db\n          cluster: a\n", R"(
      - name: second
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: db2
          cluster: b
)"));
  CHECK(got ==
        "static_resources.listeners[0].filter_chains[0].filters[0]: terminal filter named "
        "envoy.filters.network.tcp_proxy of type envoy.filters.network.tcp_proxy must be the last "
        "filter in a network filter chain.");
}

TEST_CASE("a tcp_proxy chain may terminate TLS", "[config][tcp_proxy]") {
  // The certificate files are read when serving (docs/tls.md); the chain's
  // translation keeps the context.
  BootstrapLoadOptions options;
  options.config_yaml = tcpBootstrap("          stat_prefix: db\n          cluster: a\n", R"(
      transport_socket:
        name: tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context: {tls_certificates: [{certificate_chain: {filename: /x.crt}, private_key: {filename: /x.key}}]}
)");
  auto loaded = loadBootstrap(options);
  REQUIRE(loaded.ok());
  auto s = SnapshotBuilder::build(loaded->bootstrap);
  REQUIRE(s.ok());
  CHECK((*s)->listeners[0].filter_chains[0].has_tls);
  CHECK((*s)->listeners[0].filter_chains[0].tcp_proxy.has_value());
}

TEST_CASE("an ORIGINAL_DST cluster gets Envoy's defaults", "[config][original_dst]") {
  auto s = build(tcpBootstrap("          stat_prefix: db\n          cluster: o\n"));
  const ClusterConfig* o = s->findCluster("o");
  REQUIRE(o != nullptr);
  CHECK(o->type == ClusterConfig::Type::OriginalDst);
  CHECK(o->lb_policy == ClusterConfig::LbPolicy::ClusterProvided);
  CHECK(o->localities.empty());
  REQUIRE(o->original_dst.has_value());
  CHECK_FALSE(o->original_dst->use_http_header);
  CHECK(o->original_dst->http_header == "x-envoy-original-dst-host");
  CHECK_FALSE(o->original_dst->port_override.has_value());
  CHECK(o->original_dst->cleanup_interval == std::chrono::seconds(5));
  CHECK_FALSE(s->findCluster("a")->original_dst.has_value());
}

TEST_CASE("an ORIGINAL_DST cluster honours original_dst_lb_config and cleanup_interval",
          "[config][original_dst]") {
  auto s = build(tcpBootstrap("          stat_prefix: db\n          cluster: p\n", "", R"(
  - name: p
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    cleanup_interval: 0.25s
    original_dst_lb_config: {use_http_header: true, http_header_name: X-Dest, upstream_port_override: 8080}
)"));
  const ClusterConfig* p = s->findCluster("p");
  REQUIRE(p != nullptr);
  REQUIRE(p->original_dst.has_value());
  CHECK(p->original_dst->use_http_header);
  CHECK(p->original_dst->http_header == "x-dest");  // matched lowercase
  REQUIRE(p->original_dst->port_override.has_value());
  CHECK(*p->original_dst->port_override == 8080);
  CHECK(p->original_dst->cleanup_interval == std::chrono::milliseconds(250));
}

TEST_CASE("ORIGINAL_DST clusters are refused as Envoy refuses them", "[config][original_dst]") {
  struct Case {
    std::string cluster;
    std::string want;
  };
  const std::string p = "static_resources.clusters[3]";
  auto c = GENERATE_COPY(values<Case>({
      {"  - {name: p, type: ORIGINAL_DST, lb_policy: ROUND_ROBIN}\n",
       p + ".lb_policy: cluster: LB policy ROUND_ROBIN is not valid for Cluster type ORIGINAL_DST. "
           "Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'"},
      {"  - {name: p, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, load_assignment: {cluster_name: p}}\n",
       p + ".load_assignment: ORIGINAL_DST clusters must have no load assignment configured"},
      {"  - {name: p, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, original_dst_lb_config: {http_header_name: x-d}}\n",
       p + ".original_dst_lb_config.http_header_name: ORIGINAL_DST cluster: invalid config "
           "http_header_name=x-d and use_http_header is false."},
      {"  - {name: p, type: STATIC, lb_policy: CLUSTER_PROVIDED}\n",
       p + ".lb_policy: cluster: LB policy CLUSTER_PROVIDED is not valid for Cluster type STATIC"},
      {"  - {name: p, original_dst_lb_config: {use_http_header: true}}\n",
       p + ".original_dst_lb_config: original_dst_lb_config applies to ORIGINAL_DST clusters only"},
      {"  - {name: p, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, outlier_detection: {}}\n",
       p + ".outlier_detection: outlier detection on an ORIGINAL_DST cluster is not supported"},
      {"  - name: p\n    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n    health_checks: [{timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: {path: /}}]\n",
       p + ".health_checks[0]: health checks on an ORIGINAL_DST cluster are not supported"},
      {"  - {name: p, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, original_dst_lb_config: {upstream_port_override: 70000}}\n",
       p + ".original_dst_lb_config.upstream_port_override"},
  }));
  CAPTURE(c.cluster);
  const std::string got = validate(tcpBootstrap("          stat_prefix: db\n          cluster: a\n", "", c.cluster));
  CAPTURE(got);
  CHECK(got.rfind(c.want, 0) == 0);
}

TEST_CASE("an HCM route may name an ORIGINAL_DST cluster", "[config][original_dst]") {
  CHECK(validate(R"(
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          route_config:
            virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: PassthroughCluster}}]}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: PassthroughCluster
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    original_dst_lb_config: {use_http_header: true}
)") == "OK");
}

}  // namespace
}  // namespace turnout::config
