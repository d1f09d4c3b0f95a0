#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "proxy/stats/store.h"

namespace turnout::proxy::stats {

// Envoy's stat bundles, one per config object, registered on the main thread
// when the object is built and handed to workers by value (the ids are plain
// integers). Names follow Envoy's docs: http_conn_man/stats.rst,
// router_filter.rst, listeners/stats.rst, cluster_manager/cluster_stats.rst.

// Envoy's stat-name sanitising: ':' becomes '_' (and NUL too).
std::string sanitizeStatName(std::string_view name);

// http.<stat_prefix>.*  (connection manager, router and routing-key stats).
struct HttpConnManagerStats {
  StatId downstream_cx_total, downstream_cx_active, downstream_cx_destroy;
  StatId downstream_cx_http1_active, downstream_cx_http1_total, downstream_cx_protocol_error;
  StatId downstream_cx_http2_active, downstream_cx_http2_total;
  StatId downstream_rq_total, downstream_rq_active, downstream_rq_completed;
  std::array<StatId, 5> downstream_rq_xx;  // 1xx..5xx
  StatId downstream_rq_time;               // histogram, ms
  StatId downstream_rq_timeout, downstream_rq_idle_timeout, downstream_rq_rx_reset;
  StatId downstream_rq_too_large, downstream_rq_header_timeout;
  // Router filter (Envoy also roots these at http.<stat_prefix>.).
  StatId no_route, no_cluster, rq_redirect, rq_direct_response, rq_total;
  StatId rq_reset_after_downstream_response_started;
  // turnout: http.<stat_prefix>.routing_key.{found,missing,<keyErrorName>}.
  StatId routing_key_found, routing_key_missing;
  std::array<StatId, 8> routing_key_error;  // indexed by routing::KeyError; [0] unused
  // Recovery from the trace id (RoutingKey.trace_key_recovery):
  // routing_key.{recovered_from_trace, remembered_for_trace,
  // trace_memory_evicted (a live entry of another trace overwritten),
  // trace_memory_key_too_long (not remembered), trace_memory_busy (not
  // remembered: every slot of the probe window was being written)}.
  StatId routing_key_recovered_from_trace, routing_key_remembered_for_trace;
  StatId routing_key_trace_memory_evicted, routing_key_trace_memory_key_too_long;
  StatId routing_key_trace_memory_busy;

  // One Store scope per stat_prefix, shared by the HCMs that use it and freed
  // with the last of them (an HCM of a listener LDS removed).
  ScopeHandle scope;

  // Counts downstream_rq_<N>xx for a response code (codes outside 100..599 are skipped).
  void countResponse(Shard& shard, uint32_t code) const;
};
HttpConnManagerStats makeHttpConnManagerStats(Store& store, std::string_view stat_prefix);

// Envoy's HTTP/2 codec stats (http_conn_man/stats.rst "HTTP/2 codec
// statistics", source/common/http/http2/codec_stats.h), the ones turnout
// counts: rooted at http2. downstream (one tree for every HCM) and at
// cluster.<name>.http2. upstream. The codec writes them itself
// (http2::CodecStatsSink), so the struct is plain ids.
struct Http2CodecStats {
  StatId goaway_sent, header_overflow, headers_cb_no_stream;
  StatId inbound_empty_frames_flood, inbound_priority_frames_flood,
      inbound_window_update_frames_flood;
  StatId outbound_control_flood, outbound_flood;
  StatId rx_messaging_error, rx_reset, stream_refused_errors, trailers, tx_reset;
  StatId streams_active, pending_send_bytes;  // gauges
};
// http2.*: loose stats, registered once (main thread) and shared by every HCM.
Http2CodecStats makeHttp2CodecStats(Store& store);

// tcp.<stat_prefix>.*  (the TCP proxy filter, Envoy's tcp_proxy_filter.rst).
struct TcpProxyStats {
  StatId downstream_cx_total, downstream_cx_no_route;
  StatId downstream_cx_tx_bytes_total, downstream_cx_tx_bytes_buffered;
  StatId downstream_cx_rx_bytes_total, downstream_cx_rx_bytes_buffered;
  StatId downstream_flow_control_paused_reading_total, downstream_flow_control_resumed_reading_total;
  StatId idle_timeout, upstream_flush_total, upstream_flush_active;
  // One Store scope per stat_prefix, shared like the HCM's.
  ScopeHandle scope;
};
TcpProxyStats makeTcpProxyStats(Store& store, std::string_view stat_prefix);

// http.<stat_prefix>.cors.*  (Envoy's CORS filter), made only for an HCM
// that has the filter.
struct CorsStats {
  StatId origin_valid, origin_invalid;
  ScopeHandle scope;
};
CorsStats makeCorsStats(Store& store, std::string_view stat_prefix);

// listener.<addr>.*  where <addr> is Listener.stat_prefix or the address with
// ':' turned into '_' (0.0.0.0_10000).
struct ListenerStats {
  StatId downstream_cx_total, downstream_cx_destroy, downstream_cx_active;
  StatId downstream_cx_length_ms;  // histogram
  StatId no_filter_chain_match;
  // A connection gone or silent past listener_filters_timeout before its
  // filter chain could be chosen (Envoy's name).
  StatId downstream_pre_cx_timeout;
  std::string prefix;  // "listener.<addr>."
  // A Store scope, freed with the last listener runtime that holds it (a
  // listener LDS removed, once its connections are gone), as cluster scopes are.
  ScopeHandle scope;
};
ListenerStats makeListenerStats(Store& store, std::string_view address, std::string_view stat_prefix);

// http_inspector.*: the listener filter's counters (Envoy's names; one tree
// for every listener that has the filter).
struct HttpInspectorStats {
  StatId http10_found, http11_found, http2_found, http_not_found, read_error;
};
HttpInspectorStats makeHttpInspectorStats(Store& store);

// listener.<addr>.http.<stat_prefix>.downstream_rq_<N>xx
struct ListenerHttpStats {
  std::array<StatId, 5> downstream_rq_xx;
  ScopeHandle scope;
  void countResponse(Shard& shard, uint32_t code) const;
};
ListenerHttpStats makeListenerHttpStats(Store& store, const ListenerStats& listener,
                                        std::string_view http_stat_prefix);

// <scope>ssl.*: a TLS listener's (or cluster's) handshake counters, Envoy's
// ALL_SSL_STATS that have fixed names (ssl.versions.*, ssl.ciphers.* and
// ssl.curves.* are not registered yet: their names depend on the peer).
struct SslStats {
  StatId handshake, connection_error, fail_verify_error, fail_verify_san, fail_verify_no_cert,
      no_certificate, session_reused;
  ScopeHandle scope;
};
// `scope_prefix`: "listener.<addr>." or "cluster.<name>.".
SslStats makeSslStats(Store& store, std::string_view scope_prefix);

// cluster.<name>.circuit_breakers.<priority>.*: Envoy's ResourceManagerImpl
// gauges, 1 while the resource is at its limit (count >= max), else 0.
struct CircuitBreakerStats {
  StatId cx_open, cx_pool_open, rq_pending_open, rq_open, rq_retry_open;
};

// cluster.<name>.*  (alt_stat_name wins over the name when set).
//
// A cluster's stats are one Store scope: registering costs a prefix string
// and this struct (no values until a shard writes one: Envoy's deferred stat
// creation), and `scope` keeps the ids valid. Copies share the scope; after
// the last copy goes (a snapshot without the cluster, dropped by every
// worker), Store::reclaim() frees and recycles the stats. Registering the
// same cluster name again while a copy lives returns the same stats, so a
// cluster update keeps its counters.
// cluster.<name>.grpc.* (Envoy's grpc_stats filter without per-method
// names: Grpc::Context's stats), listed once a gRPC call through the filter
// wrote them.
struct GrpcClusterStats {
  // grpc.<code> for codes 0..16, consecutive from this id.
  StatId status_first;
  static constexpr uint32_t kStatusCodes = 17;
  StatId success, failure, total;
  StatId request_message_count, response_message_count;
  StatId upstream_rq_time;  // histogram (enable_upstream_stats)

  // A call ended with grpc-status `status` (its text, as the response
  // carried it): grpc.<code> when it is a known code, then success (code 0)
  // or failure, and total. Envoy names an unknown code dynamically
  // (grpc.<text>); turnout counts such a call in failure and total only.
  // `sink`: a Shard, or anything with its inc().
  template <class Sink>
  void chargeStatus(Sink& sink, std::string_view status) const {
    const uint32_t code = statusCode(status);
    if (code < kStatusCodes && status_first.index != kScalarSink) {
      sink.inc(StatId{status_first.index + code});
    }
    sink.inc(status == "0" ? success : failure);
    sink.inc(total);
  }
  // The code a grpc-status value names, or kStatusCodes for none of 0..16.
  static uint32_t statusCode(std::string_view status);
};

// cluster.<name>.grpc.<service>.<method>.* (the grpc_stats filter's
// per-method stats: Envoy's Grpc::Context with request names): the stats
// of GrpcClusterStats in a scope of their own per cluster and method,
// registered (main thread) when a worker first needs them
// (proxy/filters/grpc_stats_filter.h).
const StatSchema& grpcMethodStatSchema();
// Its stats' offsets in the scope (ids of a scope at slot 0).
const GrpcClusterStats& grpcMethodStatOffsets();
// The ids of a scope registered with grpcMethodStatSchema() (sinks when its
// registration failed).
GrpcClusterStats grpcMethodStats(const ScopeRef& ref);

// The offsets of cluster.<name>.* in the cluster schema (the same for
// every cluster of a schema): filled once per schema by fillClusterStats.
// ClusterStats adds a scope's first slot to them.
struct ClusterStatIds {
  // Written by the main thread (config build, DNS, health checks): kept
  // together in the scope's first page, so an idle cluster allocates one
  // 16-slot page, on the main shard only.
  StatId membership_total, membership_healthy;
  StatId maglev_min_entries_per_host, maglev_max_entries_per_host;  // MAGLEV clusters only (else sinks)
  StatId update_attempt, update_success, update_failure, update_no_rebuild;
  // EDS (Envoy's subscription stats in the cluster's scope).
  StatId update_rejected, update_empty, init_fetch_timeout;
  StatId membership_change;
  StatId health_check_attempt, health_check_success, health_check_failure;
  // Written by workers.
  StatId upstream_cx_total, upstream_cx_active, upstream_cx_connect_fail;
  StatId upstream_cx_connect_timeout, upstream_cx_destroy, upstream_cx_overflow;
  StatId upstream_cx_pool_overflow;
  StatId upstream_cx_idle_timeout, upstream_cx_max_requests, upstream_cx_destroy_remote;
  StatId upstream_cx_http1_total, upstream_cx_http2_total;
  // TCP proxy connections (HTTP connections do not count bytes yet).
  StatId upstream_cx_rx_bytes_total, upstream_cx_tx_bytes_total;
  StatId upstream_cx_none_healthy, upstream_cx_connect_attempts_exceeded;
  StatId upstream_flow_control_paused_reading_total, upstream_flow_control_resumed_reading_total;
  // ORIGINAL_DST: a request's override header that is not `ip:port`
  // (Envoy's), and turnout's refusal of a destination that is the
  // listener's own address (no original destination, or a loop), and of a
  // new destination while a worker keeps kMaxOriginalDstHosts hosts.
  StatId original_dst_host_invalid, original_dst_loop_refused, original_dst_host_overflow;
  StatId upstream_rq_total, upstream_rq_active, upstream_rq_pending_total;
  StatId upstream_rq_pending_active, upstream_rq_pending_overflow, upstream_rq_timeout;
  StatId upstream_rq_pending_failure_eject, upstream_rq_cancelled;
  StatId upstream_rq_per_try_timeout, upstream_rq_per_try_idle_timeout;
  StatId upstream_rq_rx_reset, upstream_rq_tx_reset;
  StatId upstream_rq_retry, upstream_rq_retry_success, upstream_rq_retry_overflow;
  StatId upstream_rq_retry_limit_exceeded, upstream_rq_completed;
  StatId upstream_rq_time;  // histogram
  std::array<StatId, 5> upstream_rq_xx;
  std::array<StatId, 5> retry_upstream_rq_xx;
  // outlier_detection.* are OutlierDetectionStats, registered with the detector.
  CircuitBreakerStats breakers_default;  // circuit_breakers.default.*
  CircuitBreakerStats breakers_high;     // circuit_breakers.high.* (high-priority routing is not
                                         // supported, so these stay 0)
  // upstream_rq_<code> and retry.upstream_rq_<code> for kCommonCodes, in
  // that order from these ids (see countResponse).
  StatId upstream_rq_code_first, retry_upstream_rq_code_first;
  // http2.*: the cluster's HTTP/2 connections' codec stats.
  Http2CodecStats http2;
  GrpcClusterStats grpc;
};

// cluster.<name>.*: a scope's handle and first slot, and the schema's
// offsets (32 bytes per cluster; the ids are computed, not stored: at 10,000
// clusters that is 3.7 MB less than a struct of ids). A default-constructed
// ClusterStats (or one whose registration failed) writes only the sinks.
class ClusterStats {
 public:
  ClusterStats();
  ClusterStats(ScopeHandle scope, uint32_t first, const ClusterStatIds* ids)
      : scope_(std::move(scope)), first_(first), ids_(ids) {}

  StatId membership_total() const { return at(ids_->membership_total); }
  StatId membership_healthy() const { return at(ids_->membership_healthy); }
  StatId update_attempt() const { return at(ids_->update_attempt); }
  StatId update_success() const { return at(ids_->update_success); }
  StatId update_failure() const { return at(ids_->update_failure); }
  StatId update_no_rebuild() const { return at(ids_->update_no_rebuild); }
  StatId update_rejected() const { return at(ids_->update_rejected); }
  StatId update_empty() const { return at(ids_->update_empty); }
  StatId init_fetch_timeout() const { return at(ids_->init_fetch_timeout); }
  StatId membership_change() const { return at(ids_->membership_change); }
  StatId health_check_attempt() const { return at(ids_->health_check_attempt); }
  StatId health_check_success() const { return at(ids_->health_check_success); }
  StatId health_check_failure() const { return at(ids_->health_check_failure); }
  StatId upstream_cx_total() const { return at(ids_->upstream_cx_total); }
  StatId upstream_cx_active() const { return at(ids_->upstream_cx_active); }
  StatId upstream_cx_connect_fail() const { return at(ids_->upstream_cx_connect_fail); }
  StatId upstream_cx_connect_timeout() const { return at(ids_->upstream_cx_connect_timeout); }
  StatId upstream_cx_destroy() const { return at(ids_->upstream_cx_destroy); }
  StatId upstream_cx_overflow() const { return at(ids_->upstream_cx_overflow); }
  StatId upstream_cx_pool_overflow() const { return at(ids_->upstream_cx_pool_overflow); }
  StatId upstream_cx_idle_timeout() const { return at(ids_->upstream_cx_idle_timeout); }
  StatId upstream_cx_max_requests() const { return at(ids_->upstream_cx_max_requests); }
  StatId upstream_cx_destroy_remote() const { return at(ids_->upstream_cx_destroy_remote); }
  StatId upstream_cx_http1_total() const { return at(ids_->upstream_cx_http1_total); }
  StatId upstream_cx_http2_total() const { return at(ids_->upstream_cx_http2_total); }
  StatId upstream_cx_rx_bytes_total() const { return at(ids_->upstream_cx_rx_bytes_total); }
  StatId upstream_cx_tx_bytes_total() const { return at(ids_->upstream_cx_tx_bytes_total); }
  StatId upstream_cx_none_healthy() const { return at(ids_->upstream_cx_none_healthy); }
  StatId upstream_cx_connect_attempts_exceeded() const {
    return at(ids_->upstream_cx_connect_attempts_exceeded);
  }
  StatId upstream_flow_control_paused_reading_total() const {
    return at(ids_->upstream_flow_control_paused_reading_total);
  }
  StatId upstream_flow_control_resumed_reading_total() const {
    return at(ids_->upstream_flow_control_resumed_reading_total);
  }
  StatId original_dst_host_invalid() const { return at(ids_->original_dst_host_invalid); }
  StatId original_dst_loop_refused() const { return at(ids_->original_dst_loop_refused); }
  StatId original_dst_host_overflow() const { return at(ids_->original_dst_host_overflow); }
  StatId upstream_rq_total() const { return at(ids_->upstream_rq_total); }
  StatId upstream_rq_active() const { return at(ids_->upstream_rq_active); }
  StatId upstream_rq_pending_total() const { return at(ids_->upstream_rq_pending_total); }
  StatId upstream_rq_pending_active() const { return at(ids_->upstream_rq_pending_active); }
  StatId upstream_rq_pending_overflow() const { return at(ids_->upstream_rq_pending_overflow); }
  StatId upstream_rq_timeout() const { return at(ids_->upstream_rq_timeout); }
  StatId upstream_rq_pending_failure_eject() const {
    return at(ids_->upstream_rq_pending_failure_eject);
  }
  StatId upstream_rq_cancelled() const { return at(ids_->upstream_rq_cancelled); }
  StatId upstream_rq_per_try_timeout() const { return at(ids_->upstream_rq_per_try_timeout); }
  StatId upstream_rq_per_try_idle_timeout() const {
    return at(ids_->upstream_rq_per_try_idle_timeout);
  }
  StatId upstream_rq_rx_reset() const { return at(ids_->upstream_rq_rx_reset); }
  StatId upstream_rq_tx_reset() const { return at(ids_->upstream_rq_tx_reset); }
  StatId upstream_rq_retry() const { return at(ids_->upstream_rq_retry); }
  StatId upstream_rq_retry_success() const { return at(ids_->upstream_rq_retry_success); }
  StatId upstream_rq_retry_overflow() const { return at(ids_->upstream_rq_retry_overflow); }
  StatId upstream_rq_retry_limit_exceeded() const {
    return at(ids_->upstream_rq_retry_limit_exceeded);
  }
  StatId upstream_rq_completed() const { return at(ids_->upstream_rq_completed); }
  StatId upstream_rq_time() const { return at(ids_->upstream_rq_time); }
  // MAGLEV clusters only (a sink for others).
  StatId maglev_min_entries_per_host() const { return maybe(ids_->maglev_min_entries_per_host); }
  StatId maglev_max_entries_per_host() const { return maybe(ids_->maglev_max_entries_per_host); }
  CircuitBreakerStats breakers_default() const { return rebased(ids_->breakers_default); }
  CircuitBreakerStats breakers_high() const { return rebased(ids_->breakers_high); }
  Http2CodecStats http2() const { return rebased(ids_->http2); }
  GrpcClusterStats grpc() const { return rebased(ids_->grpc); }
  const ScopeHandle& scope() const { return scope_; }

  // Final response: upstream_rq_<N>xx and upstream_rq_<code> (when pre-registered).
  void countResponse(Shard& shard, uint32_t code) const;
  // A response that was retried: retry.upstream_rq_<N>xx and retry.upstream_rq_<code>.
  void countRetriedResponse(Shard& shard, uint32_t code) const;

  // An offset no schema has (a MAGLEV stat in the plain schema).
  static constexpr uint32_t kAbsent = UINT32_MAX;

 private:
  StatId at(StatId offset) const { return StatId{first_ + offset.index}; }
  StatId maybe(StatId offset) const {
    return offset.index == kAbsent ? StatId{kScalarSink} : at(offset);
  }
  // A struct of ids only, each moved by first_.
  template <class T>
  T rebased(const T& offsets) const {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) % sizeof(uint32_t) == 0);
    auto raw = std::bit_cast<std::array<uint32_t, sizeof(T) / sizeof(uint32_t)>>(offsets);
    for (uint32_t& v : raw) v += first_;
    return std::bit_cast<T>(raw);
  }

  ScopeHandle scope_;
  uint32_t first_ = 0;
  // The sink layout (every id 0, or 1 for histograms) when default-constructed.
  const ClusterStatIds* ids_;
};
// The codes with their own upstream_rq_<code> stat; others count only in their class.
inline constexpr std::array<uint16_t, 24> kCommonCodes = {
    100, 101, 200, 201, 204, 206, 301, 302, 304, 400, 401, 403,
    404, 408, 409, 413, 429, 431, 499, 500, 501, 502, 503, 504};
// Main thread. `store` must outlive the returned stats' writers (not the
// struct: a copy may be dropped after the store, harmlessly).
ClusterStats makeClusterStats(Store& store, std::string_view name, std::string_view alt_stat_name,
                              bool maglev = false);
// "cluster.<alt_stat_name or name>.", as makeClusterStats names the scope.
std::string clusterStatPrefix(std::string_view name, std::string_view alt_stat_name);
// The schema behind makeClusterStats (tests, docs).
const StatSchema& clusterStatSchema(bool maglev);

// cluster.<name>.outlier_detection.* (Envoy's ALL_OUTLIER_DETECTION_STATS),
// registered only for clusters with outlier_detection, by the main thread's
// OutlierDetector, which alone writes them (main shard).
struct OutlierDetectionStats {
  StatId ejections_active;  // gauge
  StatId ejections_total, ejections_overflow, ejections_enforced_total;
  StatId ejections_consecutive_5xx, ejections_success_rate;  // deprecated in Envoy, kept
  StatId ejections_detected_consecutive_5xx, ejections_enforced_consecutive_5xx;
  StatId ejections_detected_success_rate, ejections_enforced_success_rate;
  StatId ejections_detected_failure_percentage, ejections_enforced_failure_percentage;
};
OutlierDetectionStats makeOutlierDetectionStats(Store& store, std::string_view name,
                                                std::string_view alt_stat_name);

// server.*, cluster_manager.*, listener_manager.*  (gauges set on the main shard).
struct ServerStats {
  StatId live, uptime, concurrency, memory_allocated, days_until_first_cert_expiring;
  StatId active_clusters, total_listeners_active;
};
ServerStats makeServerStats(Store& store);

}  // namespace turnout::proxy::stats
