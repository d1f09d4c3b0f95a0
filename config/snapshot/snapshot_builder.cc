#include "config/snapshot/snapshot_builder.h"

#include <arpa/inet.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <optional>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "config/bootstrap/extensions.h"
#include "config/bootstrap/field_path.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb.h"
#include "envoy/extensions/filters/http/health_check/v3/health_check.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "google/protobuf/util/time_util.h"

#include "config/snapshot/endpoint_translator.h"
#include "config/snapshot/listener_address_set.h"
#include "config/snapshot/route_config_translator.h"
#include "config/snapshot/routing_key_config.h"
#include "routing/route_matcher.h"

namespace turnout::config {
namespace {

namespace core = envoy::config::core::v3;
namespace cluster_v3 = envoy::config::cluster::v3;
namespace listener_v3 = envoy::config::listener::v3;
namespace route_v3 = envoy::config::route::v3;
namespace hcm_v3 = envoy::extensions::filters::network::http_connection_manager::v3;
namespace tcp_v3 = envoy::extensions::filters::network::tcp_proxy::v3;
using google::protobuf::util::TimeUtil;
using RoutingKeyProto = turnout::extensions::filters::http::routing_key::v3::RoutingKey;
using HealthCheckProto = envoy::extensions::filters::http::health_check::v3::HealthCheck;

absl::Status invalid(absl::string_view path, absl::string_view msg) {
  return absl::InvalidArgumentError(atPath(path, msg));
}

Milliseconds ms(const google::protobuf::Duration& d) {
  return Milliseconds(TimeUtil::DurationToMilliseconds(d));
}

constexpr absl::string_view kOriginalDstType =
    "envoy.extensions.filters.listener.original_dst.v3.OriginalDst";
constexpr absl::string_view kHttpInspectorType =
    "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector";

absl::string_view typeNameOf(absl::string_view url) {
  size_t slash = url.rfind('/');
  return slash == absl::string_view::npos ? url : url.substr(slash + 1);
}

// A network filter's access_log list (the HCM's or the TCP proxy's): the
// logger type and its packed config; formats are compiled by the proxy
// (access_log::checkAccessLogFormats).
std::vector<AccessLogConfig> toAccessLogs(
    const google::protobuf::RepeatedPtrField<envoy::config::accesslog::v3::AccessLog>& logs) {
  std::vector<AccessLogConfig> out;
  out.reserve(static_cast<size_t>(logs.size()));
  for (const auto& log : logs) {
    AccessLogConfig a;
    a.name = log.name();
    a.type_url = log.typed_config().type_url();
    a.config = log.typed_config();
    a.has_filter = log.has_filter();
    absl::string_view type = typeNameOf(a.type_url);
    if (type == "envoy.extensions.access_loggers.file.v3.FileAccessLog") {
      a.sink = AccessLogConfig::Sink::File;
      envoy::extensions::access_loggers::file::v3::FileAccessLog file;
      if (log.typed_config().UnpackTo(&file)) a.path = file.path();
    } else if (type == "envoy.extensions.access_loggers.stream.v3.StderrAccessLog") {
      a.sink = AccessLogConfig::Sink::Stderr;
    } else {
      a.sink = AccessLogConfig::Sink::Stdout;
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace

absl::StatusOr<Http2OptionsConfig> toHttp2Options(const envoy::config::core::v3::Http2ProtocolOptions& o,
                                                  const std::string& path) {
  // Envoy's ranges (the proto's validate rules).
  Http2OptionsConfig out;
  if (o.has_max_concurrent_streams()) {
    const uint32_t v = o.max_concurrent_streams().value();
    if (v < 1 || v > 2147483647) {
      return invalid(fieldPath(path, "max_concurrent_streams"), "must be in [1, 2147483647]");
    }
    out.max_concurrent_streams = v;
  }
  if (o.has_initial_stream_window_size()) {
    const uint32_t v = o.initial_stream_window_size().value();
    if (v < 65535 || v > 2147483647) {
      return invalid(fieldPath(path, "initial_stream_window_size"), "must be in [65535, 2147483647]");
    }
    out.initial_stream_window_size = v;
  }
  if (o.has_initial_connection_window_size()) {
    const uint32_t v = o.initial_connection_window_size().value();
    if (v < 65535 || v > 2147483647) {
      return invalid(fieldPath(path, "initial_connection_window_size"),
                     "must be in [65535, 2147483647]");
    }
    out.initial_connection_window_size = v;
  }
  if (o.has_hpack_table_size()) out.hpack_table_size = o.hpack_table_size().value();
  out.allow_connect = o.allow_connect();
  // Flood limits: Envoy's validate rules (gte 1 where it has one).
  auto atLeastOne = [&](const char* name, const google::protobuf::UInt32Value& v,
                        uint32_t& dst) -> absl::Status {
    if (v.value() < 1) return invalid(fieldPath(path, name), "must be at least 1");
    dst = v.value();
    return absl::OkStatus();
  };
  if (o.has_max_outbound_frames()) {
    if (auto s = atLeastOne("max_outbound_frames", o.max_outbound_frames(), out.max_outbound_frames);
        !s.ok()) {
      return s;
    }
  }
  if (o.has_max_outbound_control_frames()) {
    if (auto s = atLeastOne("max_outbound_control_frames", o.max_outbound_control_frames(),
                            out.max_outbound_control_frames);
        !s.ok()) {
      return s;
    }
  }
  if (o.has_max_inbound_window_update_frames_per_data_frame_sent()) {
    if (auto s = atLeastOne("max_inbound_window_update_frames_per_data_frame_sent",
                            o.max_inbound_window_update_frames_per_data_frame_sent(),
                            out.max_inbound_window_update_frames_per_data_frame_sent);
        !s.ok()) {
      return s;
    }
  }
  if (o.has_max_consecutive_inbound_frames_with_empty_payload()) {
    out.max_consecutive_inbound_frames_with_empty_payload =
        o.max_consecutive_inbound_frames_with_empty_payload().value();
  }
  if (o.has_max_inbound_priority_frames_per_stream()) {
    out.max_inbound_priority_frames_per_stream = o.max_inbound_priority_frames_per_stream().value();
  }
  return out;
}

namespace {

// An ApiConfigSource turnout can stream from (ads_config, or a type's own
// api_config_source): GRPC or DELTA_GRPC, V3, one envoy_grpc service. Its
// cluster is checked against the bootstrap's static clusters by checkAds (for
// resources that arrive over xDS, when their stream is opened).
absl::StatusOr<AdsServerConfig> toXdsServer(const core::ApiConfigSource& a, const std::string& path) {
  const bool delta = a.api_type() == core::ApiConfigSource::DELTA_GRPC ||
                     a.api_type() == core::ApiConfigSource::AGGREGATED_DELTA_GRPC;
  if (!delta && a.api_type() != core::ApiConfigSource::GRPC &&
      a.api_type() != core::ApiConfigSource::AGGREGATED_GRPC) {
    return invalid(fieldPath(path, "api_type"),
                   "turnout streams xDS over gRPC: api_type GRPC or DELTA_GRPC (REST is not supported)");
  }
  if (a.transport_api_version() != core::V3) {
    return invalid(fieldPath(path, "transport_api_version"), "must be V3");
  }
  if (a.grpc_services_size() != 1) {
    return invalid(fieldPath(path, "grpc_services"), "exactly one gRPC service is needed");
  }
  const std::string gpath = indexPath(fieldPath(path, "grpc_services"), 0);
  const core::GrpcService& g = a.grpc_services(0);
  if (!g.has_envoy_grpc()) {
    return invalid(gpath, "turnout speaks gRPC through envoy_grpc (a cluster)");
  }
  AdsServerConfig out;
  out.delta = delta;
  out.cluster_name = g.envoy_grpc().cluster_name();
  out.authority = out.cluster_name;
  if (g.envoy_grpc().has_max_receive_message_length()) {
    out.max_receive_message_length = g.envoy_grpc().max_receive_message_length().value();
  }
  return out;
}

absl::StatusOr<HttpConnectionManagerConfig> toHcm(const hcm_v3::HttpConnectionManager& hcm,
                                                  const std::string& path) {
  HttpConnectionManagerConfig out;
  out.stat_prefix = hcm.stat_prefix();
  switch (hcm.codec_type()) {
    case hcm_v3::HttpConnectionManager::HTTP1: out.codec_type = HttpConnectionManagerConfig::CodecType::Http1; break;
    case hcm_v3::HttpConnectionManager::HTTP2: out.codec_type = HttpConnectionManagerConfig::CodecType::Http2; break;
    case hcm_v3::HttpConnectionManager::HTTP3:
      return invalid(fieldPath(path, "codec_type"), "HTTP3 is not supported by turnout");
    default: out.codec_type = HttpConnectionManagerConfig::CodecType::Auto; break;
  }
  switch (hcm.route_specifier_case()) {
    case hcm_v3::HttpConnectionManager::kRouteConfig:
      out.route_source = HttpConnectionManagerConfig::RouteSource::Inline;
      out.route_config_name = hcm.route_config().name();
      break;
    case hcm_v3::HttpConnectionManager::kRds:
      out.route_source = HttpConnectionManagerConfig::RouteSource::Rds;
      out.route_config_name = hcm.rds().route_config_name();
      if (hcm.rds().config_source().has_initial_fetch_timeout()) {
        out.rds_initial_fetch_timeout = ms(hcm.rds().config_source().initial_fetch_timeout());
      }
      if (hcm.rds().config_source().has_ads()) {
        out.rds_ads = true;
      } else if (hcm.rds().config_source().has_api_config_source()) {
        auto src = toXdsServer(
            hcm.rds().config_source().api_config_source(),
            fieldPath(fieldPath(fieldPath(path, "rds"), "config_source"), "api_config_source"));
        if (!src.ok()) return src.status();
        out.rds_ads = true;
        out.rds_source = *std::move(src);
      } else if (hcm.rds().config_source().has_path_config_source()) {
        out.rds_path = hcm.rds().config_source().path_config_source().path();
        out.rds_watched_directory =
            hcm.rds().config_source().path_config_source().watched_directory().path();
      } else {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        out.rds_path = hcm.rds().config_source().path();
#pragma GCC diagnostic pop
      }
      break;
    case hcm_v3::HttpConnectionManager::kScopedRoutes:
      return invalid(fieldPath(path, "scoped_routes"), "scoped routes are not supported by turnout");
    default:
      return invalid(path, "one of route_config or rds is required");
  }
  for (int i = 0; i < hcm.http_filters_size(); ++i) {
    const auto& f = hcm.http_filters(i);
    out.http_filters.push_back(HttpFilterConfig{f.name(), f.typed_config().type_url(),
                                                std::string(typeNameOf(f.typed_config().type_url())),
                                                f.typed_config()});
    if (out.http_filters.back().type_name == RoutingKeyProto::descriptor()->full_name()) {
      // Names the PGV rules cannot judge (header syntax, the order's sanity).
      const std::string fpath = indexPath(fieldPath(path, "http_filters"), i) + ".typed_config";
      RoutingKeyProto rk;
      if (!f.typed_config().UnpackTo(&rk)) return invalid(fpath, "cannot unpack RoutingKey");
      auto checked = toRoutingKeyFilterConfig(rk, fpath);
      if (!checked.ok()) return checked.status();
    } else if (out.http_filters.back().type_name == HealthCheckProto::descriptor()->full_name()) {
      // The proxy compiles these matchers again; a bad one must fail here, in
      // --mode validate, too.
      const std::string fpath = indexPath(fieldPath(path, "http_filters"), i) + ".typed_config";
      HealthCheckProto hc;
      if (!f.typed_config().UnpackTo(&hc)) return invalid(fpath, "cannot unpack HealthCheck");
      for (int j = 0; j < hc.headers_size(); ++j) {
        const std::string hpath = indexPath(fieldPath(fpath, "headers"), j);
        auto m = toHeaderMatcher(hc.headers(j), hpath);
        if (!m.ok()) return m.status();
        auto compiled = routing::CompiledHeaderMatcher::compile(*m, hpath);
        if (!compiled.ok()) return compiled.status();
      }
    }
  }
  out.access_logs = toAccessLogs(hcm.access_log());
  if (hcm.has_stream_idle_timeout()) out.stream_idle_timeout = ms(hcm.stream_idle_timeout());
  if (hcm.has_request_timeout()) out.request_timeout = ms(hcm.request_timeout());
  if (hcm.has_request_headers_timeout()) out.request_headers_timeout = ms(hcm.request_headers_timeout());
  if (hcm.has_drain_timeout()) out.drain_timeout = ms(hcm.drain_timeout());
  if (hcm.has_common_http_protocol_options()) {
    const auto& c = hcm.common_http_protocol_options();
    if (c.has_idle_timeout()) out.idle_timeout = ms(c.idle_timeout());
    if (c.has_max_headers_count()) out.max_headers_count = c.max_headers_count().value();
  }
  if (hcm.has_max_request_headers_kb()) out.max_request_headers_kb = hcm.max_request_headers_kb().value();
  if (hcm.has_http2_protocol_options()) {
    auto h2 = toHttp2Options(hcm.http2_protocol_options(), fieldPath(path, "http2_protocol_options"));
    if (!h2.ok()) return h2.status();
    out.http2 = *h2;
  }
  out.use_remote_address = hcm.has_use_remote_address() && hcm.use_remote_address().value();
  out.xff_num_trusted_hops = hcm.xff_num_trusted_hops();
  out.normalize_path = hcm.has_normalize_path() && hcm.normalize_path().value();
  out.merge_slashes = hcm.merge_slashes();
  if (hcm.strip_matching_host_port()) out.strip_port_mode = HttpConnectionManagerConfig::StripPortMode::MatchingHost;
  if (hcm.has_strip_any_host_port() && hcm.strip_any_host_port()) {
    out.strip_port_mode = HttpConnectionManagerConfig::StripPortMode::AnyHost;
  }
  if (!hcm.server_name().empty()) out.server_name = hcm.server_name();
  if (hcm.has_generate_request_id()) out.generate_request_id = hcm.generate_request_id().value();
  for (int i = 0; i < hcm.upgrade_configs_size(); ++i) {
    const auto& u = hcm.upgrade_configs(i);
    const std::string upath = indexPath(fieldPath(path, "upgrade_configs"), i);
    std::string type = absl::AsciiStrToLower(u.upgrade_type());
    if (type != "websocket" && type != "connect") {
      return invalid(fieldPath(upath, "upgrade_type"),
                     absl::StrCat("upgrade type '", u.upgrade_type(),
                                  "' is not supported by turnout (websocket or CONNECT)"));
    }
    if (u.filters_size() > 0) {
      return invalid(fieldPath(upath, "filters"),
                     "per-upgrade filter chains are not supported by turnout");
    }
    if (!u.has_enabled() || u.enabled().value()) out.upgrade_types.push_back(type);
  }
  return out;
}

// Inline route configuration: every cluster it names must exist (validate_clusters
// defaults to true for route_config, Envoy route.proto).
absl::Status checkRouteClusters(const route_v3::RouteConfiguration& rc, const std::string& path,
                                const absl::flat_hash_set<std::string>& clusters) {
  if (rc.has_validate_clusters() && !rc.validate_clusters().value()) return absl::OkStatus();
  auto check = [&](const std::string& name, const std::string& p) -> absl::Status {
    if (clusters.contains(name)) return absl::OkStatus();
    return invalid(p, absl::StrCat("unknown cluster '", name, "'"));
  };
  auto check_mirrors = [&](const auto& policies, const std::string& p) -> absl::Status {
    for (int m = 0; m < policies.size(); ++m) {
      if (policies[m].cluster().empty()) continue;  // cluster_header
      std::string mp = fieldPath(indexPath(p, m), "cluster");
      if (auto s = check(policies[m].cluster(), mp); !s.ok()) return s;
    }
    return absl::OkStatus();
  };
  if (auto s = check_mirrors(rc.request_mirror_policies(), fieldPath(path, "request_mirror_policies"));
      !s.ok()) {
    return s;
  }
  for (int v = 0; v < rc.virtual_hosts_size(); ++v) {
    const auto& vh = rc.virtual_hosts(v);
    std::string vpath = indexPath(fieldPath(path, "virtual_hosts"), v);
    if (auto s = check_mirrors(vh.request_mirror_policies(), fieldPath(vpath, "request_mirror_policies"));
        !s.ok()) {
      return s;
    }
    for (int r = 0; r < vh.routes_size(); ++r) {
      const auto& route = vh.routes(r);
      if (!route.has_route()) continue;
      std::string apath = fieldPath(indexPath(fieldPath(vpath, "routes"), r), "route");
      const auto& action = route.route();
      if (action.cluster_specifier_case() == route_v3::RouteAction::kCluster) {
        if (auto s = check(action.cluster(), fieldPath(apath, "cluster")); !s.ok()) return s;
      } else if (action.cluster_specifier_case() == route_v3::RouteAction::kWeightedClusters) {
        const auto& wc = action.weighted_clusters();
        for (int c = 0; c < wc.clusters_size(); ++c) {
          if (wc.clusters(c).name().empty()) continue;  // cluster_header
          std::string cp = fieldPath(indexPath(fieldPath(fieldPath(apath, "weighted_clusters"), "clusters"), c), "name");
          if (auto s = check(wc.clusters(c).name(), cp); !s.ok()) return s;
        }
      } else if (action.cluster_specifier_case() == route_v3::RouteAction::kClusterSpecifierPlugin ||
                 action.cluster_specifier_case() == route_v3::RouteAction::kInlineClusterSpecifierPlugin) {
        return invalid(apath, "cluster specifier plugins are not supported by turnout");
      }
      if (auto s = check_mirrors(action.request_mirror_policies(), fieldPath(apath, "request_mirror_policies"));
          !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

// Trial division: table sizes are at most 5000011 (PGV), so at most ~1100 steps.
bool isPrime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

// The upstream connection options of a cluster's common_http_protocol_options
// that turnout honours (the idle timeout and the requests per connection);
// a later source (HttpProtocolOptions) overrides an earlier one field by field.
void applyUpstreamCommonOptions(const core::HttpProtocolOptions& o, ClusterConfig& out) {
  if (o.has_idle_timeout()) out.upstream_idle_timeout = ms(o.idle_timeout());
  if (o.has_max_requests_per_connection()) {
    out.max_requests_per_connection = o.max_requests_per_connection().value();
  }
}


// An EDS cluster's eds_config: a file (path_config_source, or the deprecated
// path); the endpoints come from it only.
absl::StatusOr<EdsSourceConfig> toEdsSource(const cluster_v3::Cluster& c, const std::string& path) {
  if (!c.has_eds_cluster_config()) {
    return invalid(fieldPath(path, "eds_cluster_config"),
                   "cannot create an EDS cluster without an EDS config");
  }
  const std::string epath = fieldPath(fieldPath(path, "eds_cluster_config"), "eds_config");
  const core::ConfigSource& cs = c.eds_cluster_config().eds_config();
  EdsSourceConfig out;
  if (cs.has_ads()) {
    out.ads = true;
  } else if (cs.has_api_config_source()) {
    auto src = toXdsServer(cs.api_config_source(), fieldPath(epath, "api_config_source"));
    if (!src.ok()) return src.status();
    out.ads = true;
    out.source = *std::move(src);
  } else if (cs.has_path_config_source()) {
    out.path = cs.path_config_source().path();
    out.watched_directory = cs.path_config_source().watched_directory().path();
  } else {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    out.path = cs.path();
#pragma GCC diagnostic pop
  }
  if (out.path.empty() && !out.ads) {
    return invalid(epath, "turnout reads EDS from a file or xDS: set path_config_source, ads or api_config_source");
  }
  if (cs.has_initial_fetch_timeout()) out.initial_fetch_timeout = ms(cs.initial_fetch_timeout());
  if (c.has_load_assignment()) {
    return invalid(fieldPath(path, "load_assignment"),
                   "an EDS cluster takes its endpoints from eds_cluster_config, not "
                   "load_assignment");
  }
  return out;
}

// An ORIGINAL_DST cluster (Envoy's OriginalDstClusterFactory checks, and
// what turnout's per-worker hosts cannot do: health checks and outlier
// detection need hosts the main thread knows).
absl::Status applyOriginalDst(const cluster_v3::Cluster& c, const std::string& path,
                              ClusterConfig& out) {
  if (c.has_load_assignment()) {
    return invalid(fieldPath(path, "load_assignment"),
                   "ORIGINAL_DST clusters must have no load assignment configured");
  }
  const auto& o = c.original_dst_lb_config();
  if (!o.use_http_header() && !o.http_header_name().empty()) {
    return invalid(fieldPath(fieldPath(path, "original_dst_lb_config"), "http_header_name"),
                   absl::StrCat("ORIGINAL_DST cluster: invalid config http_header_name=",
                                o.http_header_name(),
                                " and use_http_header is false. Set use_http_header to true if "
                                "http_header_name is desired."));
  }
  OriginalDstConfig od;
  od.use_http_header = o.use_http_header();
  if (!o.http_header_name().empty()) od.http_header = absl::AsciiStrToLower(o.http_header_name());
  if (o.has_upstream_port_override()) od.port_override = o.upstream_port_override().value();
  if (c.has_cleanup_interval()) od.cleanup_interval = ms(c.cleanup_interval());
  out.original_dst = std::move(od);
  if (c.health_checks_size() > 0) {
    return invalid(indexPath(fieldPath(path, "health_checks"), 0),
                   "health checks on an ORIGINAL_DST cluster are not supported by turnout (its "
                   "hosts are made per connection)");
  }
  if (c.has_outlier_detection()) {
    return invalid(fieldPath(path, "outlier_detection"),
                   "outlier detection on an ORIGINAL_DST cluster is not supported by turnout (its "
                   "hosts are made per connection)");
  }
  return absl::OkStatus();
}

// One address of an upstream_bind_config: an IP literal, TCP, no ipv4_compat.
// `v4` says its family.
absl::StatusOr<ClusterConfig::SourceAddress> toSourceAddress(const core::SocketAddress& sa,
                                                              const std::string& path, bool& v4) {
  in6_addr any{};
  v4 = inet_pton(AF_INET, sa.address().c_str(), &any) == 1;
  if (!v4 && inet_pton(AF_INET6, sa.address().c_str(), &any) != 1) {
    return invalid(fieldPath(path, "address"),
                   absl::StrCat("'", sa.address(), "' is not an IP address (a source address is a "
                                "literal; no names)"));
  }
  if (sa.protocol() != core::SocketAddress::TCP) {
    return invalid(fieldPath(path, "protocol"), "an upstream source address is TCP");
  }
  if (sa.ipv4_compat()) {
    return invalid(fieldPath(path, "ipv4_compat"), "ipv4_compat is supported on listener addresses only");
  }
  return ClusterConfig::SourceAddress{sa.address(), sa.port_value()};
}

// Cluster.upstream_bind_config, checked as Envoy's DefaultUpstreamLocalAddressSelector
// checks it (source/extensions/upstream/local_address_selector/
// default_local_address_selector.cc), with Envoy's reasons; the field policy
// has refused freebind, socket_options and local_address_selector.
// additional_source_addresses is deprecated in Envoy and still honoured.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
absl::StatusOr<ClusterConfig::UpstreamBind> toUpstreamBind(const core::BindConfig& b,
                                                           const std::string& path) {
  const std::string extra_path = fieldPath(path, "extra_source_addresses");
  const std::string additional_path = fieldPath(path, "additional_source_addresses");
  if (b.extra_source_addresses_size() > 0 && b.additional_source_addresses_size() > 0) {
    return invalid(path, "can't specify both `extra_source_addresses` and "
                         "`additional_source_addresses` in the upstream binding config");
  }
  if (b.extra_source_addresses_size() > 1) {
    return invalid(indexPath(extra_path, 1),
                   "the upstream binding config has more than one extra source addresses. Only "
                   "one extra source can be supported in BindConfig's extra_source_addresses field");
  }
  if (b.additional_source_addresses_size() > 1) {
    return invalid(indexPath(additional_path, 1),
                   "the upstream binding config has more than one additional source addresses. "
                   "Only one additional source can be supported in BindConfig's "
                   "additional_source_addresses field");
  }
  const bool has_extra = b.extra_source_addresses_size() + b.additional_source_addresses_size() > 0;
  if (!b.has_source_address()) {
    return invalid(fieldPath(path, "source_address"),
                   has_extra ? "the upstream binding config has extra/additional source addresses "
                               "but no source_address. Extra/additional addresses cannot be "
                               "specified if source_address is not set."
                             : "upstream_bind_config needs a source_address (turnout binds nothing else)");
  }
  ClusterConfig::UpstreamBind out;
  bool source_v4 = false;
  auto source = toSourceAddress(b.source_address(), fieldPath(path, "source_address"), source_v4);
  if (!source.ok()) return source.status();
  out.source_address = std::move(*source);
  if (!has_extra) return out;
  const bool extra = b.extra_source_addresses_size() > 0;
  const std::string one = extra ? fieldPath(indexPath(extra_path, 0), "address") : indexPath(additional_path, 0);
  bool extra_v4 = false;
  auto address = toSourceAddress(
      extra ? b.extra_source_addresses(0).address() : b.additional_source_addresses(0), one, extra_v4);
  if (!address.ok()) return address.status();
  if (extra_v4 == source_v4) {
    return invalid(one, absl::StrCat(
                            "the upstream binding config has two same IP version source addresses. "
                            "Only two different IP version source addresses can be supported in "
                            "BindConfig's source_address and ",
                            extra ? "extra_source_addresses" : "additional_source_addresses",
                            " fields"));
  }
  out.extra_source_address = std::move(*address);
  return out;
}
#pragma GCC diagnostic pop

absl::StatusOr<ClusterConfig> toCluster(const cluster_v3::Cluster& c, const std::string& path) {
  ClusterConfig out;
  out.name = c.name();
  out.alt_stat_name = c.alt_stat_name();
  out.path = path;
  if (c.cluster_discovery_type_case() == cluster_v3::Cluster::kClusterType) {
    return invalid(fieldPath(path, "cluster_type"), "custom cluster types are not supported by turnout");
  }
  switch (c.type()) {
    case cluster_v3::Cluster::STATIC: out.type = ClusterConfig::Type::Static; break;
    case cluster_v3::Cluster::STRICT_DNS: out.type = ClusterConfig::Type::StrictDns; break;
    case cluster_v3::Cluster::LOGICAL_DNS: out.type = ClusterConfig::Type::LogicalDns; break;
    case cluster_v3::Cluster::EDS: out.type = ClusterConfig::Type::Eds; break;
    case cluster_v3::Cluster::ORIGINAL_DST: out.type = ClusterConfig::Type::OriginalDst; break;
    default: return invalid(fieldPath(path, "type"), "unsupported cluster type");
  }
  switch (c.lb_policy()) {
    case cluster_v3::Cluster::ROUND_ROBIN: out.lb_policy = ClusterConfig::LbPolicy::RoundRobin; break;
    case cluster_v3::Cluster::LEAST_REQUEST: out.lb_policy = ClusterConfig::LbPolicy::LeastRequest; break;
    case cluster_v3::Cluster::RING_HASH: out.lb_policy = ClusterConfig::LbPolicy::RingHash; break;
    case cluster_v3::Cluster::RANDOM: out.lb_policy = ClusterConfig::LbPolicy::Random; break;
    case cluster_v3::Cluster::MAGLEV: out.lb_policy = ClusterConfig::LbPolicy::Maglev; break;
    case cluster_v3::Cluster::CLUSTER_PROVIDED: out.lb_policy = ClusterConfig::LbPolicy::ClusterProvided; break;
    default:
      return invalid(fieldPath(path, "lb_policy"),
                     absl::StrCat("unsupported lb_policy ", cluster_v3::Cluster::LbPolicy_Name(c.lb_policy())));
  }
  // Envoy (source/common/upstream/upstream_impl.cc): ORIGINAL_DST goes with
  // CLUSTER_PROVIDED and only with it.
  if (out.type == ClusterConfig::Type::OriginalDst &&
      out.lb_policy != ClusterConfig::LbPolicy::ClusterProvided) {
    return invalid(fieldPath(path, "lb_policy"),
                   absl::StrCat("cluster: LB policy ", cluster_v3::Cluster::LbPolicy_Name(c.lb_policy()),
                                " is not valid for Cluster type ORIGINAL_DST. Only 'CLUSTER_PROVIDED' "
                                "is allowed with cluster type 'ORIGINAL_DST'"));
  }
  if (out.type != ClusterConfig::Type::OriginalDst &&
      out.lb_policy == ClusterConfig::LbPolicy::ClusterProvided) {
    return invalid(fieldPath(path, "lb_policy"),
                   absl::StrCat("cluster: LB policy CLUSTER_PROVIDED is not valid for Cluster type ",
                                cluster_v3::Cluster::DiscoveryType_Name(c.type()),
                                ". 'CLUSTER_PROVIDED' is allowed only with cluster type 'ORIGINAL_DST'"));
  }
  if (out.type == ClusterConfig::Type::OriginalDst) {
    if (auto st = applyOriginalDst(c, path, out); !st.ok()) return st;
  } else if (c.has_original_dst_lb_config()) {
    // Envoy ignores it on other cluster types; turnout says so rather than
    // accept a setting that changes nothing.
    return invalid(fieldPath(path, "original_dst_lb_config"),
                   "original_dst_lb_config applies to ORIGINAL_DST clusters only");
  }
  if (out.lb_policy == ClusterConfig::LbPolicy::Maglev) {
    // Envoy's MaglevLoadBalancer: the table size must be prime (PGV already
    // caps it at 5000011).
    if (c.has_maglev_lb_config() && c.maglev_lb_config().has_table_size()) {
      out.maglev_table_size = c.maglev_lb_config().table_size().value();
    }
    if (!isPrime(out.maglev_table_size)) {
      return invalid(fieldPath(fieldPath(path, "maglev_lb_config"), "table_size"),
                     absl::StrCat("The table size of maglev must be prime number (got ",
                                  out.maglev_table_size, ")"));
    }
    const auto& hashing = c.common_lb_config().consistent_hashing_lb_config();
    out.use_hostname_for_hashing = hashing.use_hostname_for_hashing();
    if (hashing.has_hash_balance_factor()) {
      return invalid(fieldPath(fieldPath(fieldPath(path, "common_lb_config"),
                                         "consistent_hashing_lb_config"),
                               "hash_balance_factor"),
                     "bounded-load consistent hashing is not supported by turnout");
    }
  }
  if (c.has_connect_timeout()) out.connect_timeout = ms(c.connect_timeout());
  if (c.has_upstream_bind_config()) {
    auto bind = toUpstreamBind(c.upstream_bind_config(), fieldPath(path, "upstream_bind_config"));
    if (!bind.ok()) return bind.status();
    out.upstream_bind = std::move(*bind);
  }
  if (c.has_dns_refresh_rate()) out.dns_refresh_rate = ms(c.dns_refresh_rate());
  out.respect_dns_ttl = c.respect_dns_ttl();
  out.has_dns_failure_refresh_rate = c.has_dns_failure_refresh_rate();
  switch (c.dns_lookup_family()) {
    case cluster_v3::Cluster::V4_ONLY: out.dns_lookup_family = ClusterConfig::DnsLookupFamily::V4Only; break;
    case cluster_v3::Cluster::V6_ONLY: out.dns_lookup_family = ClusterConfig::DnsLookupFamily::V6Only; break;
    case cluster_v3::Cluster::V4_PREFERRED: out.dns_lookup_family = ClusterConfig::DnsLookupFamily::V4Preferred; break;
    case cluster_v3::Cluster::ALL: out.dns_lookup_family = ClusterConfig::DnsLookupFamily::All; break;
    default: out.dns_lookup_family = ClusterConfig::DnsLookupFamily::Auto; break;
  }
  if (c.has_per_connection_buffer_limit_bytes()) {
    out.per_connection_buffer_limit_bytes = c.per_connection_buffer_limit_bytes().value();
  }

  if (out.type == ClusterConfig::Type::Eds) {
    auto eds = toEdsSource(c, path);
    if (!eds.ok()) return eds.status();
    out.eds = *std::move(eds);
    out.eds_service_name = c.eds_cluster_config().service_name().empty()
                               ? c.name()
                               : c.eds_cluster_config().service_name();
  }

  // Endpoints: the translation EDS assignments go through too.
  const std::string la_path = fieldPath(path, "load_assignment");
  size_t endpoint_count = 0;
  auto localities = translateLoadAssignment(c.load_assignment(), la_path, out.type, &endpoint_count);
  if (!localities.ok()) return localities.status();
  out.localities = *std::move(localities);
  if (out.type == ClusterConfig::Type::LogicalDns &&
      (c.load_assignment().endpoints_size() != 1 || endpoint_count != 1)) {
    return invalid(la_path,
                   "LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single "
                   "lb_endpoint");
  }

  // Circuit breakers: Envoy's defaults apply per priority; DEFAULT always exists.
  bool have_default = false;
  for (const auto& t : c.circuit_breakers().thresholds()) {
    CircuitBreakerThresholds th;
    th.priority = t.priority() == core::HIGH ? CircuitBreakerThresholds::Priority::High
                                             : CircuitBreakerThresholds::Priority::Default;
    if (t.has_max_connections()) th.max_connections = t.max_connections().value();
    if (t.has_max_pending_requests()) th.max_pending_requests = t.max_pending_requests().value();
    if (t.has_max_requests()) th.max_requests = t.max_requests().value();
    if (t.has_max_retries()) th.max_retries = t.max_retries().value();
    have_default |= th.priority == CircuitBreakerThresholds::Priority::Default;
    out.circuit_breakers.push_back(th);
  }
  if (!have_default) out.circuit_breakers.insert(out.circuit_breakers.begin(), CircuitBreakerThresholds{});

  if (c.health_checks_size() > 1) {
    return invalid(indexPath(fieldPath(path, "health_checks"), 1),
                   "turnout runs one health check per cluster");
  }
  for (int h = 0; h < c.health_checks_size(); ++h) {
    const auto& hc = c.health_checks(h);
    std::string hpath = indexPath(fieldPath(path, "health_checks"), h);
    HealthCheckConfig out_hc;
    out_hc.timeout = ms(hc.timeout());
    out_hc.interval = ms(hc.interval());
    out_hc.unhealthy_threshold = hc.unhealthy_threshold().value();
    out_hc.healthy_threshold = hc.healthy_threshold().value();
    switch (hc.health_checker_case()) {
      case core::HealthCheck::kHttpHealthCheck:
        out_hc.kind = HealthCheckConfig::Kind::Http;
        out_hc.http_path = hc.http_health_check().path();
        out_hc.http_host = hc.http_health_check().host();
        break;
      case core::HealthCheck::kTcpHealthCheck:
        return invalid(fieldPath(hpath, "tcp_health_check"),
                       "TCP health checks are not supported by turnout yet (use http_health_check)");
      case core::HealthCheck::kGrpcHealthCheck:
        return invalid(fieldPath(hpath, "grpc_health_check"),
                       "gRPC health checks are not supported by turnout yet (use http_health_check)");
      default:
        return invalid(hpath, "unsupported health checker (turnout supports http_health_check)");
    }
    out.health_checks.push_back(std::move(out_hc));
  }

  if (c.has_outlier_detection()) {
    const auto& od = c.outlier_detection();
    const std::string odpath = fieldPath(path, "outlier_detection");
    OutlierDetectionConfig o;
    if (od.has_consecutive_5xx()) o.consecutive_5xx = od.consecutive_5xx().value();
    if (od.has_interval()) o.interval = ms(od.interval());
    if (od.has_base_ejection_time()) o.base_ejection_time = ms(od.base_ejection_time());
    o.max_ejection_time = od.has_max_ejection_time()
                              ? ms(od.max_ejection_time())
                              : std::max(o.max_ejection_time, o.base_ejection_time);
    if (o.max_ejection_time < o.base_ejection_time) {
      return invalid(fieldPath(odpath, "max_ejection_time"),
                     "outlier detector's max_ejection_time cannot be smaller than "
                     "base_ejection_time");
    }
    if (od.has_max_ejection_time_jitter()) {
      o.max_ejection_time_jitter = ms(od.max_ejection_time_jitter());
    }
    if (od.has_max_ejection_percent()) o.max_ejection_percent = od.max_ejection_percent().value();
    if (od.has_always_eject_one_host()) o.always_eject_one_host = od.always_eject_one_host().value();
    if (od.has_enforcing_consecutive_5xx()) o.enforcing_consecutive_5xx = od.enforcing_consecutive_5xx().value();
    if (od.has_consecutive_gateway_failure()) o.consecutive_gateway_failure = od.consecutive_gateway_failure().value();
    if (od.has_enforcing_consecutive_gateway_failure()) {
      o.enforcing_consecutive_gateway_failure = od.enforcing_consecutive_gateway_failure().value();
    }
    if (od.has_enforcing_success_rate()) o.enforcing_success_rate = od.enforcing_success_rate().value();
    if (od.has_success_rate_minimum_hosts()) o.success_rate_minimum_hosts = od.success_rate_minimum_hosts().value();
    if (od.has_success_rate_request_volume()) o.success_rate_request_volume = od.success_rate_request_volume().value();
    if (od.has_success_rate_stdev_factor()) o.success_rate_stdev_factor = od.success_rate_stdev_factor().value();
    if (od.has_failure_percentage_threshold()) {
      o.failure_percentage_threshold = od.failure_percentage_threshold().value();
    }
    if (od.has_enforcing_failure_percentage()) {
      o.enforcing_failure_percentage = od.enforcing_failure_percentage().value();
    }
    if (od.has_failure_percentage_minimum_hosts()) {
      o.failure_percentage_minimum_hosts = od.failure_percentage_minimum_hosts().value();
    }
    if (od.has_failure_percentage_request_volume()) {
      o.failure_percentage_request_volume = od.failure_percentage_request_volume().value();
    }
    // Local-origin splitting and extension monitors change what is counted;
    // turnout counts every failure as Envoy does without the split.
    if (od.split_external_local_origin_errors()) {
      return invalid(fieldPath(odpath, "split_external_local_origin_errors"),
                     "turnout does not split local-origin errors from upstream errors yet");
    }
    if (od.monitors_size() > 0) {
      return invalid(indexPath(fieldPath(odpath, "monitors"), 0),
                     "outlier detection monitor extensions are not supported by turnout");
    }
    if (od.has_successful_active_health_check_uneject_host() &&
        od.successful_active_health_check_uneject_host().value() && !c.health_checks().empty()) {
      return invalid(fieldPath(odpath, "successful_active_health_check_uneject_host"),
                     "turnout does not uneject hosts on a passing active health check yet (set "
                     "it to false)");
    }
    out.outlier_detection = o;
  }

  // Upstream protocol: HttpProtocolOptions wins over the deprecated Cluster fields.
  // The deprecated Cluster fields still parse in Envoy 1.31 and appear in its examples.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  if (c.has_http2_protocol_options()) {
    out.upstream_protocol = ClusterConfig::UpstreamProtocol::Http2;
    auto h2 = toHttp2Options(c.http2_protocol_options(), fieldPath(path, "http2_protocol_options"));
    if (!h2.ok()) return h2.status();
    out.http2 = *h2;
  }
  if (c.has_common_http_protocol_options()) {
    applyUpstreamCommonOptions(c.common_http_protocol_options(), out);
  }
  if (c.has_max_requests_per_connection()) {
    out.max_requests_per_connection = c.max_requests_per_connection().value();
  }
#pragma GCC diagnostic pop
  auto opts = c.typed_extension_protocol_options().find(std::string(kHttpProtocolOptionsType));
  if (opts != c.typed_extension_protocol_options().end()) {
    std::string opath = keyPath(fieldPath(path, "typed_extension_protocol_options"), kHttpProtocolOptionsType);
    envoy::extensions::upstreams::http::v3::HttpProtocolOptions hpo;
    if (!opts->second.UnpackTo(&hpo)) return invalid(opath, "cannot decode HttpProtocolOptions");
    using HPO = envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
    switch (hpo.upstream_protocol_options_case()) {
      case HPO::kExplicitHttpConfig:
        switch (hpo.explicit_http_config().protocol_config_case()) {
          case HPO::ExplicitHttpConfig::kHttp2ProtocolOptions:
            out.upstream_protocol = ClusterConfig::UpstreamProtocol::Http2;
            {
              auto h2 = toHttp2Options(
                  hpo.explicit_http_config().http2_protocol_options(),
                  fieldPath(fieldPath(opath, "explicit_http_config"), "http2_protocol_options"));
              if (!h2.ok()) return h2.status();
              out.http2 = *h2;
            }
            break;
          case HPO::ExplicitHttpConfig::kHttp3ProtocolOptions:
            return invalid(fieldPath(fieldPath(opath, "explicit_http_config"), "http3_protocol_options"),
                           "HTTP/3 upstreams are not supported by turnout");
          default:
            out.upstream_protocol = ClusterConfig::UpstreamProtocol::Http1;
            break;
        }
        break;
      case HPO::kUseDownstreamProtocolConfig: {
        // The client's protocol per request (proxy/upstream/auto_conn_pool.h,
        // DownstreamProtocolConnPool); the HTTP/2 side's options here.
        out.upstream_protocol = ClusterConfig::UpstreamProtocol::UseDownstream;
        auto h2 = toHttp2Options(hpo.use_downstream_protocol_config().http2_protocol_options(),
                                 fieldPath(fieldPath(opath, "use_downstream_protocol_config"),
                                           "http2_protocol_options"));
        if (!h2.ok()) return h2.status();
        out.http2 = *h2;
        break;
      }
      case HPO::kAutoConfig: {
        // ALPN decides per host on a TLS cluster (proxy/upstream/auto_conn_pool.h).
        out.upstream_protocol = ClusterConfig::UpstreamProtocol::Auto;
        const std::string apath = fieldPath(opath, "auto_config");
        if (hpo.auto_config().has_http3_protocol_options()) {
          return invalid(fieldPath(apath, "http3_protocol_options"),
                         "HTTP/3 upstreams are not supported by turnout");
        }
        auto h2 = toHttp2Options(hpo.auto_config().http2_protocol_options(),
                                 fieldPath(apath, "http2_protocol_options"));
        if (!h2.ok()) return h2.status();
        out.http2 = *h2;
        break;
      }
      default:
        break;
    }
    if (hpo.has_common_http_protocol_options()) {
      applyUpstreamCommonOptions(hpo.common_http_protocol_options(), out);
    }
  }

  if (c.has_transport_socket()) {
    out.transport_socket = c.transport_socket().typed_config();
    envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext tls;
    if (c.transport_socket().typed_config().UnpackTo(&tls)) {
      out.has_tls = true;
      out.tls_sni = tls.sni();
    }
  }
  if (c.transport_socket_matches_size() > 0) {
    return invalid(fieldPath(path, "transport_socket_matches"),
                   "transport socket matches are not supported by turnout");
  }
  return out;
}

// envoy.filters.network.tcp_proxy. The field policy has refused every field
// turnout does not honour; what is left is checked as Envoy does at load.
absl::StatusOr<TcpProxyConfig> toTcpProxy(const tcp_v3::TcpProxy& tcp, const std::string& path,
                                          const absl::flat_hash_set<std::string>& clusters,
                                          bool check_clusters) {
  TcpProxyConfig out;
  out.stat_prefix = tcp.stat_prefix();
  auto known = [&](const std::string& name, const std::string& p) -> absl::Status {
    if (!check_clusters || clusters.contains(name)) return absl::OkStatus();
    return invalid(p, absl::StrCat("unknown cluster '", name, "'"));
  };
  switch (tcp.cluster_specifier_case()) {
    case tcp_v3::TcpProxy::kCluster:
      out.cluster = tcp.cluster();
      if (out.cluster.empty()) return invalid(fieldPath(path, "cluster"), "a cluster name is required");
      if (auto s = known(out.cluster, fieldPath(path, "cluster")); !s.ok()) return s;
      break;
    case tcp_v3::TcpProxy::kWeightedClusters: {
      const std::string wpath = fieldPath(fieldPath(path, "weighted_clusters"), "clusters");
      for (int i = 0; i < tcp.weighted_clusters().clusters_size(); ++i) {
        const auto& c = tcp.weighted_clusters().clusters(i);
        if (auto s = known(c.name(), fieldPath(indexPath(wpath, i), "name")); !s.ok()) return s;
        out.weighted_clusters.push_back(TcpProxyConfig::WeightedCluster{c.name(), c.weight()});
        out.total_weight += c.weight();
      }
      if (out.weighted_clusters.empty()) return invalid(wpath, "at least one cluster is required");
      break;
    }
    default:
      return invalid(path, "one of cluster or weighted_clusters is required");
  }
  if (tcp.has_idle_timeout()) out.idle_timeout = ms(tcp.idle_timeout());
  if (tcp.has_max_connect_attempts()) out.max_connect_attempts = tcp.max_connect_attempts().value();
  out.access_logs = toAccessLogs(tcp.access_log());
  return out;
}

absl::StatusOr<FilterChainConfig> toFilterChain(const listener_v3::FilterChain& fc,
                                                const std::string& path,
                                                const absl::flat_hash_set<std::string>& clusters,
                                                bool check_clusters, Snapshot& snapshot) {
  FilterChainConfig out;
  out.name = fc.name();
  out.path = path;
  const auto& m = fc.filter_chain_match();
  auto ranges = [](const auto& in) {
    std::vector<FilterChainConfig::CidrRange> out;
    for (const auto& r : in) out.push_back({r.address_prefix(), r.prefix_len().value()});
    return out;
  };
  if (m.has_destination_port()) out.destination_port = m.destination_port().value();
  out.prefix_ranges = ranges(m.prefix_ranges());
  out.server_names.assign(m.server_names().begin(), m.server_names().end());
  out.transport_protocol = m.transport_protocol();
  out.application_protocols.assign(m.application_protocols().begin(), m.application_protocols().end());
  out.direct_source_prefix_ranges = ranges(m.direct_source_prefix_ranges());
  switch (m.source_type()) {
    case listener_v3::FilterChainMatch::SAME_IP_OR_LOOPBACK:
      out.source_type = FilterChainConfig::SourceType::SameIpOrLoopback;
      break;
    case listener_v3::FilterChainMatch::EXTERNAL:
      out.source_type = FilterChainConfig::SourceType::External;
      break;
    default:
      out.source_type = FilterChainConfig::SourceType::Any;
      break;
  }
  out.source_prefix_ranges = ranges(m.source_prefix_ranges());
  out.source_ports.assign(m.source_ports().begin(), m.source_ports().end());
  if (fc.has_transport_socket()) {
    out.transport_socket = fc.transport_socket().typed_config();
    out.has_tls = typeNameOf(fc.transport_socket().typed_config().type_url()) == kDownstreamTlsContextType;
  }
  for (int k = 0; k < fc.filters_size(); ++k) {
    std::string tpath = fieldPath(indexPath(fieldPath(path, "filters"), k), "typed_config");
    const google::protobuf::Any& any = fc.filters(k).typed_config();
    // Both network filters turnout runs are terminal: a chain has one
    // (Envoy: "terminal filter named X ... must be the last filter in a
    // network filter chain").
    if (out.http_connection_manager || out.tcp_proxy) {
      const std::string prev = indexPath(fieldPath(path, "filters"), k - 1);
      return invalid(prev, absl::StrCat("terminal filter named ", fc.filters(k - 1).name(), " of type ",
                                        out.tcp_proxy ? "envoy.filters.network.tcp_proxy"
                                                      : "envoy.filters.network.http_connection_manager",
                                        " must be the last filter in a network filter chain."));
    }
    if (typeNameOf(any.type_url()) == kTcpProxyType) {
      tcp_v3::TcpProxy tcp;
      if (!any.UnpackTo(&tcp)) return invalid(tpath, "cannot decode TcpProxy");
      auto cfg = toTcpProxy(tcp, tpath, clusters, check_clusters);
      if (!cfg.ok()) return cfg.status();
      out.tcp_proxy = *std::move(cfg);
      continue;
    }
    hcm_v3::HttpConnectionManager hcm;
    if (!any.UnpackTo(&hcm)) {
      return invalid(tpath, "cannot decode HttpConnectionManager");
    }
    auto cfg = toHcm(hcm, tpath);
    if (!cfg.ok()) return cfg.status();
    if (hcm.has_route_config()) {
      std::string rpath = fieldPath(tpath, "route_config");
      if (check_clusters) {
        if (auto s = checkRouteClusters(hcm.route_config(), rpath, clusters); !s.ok()) return s;
      }
      auto table = translateRouteConfiguration(hcm.route_config(), rpath);
      if (!table.ok()) return table.status();
      cfg->route_table_index = snapshot.route_tables.size();
      snapshot.route_tables.push_back(NamedRouteTable{hcm.route_config().name(), rpath, *std::move(table)});
    }
    out.http_connection_manager = *std::move(cfg);
  }
  return out;
}

}  // namespace

std::string Address::toString() const {
  switch (kind) {
    case Kind::Pipe: return absl::StrCat("unix:", address);
    case Kind::Internal: return absl::StrCat("internal:", address);
    case Kind::Socket:
      if (address.find(':') != std::string::npos) return absl::StrCat("[", address, "]:", port);
      return absl::StrCat(address, ":", port);
  }
  return address;
}

envoy::config::cluster::v3::Cluster Snapshot::clusterProto(size_t i) const {
  envoy::config::cluster::v3::Cluster c;
  if (i < cluster_protos.size()) c.ParseFromString(cluster_protos[i]);
  return c;
}

envoy::config::listener::v3::Listener Snapshot::listenerProto(size_t i) const {
  envoy::config::listener::v3::Listener l;
  if (i < listener_protos.size()) l.ParseFromString(listener_protos[i]);
  return l;
}

envoy::config::bootstrap::v3::Bootstrap Snapshot::fullBootstrap() const {
  envoy::config::bootstrap::v3::Bootstrap b = bootstrap;
  auto* listeners = b.mutable_static_resources()->mutable_listeners();
  listeners->Reserve(static_cast<int>(listener_protos.size()));
  for (const auto& bytes : listener_protos) listeners->Add()->ParseFromString(bytes);
  auto* clusters = b.mutable_static_resources()->mutable_clusters();
  clusters->Reserve(static_cast<int>(cluster_protos.size()));
  for (const auto& bytes : cluster_protos) clusters->Add()->ParseFromString(bytes);
  return b;
}

const ClusterConfig* Snapshot::findCluster(const std::string& name) const {
  for (const auto& c : clusters) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

const ListenerConfig* Snapshot::findListener(const std::string& name) const {
  for (const auto& l : listeners) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

absl::StatusOr<LoadedSnapshot> SnapshotBuilder::load(const BootstrapLoadOptions& options) {
  auto loaded = loadBootstrap(options);
  if (!loaded.ok()) return loaded.status();
  auto snapshot = build(std::move(loaded->bootstrap));
  if (!snapshot.ok()) return snapshot.status();
#ifdef __GLIBC__
  // Parsing left the YAML tree and the parsed clusters freed between the
  // snapshot's objects; glibc returns only the top of its heap by itself.
  // Once per start: about 0.8 KB of RSS per sandbox at 10,000 sandboxes.
  malloc_trim(0);
#endif
  return LoadedSnapshot{*std::move(snapshot), std::move(loaded->warnings)};
}

std::string SnapshotBuilder::randomUuid() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  uint64_t hi = gen(), lo = gen();
  hi = (hi & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32, (hi >> 16) & 0xFFFF, hi & 0xFFFF,
                         lo >> 48, lo & 0xFFFFFFFFFFFFULL);
}

namespace {

// dynamic_resources.ads_config and the api_config_sources (their clusters
// must be static, non-EDS clusters), every `ads: {}` config source of the
// bootstrap (they need ads_config), and one xDS source per type: turnout runs
// the ADS stream and at most one stream per type, so every HCM that takes
// RDS from xDS names the same source, and so does every EDS cluster.
// Resources read from a file or pushed by xDS are built in a synthetic
// bootstrap whose cds_config path is "-": their sources are checked when they
// arrive (proxy/server/dynamic_resources.cc).
absl::Status checkAds(const envoy::config::bootstrap::v3::Bootstrap& bootstrap, Snapshot& snapshot,
                      const absl::flat_hash_map<std::string, int>& cluster_index) {
  const auto& dr = bootstrap.dynamic_resources();
  const bool discovery_resources = dr.cds_config().path_config_source().path() == "-";
  auto checkCluster = [&](const AdsServerConfig& src, const std::string& path) -> absl::Status {
    if (discovery_resources) return absl::OkStatus();
    const std::string cpath =
        fieldPath(fieldPath(indexPath(fieldPath(path, "grpc_services"), 0), "envoy_grpc"), "cluster_name");
    auto it = cluster_index.find(src.cluster_name);
    if (it == cluster_index.end()) {
      return invalid(cpath, absl::StrCat("unknown cluster '", src.cluster_name,
                                         "': the xDS cluster must be a static cluster"));
    }
    const ClusterConfig& c = snapshot.clusters[static_cast<size_t>(it->second)];
    if (c.type == ClusterConfig::Type::Eds) {
      return invalid(cpath, absl::StrCat("cluster '", src.cluster_name,
                                         "' is an EDS cluster; the xDS cluster needs static or DNS endpoints"));
    }
    return absl::OkStatus();
  };
  if (dr.has_ads_config()) {
    const std::string path = "dynamic_resources.ads_config";
    auto ads = toXdsServer(dr.ads_config(), path);
    if (!ads.ok()) return ads.status();
    if (auto st = checkCluster(*ads, path); !st.ok()) return st;
    snapshot.ads = *std::move(ads);
  }
  for (auto [cs, out, name] :
       {std::make_tuple(&dr.cds_config(), &snapshot.cds_source, "cds_config"),
        std::make_tuple(&dr.lds_config(), &snapshot.lds_source, "lds_config")}) {
    if (!cs->has_api_config_source()) continue;
    const std::string path = absl::StrCat("dynamic_resources.", name, ".api_config_source");
    auto src = toXdsServer(cs->api_config_source(), path);
    if (!src.ok()) return src.status();
    if (auto st = checkCluster(*src, path); !st.ok()) return st;
    *out = *std::move(src);
  }
  const char* kNeedsAds = "an ads config source needs dynamic_resources.ads_config";
  if (!snapshot.ads && !discovery_resources) {
    if (dr.cds_config().has_ads()) return invalid("dynamic_resources.cds_config.ads", kNeedsAds);
    if (dr.lds_config().has_ads()) return invalid("dynamic_resources.lds_config.ads", kNeedsAds);
  }
  // One source per type: the first one seen, and where.
  struct Seen {
    std::optional<AdsServerConfig> source;  // null: ADS
    std::string path;
  };
  std::optional<Seen> rds, eds;
  auto oneSource = [&](std::optional<Seen>& seen, const std::optional<AdsServerConfig>& source,
                       const std::string& path, const char* type) -> absl::Status {
    if (!source && !snapshot.ads && !discovery_resources) return invalid(path, kNeedsAds);
    if (source) {
      if (auto st = checkCluster(*source, path); !st.ok()) return st;
    }
    if (!seen) {
      seen = Seen{source, path};
    } else if (seen->source != source) {
      return invalid(path, absl::StrCat("differs from the ", type, " source at ", seen->path,
                                        ": turnout takes each resource type from one xDS source"));
    }
    return absl::OkStatus();
  };
  for (size_t i = 0; i < snapshot.clusters.size(); ++i) {
    const ClusterConfig& c = snapshot.clusters[i];
    if (!c.eds || !c.eds->ads) continue;
    const std::string path = absl::StrCat("static_resources.clusters[", i, "].eds_cluster_config.eds_config.",
                                          c.eds->source ? "api_config_source" : "ads");
    if (auto st = oneSource(eds, c.eds->source, path, "EDS"); !st.ok()) return st;
  }
  for (const ListenerConfig& l : snapshot.listeners) {
    auto check = [&](const FilterChainConfig& fc) -> absl::Status {
      const auto& h = fc.http_connection_manager;
      if (!h || !h->rds_ads) return absl::OkStatus();
      const std::string path = absl::StrCat(fc.path, ".filters[0].typed_config.rds.config_source.",
                                            h->rds_source ? "api_config_source" : "ads");
      return oneSource(rds, h->rds_source, path, "RDS");
    };
    for (const auto& fc : l.filter_chains) {
      if (auto st = check(fc); !st.ok()) return st;
    }
    if (l.default_filter_chain) {
      if (auto st = check(*l.default_filter_chain); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

// The trace-key table is one per process: every RoutingKey filter with
// trace_key_recovery on must size it the same; a different max_entries is an
// error at its path that names the first. (The proxy also refuses a size that
// differs from a table still in use by a previous config.)
absl::Status checkTraceKeyTable(const Snapshot& snapshot) {
  std::optional<size_t> entries;
  std::string first_path;
  auto check = [&](const FilterChainConfig& fc) -> absl::Status {
    const auto& h = fc.http_connection_manager;
    if (!h) return absl::OkStatus();
    for (size_t i = 0; i < h->http_filters.size(); ++i) {
      const HttpFilterConfig& f = h->http_filters[i];
      if (f.type_name != RoutingKeyProto::descriptor()->full_name()) continue;
      const std::string path = absl::StrCat(fc.path, ".filters[0].typed_config.http_filters[", i,
                                            "].typed_config.trace_key_recovery");
      RoutingKeyProto rk;
      if (!f.config.UnpackTo(&rk)) return invalid(path, "cannot unpack RoutingKey");
      auto cfg = toRoutingKeyFilterConfig(rk, path);
      if (!cfg.ok()) return cfg.status();
      if (!cfg->trace.enabled()) continue;
      if (!entries) {
        entries = cfg->trace.max_entries;
        first_path = path;
      } else if (*entries != cfg->trace.max_entries) {
        return invalid(fieldPath(path, "max_entries"),
                       absl::StrCat(cfg->trace.max_entries, " differs from ", *entries, " at ",
                                    first_path, ".max_entries: the trace-key table is one per "
                                    "process, so every filter with recovery on must size it the "
                                    "same"));
      }
    }
    return absl::OkStatus();
  };
  for (const ListenerConfig& l : snapshot.listeners) {
    for (const auto& fc : l.filter_chains) {
      if (auto st = check(fc); !st.ok()) return st;
    }
    if (l.default_filter_chain) {
      if (auto st = check(*l.default_filter_chain); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SnapshotConstSharedPtr> SnapshotBuilder::build(
    const envoy::config::bootstrap::v3::Bootstrap& bootstrap, NameGenerator generate_name) {
  return build(envoy::config::bootstrap::v3::Bootstrap(bootstrap), std::move(generate_name));
}

absl::StatusOr<SnapshotConstSharedPtr> SnapshotBuilder::build(
    envoy::config::bootstrap::v3::Bootstrap&& bootstrap, NameGenerator generate_name) {
  if (!generate_name) generate_name = &SnapshotBuilder::randomUuid;
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->node_id = bootstrap.node().id();
  snapshot->node_cluster = bootstrap.node().cluster();
  const auto& sr = bootstrap.static_resources();

  // Clusters first: routes are checked against them.
  absl::flat_hash_map<std::string, int> cluster_index;
  cluster_index.reserve(static_cast<size_t>(sr.clusters_size()));
  snapshot->clusters.reserve(static_cast<size_t>(sr.clusters_size()));
  snapshot->cluster_protos.reserve(static_cast<size_t>(sr.clusters_size()));
  for (int i = 0; i < sr.clusters_size(); ++i) {
    std::string path = indexPath("static_resources.clusters", i);
    const auto& c = sr.clusters(i);
    auto [it, inserted] = cluster_index.emplace(c.name(), i);
    if (!inserted) {
      return invalid(fieldPath(path, "name"),
                     absl::StrCat("duplicate cluster '", c.name(), "' (also static_resources.clusters[",
                                  it->second, "])"));
    }
    auto cfg = toCluster(c, path);
    if (!cfg.ok()) return cfg.status();
    snapshot->clusters.push_back(*std::move(cfg));
    snapshot->cluster_protos.push_back(c.SerializeAsString());
  }
  absl::flat_hash_set<std::string> cluster_names;
  for (const auto& [name, idx] : cluster_index) cluster_names.insert(name);
  // With CDS, more clusters arrive later; only a fully static config can be checked.
  bool check_clusters = !bootstrap.dynamic_resources().has_cds_config();

  absl::flat_hash_map<std::string, int> listener_index;
  snapshot->listeners.reserve(static_cast<size_t>(sr.listeners_size()));
  ListenerAddressSet addresses;
  for (int i = 0; i < sr.listeners_size(); ++i) {
    std::string path = indexPath("static_resources.listeners", i);
    const auto& l = sr.listeners(i);
    ListenerConfig out;
    out.name = l.name();
    if (out.name.empty()) {
      out.name = generate_name();
      out.name_generated = true;
    }
    auto [it, inserted] = listener_index.emplace(out.name, i);
    if (!inserted) {
      return invalid(fieldPath(path, "name"),
                     absl::StrCat("duplicate listener name '", out.name,
                                  "' (also static_resources.listeners[", it->second, "])"));
    }
    if (l.has_api_listener()) {
      return invalid(fieldPath(path, "api_listener"), "API listeners are not supported by turnout");
    }
    if (!l.has_address()) return invalid(fieldPath(path, "address"), "a listener needs an address");
    auto addr = toAddress(l.address(), fieldPath(path, "address"), AddressUse::Listener);
    if (!addr.ok()) return addr.status();
    out.address = *std::move(addr);
    // The server binds IP literals only; say so here rather than when serving.
    if (out.address.kind == Address::Kind::Socket && !isIpLiteral(out.address.address)) {
      return invalid(fieldPath(fieldPath(fieldPath(path, "address"), "socket_address"), "address"),
                     absl::StrCat("malformed IP address: ", out.address.address,
                                  " (listeners bind IP addresses)"));
    }
    out.stat_prefix = l.stat_prefix();
    if (l.has_bind_to_port()) out.bind_to_port = l.bind_to_port().value();
    if (auto other = addresses.insert(out); other.has_value()) {
      return invalid(fieldPath(path, "address"),
                     absl::StrCat("error adding listener '", out.name, "': has duplicate address '",
                                  out.address.toString(), "' as existing listener '", *other,
                                  "' (static_resources.listeners[", listener_index.at(*other),
                                  "])"));
    }
    out.use_original_dst = l.has_use_original_dst() && l.use_original_dst().value();
    out.transparent = l.has_transparent() && l.transparent().value();
    out.traffic_direction = static_cast<ListenerConfig::TrafficDirection>(l.traffic_direction());
    if (l.has_per_connection_buffer_limit_bytes()) {
      out.per_connection_buffer_limit_bytes = l.per_connection_buffer_limit_bytes().value();
    }
    for (const auto& lf : l.listener_filters()) {
      out.listener_filter_types.emplace_back(typeNameOf(lf.typed_config().type_url()));
      const std::string& type = out.listener_filter_types.back();
      out.original_dst |= type == kOriginalDstType;
      out.http_inspector |= type == kHttpInspectorType;
    }
    // Envoy adds the original_dst filter to a use_original_dst listener.
    out.original_dst |= out.use_original_dst;
    if (l.has_listener_filters_timeout()) out.listener_filters_timeout = ms(l.listener_filters_timeout());
    out.continue_on_listener_filters_timeout = l.continue_on_listener_filters_timeout();
    out.filter_chains.reserve(static_cast<size_t>(l.filter_chains_size()));
    for (int j = 0; j < l.filter_chains_size(); ++j) {
      auto fc = toFilterChain(l.filter_chains(j), indexPath(fieldPath(path, "filter_chains"), j),
                              cluster_names, check_clusters, *snapshot);
      if (!fc.ok()) return fc.status();
      out.filter_chains.push_back(*std::move(fc));
    }
    auto matcher = FilterChainMatcher::create(out.filter_chains);
    if (!matcher.ok()) return matcher.status();
    out.filter_chain_matcher = *std::move(matcher);
    if (l.has_default_filter_chain()) {
      // Its filter_chain_match, if any, is ignored, as in Envoy (listener.proto).
      const std::string dpath = fieldPath(path, "default_filter_chain");
      auto fc = toFilterChain(l.default_filter_chain(), dpath, cluster_names, check_clusters,
                              *snapshot);
      if (!fc.ok()) return fc.status();
      out.default_filter_chain = *std::move(fc);
    }
    snapshot->listeners.push_back(std::move(out));
  }

  if (auto st = checkTraceKeyTable(*snapshot); !st.ok()) return st;

  if (bootstrap.has_admin() && bootstrap.admin().has_address()) {
    auto addr = toAddress(bootstrap.admin().address(), "admin.address");
    if (!addr.ok()) return addr.status();
    snapshot->admin_address = *std::move(addr);
  }
  if (auto st = checkAds(bootstrap, *snapshot, cluster_index); !st.ok()) return st;
  // Kept as loaded, but for the clusters and listeners: cluster_protos and
  // listener_protos have them serialized. (RepeatedPtrField::Clear would
  // keep the emptied messages for reuse.)
  auto* clusters = bootstrap.mutable_static_resources()->mutable_clusters();
  clusters->DeleteSubrange(0, clusters->size());
  auto* listeners = bootstrap.mutable_static_resources()->mutable_listeners();
  snapshot->listener_protos.reserve(static_cast<size_t>(listeners->size()));
  for (const auto& l : *listeners) snapshot->listener_protos.push_back(l.SerializeAsString());
  listeners->DeleteSubrange(0, listeners->size());
  snapshot->bootstrap = std::move(bootstrap);
  return SnapshotConstSharedPtr(std::move(snapshot));
}

}  // namespace turnout::config
