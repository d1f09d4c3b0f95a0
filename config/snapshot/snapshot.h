#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "google/protobuf/any.pb.h"
#include "config/snapshot/filter_chain_matcher.h"
#include "routing/route_config.h"  // routing::Boxed

namespace turnout::routing {
class RouteTable;
}  // namespace turnout::routing

namespace turnout::config {

// One immutable, validated configuration: what the data plane runs on. Built by
// SnapshotBuilder on the main (or xDS) thread, then shared as SnapshotConstSharedPtr with
// every worker; each ActiveStream pins the pointer for its lifetime (DESIGN §7, R9).
// Everything is plain data with Envoy's defaults already applied, so workers never
// look at protobuf on the hot path. Never mutated after build; safe to read from any
// thread.

using Milliseconds = std::chrono::milliseconds;

struct Address {
  enum class Kind { Socket, Pipe, Internal };
  enum class Protocol { Tcp, Udp };
  Kind kind = Kind::Socket;
  Protocol protocol = Protocol::Tcp;
  std::string address;  // IP or host name (Socket), path (Pipe), listener name (Internal)
  uint32_t port = 0;
  bool ipv4_compat = false;
  // `1.2.3.4:80`, `[::1]:80`, `unix:/path`, `internal:name`.
  std::string toString() const;
};

struct HttpFilterConfig {
  std::string name;       // a label; the key for typed_per_filter_config
  std::string type_url;   // type.googleapis.com/...
  std::string type_name;  // message full name, e.g. envoy.extensions.filters.http.router.v3.Router
  google::protobuf::Any config;  // the packed typed_config
};

struct AccessLogConfig {
  enum class Sink { File, Stdout, Stderr };
  std::string name;
  std::string type_url;
  Sink sink = Sink::Stdout;
  std::string path;  // File only
  bool has_filter = false;
  google::protobuf::Any config;
};

// Http2ProtocolOptions (HCM http2_protocol_options, a cluster's HTTP/2
// options): the fields turnout honours, with Envoy's defaults
// (source/common/http/utility.h OptionsLimits). Every other field is refused.
struct Http2OptionsConfig {
  uint32_t max_concurrent_streams = 2147483647;
  uint32_t initial_stream_window_size = 268435456;
  uint32_t initial_connection_window_size = 268435456;
  uint32_t hpack_table_size = 4096;
  // Flood limits (Envoy's defaults; docs/http2_codec.md "Codec stats and
  // flood limits").
  uint32_t max_outbound_frames = 10000;
  uint32_t max_outbound_control_frames = 1000;
  uint32_t max_consecutive_inbound_frames_with_empty_payload = 1;
  uint32_t max_inbound_priority_frames_per_stream = 100;
  uint32_t max_inbound_window_update_frames_per_data_frame_sent = 10;
  // SETTINGS_ENABLE_CONNECT_PROTOCOL: a listener accepts extended CONNECT
  // (RFC 8441), so WebSockets come over HTTP/2; a cluster only advertises it
  // (Envoy's), upgrades go to it as extended CONNECTs either way.
  bool allow_connect = false;
};

// A management server: dynamic_resources.ads_config (the ADS stream), or an
// api_config_source of one resource type (its own stream, docs/xds.md).
// Envoy's rules: api_type GRPC or DELTA_GRPC, V3, one grpc_service, its
// envoy_grpc cluster defined statically.
struct AdsServerConfig {
  std::string cluster_name;
  std::string authority;  // :authority: the cluster's name, as Envoy sends
  std::size_t max_receive_message_length = 64u << 20;
  bool delta = false;  // api_type DELTA_GRPC: the incremental protocol

  bool operator==(const AdsServerConfig&) const = default;
};

struct HttpConnectionManagerConfig {
  enum class CodecType { Auto, Http1, Http2, Http3 };
  enum class RouteSource { Inline, Rds };
  enum class StripPortMode { None, MatchingHost, AnyHost };

  std::string stat_prefix;
  CodecType codec_type = CodecType::Auto;
  RouteSource route_source = RouteSource::Inline;
  // Inline: the RouteConfiguration's name (may be empty); Rds: rds.route_config_name.
  std::string route_config_name;
  // Rds: the file of rds.config_source (path_config_source.path, or the
  // deprecated path) and the directory watched for it.
  std::string rds_path;
  std::string rds_watched_directory;
  // Rds from xDS instead of a file: rds.config_source.ads (the ADS stream), or
  // its api_config_source (`rds_source`: the RDS stream of that server).
  bool rds_ads = false;
  std::optional<AdsServerConfig> rds_source;
  // rds.config_source.initial_fetch_timeout: how long a listener (and the
  // server's initialisation) waits for these routes; 0 waits for ever.
  Milliseconds rds_initial_fetch_timeout{15000};
  // Inline only: index into Snapshot::route_tables once the translator exists.
  std::optional<size_t> route_table_index;
  std::vector<HttpFilterConfig> http_filters;  // router last (checked)
  std::vector<AccessLogConfig> access_logs;
  Milliseconds stream_idle_timeout{5 * 60 * 1000};  // Envoy default 5 min; 0 disables
  Milliseconds request_timeout{0};                 // Envoy default: disabled
  Milliseconds request_headers_timeout{0};
  Milliseconds idle_timeout{60 * 60 * 1000};       // common_http_protocol_options, 1 h
  Milliseconds drain_timeout{5000};
  uint32_t max_request_headers_kb = 60;
  std::optional<uint32_t> max_headers_count;  // unset: Envoy's 100
  Http2OptionsConfig http2;                   // http2_protocol_options
  bool use_remote_address = false;
  uint32_t xff_num_trusted_hops = 0;
  bool normalize_path = false;
  bool merge_slashes = false;
  StripPortMode strip_port_mode = StripPortMode::None;
  std::string server_name = "envoy";
  bool generate_request_id = true;
  // upgrade_configs that are enabled, lowercase ("websocket", "connect"). An
  // upgrade or CONNECT of another type is answered 403, as Envoy does.
  std::vector<std::string> upgrade_types;
};

// envoy.filters.network.tcp_proxy (TcpProxy): relays a connection's bytes to
// a host of `cluster`, or of one of `weighted_clusters` picked by weight per
// connection, with Envoy's defaults (docs/tcp_proxy.md).
struct TcpProxyConfig {
  struct WeightedCluster {
    std::string name;
    uint32_t weight = 0;
  };
  std::string stat_prefix;
  std::string cluster;                          // empty when weighted_clusters is used
  std::vector<WeightedCluster> weighted_clusters;
  uint64_t total_weight = 0;                    // sum of weighted_clusters' weights
  Milliseconds idle_timeout{60 * 60 * 1000};    // Envoy's 1 h; 0 disables
  uint32_t max_connect_attempts = 1;
  std::vector<AccessLogConfig> access_logs;
};

struct FilterChainConfig {
  std::string name;
  std::string path;  // in the bootstrap or LDS file, for errors

  // filter_chain_match (FilterChainMatcher, which checks these).
  struct CidrRange {
    std::string address_prefix;
    uint32_t prefix_len = 0;  // unset: 0, as Envoy
  };
  enum class SourceType { Any, SameIpOrLoopback, External };
  std::optional<uint32_t> destination_port;
  std::vector<CidrRange> prefix_ranges;
  std::vector<std::string> server_names;
  std::string transport_protocol;
  std::vector<std::string> application_protocols;
  std::vector<CidrRange> direct_source_prefix_ranges;
  SourceType source_type = SourceType::Any;
  std::vector<CidrRange> source_prefix_ranges;
  std::vector<uint32_t> source_ports;
  bool has_tls = false;  // DownstreamTlsContext transport socket
  std::optional<google::protobuf::Any> transport_socket;
  // The chain's one network filter: an HTTP connection manager or a TCP
  // proxy (both terminal, so never both); neither: connections are closed.
  std::optional<HttpConnectionManagerConfig> http_connection_manager;
  std::optional<TcpProxyConfig> tcp_proxy;
};

struct ListenerConfig {
  enum class TrafficDirection { Unspecified, Inbound, Outbound };
  std::string name;
  bool name_generated = false;  // Envoy assigns a UUID to an unnamed listener
  Address address;
  std::string stat_prefix;
  // false: the listener opens no socket; it only takes connections handed
  // off by a use_original_dst listener (docs/sidecar.md).
  bool bind_to_port = true;
  // Hands a connection whose original destination was restored to the
  // listener bound to that address (exact, else the wildcard address on its
  // port), else keeps it.
  bool use_original_dst = false;
  // IP_TRANSPARENT on the listening socket (TPROXY capture).
  bool transparent = false;
  TrafficDirection traffic_direction = TrafficDirection::Unspecified;
  std::vector<std::string> listener_filter_types;  // message full names
  // The original_dst listener filter is listed, or use_original_dst (which
  // adds it, as Envoy does): the accepted socket's SO_ORIGINAL_DST becomes
  // the connection's local address.
  bool original_dst = false;
  // http_inspector is listed: a plaintext connection's first request line
  // gives its application protocol ("http/1.1", "http/1.0", "h2c") for
  // filter_chain_match.application_protocols.
  bool http_inspector = false;
  // How long the first bytes may take when the chain depends on them
  // (listener_filters_timeout, Envoy's 15 s; 0: no limit), and whether the
  // connection then goes on with what it sent (continue_on_listener_filters_timeout)
  // instead of being closed.
  Milliseconds listener_filters_timeout{15000};
  bool continue_on_listener_filters_timeout = false;
  std::vector<FilterChainConfig> filter_chains;
  // Picks one of filter_chains per connection; none: default_filter_chain,
  // or the connection is closed (listener.<addr>.no_filter_chain_match).
  FilterChainMatcher filter_chain_matcher;
  // Boxed: most listeners have none, and a FilterChainConfig is ~1 KB.
  routing::Boxed<FilterChainConfig> default_filter_chain;
  uint32_t per_connection_buffer_limit_bytes = 1024 * 1024;
};

struct EndpointConfig {
  enum class HealthStatus { Unknown, Healthy, Unhealthy, Draining, Timeout, Degraded };
  Address address;
  std::string hostname;
  HealthStatus health_status = HealthStatus::Unknown;
  uint32_t weight = 1;
};

// envoy.config.core.v3.Locality.
struct Locality {
  std::string region, zone, sub_zone;
  bool operator==(const Locality&) const = default;
};
struct LocalityEndpointsConfig {
  // Unset when region, zone and sub_zone are all empty (a sandbox's one
  // endpoint has none: one pointer instead of three strings).
  routing::Boxed<Locality> locality;
  uint32_t priority = 0;
  std::optional<uint32_t> weight;  // locality weight; unset means not weighted
  std::vector<EndpointConfig> endpoints;
};

// Where an EDS cluster reads its ClusterLoadAssignment: the file of
// eds_config.path_config_source (or the deprecated path), the directory
// watched for it, and how long the cluster warms before it counts as
// initialised without an assignment (initial_fetch_timeout; Envoy's 15 s
// default, 0 waits forever).
struct EdsSourceConfig {
  // From xDS, not a file: eds_config.ads (the ADS stream) or
  // eds_config.api_config_source (`source`: the EDS stream of that server).
  bool ads = false;
  std::optional<AdsServerConfig> source;
  std::string path;
  std::string watched_directory;
  Milliseconds initial_fetch_timeout{15000};
};

struct CircuitBreakerThresholds {
  enum class Priority { Default, High };
  Priority priority = Priority::Default;
  uint32_t max_connections = 1024;
  uint32_t max_pending_requests = 1024;
  uint32_t max_requests = 1024;
  uint32_t max_retries = 3;
};

struct HealthCheckConfig {
  enum class Kind { Http, Tcp, Grpc, Other };
  Kind kind = Kind::Http;
  Milliseconds timeout{0};
  Milliseconds interval{0};
  uint32_t unhealthy_threshold = 0;
  uint32_t healthy_threshold = 0;
  std::string http_path;
  std::string http_host;
  std::string grpc_service_name;
};

// Envoy's OutlierDetection with its defaults (outlier_detection_impl.h).
struct OutlierDetectionConfig {
  uint32_t consecutive_5xx = 5;
  Milliseconds interval{10000};
  Milliseconds base_ejection_time{30000};
  // Default max(300 s, base_ejection_time); never below base_ejection_time.
  Milliseconds max_ejection_time{300000};
  Milliseconds max_ejection_time_jitter{0};
  uint32_t max_ejection_percent = 10;
  bool always_eject_one_host = false;
  uint32_t enforcing_consecutive_5xx = 100;
  uint32_t consecutive_gateway_failure = 5;          // accepted; not honoured (see docs/upstream.md)
  uint32_t enforcing_consecutive_gateway_failure = 0;
  uint32_t enforcing_success_rate = 100;
  uint32_t success_rate_minimum_hosts = 5;
  uint32_t success_rate_request_volume = 100;
  uint32_t success_rate_stdev_factor = 1900;  // thousandths: 1900 is 1.9 standard deviations
  uint32_t failure_percentage_threshold = 85;
  uint32_t enforcing_failure_percentage = 0;
  uint32_t failure_percentage_minimum_hosts = 5;
  uint32_t failure_percentage_request_volume = 50;
};

// An ORIGINAL_DST cluster's original_dst_lb_config and cleanup_interval,
// with Envoy's defaults. The host is the header's `ip:port` when
// use_http_header is set and the request has a valid one, else the
// downstream connection's local address (its original destination);
// port_override replaces the port. Hosts are made per worker on first use
// and dropped after cleanup_interval unused (docs/upstream.md).
struct OriginalDstConfig {
  bool use_http_header = false;
  std::string http_header = "x-envoy-original-dst-host";  // lowercase
  std::optional<uint32_t> port_override;
  Milliseconds cleanup_interval{5000};
};

struct ClusterConfig {
  enum class Type { Static, StrictDns, LogicalDns, Eds, OriginalDst };
  enum class LbPolicy { RoundRobin, LeastRequest, RingHash, Random, Maglev, ClusterProvided };
  enum class DnsLookupFamily { Auto, V4Only, V6Only, V4Preferred, All };
  // Auto (HttpProtocolOptions.auto_config): HTTP/2 or HTTP/1.1 by ALPN on a
  // TLS cluster, HTTP/1.1 without TLS; `http2` applies when HTTP/2 is chosen.
  // UseDownstream (use_downstream_protocol_config): each request in its
  // client's protocol; `http2` applies to the HTTP/2 side.
  enum class UpstreamProtocol { Http1, Http2, UseDownstream, Auto };

  std::string name;
  std::string alt_stat_name;
  std::string path;  // where it sits in the bootstrap (or CDS file), for errors
  Type type = Type::Static;
  LbPolicy lb_policy = LbPolicy::RoundRobin;
  // MAGLEV: maglev_lb_config.table_size (prime, checked) and
  // common_lb_config.consistent_hashing_lb_config.use_hostname_for_hashing.
  uint64_t maglev_table_size = 65537;
  bool use_hostname_for_hashing = false;
  Milliseconds connect_timeout{5000};
  std::vector<LocalityEndpointsConfig> localities;
  std::string eds_service_name;  // EDS: eds_cluster_config.service_name, else the name
  // EDS: the file of eds_cluster_config.eds_config (see endpoint_translator.h).
  routing::Boxed<EdsSourceConfig> eds;  // EDS clusters only: one pointer while unset
  DnsLookupFamily dns_lookup_family = DnsLookupFamily::Auto;
  Milliseconds dns_refresh_rate{5000};
  bool respect_dns_ttl = false;               // accepted; not honoured (no TTL from getaddrinfo)
  bool has_dns_failure_refresh_rate = false;  // accepted; not honoured
  std::vector<CircuitBreakerThresholds> circuit_breakers;  // always has a Default entry
  routing::CompactVector<HealthCheckConfig> health_checks;
  routing::Boxed<OutlierDetectionConfig> outlier_detection;  // rare: one pointer while unset
  UpstreamProtocol upstream_protocol = UpstreamProtocol::Http1;
  bool has_tls = false;  // UpstreamTlsContext transport socket
  std::string tls_sni;
  routing::Boxed<google::protobuf::Any> transport_socket;
  uint32_t per_connection_buffer_limit_bytes = 1024 * 1024;
  // common_http_protocol_options (HttpProtocolOptions, else the deprecated
  // Cluster field): an idle pooled connection is closed after idle_timeout
  // (Envoy's default 1 h; 0 disables), and a connection that carried
  // max_requests_per_connection requests is not reused (0: no limit).
  Milliseconds upstream_idle_timeout{60 * 60 * 1000};
  uint32_t max_requests_per_connection = 0;
  // upstream_bind_config: every upstream connection (HTTP/1, HTTP/2, TCP
  // proxy) binds an IP literal (and port, 0: any) before it connects. Of
  // source_address and the extra source address (extra_source_addresses[0],
  // or the deprecated additional_source_addresses[0], always of the other IP
  // family), the one of the host's family is bound, else source_address
  // (Envoy's DefaultUpstreamLocalAddressSelector). Unset (one pointer): the
  // kernel picks.
  struct SourceAddress {
    std::string address;
    uint32_t port = 0;
  };
  struct UpstreamBind {
    SourceAddress source_address;
    std::optional<SourceAddress> extra_source_address;
  };
  routing::Boxed<UpstreamBind> upstream_bind;
  // ORIGINAL_DST clusters only (else unset: one pointer).
  routing::Boxed<OriginalDstConfig> original_dst;
  // UpstreamProtocol::Http2: the honoured Http2ProtocolOptions (Envoy's
  // defaults; the other fields are rejected by the field policy). The pool
  // advertises them and caps a connection's streams at
  // max_concurrent_streams.
  Http2OptionsConfig http2;
};

struct NamedRouteTable {
  std::string name;  // RouteConfiguration.name (may be empty for inline configs)
  std::string path;  // where it sits in the bootstrap, for errors and /config_dump
  std::shared_ptr<const routing::RouteTable> table;
};


struct Snapshot {
  // The validated bootstrap, as loaded (for /config_dump), EXCEPT
  // static_resources.clusters and .listeners, which are empty here:
  // cluster_protos and listener_protos keep those serialized, one per
  // clusters[i] / listeners[i] (a parsed Cluster costs about 1.3 KB, its
  // serialized form about 100 bytes, and a sandbox table has 10,000; a
  // sidecar's outbound listener about 4 KB parsed, 0.5 KB serialized, one
  // per service port). clusterProto(), listenerProto() and fullBootstrap()
  // give them back as messages.
  envoy::config::bootstrap::v3::Bootstrap bootstrap;
  std::vector<std::string> cluster_protos;
  std::vector<std::string> listener_protos;
  std::vector<ListenerConfig> listeners;
  std::vector<ClusterConfig> clusters;
  std::vector<NamedRouteTable> route_tables;  // filled once route_config_translator exists
  std::optional<Address> admin_address;
  std::optional<AdsServerConfig> ads;  // dynamic_resources.ads_config
  // dynamic_resources.{cds,lds}_config.api_config_source: their own streams.
  std::optional<AdsServerConfig> cds_source;
  std::optional<AdsServerConfig> lds_source;
  std::string node_id;
  std::string node_cluster;

  // static_resources.clusters[i] as loaded; `i` indexes `clusters` (same
  // order). Parses cluster_protos[i]: admin and update paths only.
  envoy::config::cluster::v3::Cluster clusterProto(size_t i) const;
  // The same for static_resources.listeners[i] (indexes `listeners`).
  envoy::config::listener::v3::Listener listenerProto(size_t i) const;
  // `bootstrap` with its static_resources.clusters and .listeners put back.
  envoy::config::bootstrap::v3::Bootstrap fullBootstrap() const;

  const ClusterConfig* findCluster(const std::string& name) const;
  const ListenerConfig* findListener(const std::string& name) const;
};

using SnapshotConstSharedPtr = std::shared_ptr<const Snapshot>;

}  // namespace turnout::config
