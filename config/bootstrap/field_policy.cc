#include "config/bootstrap/field_policy.h"

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "config/bootstrap/extensions.h"
#include "config/bootstrap/field_path.h"
#include "envoy/config/core/v3/address.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "envoy/extensions/filters/http/grpc_stats/v3/config.pb.h"
#include "envoy/extensions/filters/http/health_check/v3/health_check.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/common.pb.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"

// The table's designated initializers leave out the lists a message does not need.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace turnout::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

namespace core_v3 = envoy::config::core::v3;
namespace listener_v3 = envoy::config::listener::v3;
namespace route_v3 = envoy::config::route::v3;
namespace hcm_v3 = envoy::extensions::filters::network::http_connection_manager::v3;

constexpr absl::string_view kRawBuffer =
    "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";

absl::string_view typeNameOf(absl::string_view type_url) {
  size_t slash = type_url.rfind('/');
  return slash == absl::string_view::npos ? type_url : type_url.substr(slash + 1);
}

absl::Status rejected(absl::string_view path, absl::string_view reason) {
  return absl::InvalidArgumentError(atPath(path, reason));
}

// --- value rules -------------------------------------------------------------------

absl::Status checkTransportSocket(const Message& m, absl::string_view path) {
  const auto& ts = static_cast<const core_v3::TransportSocket&>(m);
  absl::string_view type = typeNameOf(ts.typed_config().type_url());
  if (!ts.has_typed_config() || type == kRawBuffer) return absl::OkStatus();
  // A listener's filter chain serves TLS with a DownstreamTlsContext, a
  // cluster connects with an UpstreamTlsContext (proxy/tls; docs/tls.md).
  // Anything else, including a TLS context of the other side's type, is
  // refused rather than served as plaintext.
  const bool listener_side = absl::StrContains(path, "filter_chain");
  if (listener_side && type == kDownstreamTlsContextType) return absl::OkStatus();
  if (!listener_side && type == kUpstreamTlsContextType) return absl::OkStatus();
  std::string what = absl::StrContains(type, ".tls.v3.")
                         ? absl::StrCat("TLS (", type, ") on a ",
                                        listener_side ? "listener" : "cluster")
                         : absl::StrCat("transport socket ", type);
  return rejected(path, absl::StrCat(what, " is not supported by turnout; use ",
                                     listener_side ? "DownstreamTlsContext or raw_buffer"
                                                   : "raw_buffer"));
}

absl::Status checkHcm(const Message& m, absl::string_view path) {
  const auto& hcm = static_cast<const hcm_v3::HttpConnectionManager&>(m);
  switch (hcm.codec_type()) {
    case hcm_v3::HttpConnectionManager::HTTP3:
      return rejected(fieldPath(path, "codec_type"), "HTTP3 is not supported by turnout");
    default:
      return absl::OkStatus();
  }
}

absl::Status checkSocketAddress(const Message& m, absl::string_view path) {
  const auto& s = static_cast<const core_v3::SocketAddress&>(m);
  if (s.protocol() == core_v3::SocketAddress::UDP) {
    return rejected(fieldPath(path, "protocol"), "UDP is not supported by turnout");
  }
  return absl::OkStatus();
}

absl::Status checkHealthCheckFilter(const Message& m, absl::string_view path) {
  const auto& hc = static_cast<const envoy::extensions::filters::http::health_check::v3::HealthCheck&>(m);
  if (hc.has_pass_through_mode() && hc.pass_through_mode().value()) {
    return rejected(fieldPath(path, "pass_through_mode"),
                    "pass-through health checking is not supported by turnout; set it to false");
  }
  return absl::OkStatus();
}

absl::Status checkGrpcStatsFilter(const Message& m, absl::string_view path) {
  const auto& g =
      static_cast<const envoy::extensions::filters::http::grpc_stats::v3::FilterConfig&>(m);
  if (g.emit_filter_state()) {
    return rejected(fieldPath(path, "emit_filter_state"),
                    "the gRPC stats filter state object is not supported by turnout (no access "
                    "log command reads filter state); set it to false");
  }
  return absl::OkStatus();
}

absl::Status checkRouteAction(const Message& m, absl::string_view path) {
  const auto& a = static_cast<const route_v3::RouteAction&>(m);
  if (a.priority() == core_v3::HIGH) {
    return rejected(fieldPath(path, "priority"),
                    "HIGH priority routing (the HIGH circuit-breaker thresholds) is not "
                    "supported by turnout; every route uses the DEFAULT thresholds");
  }
  return absl::OkStatus();
}

constexpr absl::string_view kPerFilterConfigReason =
    "per-route filter config is not applied by turnout yet, but for the CORS filter's policy "
    "(envoy.extensions.filters.http.cors.v3.CorsPolicy) on a virtual host or route; configure "
    "the filter in http_filters";

// typed_per_filter_config on a virtual host or route: only the CORS filter's
// policy is applied (docs/cors.md); any other entry is refused, not ignored.
template <typename Holder>
absl::Status checkPerFilterConfig(const Message& m, absl::string_view path) {
  const auto& holder = static_cast<const Holder&>(m);
  for (const auto& [key, any] : holder.typed_per_filter_config()) {
    if (any.type_url() != "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy") {
      return rejected(keyPath(fieldPath(path, "typed_per_filter_config"), key),
                      kPerFilterConfigReason);
    }
  }
  return absl::OkStatus();
}

absl::Status checkSanMatcher(const Message& m, absl::string_view path) {
  const auto& san = static_cast<const envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher&>(m);
  if (san.san_type() == envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher::OTHER_NAME) {
    return rejected(fieldPath(path, "san_type"),
                    "OTHER_NAME SAN matching is not supported by turnout; use DNS, URI, EMAIL or IP_ADDRESS");
  }
  return absl::OkStatus();
}

// --- the table ---------------------------------------------------------------------

constexpr absl::string_view kHttp2OptionReason =
    "not honoured by turnout's HTTP/2 connections (supported: allow_connect, "
    "max_concurrent_streams, initial_stream_window_size, initial_connection_window_size, "
    "hpack_table_size and the five flood limits)";
constexpr absl::string_view kXdsReason = "not supported by turnout; use ads (with dynamic_resources.ads_config), api_config_source (gRPC) or path_config_source";
constexpr absl::string_view kXdsLocatorReason = "xDS-TP resource locators are not supported by turnout";
constexpr absl::string_view kXdsRestReason = "REST xDS is not supported by turnout; use api_type GRPC";
constexpr absl::string_view kSidecarReason = "is not supported by turnout yet (issue: sidecar traffic capture)";
constexpr absl::string_view kAddressSuffixReason = "not implemented by Envoy either (its listener refuses a filter chain that sets it); match destination addresses with prefix_ranges";
constexpr absl::string_view kTransportSocketMatchesReason = "transport socket matches are not supported by turnout yet (issue: HTTP/2, gRPC and TLS)";
constexpr absl::string_view kRuntimeReason = "the runtime is not supported by turnout";
constexpr absl::string_view kTlsSniReason = "require_sni is not supported by turnout yet";
constexpr absl::string_view kTlsTicketKeysReason = "configured session ticket keys are not supported by turnout; each context makes its own random keys";
constexpr absl::string_view kTlsOneCertReason = "certificate selection by SNI is not supported by turnout yet (one certificate per context)";
constexpr absl::string_view kTlsProviderReason = "certificate providers are not supported by turnout; use tls_certificates or a static secret";

FieldPolicyTable* buildTable() {
  auto* t = new FieldPolicyTable();
  auto& table = *t;

  // ---- bootstrap ----
  table["envoy.config.bootstrap.v3.Bootstrap"] = {
      .supported = {"node", "static_resources", "admin", "dynamic_resources"},
      .reasons = {{"layered_runtime", kRuntimeReason},
                  {"stats_sinks", "stats sinks are not supported by turnout (scrape /stats)"},
                  {"tracing", "tracing is not supported by turnout"},
                  {"overload_manager", "the overload manager is not supported by turnout"}}};
  // Identity for an xDS server; turnout shows it in /server_info and /config_dump.
  table["envoy.config.core.v3.Node"] = {
      .supported = {"id", "cluster"},
      .inert = {"locality", "metadata", "user_agent_name", "user_agent_version",
                "user_agent_build_version", "extensions", "client_features",
                "listening_addresses", "dynamic_parameters"}};
  // Filesystem subscriptions (docs/config_snapshots.md), the ADS stream and
  // one gRPC stream per type (api_config_source) (docs/xds.md). REST is refused.
  table["envoy.config.bootstrap.v3.Bootstrap.DynamicResources"] = {
      .supported = {"cds_config", "lds_config", "ads_config"},
      .reasons = {{"cds_resources_locator", kXdsLocatorReason},
                  {"lds_resources_locator", kXdsLocatorReason}}};
  table["envoy.config.core.v3.ConfigSource"] = {
      .supported = {"path_config_source", "path", "ads", "api_config_source",
                    "initial_fetch_timeout"},
      .inert = {"resource_api_version"},
      .reasons = {{"self", kXdsReason},
                  {"authorities", kXdsReason}}};
  table["envoy.config.core.v3.AggregatedConfigSource"] = {};
  // ads_config and api_config_source (checked further in SnapshotBuilder:
  // api_type GRPC or DELTA_GRPC, V3, one envoy_grpc service naming a static
  // cluster).
  table["envoy.config.core.v3.ApiConfigSource"] = {
      .supported = {"api_type", "transport_api_version", "grpc_services"},
      .inert = {"set_node_on_first_message_only"},
      .reasons = {{"cluster_names", kXdsRestReason},
                  {"refresh_delay", kXdsRestReason},
                  {"request_timeout", kXdsRestReason},
                  {"rate_limit_settings", "xDS request rate limiting is not supported by turnout"},
                  {"config_validators", "config validators are not supported by turnout"}}};
  table["envoy.config.core.v3.GrpcService"] = {
      .supported = {"envoy_grpc"},
      .reasons = {{"google_grpc", "google_grpc is not supported by turnout; use envoy_grpc (a cluster)"},
                  {"timeout", "a deadline would end the long-lived xDS stream; not supported"},
                  {"initial_metadata", "initial metadata on the xDS stream is not supported by turnout yet"},
                  {"retry_policy", "turnout reconnects the xDS stream with its own back-off"}}};
  table["envoy.config.core.v3.GrpcService.EnvoyGrpc"] = {
      .supported = {"cluster_name", "max_receive_message_length"},
      .inert = {"skip_envoy_headers"},
      .reasons = {{"retry_policy", "turnout reconnects the xDS stream with its own back-off"},
                  {"authority", "turnout sends the cluster's name as :authority"}}};
  table["envoy.config.core.v3.PathConfigSource"] = {.supported = {"path", "watched_directory"}};
  table["envoy.config.core.v3.WatchedDirectory"] = {.supported = {"path"}};
  table["envoy.extensions.filters.network.http_connection_manager.v3.Rds"] = {
      .supported = {"config_source", "route_config_name"}};
  // Static secrets: what a listener's DownstreamTlsContext names by
  // tls_certificate_sds_secret_configs / validation_context_sds_secret_config.
  table["envoy.config.bootstrap.v3.Bootstrap.StaticResources"] = {
      .supported = {"listeners", "clusters", "secrets"}};
  table["envoy.config.bootstrap.v3.Admin"] = {
      .supported = {"address"},
      // turnout's admin server keeps no access log and has no profiler.
      .inert = {"access_log", "access_log_path", "profile_path"}};

  // ---- addresses ----
  table["envoy.config.core.v3.Address"] = {
      .supported = {"socket_address"},
      .reasons = {{"pipe", "unix domain socket addresses are not supported by turnout"},
                  {"envoy_internal_address", "internal addresses are not supported by turnout"}}};
  table["envoy.config.core.v3.SocketAddress"] = {
      .supported = {"address", "port_value", "protocol", "ipv4_compat"},
      .reasons = {{"named_port", "named ports are not supported; use port_value"},
                  {"resolver_name", "custom resolvers are not supported"}},
      .check = checkSocketAddress};

  // ---- listeners ----
  table["envoy.config.listener.v3.Listener"] = {
      .supported = {"name", "address", "filter_chains", "default_filter_chain", "stat_prefix",
                    "bind_to_port", "per_connection_buffer_limit_bytes", "listener_filters",
                    "use_original_dst", "transparent", "listener_filters_timeout",
                    "continue_on_listener_filters_timeout"},
      .inert = {"metadata", "traffic_direction"},
      .reasons = {{"filter_chain_matcher", "the matcher API for filter chains is not supported by turnout; use filter_chains[].filter_chain_match"},
                  {"api_listener", "API listeners are not supported by turnout"}}};
  table["envoy.config.listener.v3.ListenerFilter"] = {
      .supported = {"typed_config"},
      .inert = {"name"}};
  // tls_inspector only feeds filter_chain_match, which turnout's listener does
  // itself whenever a chain needs it (as Envoy injects the inspector then).
  // http_inspector gives plaintext connections their application protocol;
  // original_dst restores SO_ORIGINAL_DST (docs/sidecar.md). None has fields.
  table["envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"] = {};
  table["envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"] = {};
  table["envoy.extensions.filters.listener.original_dst.v3.OriginalDst"] = {};
  table["envoy.config.listener.v3.FilterChain"] = {
      .supported = {"filters", "transport_socket", "filter_chain_match"},
      .inert = {"name", "metadata"}};
  // config/snapshot/filter_chain_matcher.cc; docs/tls.md "Filter chains by
  // SNI", docs/sidecar.md "Capture listeners".
  table["envoy.config.listener.v3.FilterChainMatch"] = {
      .supported = {"destination_port", "prefix_ranges", "server_names", "transport_protocol",
                    "application_protocols", "direct_source_prefix_ranges", "source_type",
                    "source_prefix_ranges", "source_ports"},
      .reasons = {{"address_suffix", kAddressSuffixReason},
                  {"suffix_len", kAddressSuffixReason}}};
  table["envoy.config.core.v3.CidrRange"] = {.supported = {"address_prefix", "prefix_len"}};
  table["envoy.config.listener.v3.Filter"] = {.supported = {"typed_config"}, .inert = {"name"}};
  table["envoy.config.core.v3.TransportSocket"] = {
      .supported = {"typed_config"}, .inert = {"name"}, .check = checkTransportSocket};
  table[kRawBuffer] = {};

  // ---- HTTP connection manager ----
  table["envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"] = {
      .supported = {"stat_prefix", "codec_type", "route_config", "http_filters", "access_log",
                    "stream_idle_timeout", "common_http_protocol_options",
                    "max_request_headers_kb", "use_remote_address", "normalize_path",
                    "merge_slashes", "strip_matching_host_port", "strip_any_host_port",
                    "server_name", "generate_request_id", "upgrade_configs", "rds",
                    "http2_protocol_options"},
      .reasons = {{"scoped_routes", "scoped routes are not supported by turnout"},
                  {"tracing", "tracing is not supported by turnout"}},
      .check = checkHcm};
  table["envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager."
        "common_http_protocol_options"] = {.supported = {"idle_timeout", "max_headers_count"}};
  table["envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager."
        "UpgradeConfig"] = {.supported = {"upgrade_type", "enabled"}};
  table["envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter"] = {
      .supported = {"name", "typed_config"}, .inert = {"is_optional"}};
  table["envoy.extensions.filters.http.router.v3.Router"] = {
      // Stats and tracing knobs.
      .inert = {"dynamic_stats", "start_child_span", "suppress_grpc_request_failure_code_stats"}};
  table["envoy.extensions.filters.http.health_check.v3.HealthCheck"] = {
      .supported = {"pass_through_mode", "headers"}, .check = checkHealthCheckFilter};
  table["envoy.extensions.filters.http.grpc_stats.v3.FilterConfig"] = {
      .supported = {"stats_for_all_methods", "enable_upstream_stats", "emit_filter_state",
                    "individual_method_stats_allowlist", "replace_dots_in_grpc_service_name"},
      .check = checkGrpcStatsFilter};
  table["envoy.config.core.v3.GrpcMethodList"] = {.supported = {"services"}};
  table["envoy.config.core.v3.GrpcMethodList.Service"] = {.supported = {"name", "method_names"}};
  // No fields (proxy/filters/grpc_web_filter.h).
  table["envoy.extensions.filters.http.grpc_web.v3.GrpcWeb"] = {};
  // No fields: the policies are the routes' and virtual hosts' `cors`, or
  // their typed_per_filter_config's CorsPolicy (the same fields).
  table["envoy.extensions.filters.http.cors.v3.Cors"] = {};
  table["envoy.extensions.filters.http.cors.v3.CorsPolicy"] = {
      .supported = {"allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers",
                    "max_age", "allow_credentials", "filter_enabled", "shadow_enabled",
                    "allow_private_network_access", "forward_not_matching_preflights"}};
  table["turnout.extensions.filters.http.routing_key.v3.RoutingKey"] = {
      .supported = {"sources", "output_header", "max_key_length", "trace_key_recovery"}};
  table["turnout.extensions.filters.http.routing_key.v3.RoutingKey.TraceKeyRecovery"] = {
      .supported = {"mode", "ttl", "max_entries"}};
  table["turnout.extensions.filters.http.routing_key.v3.RoutingKey.Source"] = {
      .supported = {"baggage_member", "tracestate_key", "header"}};

  // ---- TCP proxy (proxy/connection/tcp_proxy_connection.cc; docs/tcp_proxy.md) ----
  table["envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"] = {
      .supported = {"stat_prefix", "cluster", "weighted_clusters", "idle_timeout",
                    "max_connect_attempts", "access_log"},
      .reasons = {{"on_demand", "on-demand cluster discovery is not supported by turnout"},
                  {"metadata_match", "subset load balancing (metadata_match) is not supported by turnout"},
                  {"downstream_idle_timeout", "not implemented by Envoy either; use idle_timeout"},
                  {"upstream_idle_timeout", "not implemented by Envoy either; use idle_timeout"},
                  {"hash_policy", "hash policies on a TCP proxy are not supported by turnout; its hash-based clusters pick a host at random, as Envoy's do without one"},
                  {"tunneling_config", "tunneling TCP over HTTP (CONNECT) is not supported by turnout"},
                  {"max_downstream_connection_duration", "max_downstream_connection_duration is not supported by turnout yet; idle_timeout bounds an idle connection"},
                  {"access_log_flush_interval", "periodic access log flushes are not supported by turnout; a TCP proxy logs once, when the connection ends"},
                  {"flush_access_log_on_connected", "access log flushes on connect are not supported by turnout; a TCP proxy logs once, when the connection ends"},
                  {"access_log_options", "access log flush options are not supported by turnout; a TCP proxy logs once, when the connection ends"}}};
  table["envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster"] = {
      .supported = {"clusters"}};
  table["envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight"] = {
      .supported = {"name", "weight"},
      .reasons = {{"metadata_match", "subset load balancing (metadata_match) is not supported by turnout"}}};

  // ---- access logs ----
  table["envoy.config.accesslog.v3.AccessLog"] = {
      .supported = {"typed_config"},
      .inert = {"name"},
      .reasons = {{"filter", "access log filters are not supported by turnout"}}};
  table["envoy.extensions.access_loggers.file.v3.FileAccessLog"] = {
      .supported = {"path", "log_format", "format", "json_format", "typed_json_format"}};
  table["envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"] = {.supported = {"log_format"}};
  table["envoy.extensions.access_loggers.stream.v3.StderrAccessLog"] = {.supported = {"log_format"}};
  table["envoy.config.core.v3.SubstitutionFormatString"] = {
      .supported = {"text_format", "json_format", "text_format_source"}};
  table["envoy.config.core.v3.SubstitutionFormatString.text_format_source"] = {
      .supported = {"inline_string"}};

  // ---- routes (config/snapshot/route_config_translator.cc) ----
  table["envoy.config.route.v3.RouteConfiguration"] = {
      .supported = {"name", "virtual_hosts", "response_headers_to_add",
                    "response_headers_to_remove", "request_headers_to_add",
                    "request_headers_to_remove", "most_specific_header_mutations_wins",
                    "validate_clusters", "max_direct_response_body_size_bytes",
                    "request_mirror_policies", "ignore_port_in_host_matching", "vhds"},
      .inert = {"metadata"},
      .reasons = {{"typed_per_filter_config", kPerFilterConfigReason}}};
  // Served only over Delta ADS (config/snapshot/discovery_response.h, checkVhds).
  table["envoy.config.route.v3.Vhds"] = {.supported = {"config_source"}};
  table["envoy.config.route.v3.VirtualHost"] = {
      .supported = {"name", "domains", "routes", "require_tls", "request_headers_to_add",
                    "request_headers_to_remove", "response_headers_to_add",
                    "response_headers_to_remove", "retry_policy", "request_mirror_policies", "cors",
                    "typed_per_filter_config"},
      // Stats-only (virtual_clusters), config of a filter turnout does not
      // run (rate_limits), and labels.
      .inert = {"virtual_clusters", "rate_limits", "metadata"},
      .check = checkPerFilterConfig<route_v3::VirtualHost>};
  table["envoy.config.route.v3.Route"] = {
      .supported = {"name", "match", "route", "redirect", "direct_response",
                    "request_headers_to_add", "request_headers_to_remove",
                    "response_headers_to_add", "response_headers_to_remove",
                    "typed_per_filter_config"},
      .inert = {"metadata", "decorator", "tracing", "stat_prefix"},
      .check = checkPerFilterConfig<route_v3::Route>};
  table["envoy.config.route.v3.RouteMatch"] = {
      .supported = {"prefix", "path", "safe_regex", "path_separated_prefix", "connect_matcher",
                    "case_sensitive", "runtime_fraction", "headers", "query_parameters", "grpc"}};
  table["envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions"] = {};
  // Applied when the connection manager has envoy.filters.http.cors
  // (docs/cors.md); without the filter, as in Envoy, it does nothing.
  table["envoy.config.route.v3.CorsPolicy"] = {
      .supported = {"allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers",
                    "max_age", "allow_credentials", "filter_enabled", "shadow_enabled",
                    "allow_private_network_access", "forward_not_matching_preflights"}};
  table["envoy.config.route.v3.RouteMatch.ConnectMatcher"] = {};
  table["envoy.config.route.v3.QueryParameterMatcher"] = {
      .supported = {"name", "string_match", "present_match"}};
  table["envoy.config.route.v3.HeaderMatcher"] = {
      .supported = {"name", "exact_match", "safe_regex_match", "range_match", "present_match",
                    "prefix_match", "suffix_match", "contains_match", "string_match",
                    "invert_match", "treat_missing_header_as_empty"}};
  table["envoy.type.v3.Int64Range"] = {.supported = {"start", "end"}};
  table["envoy.type.matcher.v3.StringMatcher"] = {
      .supported = {"exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"}};
  table["envoy.type.matcher.v3.RegexMatcher"] = {.supported = {"regex"}, .inert = {"google_re2"}};
  table["envoy.type.matcher.v3.RegexMatcher.GoogleRE2"] = {};
  table["envoy.type.matcher.v3.RegexMatchAndSubstitute"] = {
      .supported = {"pattern", "substitution"}};
  table["envoy.config.core.v3.RuntimeFractionalPercent"] = {
      .supported = {"default_value"}, .inert = {"runtime_key"}};
  table["envoy.type.v3.FractionalPercent"] = {.supported = {"numerator", "denominator"}};
  table["envoy.config.core.v3.HeaderValueOption"] = {
      .supported = {"header", "append", "append_action", "keep_empty_value"}};
  table["envoy.config.core.v3.HeaderValue"] = {.supported = {"key", "value", "raw_value"}};
  table["envoy.config.route.v3.RouteAction"] = {
      .supported = {"cluster", "cluster_header", "weighted_clusters",
                    "cluster_not_found_response_code", "prefix_rewrite", "regex_rewrite",
                    "host_rewrite_literal", "auto_host_rewrite", "host_rewrite_header", "timeout",
                    "idle_timeout", "retry_policy", "request_mirror_policies", "hash_policy",
                    "max_stream_duration", "upgrade_configs", "priority", "append_x_forwarded_host",
                    "cors"},
      // rate_limits do nothing without their filter, which turnout rejects.
      .inert = {"rate_limits", "include_vh_rate_limits"},
      .reasons = {{"max_grpc_timeout",
                   "the deprecated max_grpc_timeout is not supported by turnout; use "
                   "max_stream_duration.grpc_timeout_header_max"},
                  {"grpc_timeout_offset",
                   "the deprecated grpc_timeout_offset is not supported by turnout; use "
                   "max_stream_duration.grpc_timeout_header_offset"}},
      .check = checkRouteAction};
  // max_stream_duration passes the translator's check only at zero (Istio's
  // "disabled"); the grpc_timeout_header_* fields are honoured (docs/grpc.md).
  table["envoy.config.route.v3.RouteAction.MaxStreamDuration"] = {
      .supported = {"max_stream_duration", "grpc_timeout_header_max",
                    "grpc_timeout_header_offset"}};
  // CONNECT (docs/connect.md): proxied upstream, or terminated here with
  // connect_config (an empty one: its two options are refused).
  table["envoy.config.route.v3.RouteAction.UpgradeConfig"] = {
      .supported = {"upgrade_type", "enabled", "connect_config"}};
  table["envoy.config.route.v3.RouteAction.UpgradeConfig.ConnectConfig"] = {
      .reasons = {
          {"proxy_protocol_config",
           "a PROXY protocol header on terminated CONNECT tunnels is not supported by turnout"},
          {"allow_post", "terminating POST requests as TCP tunnels is not supported by turnout"}}};
  table["envoy.config.route.v3.WeightedCluster"] = {
      .supported = {"clusters", "total_weight", "header_name"},
      .inert = {"runtime_key_prefix"}};
  table["envoy.config.route.v3.WeightedCluster.ClusterWeight"] = {
      .supported = {"name", "cluster_header", "weight", "request_headers_to_add",
                    "request_headers_to_remove", "response_headers_to_add",
                    "response_headers_to_remove", "host_rewrite_literal"},
      .reasons = {{"typed_per_filter_config", kPerFilterConfigReason}}};
  table["envoy.config.route.v3.RouteAction.RequestMirrorPolicy"] = {
      .supported = {"cluster", "cluster_header", "runtime_fraction",
                    "disable_shadow_host_suffix_append"},
      .inert = {"trace_sampled"}};
  table["envoy.config.route.v3.RouteAction.HashPolicy"] = {
      .supported = {"header", "cookie", "connection_properties", "query_parameter", "terminal"},
      .reasons = {{"filter_state", "filter state hashing is not supported by turnout"}}};
  table["envoy.config.route.v3.RouteAction.HashPolicy.Header"] = {.supported = {"header_name"}};
  table["envoy.config.route.v3.RouteAction.HashPolicy.Cookie"] = {
      .supported = {"name"},
      .reasons = {{"ttl", "generated hash cookies (ttl) are not supported by turnout"}}};
  table["envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties"] = {
      .supported = {"source_ip"}};
  table["envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter"] = {
      .supported = {"name"}};
  table["envoy.config.route.v3.RetryPolicy"] = {
      .supported = {"retry_on", "num_retries", "per_try_timeout", "per_try_idle_timeout",
                    "retriable_status_codes", "retry_back_off", "retriable_headers",
                    "retriable_request_headers", "retry_host_predicate"},
      // turnout drops the previous host from the candidates instead of redrawing,
      // so a host selection never needs another attempt.
      .inert = {"host_selection_retry_max_attempts"}};
  table["envoy.config.route.v3.RetryPolicy.RetryBackOff"] = {
      .supported = {"base_interval", "max_interval"}};
  table["envoy.config.route.v3.RetryPolicy.RetryHostPredicate"] = {
      .supported = {"typed_config"}, .inert = {"name"}};
  table["envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"] = {};
  table["envoy.config.route.v3.RedirectAction"] = {
      .supported = {"https_redirect", "scheme_redirect", "host_redirect", "port_redirect",
                    "path_redirect", "prefix_rewrite", "regex_rewrite", "response_code",
                    "strip_query"}};
  table["envoy.config.route.v3.DirectResponseAction"] = {.supported = {"status", "body"}};
  table["envoy.config.core.v3.DataSource"] = {
      .supported = {"filename", "inline_bytes", "inline_string", "environment_variable"}};

  // ---- TLS contexts (proxy/tls/tls_context.cc; docs/tls.md) ----
  // Reached once checkTransportSocket lets TLS through; proxy/tls checks the
  // contexts against these entries already (checkTlsContextFields).
  table["envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"] = {
      .supported = {"common_tls_context", "require_client_certificate",
                    "disable_stateless_session_resumption",
                    "disable_stateful_session_resumption", "session_timeout"},
      .reasons = {{"require_sni", kTlsSniReason},
                  {"session_ticket_keys", kTlsTicketKeysReason},
                  {"session_ticket_keys_sds_secret_config", kTlsTicketKeysReason},
                  {"ocsp_staple_policy", "OCSP stapling is not supported by turnout"},
                  {"full_scan_certs_on_sni_mismatch", kTlsOneCertReason}}};
  table["envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"] = {
      .supported = {"common_tls_context", "sni", "max_session_keys"},
      .reasons = {{"allow_renegotiation", "TLS renegotiation is not supported by turnout; set allow_renegotiation to false"},
                  {"enforce_rsa_key_usage", "enforce_rsa_key_usage is not supported by turnout"}}};
  table["envoy.extensions.transport_sockets.tls.v3.CommonTlsContext"] = {
      .supported = {"tls_params", "tls_certificates", "tls_certificate_sds_secret_configs",
                    "validation_context", "validation_context_sds_secret_config",
                    "alpn_protocols"},
      .reasons = {{"combined_validation_context", "combined_validation_context is not supported by turnout; use validation_context or validation_context_sds_secret_config"},
                  {"tls_certificate_provider_instance", kTlsProviderReason},
                  {"tls_certificate_certificate_provider", kTlsProviderReason},
                  {"tls_certificate_certificate_provider_instance", kTlsProviderReason},
                  {"validation_context_certificate_provider", kTlsProviderReason},
                  {"validation_context_certificate_provider_instance", kTlsProviderReason},
                  {"custom_handshaker", "custom handshakers are not supported by turnout"},
                  {"key_log", "TLS key logging is not supported by turnout"}}};
  table["envoy.extensions.transport_sockets.tls.v3.TlsParameters"] = {
      .supported = {"tls_minimum_protocol_version", "tls_maximum_protocol_version",
                    "cipher_suites", "ecdh_curves"},
      .reasons = {{"signature_algorithms", "signature_algorithms is not supported by turnout yet; OpenSSL's defaults apply"}}};
  table["envoy.extensions.transport_sockets.tls.v3.TlsCertificate"] = {
      .supported = {"certificate_chain", "private_key"},
      .reasons = {{"password", "encrypted private keys (password) are not supported by turnout"},
                  {"pkcs12", "PKCS#12 is not supported by turnout; use certificate_chain and private_key (PEM)"},
                  {"watched_directory", "watched_directory is not supported by turnout; certificate files are re-read when their content changes"},
                  {"private_key_provider", "private key providers are not supported by turnout"},
                  {"ocsp_staple", "OCSP stapling is not supported by turnout"},
                  {"signed_certificate_timestamp", "signed certificate timestamps are not supported by turnout"}}};
  table["envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig"] = {
      .supported = {"name"},
      .reasons = {{"sds_config", "SDS from a server is not supported by turnout; name a static secret (static_resources.secrets) and leave sds_config unset"}}};
  table["envoy.extensions.transport_sockets.tls.v3.Secret"] = {
      .supported = {"name", "tls_certificate", "validation_context"},
      .reasons = {{"session_ticket_keys", kTlsTicketKeysReason},
                  {"generic_secret", "generic secrets are not supported by turnout"}}};
  table["envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext"] = {
      .supported = {"trusted_ca", "match_typed_subject_alt_names", "match_subject_alt_names"},
      .reasons = {{"ca_certificate_provider_instance", kTlsProviderReason},
                  {"system_root_certs", "system_root_certs is not supported by turnout; give trusted_ca"},
                  {"watched_directory", "watched_directory is not supported by turnout; certificate files are re-read when their content changes"},
                  {"verify_certificate_spki", "certificate pinning (verify_certificate_spki) is not supported by turnout"},
                  {"verify_certificate_hash", "certificate pinning (verify_certificate_hash) is not supported by turnout"},
                  {"require_signed_certificate_timestamp", "signed certificate timestamps are not supported by turnout"},
                  {"crl", "certificate revocation lists are not supported by turnout"},
                  {"allow_expired_certificate", "allow_expired_certificate is not supported by turnout"},
                  {"trust_chain_verification", "ACCEPT_UNTRUSTED is not supported by turnout"},
                  {"custom_validator_config", "custom certificate validators are not supported by turnout"},
                  {"only_verify_leaf_cert_crl", "certificate revocation lists are not supported by turnout"},
                  {"max_verify_depth", "max_verify_depth is not supported by turnout"}}};
  table["envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher"] = {
      .supported = {"san_type", "matcher"},
      .reasons = {{"oid", "OTHER_NAME SAN matching is not supported by turnout"}},
      .check = checkSanMatcher};

  // ---- clusters ----
  table["envoy.config.cluster.v3.Cluster"] = {
      .supported = {"name", "alt_stat_name", "type", "connect_timeout", "lb_policy",
                    "load_assignment", "circuit_breakers", "health_checks",
                    "outlier_detection", "maglev_lb_config", "common_lb_config",
                    "dns_lookup_family", "dns_refresh_rate", "per_connection_buffer_limit_bytes",
                    "common_http_protocol_options", "typed_extension_protocol_options",
                    "transport_socket", "max_requests_per_connection", "eds_cluster_config",
                    "http2_protocol_options", "original_dst_lb_config", "cleanup_interval",
                    "upstream_bind_config"},
      .inert = {"metadata", "track_timeout_budgets", "track_cluster_stats"},
      .reasons = {{"transport_socket_matches", kTransportSocketMatchesReason},
                  {"cluster_type", "custom cluster types are not supported by turnout"},
                  {"respect_dns_ttl", "respect_dns_ttl is not supported by turnout (the system resolver gives no TTL); set dns_refresh_rate"},
                  {"dns_failure_refresh_rate", "dns_failure_refresh_rate is not supported by turnout; failed resolutions are retried every dns_refresh_rate"},
                  {"lrs_server", "load reporting is not supported by turnout"}},
  };
  // The source addresses of upstream connections (docs/upstream.md "Source
  // address"): one per IP family, chosen by the host's family, as Envoy's
  // default local address selector does.
  table["envoy.config.core.v3.BindConfig"] = {
      .supported = {"source_address", "extra_source_addresses", "additional_source_addresses"},
      .reasons = {{"freebind", "freebind is not supported by turnout"},
                  {"socket_options", "socket options are not supported by turnout"},
                  {"local_address_selector", "a local address selector is not supported by turnout"}}};
  table["envoy.config.core.v3.ExtraSourceAddress"] = {
      .supported = {"address"},
      .reasons = {{"socket_options", "socket options are not supported by turnout"}}};
  // ORIGINAL_DST clusters (docs/upstream.md "Original destination");
  // metadata_key needs dynamic metadata, which no turnout filter sets.
  table["envoy.config.cluster.v3.Cluster.OriginalDstLbConfig"] = {
      .supported = {"use_http_header", "http_header_name", "upstream_port_override"},
      .reasons = {{"metadata_key", "the original destination from dynamic metadata (metadata_key) is not supported by turnout; use use_http_header or the connection's original destination"}}};
  table["envoy.config.cluster.v3.Cluster.MaglevLbConfig"] = {.supported = {"table_size"}};
  table["envoy.config.cluster.v3.Cluster.CommonLbConfig"] = {
      .supported = {"consistent_hashing_lb_config"}};
  table["envoy.config.cluster.v3.Cluster.CommonLbConfig.ConsistentHashingLbConfig"] = {
      .supported = {"use_hostname_for_hashing"},
      .reasons = {{"hash_balance_factor",
                   "bounded-load consistent hashing is not supported by turnout"}}};
  // Being implemented with the upstream idle timeout and max requests per connection.
  table["envoy.config.cluster.v3.Cluster.common_http_protocol_options"] = {
      .supported = {"idle_timeout", "max_requests_per_connection"}};
  table["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] = {
      .supported = {"common_http_protocol_options", "explicit_http_config", "auto_config",
                    "use_downstream_protocol_config"}};
  // use_downstream_protocol_config: each request upstream in its client's
  // protocol (HTTP/2 from an HTTP/2 client, else HTTP/1.1); the HTTP/2 side
  // takes http2_protocol_options.
  table["envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig"] = {
      .supported = {"http_protocol_options", "http2_protocol_options"},
      .reasons = {{"http3_protocol_options", "HTTP/3 upstreams are not supported by turnout"}}};
  // auto_config: the protocol by ALPN on a TLS cluster (h2 or http/1.1, per
  // host), HTTP/1.1 without TLS; the options of the protocol chosen apply.
  table["envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig"] = {
      .supported = {"http_protocol_options", "http2_protocol_options"},
      .reasons = {{"http3_protocol_options", "HTTP/3 upstreams are not supported by turnout"},
                  {"alternate_protocols_cache_options",
                   "the alternate protocols cache (HTTP/3 by Alt-Svc) is not supported by turnout"}}};
  table["envoy.extensions.upstreams.http.v3.HttpProtocolOptions.common_http_protocol_options"] = {
      .supported = {"idle_timeout", "max_requests_per_connection"}};
  table["envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig"] = {
      .supported = {"http_protocol_options", "http2_protocol_options"},
      .reasons = {{"http3_protocol_options", "HTTP/3 upstreams are not supported by turnout"}}};
  // HTTP/2 settings, downstream (the HCM's http2_protocol_options) and
  // upstream (explicit_http_config.http2_protocol_options, or the deprecated
  // Cluster.http2_protocol_options): turnout advertises four of them, a
  // pool caps a connection's streams at max_concurrent_streams, and the codec
  // enforces Envoy's five flood limits; allow_connect sends
  // SETTINGS_ENABLE_CONNECT_PROTOCOL (a listener then takes WebSockets over
  // HTTP/2; a cluster sends it as Envoy does, which asks nothing of the
  // server: upgrades go to an HTTP/2 upstream as extended CONNECTs either
  // way); every other field is refused with its path.
  table["envoy.config.core.v3.Http2ProtocolOptions"] = {
      .supported = {"allow_connect", "max_concurrent_streams", "initial_stream_window_size",
                    "initial_connection_window_size", "hpack_table_size", "max_outbound_frames",
                    "max_outbound_control_frames",
                    "max_consecutive_inbound_frames_with_empty_payload",
                    "max_inbound_priority_frames_per_stream",
                    "max_inbound_window_update_frames_per_data_frame_sent"},
      .reasons = {{"allow_metadata", kHttp2OptionReason},
                  {"stream_error_on_invalid_http_messaging", kHttp2OptionReason},
                  {"override_stream_error_on_invalid_http_message", kHttp2OptionReason},
                  {"custom_settings_parameters", kHttp2OptionReason},
                  {"connection_keepalive", kHttp2OptionReason},
                  {"use_oghttp2_codec", kHttp2OptionReason}}};
  // explicit_http_config.http_protocol_options {} selects HTTP/1.1; each of its
  // knobs is refused (none is honoured yet).
  table["envoy.config.core.v3.Http1ProtocolOptions"] = {};
  // EDS from a file (proxy/server/dynamic_resources.cc): the ConfigSource of
  // eds_config also honours initial_fetch_timeout (the cluster's warming).
  table["envoy.config.cluster.v3.Cluster.EdsClusterConfig"] = {
      .supported = {"eds_config", "service_name"}};
  table["envoy.config.cluster.v3.Cluster.EdsClusterConfig.eds_config"] = {
      .supported = {"path_config_source", "path", "initial_fetch_timeout", "ads",
                    "api_config_source"},
      .inert = {"resource_api_version"},
      .reasons = {{"self", kXdsReason},
                  {"authorities", kXdsReason}}};
  // A cluster's inline load_assignment and an EDS file's assignments go
  // through one translation (config/snapshot/endpoint_translator.cc). In an
  // EDS file cluster_name is the key matched with the cluster's service_name;
  // inline it is a label.
  table["envoy.config.cluster.v3.Cluster.load_assignment"] = {
      .supported = {"endpoints"}, .inert = {"cluster_name"}};
  table["envoy.config.endpoint.v3.ClusterLoadAssignment"] = {
      .supported = {"cluster_name", "endpoints"}};
  table["envoy.config.endpoint.v3.LocalityLbEndpoints"] = {
      .supported = {"lb_endpoints", "priority"},
      // Labels (shown by /clusters); Envoy ignores locality weights unless
      // common_lb_config.locality_weighted_lb_config is set, which turnout rejects.
      .inert = {"locality", "load_balancing_weight", "metadata"}};
  table["envoy.config.endpoint.v3.LbEndpoint"] = {
      .supported = {"endpoint", "health_status", "load_balancing_weight"},
      .inert = {"metadata"},
      .reasons = {{"endpoint_name", "named endpoints are not supported by turnout"}}};
  table["envoy.config.endpoint.v3.Endpoint"] = {.supported = {"address", "hostname"}};
  table["envoy.config.cluster.v3.CircuitBreakers"] = {.supported = {"thresholds"}};
  table["envoy.config.cluster.v3.CircuitBreakers.Thresholds"] = {
      .supported = {"priority", "max_connections", "max_pending_requests", "max_requests",
                    "max_retries"}};
  table["envoy.config.core.v3.HealthCheck"] = {
      .supported = {"timeout", "interval", "unhealthy_threshold", "healthy_threshold",
                    "http_health_check"},
      .reasons = {{"tcp_health_check", "TCP health checks are not supported by turnout yet (use http_health_check)"},
                  {"grpc_health_check", "gRPC health checks are not supported by turnout yet (use http_health_check)"}}};
  table["envoy.config.core.v3.HealthCheck.HttpHealthCheck"] = {.supported = {"path", "host"}};
  table["envoy.config.cluster.v3.OutlierDetection"] = {
      .supported = {"consecutive_5xx", "interval", "base_ejection_time", "max_ejection_percent",
                    "enforcing_consecutive_5xx", "max_ejection_time", "max_ejection_time_jitter",
                    "always_eject_one_host", "split_external_local_origin_errors",
                    "successful_active_health_check_uneject_host",
                    "enforcing_success_rate", "success_rate_minimum_hosts",
                    "success_rate_request_volume", "success_rate_stdev_factor",
                    "failure_percentage_threshold", "enforcing_failure_percentage",
                    "failure_percentage_minimum_hosts", "failure_percentage_request_volume"},
      // Counted only while enforcing_consecutive_gateway_failure is 0 (its default).
      .inert = {"consecutive_gateway_failure"}};
  return t;
}

// --- the walker --------------------------------------------------------------------

bool contains(const std::vector<absl::string_view>& list, absl::string_view name) {
  for (absl::string_view s : list) {
    if (s == name) return true;
  }
  return false;
}

bool isLeaf(const Descriptor* d) {
  return absl::StartsWith(d->full_name(), "google.protobuf.") &&
         d->full_name() != "google.protobuf.Any";
}

bool isAny(const Descriptor* d) { return d->full_name() == "google.protobuf.Any"; }

const MessagePolicy* policyFor(const Descriptor* d, const FieldDescriptor* via) {
  const auto& table = fieldPolicyTable();
  if (via != nullptr) {
    auto it = table.find(via->full_name());
    if (it != table.end()) return &it->second;
  }
  auto it = table.find(d->full_name());
  return it == table.end() ? nullptr : &it->second;
}

absl::Status walk(const Message& msg, const FieldDescriptor* via, absl::string_view path);

absl::Status walkAny(const Message& any, const FieldDescriptor* via, absl::string_view path) {
  const auto* any_msg = dynamic_cast<const google::protobuf::Any*>(&any);
  std::string url = any_msg != nullptr ? any_msg->type_url()
                                       : any.GetReflection()->GetString(
                                             any, any.GetDescriptor()->FindFieldByNumber(1));
  const Descriptor* type = google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
      std::string(typeNameOf(url)));
  if (type == nullptr) {
    return rejected(path, absl::StrCat("unknown type URL '", url, "'"));
  }
  std::unique_ptr<Message> payload(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
  std::string bytes = any.GetReflection()->GetString(any, any.GetDescriptor()->FindFieldByNumber(2));
  if (!payload->ParseFromString(bytes)) {
    return rejected(path, absl::StrCat("cannot decode the payload of type '", url, "'"));
  }
  // The payload is reached through the Any field: its own entry applies, unless the
  // table names the Any field.
  return walk(*payload, via, path);
}

absl::Status walkValue(const Message& value, const FieldDescriptor* f, absl::string_view path) {
  const Descriptor* d = value.GetDescriptor();
  if (isAny(d)) return walkAny(value, f, path);
  if (isLeaf(d)) return absl::OkStatus();
  return walk(value, f, path);
}

absl::Status walk(const Message& msg, const FieldDescriptor* via, absl::string_view path) {
  const Descriptor* d = msg.GetDescriptor();
  const Reflection* r = msg.GetReflection();
  const MessagePolicy* policy = policyFor(d, via);
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(msg, &fields);
  for (const FieldDescriptor* f : fields) {
    std::string fpath = fieldPath(path, f->name());
    if (policy != nullptr && contains(policy->inert, f->name())) continue;
    if (policy == nullptr || !contains(policy->supported, f->name())) {
      if (policy != nullptr) {
        for (const auto& [name, reason] : policy->reasons) {
          if (name == f->name()) return rejected(fpath, reason);
        }
      }
      return rejected(fpath, absl::StrCat("field '", f->full_name(),
                                          "' is not supported by turnout"));
    }
  }
  if (policy != nullptr && policy->check != nullptr) {
    if (auto s = policy->check(msg, path); !s.ok()) return s;
  }
  if (policy == nullptr) return absl::OkStatus();
  return forEachSubMessage(msg, path, [&](const SubMessage& sub) {
    if (contains(policy->inert, sub.field->name())) return absl::OkStatus();
    return walkValue(sub.value, sub.field, sub.path);
  });
}

}  // namespace

const FieldPolicyTable& fieldPolicyTable() {
  static const FieldPolicyTable* table = buildTable();
  return *table;
}

absl::Status checkFieldPolicy(const google::protobuf::Message& message, absl::string_view path) {
  return walk(message, nullptr, path);
}

}  // namespace turnout::config
