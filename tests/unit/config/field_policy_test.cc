#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "config/bootstrap/field_policy.h"
#include "config/snapshot/snapshot_builder.h"
#include "envoy/config/route/v3/route.pb.h"
#include "google/protobuf/descriptor.h"

namespace turnout::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;

std::string source(const std::string& rel) { return std::string(TURNOUT_SOURCE_DIR) + "/" + rel; }

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// What `turnout --mode validate --config-yaml <yaml>` answers (the call it makes).
std::string validate(const std::string& yaml) {
  BootstrapLoadOptions options;
  options.config_yaml = yaml;
  auto loaded = SnapshotBuilder::load(options);
  return loaded.ok() ? "OK" : std::string(loaded.status().message());
}

// The message a table key names: a message full name, or the full name of the
// field it is reached through.
const Descriptor* messageOfKey(absl::string_view key) {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  if (const Descriptor* d = pool->FindMessageTypeByName(std::string(key))) return d;
  if (const auto* f = pool->FindFieldByName(std::string(key))) return f->message_type();
  return nullptr;
}

struct DocRow {
  std::string status;
  std::string test_file;
  std::string test_case;
};

// docs/envoy-compatibility.md rows: | `field` | status | `test file` | test case |
std::map<std::string, DocRow> docRows() {
  std::map<std::string, DocRow> rows;
  std::istringstream doc(readFile(source("docs/envoy-compatibility.md")));
  std::string line;
  while (std::getline(doc, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    std::vector<std::string> cols = absl::StrSplit(line, '|');
    if (cols.size() < 6) continue;
    auto cell = [&](size_t i) {
      std::string s(absl::StripAsciiWhitespace(cols[i]));
      if (s.size() >= 2 && s.front() == '`' && s.back() == '`') s = s.substr(1, s.size() - 2);
      return s;
    };
    rows[cell(1)] = DocRow{cell(2), cell(3), cell(4)};
  }
  return rows;
}

// Supported fields whose behaviour tests land with the work that implements them
// (issue #8, in progress on other branches). The integrator empties this list when
// those branches merge; until then the doc row says `pending`.
const std::set<std::string>& pendingBehaviourTests() {
  static const auto* pending = new std::set<std::string>{
  };
  return *pending;
}

// Supported fields that the code reads and applies but that no test sets yet: the
// debt this file makes visible. Each entry is a test to write (then delete the
// entry); the doc row says `untested`. Do not add to this list: a new field needs
// its behaviour test or a rejection.
const std::set<std::string>& untestedSupportedFields() {
  static const auto* untested = new std::set<std::string>{
  };
  return *untested;
}

TEST_CASE("every field the policy names exists in its message", "[config][policy]") {
  for (const auto& [key, policy] : fieldPolicyTable()) {
    const Descriptor* d = messageOfKey(key);
    INFO(key);
    REQUIRE(d != nullptr);
    for (const auto* list : {&policy.supported, &policy.inert}) {
      for (absl::string_view f : *list) {
        INFO(f);
        CHECK(d->FindFieldByName(std::string(f)) != nullptr);
      }
    }
    for (const auto& [f, reason] : policy.reasons) {
      INFO(f);
      CHECK(d->FindFieldByName(std::string(f)) != nullptr);
    }
  }
}

TEST_CASE("every supported field names the behaviour test that covers it", "[config][policy]") {
  const auto rows = docRows();
  REQUIRE(rows.size() > 100);
  std::map<std::string, std::string> files;  // test file -> contents
  size_t supported = 0, inert = 0;
  for (const auto& [key, policy] : fieldPolicyTable()) {
    for (absl::string_view f : policy.supported) {
      ++supported;
      const std::string name = absl::StrCat(key, ".", f);
      INFO("docs/envoy-compatibility.md row for " << name);
      auto it = rows.find(name);
      REQUIRE(it != rows.end());
      CHECK(it->second.status == "supported");
      if (pendingBehaviourTests().count(name) > 0) {
        CHECK(it->second.test_file == "pending");
        continue;
      }
      if (untestedSupportedFields().count(name) > 0) {
        CHECK(it->second.test_file == "untested");
        continue;
      }
      INFO("test: " << it->second.test_file << " / " << it->second.test_case);
      if (!files.count(it->second.test_file)) {
        files[it->second.test_file] = readFile(source(it->second.test_file));
      }
      const std::string& contents = files[it->second.test_file];
      REQUIRE_FALSE(contents.empty());
      REQUIRE_FALSE(it->second.test_case.empty());
      CHECK(contents.find(it->second.test_case) != std::string::npos);
    }
    for (absl::string_view f : policy.inert) {
      ++inert;
      const std::string name = absl::StrCat(key, ".", f);
      INFO("docs/envoy-compatibility.md row for " << name);
      auto it = rows.find(name);
      REQUIRE(it != rows.end());
      CHECK(it->second.status == "inert");
    }
  }
  // The doc names no field the policy does not accept as documented.
  for (const auto& [name, row] : rows) {
    if (row.status != "supported" && row.status != "inert") continue;
    size_t dot = name.rfind('.');
    auto it = fieldPolicyTable().find(name.substr(0, dot));
    INFO(name << " is listed as " << row.status << " but the policy does not say so");
    REQUIRE(it != fieldPolicyTable().end());
    const auto& list = row.status == "supported" ? it->second.supported : it->second.inert;
    bool found = false;
    for (absl::string_view f : list) found = found || f == name.substr(dot + 1);
    CHECK(found);
  }
  CHECK(supported > 0);
  CHECK(inert > 0);
}

// A bootstrap around one listener, HCM and cluster, with places to add fields to
// each (and to the top level, and HTTP filters before the router).
std::string bootstrap(const std::string& listener_extra, const std::string& chain_extra,
                      const std::string& hcm_extra, const std::string& cluster_extra,
                      const std::string& top_extra = "", const std::string& filters_extra = "") {
  return absl::StrCat(R"(
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
)", listener_extra, R"(
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
)", hcm_extra, R"(
          http_filters:
)", filters_extra, R"(
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
)", chain_extra, R"(
  clusters:
  - name: c
    load_assignment:
      cluster_name: c
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]
)", cluster_extra, top_extra);
}

const char* kRouteConfig = R"(
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes: [{match: {prefix: "/"}, route: {cluster: c}}]
)";

TEST_CASE("the policy's base bootstrap validates", "[config][policy]") {
  CHECK(validate(bootstrap("", "", kRouteConfig, "")) == "OK");
}

TEST_CASE("features turnout does not implement fail validation with their field path",
          "[config][policy]") {
  const std::string tls_listener =
      R"(      transport_socket:
        name: tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context: {tls_certificates: [{certificate_chain: {filename: /nonexistent.crt}, private_key: {filename: /nonexistent.key}}]}
)";
  const std::string hpo = R"(    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
)";
  const std::string ch = "static_resources.listeners[0].filter_chains[0]";
  const std::string hcm = ch + ".filters[0].typed_config";
  const std::string opts = "static_resources.clusters[0].typed_extension_protocol_options[\"envoy.extensions.upstreams.http.v3.HttpProtocolOptions\"]";
  struct Case {
    std::string what;
    std::string yaml;
    std::string want;
  };
  auto [what, yaml, want] = GENERATE_COPY(values<Case>({
      {"a listener with the upstream side's TLS context",
       bootstrap(
           "", absl::StrReplaceAll(tls_listener, {{"DownstreamTlsContext", "UpstreamTlsContext"}}),
           kRouteConfig, ""),
       ch + ".transport_socket.typed_config: unsupported extension type "
            "'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext'"},
      {"cluster TLS with a field turnout does not honour",
       bootstrap(
           "", "", kRouteConfig,
           "    transport_socket: {name: tls, typed_config: {\"@type\": "
           "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: "
           "x, allow_renegotiation: true}}\n"),
       "static_resources.clusters[0].transport_socket.typed_config.allow_renegotiation: TLS "
       "renegotiation is not supported by turnout"},
      {"a cluster with the listener side's TLS context",
       bootstrap("", "", kRouteConfig,
                 "    transport_socket: {name: tls, typed_config: {\"@type\": "
                 "type.googleapis.com/"
                 "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext}}\n"),
       "static_resources.clusters[0].transport_socket"},
      {"transport_socket_matches",
       bootstrap(
           "", "", kRouteConfig,
           "    transport_socket_matches: [{name: m, transport_socket: {name: raw, typed_config: "
           "{\"@type\": "
           "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}}]\n"),
       "static_resources.clusters[0].transport_socket_matches: transport socket matches are not "
       "supported by turnout yet"},
      {"cluster http2_protocol_options field not honoured",
       bootstrap("", "", kRouteConfig, "    http2_protocol_options: {allow_metadata: true}\n"),
       "static_resources.clusters[0].http2_protocol_options.allow_metadata: not honoured by "
       "turnout's HTTP/2 connections"},
      {"explicit http2 field not honoured",
       bootstrap("", "", kRouteConfig,
                 hpo + "        explicit_http_config: {http2_protocol_options: "
                       "{connection_keepalive: {interval: 1s}}}\n"),
       opts + ".explicit_http_config.http2_protocol_options.connection_keepalive: not honoured by "
              "turnout's HTTP/2 connections"},
      {"explicit http2 field after an honoured one",
       bootstrap("", "", kRouteConfig,
                 hpo + "        explicit_http_config: {http2_protocol_options: "
                       "{initial_stream_window_size: 65535, "
                       "max_inbound_priority_frames_per_stream: 3, allow_metadata: true}}\n"),
       opts + ".explicit_http_config.http2_protocol_options.allow_metadata: not honoured"},
      {"use_downstream_protocol_config over HTTP/3",
       bootstrap("", "", kRouteConfig,
                 hpo + "        use_downstream_protocol_config: {http3_protocol_options: {}}\n"),
       opts + ".use_downstream_protocol_config.http3_protocol_options: HTTP/3 upstreams are not "
              "supported by turnout"},
      {"auto_config over HTTP/3",
       bootstrap("", "", kRouteConfig, hpo + "        auto_config: {http3_protocol_options: {}}\n"),
       opts + ".auto_config.http3_protocol_options: HTTP/3 upstreams are not supported by turnout"},
      {"EDS cluster without eds_cluster_config", bootstrap("", "", kRouteConfig, "    type: EDS\n"),
       "static_resources.clusters[0].eds_cluster_config: cannot create an EDS cluster without an "
       "EDS config"},
      {"ORIGINAL_DST cluster with a metadata key", absl::StrCat(R"(
static_resources:
  clusters:
  - name: o
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    original_dst_lb_config: {metadata_key: {key: k, path: [{key: p}]}}
)"),
       "static_resources.clusters[0].original_dst_lb_config.metadata_key: the original destination "
       "from dynamic metadata"},
      {"TCP proxy tunneling", absl::StrCat(R"(
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: tcp
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: c
          tunneling_config: {hostname: x}
  clusters: [{name: c}]
)"),
       hcm + ".tunneling_config: tunneling TCP over HTTP (CONNECT) is not supported by turnout"},
      {"EDS over REST",
       bootstrap("", "", kRouteConfig,
                 "    type: EDS\n    eds_cluster_config: {eds_config: {api_config_source: "
                 "{api_type: REST}}}\n"),
       "static_resources.clusters[0].eds_cluster_config.eds_config.api_config_source.api_type: "
       "turnout streams xDS over gRPC"},
      {"EDS with an inline load_assignment",
       bootstrap("", "", kRouteConfig,
                 "    type: EDS\n    eds_cluster_config: {eds_config: {path: /tmp/eds.json}}\n"),
       "static_resources.clusters[0].load_assignment: an EDS cluster takes its endpoints from "
       "eds_cluster_config"},
      {"dynamic_resources ADS to an unknown cluster",
       bootstrap("", "", kRouteConfig, "",
                 "dynamic_resources: {ads_config: {api_type: GRPC, transport_api_version: V3, "
                 "grpc_services: [{envoy_grpc: {cluster_name: nope}}]}}\n"),
       "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name: unknown cluster "
       "'nope'"},
      {"dynamic_resources ADS over REST",
       bootstrap("", "", kRouteConfig, "",
                 "dynamic_resources: {ads_config: {api_type: REST, transport_api_version: V3, "
                 "grpc_services: [{envoy_grpc: {cluster_name: c}}]}}\n"),
       "dynamic_resources.ads_config.api_type: turnout streams xDS over gRPC: api_type GRPC or "
       "DELTA_GRPC"},
      {"dynamic_resources ADS over google_grpc",
       bootstrap("", "", kRouteConfig, "",
                 "dynamic_resources: {ads_config: {api_type: GRPC, transport_api_version: V3, "
                 "grpc_services: [{google_grpc: {target_uri: x, stat_prefix: x}}]}}\n"),
       "dynamic_resources.ads_config.grpc_services[0].google_grpc: google_grpc is not supported by "
       "turnout"},
      {"dynamic_resources lds_config api_config_source without V3",
       bootstrap("", "", kRouteConfig, "",
                 "dynamic_resources: {lds_config: {api_config_source: {api_type: GRPC}}}\n"),
       "dynamic_resources.lds_config.api_config_source.transport_api_version: must be V3"},
      {"dynamic_resources cds_config ads without ads_config",
       bootstrap("", "", kRouteConfig, "", "dynamic_resources: {cds_config: {ads: {}}}\n"),
       "dynamic_resources.cds_config.ads: an ads config source needs dynamic_resources.ads_config"},
      {"rds over ADS without ads_config",
       bootstrap("", "", "          rds: {route_config_name: r, config_source: {ads: {}}}\n", ""),
       hcm + ".rds.config_source.ads: an ads config source needs dynamic_resources.ads_config"},
      {"SDS secrets",
       bootstrap("", "", kRouteConfig, "",
                 "  secrets: [{name: s, generic_secret: {secret: {inline_string: x}}}]\n"),
       "static_resources.secrets[0].generic_secret: generic secrets are not supported by turnout"},
      {"filter_chain_match.address_suffix",
       bootstrap("", "      filter_chain_match: {destination_port: 80, address_suffix: \"1.2\"}\n",
                 kRouteConfig, ""),
       ch + ".filter_chain_match.address_suffix: not implemented by Envoy either"},
      {"filter_chain_match.suffix_len",
       bootstrap("", "      filter_chain_match: {server_names: [a.example], suffix_len: 8}\n",
                 kRouteConfig, ""),
       ch + ".filter_chain_match.suffix_len: not implemented by Envoy either"},
      {"filter_chain_match.prefix_ranges malformed",
       bootstrap("",
                 "      filter_chain_match: {prefix_ranges: [{address_prefix: 10.0.0.0, "
                 "prefix_len: 33}]}\n",
                 kRouteConfig, ""),
       ch + ".filter_chain_match.prefix_ranges[0].prefix_len: 33 is longer than the 32 bits of "
            "10.0.0.0"},
      {"filter_chain_match.transport_protocol quic",
       bootstrap("", "      filter_chain_match: {transport_protocol: quic}\n", kRouteConfig, ""),
       ch + ".filter_chain_match.transport_protocol: 'quic' is never detected by turnout"},
      {"filter_chain_matcher",
       bootstrap("    filter_chain_matcher: {on_no_match: {action: {name: x, typed_config: "
                 "{\"@type\": type.googleapis.com/google.protobuf.StringValue, value: a}}}}\n",
                 "", kRouteConfig, ""),
       "static_resources.listeners[0].filter_chain_matcher"},
      {"UDP listener",
       absl::StrReplaceAll(bootstrap("", "", kRouteConfig, ""),
                           {{"port_value: 0}", "port_value: 0, protocol: UDP}"}}),
       "static_resources.listeners[0].address.socket_address.protocol: UDP is not supported by "
       "turnout"},
      {"HCM request_timeout (not honoured)",
       bootstrap("", "", absl::StrCat("          request_timeout: 5s\n", kRouteConfig), ""),
       hcm + ".request_timeout: field "
             "'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager."
             "request_timeout' is not supported by turnout"},
      {"a route field turnout ignores",
       bootstrap("", "",
                 R"(          route_config:
            internal_only_headers: [x-internal]
            virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: c}}]}]
)",
                 ""),
       hcm + ".route_config.internal_only_headers: field "
             "'envoy.config.route.v3.RouteConfiguration.internal_only_headers' is not supported by "
             "turnout"},
      {"a Bootstrap field nobody listed",
       bootstrap("", "", kRouteConfig, "", "stats_flush_interval: 5s\n"),
       "stats_flush_interval: field 'envoy.config.bootstrap.v3.Bootstrap.stats_flush_interval' is "
       "not supported by turnout"},
      {"health_check pass_through_mode", bootstrap("", "", kRouteConfig, "", "", R"(
          - name: envoy.filters.http.health_check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
              pass_through_mode: true
)"),
       hcm + ".http_filters[0].typed_config.pass_through_mode: pass-through health checking is not "
             "supported"},
      {"socket options of an extra source address",
       bootstrap("", "", kRouteConfig,
                 "    upstream_bind_config: {source_address: {address: 127.0.0.6, port_value: 0}, "
                 "extra_source_addresses: [{address: {address: \"::6\", port_value: 0}, "
                 "socket_options: {socket_options: [{level: 1, name: 2, int_value: 1}]}}]}\n"),
       "static_resources.clusters[0].upstream_bind_config.extra_source_addresses[0].socket_options:"
       " "
       "socket options are not supported by turnout"},
  }));
  INFO(what);
  INFO(yaml);
  const std::string got = validate(yaml);
  INFO(got);
  CHECK(got.rfind(want, 0) == 0);
}

TEST_CASE("a sidecar capture listener's fields are accepted", "[config][policy]") {
  // Istio's virtualOutbound and virtualInbound, and a per-port listener
  // that binds no socket.
  CHECK(validate(bootstrap(R"(    use_original_dst: true
    transparent: true
    listener_filters:
    - name: envoy.filters.listener.original_dst
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst}
    - name: envoy.filters.listener.http_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector}
)",
                           R"(      filter_chain_match:
        destination_port: 8080
        prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}, {address_prefix: "fd00::"}]
        application_protocols: [http/1.1, h2c]
        direct_source_prefix_ranges: [{address_prefix: 127.0.0.1, prefix_len: 32}]
        source_type: SAME_IP_OR_LOOPBACK
        source_prefix_ranges: [{address_prefix: 10.1.0.0, prefix_len: 16}]
        source_ports: [1000, 1001]
)",
                           kRouteConfig, "")) == "OK");
  CHECK(validate(bootstrap("    bind_to_port: false\n", "", kRouteConfig, "")) == "OK");
}

TEST_CASE("codec_type AUTO is accepted (it serves HTTP/1.1)", "[config][policy]") {
  CHECK(validate(bootstrap("", "", absl::StrCat("          codec_type: AUTO\n", kRouteConfig), "")) ==
        "OK");
}

TEST_CASE("an UpstreamTlsContext on a cluster is accepted", "[config][policy]") {
  CHECK(validate(bootstrap("", "", kRouteConfig,
                           "    transport_socket: {name: tls, typed_config: {\"@type\": "
                           "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                           "UpstreamTlsContext, sni: svc.test, common_tls_context: "
                           "{alpn_protocols: [h2]}}}\n")) == "OK");
}

TEST_CASE("a raw_buffer transport socket is plaintext and accepted", "[config][policy]") {
  CHECK(validate(bootstrap("", R"(      transport_socket:
        name: raw
        typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}
)", kRouteConfig, "")) == "OK");
}

TEST_CASE("inert fields are accepted and not looked into", "[config][policy]") {
  // metadata is inert: whatever it holds is accepted.
  CHECK(validate(bootstrap("    metadata: {filter_metadata: {x: {y: 1}}}\n", "", kRouteConfig, "")) ==
        "OK");
}

TEST_CASE("a route configuration outside a bootstrap is checked by the same policy",
          "[config][policy]") {
  envoy::config::route::v3::RouteConfiguration rc;
  rc.add_internal_only_headers("x-internal");
  auto s = checkFieldPolicy(rc, "rds");
  CHECK(s.message() ==
        "rds.internal_only_headers: field "
        "'envoy.config.route.v3.RouteConfiguration.internal_only_headers' is not supported by "
        "turnout");
}

}  // namespace
}  // namespace turnout::config
