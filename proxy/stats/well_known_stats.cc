#include "proxy/stats/well_known_stats.h"

#include <algorithm>
#include <cassert>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "routing/routing_key.h"

namespace turnout::proxy::stats {
namespace {

void countClass(const std::array<StatId, 5>& xx, Shard& shard, uint32_t code) {
  if (code >= 100 && code < 600) shard.inc(xx[code / 100 - 1]);
}

}  // namespace

std::string sanitizeStatName(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c == ':' || c == '\0') c = '_';
  }
  return out;
}

void HttpConnManagerStats::countResponse(Shard& shard, uint32_t code) const {
  countClass(downstream_rq_xx, shard, code);
}

// (makeHttpConnManagerStats, makeListenerStats and makeListenerHttpStats are
// defined after the registrars below.)

namespace {

// kCommonCodes' position of each code, or -1.
constexpr std::array<int8_t, 600> kCodeSlot = [] {
  std::array<int8_t, 600> t{};
  t.fill(-1);
  for (size_t i = 0; i < kCommonCodes.size(); ++i) t[kCommonCodes[i]] = static_cast<int8_t>(i);
  return t;
}();

void countCode(StatId first, Shard& shard, uint32_t code) {
  if (code < kCodeSlot.size() && kCodeSlot[code] >= 0 && first.index != kScalarSink) {
    shard.inc(StatId{first.index + static_cast<uint32_t>(kCodeSlot[code])});
  }
}

// The Registrar shape: counter(), gauge() and histogram() return the id of
// the named stat; setLazy() says how the stats registered next are listed
// (StatSchema::add): always, each once written, or the group once its first
// stat is written.
enum class Lazy { kNo, kEach, kGroup };

// Builds a StatSchema.
struct SchemaRegistrar {
  StatSchema& schema;
  Lazy lazy = Lazy::kNo;
  uint32_t group_anchor = StatSchema::kEager;
  void setLazy(Lazy l) {
    lazy = l;
    group_anchor = StatSchema::kEager;
  }
  StatId add(std::string n, StatKind kind) {
    uint32_t anchor = StatSchema::kEager;
    if (lazy == Lazy::kEach || (lazy == Lazy::kGroup && group_anchor == StatSchema::kEager)) {
      anchor = StatSchema::kSelf;
    } else if (lazy == Lazy::kGroup) {
      anchor = group_anchor;
    }
    const uint32_t offset = schema.add(std::move(n), kind, anchor);
    if (lazy == Lazy::kGroup && group_anchor == StatSchema::kEager) group_anchor = offset;
    return StatId{offset};
  }
  StatId counter(std::string n) { return add(std::move(n), StatKind::Counter); }
  StatId gauge(std::string n) { return add(std::move(n), StatKind::Gauge); }
  StatId histogram(std::string n) { return add(std::move(n), StatKind::Histogram); }
  // A stat this schema does not have (ClusterStats::kAbsent).
  StatId absent() { return StatId{ClusterStats::kAbsent}; }
};

// Hands out one registered scope's ids in schema order (laziness is the
// schema's).
struct ScopeRegistrar {
  const ScopeRef& ref;
  uint32_t next = 0;
  void setLazy(Lazy) {}
  StatId take([[maybe_unused]] const std::string& n) {
    assert(ref.schema->suffix(next) == n);
    return ref.at(next++);
  }
  StatId counter(const std::string& n) { return take(n); }
  StatId gauge(const std::string& n) { return take(n); }
  StatId histogram(const std::string& n) { return take(n); }
};

// Registers loose stats under a prefix (the Registrar shape for loose trees).
struct LooseRegistrar {
  Store& store;
  std::string prefix;
  Lazy lazy = Lazy::kNo;
  std::optional<StatId> group_anchor;
  void setLazy(Lazy l) {
    lazy = l;
    group_anchor.reset();
  }
  std::optional<StatId> anchor() const {
    if (lazy == Lazy::kNo) return std::nullopt;
    if (lazy == Lazy::kGroup && group_anchor) return group_anchor;
    return StatId{};  // itself
  }
  StatId note(StatId id) {
    if (lazy == Lazy::kGroup && !group_anchor) group_anchor = id;
    return id;
  }
  StatId counter(const std::string& n) { return note(store.counter(prefix + n, anchor())); }
  StatId gauge(const std::string& n) { return note(store.gauge(prefix + n, anchor())); }
};

// http2.* (Envoy's ALL_HTTP2_CODEC_STATS order), names relative to `prefix`
// ("http2." or, inside a cluster's scope, "http2." after the scope's prefix).
template <class Registrar>
Http2CodecStats fillHttp2CodecStats(Registrar& r, std::string_view prefix) {
  auto n = [&](const char* name) { return std::string(prefix) + name; };
  // Envoy creates them all with the first HTTP/2 codec (which writes the
  // first one, goaway_sent, at creation: SessionBase).
  r.setLazy(Lazy::kGroup);
  Http2CodecStats s;
  s.goaway_sent = r.counter(n("goaway_sent"));
  s.header_overflow = r.counter(n("header_overflow"));
  s.headers_cb_no_stream = r.counter(n("headers_cb_no_stream"));
  s.inbound_empty_frames_flood = r.counter(n("inbound_empty_frames_flood"));
  s.inbound_priority_frames_flood = r.counter(n("inbound_priority_frames_flood"));
  s.inbound_window_update_frames_flood = r.counter(n("inbound_window_update_frames_flood"));
  s.outbound_control_flood = r.counter(n("outbound_control_flood"));
  s.outbound_flood = r.counter(n("outbound_flood"));
  s.rx_messaging_error = r.counter(n("rx_messaging_error"));
  s.rx_reset = r.counter(n("rx_reset"));
  s.stream_refused_errors = r.counter(n("stream_refused_errors"));
  s.trailers = r.counter(n("trailers"));
  s.tx_reset = r.counter(n("tx_reset"));
  s.streams_active = r.gauge(n("streams_active"));
  s.pending_send_bytes = r.gauge(n("pending_send_bytes"));
  r.setLazy(Lazy::kNo);
  return s;
}

// http.<stat_prefix>.* in slot order (schema and ids from the same code).
template <class Registrar>
HttpConnManagerStats fillHcmStats(Registrar& r) {
  HttpConnManagerStats s;
  s.downstream_cx_total = r.counter("downstream_cx_total");
  s.downstream_cx_active = r.gauge("downstream_cx_active");
  s.downstream_cx_destroy = r.counter("downstream_cx_destroy");
  s.downstream_cx_http1_active = r.gauge("downstream_cx_http1_active");
  s.downstream_cx_http1_total = r.counter("downstream_cx_http1_total");
  s.downstream_cx_protocol_error = r.counter("downstream_cx_protocol_error");
  s.downstream_cx_http2_active = r.gauge("downstream_cx_http2_active");
  s.downstream_cx_http2_total = r.counter("downstream_cx_http2_total");
  s.downstream_rq_total = r.counter("downstream_rq_total");
  s.downstream_rq_active = r.gauge("downstream_rq_active");
  s.downstream_rq_completed = r.counter("downstream_rq_completed");
  for (int i = 0; i < 5; ++i) {
    s.downstream_rq_xx[i] = r.counter(absl::StrCat("downstream_rq_", i + 1, "xx"));
  }
  s.downstream_rq_time = r.histogram("downstream_rq_time");
  s.downstream_rq_timeout = r.counter("downstream_rq_timeout");
  s.downstream_rq_idle_timeout = r.counter("downstream_rq_idle_timeout");
  s.downstream_rq_rx_reset = r.counter("downstream_rq_rx_reset");
  s.downstream_rq_too_large = r.counter("downstream_rq_too_large");
  s.downstream_rq_header_timeout = r.counter("downstream_rq_header_timeout");
  s.no_route = r.counter("no_route");
  s.no_cluster = r.counter("no_cluster");
  s.rq_redirect = r.counter("rq_redirect");
  s.rq_direct_response = r.counter("rq_direct_response");
  s.rq_total = r.counter("rq_total");
  s.rq_reset_after_downstream_response_started =
      r.counter("rq_reset_after_downstream_response_started");
  s.routing_key_found = r.counter("routing_key.found");
  s.routing_key_missing = r.counter("routing_key.missing");
  for (uint8_t e = 1; e < s.routing_key_error.size(); ++e) {
    const auto err = static_cast<routing::KeyError>(e);
    s.routing_key_error[e] =
        r.counter(absl::StrCat("routing_key.", std::string(routing::keyErrorName(err))));
  }
  s.routing_key_recovered_from_trace = r.counter("routing_key.recovered_from_trace");
  s.routing_key_remembered_for_trace = r.counter("routing_key.remembered_for_trace");
  s.routing_key_trace_memory_evicted = r.counter("routing_key.trace_memory_evicted");
  s.routing_key_trace_memory_key_too_long = r.counter("routing_key.trace_memory_key_too_long");
  s.routing_key_trace_memory_busy = r.counter("routing_key.trace_memory_busy");
  return s;
}

// http.<stat_prefix>.cors.* in slot order.
template <class Registrar>
CorsStats fillCorsStats(Registrar& r) {
  CorsStats s;
  s.origin_valid = r.counter("origin_valid");
  s.origin_invalid = r.counter("origin_invalid");
  return s;
}

// tcp.<stat_prefix>.* in slot order.
template <class Registrar>
TcpProxyStats fillTcpProxyStats(Registrar& r) {
  TcpProxyStats s;
  s.downstream_cx_total = r.counter("downstream_cx_total");
  s.downstream_cx_no_route = r.counter("downstream_cx_no_route");
  s.downstream_cx_tx_bytes_total = r.counter("downstream_cx_tx_bytes_total");
  s.downstream_cx_tx_bytes_buffered = r.gauge("downstream_cx_tx_bytes_buffered");
  s.downstream_cx_rx_bytes_total = r.counter("downstream_cx_rx_bytes_total");
  s.downstream_cx_rx_bytes_buffered = r.gauge("downstream_cx_rx_bytes_buffered");
  s.downstream_flow_control_paused_reading_total =
      r.counter("downstream_flow_control_paused_reading_total");
  s.downstream_flow_control_resumed_reading_total =
      r.counter("downstream_flow_control_resumed_reading_total");
  s.idle_timeout = r.counter("idle_timeout");
  s.upstream_flush_total = r.counter("upstream_flush_total");
  s.upstream_flush_active = r.gauge("upstream_flush_active");
  return s;
}

// listener.<addr>.* in slot order.
template <class Registrar>
ListenerStats fillListenerStats(Registrar& r) {
  ListenerStats s;
  s.downstream_cx_total = r.counter("downstream_cx_total");
  s.downstream_cx_destroy = r.counter("downstream_cx_destroy");
  s.downstream_cx_active = r.gauge("downstream_cx_active");
  s.downstream_cx_length_ms = r.histogram("downstream_cx_length_ms");
  s.no_filter_chain_match = r.counter("no_filter_chain_match");
  s.downstream_pre_cx_timeout = r.counter("downstream_pre_cx_timeout");
  return s;
}

// listener.<addr>.http.<stat_prefix>.* in slot order.
template <class Registrar>
ListenerHttpStats fillListenerHttpStats(Registrar& r) {
  ListenerHttpStats s;
  for (int i = 0; i < 5; ++i) {
    s.downstream_rq_xx[i] = r.counter(absl::StrCat("downstream_rq_", i + 1, "xx"));
  }
  return s;
}

template <class Registrar>
SslStats fillSslStats(Registrar& r) {
  SslStats s;
  s.handshake = r.counter("handshake");
  s.connection_error = r.counter("connection_error");
  s.fail_verify_error = r.counter("fail_verify_error");
  s.fail_verify_san = r.counter("fail_verify_san");
  s.fail_verify_no_cert = r.counter("fail_verify_no_cert");
  s.no_certificate = r.counter("no_certificate");
  s.session_reused = r.counter("session_reused");
  return s;
}

template <class Stats>
const StatSchema* buildSchema(Stats (*fill)(SchemaRegistrar&)) {
  auto* schema = new StatSchema();
  SchemaRegistrar r{*schema};
  fill(r);
  return schema;
}

// A bundle in its own scope at `prefix`: one fill*Stats template, as
// `SchemaFill` (its SchemaRegistrar instance) builds the bundle's schema
// once and as `ScopeFill` (its ScopeRegistrar one) registers this scope's
// ids, so the two cannot disagree.
template <auto* SchemaFill, auto* ScopeFill>
auto makeScoped(Store& store, const std::string& prefix) {
  static const StatSchema* const kSchema = buildSchema(SchemaFill);
  const ScopeRef ref = store.scope(prefix, *kSchema);
  ScopeRegistrar r{ref};
  auto s = ScopeFill(r);
  s.scope = ref.handle;
  return s;
}

// Grpc::Context's stats under `prefix`: the cluster's grpc.*, and a
// method's scope of its own. Envoy creates each when a gRPC call first
// charges it.
template <class Registrar>
GrpcClusterStats fillGrpcStats(Registrar& r, const std::string& prefix) {
  GrpcClusterStats s;
  r.setLazy(Lazy::kEach);
  // The codes after these: status_first is never offset 0 of a scope, which
  // chargeStatus would take for the sink.
  s.success = r.counter(absl::StrCat(prefix, "success"));
  s.failure = r.counter(absl::StrCat(prefix, "failure"));
  s.total = r.counter(absl::StrCat(prefix, "total"));
  for (uint32_t code = 0; code < GrpcClusterStats::kStatusCodes; ++code) {
    const StatId id = r.counter(absl::StrCat(prefix, code));
    if (code == 0) s.status_first = id;
  }
  s.request_message_count = r.counter(absl::StrCat(prefix, "request_message_count"));
  s.response_message_count = r.counter(absl::StrCat(prefix, "response_message_count"));
  s.upstream_rq_time = r.histogram(absl::StrCat(prefix, "upstream_rq_time"));
  r.setLazy(Lazy::kNo);
  return s;
}

// A cluster's stats in slot order; the same code builds the schema and fills
// each cluster's ids, so the two cannot disagree.
template <class Registrar>
ClusterStatIds fillClusterStats(Registrar& r, bool maglev) {
  ClusterStatIds s;
  // Main-thread stats first: they share the scope's first page (<= 16 slots).
  s.membership_total = r.gauge("membership_total");
  s.membership_healthy = r.gauge("membership_healthy");
  if (maglev) {
    s.maglev_min_entries_per_host = r.gauge("maglev_lb.min_entries_per_host");
    s.maglev_max_entries_per_host = r.gauge("maglev_lb.max_entries_per_host");
  } else {
    s.maglev_min_entries_per_host = s.maglev_max_entries_per_host = r.absent();
  }
  s.update_attempt = r.counter("update_attempt");
  s.update_success = r.counter("update_success");
  s.update_failure = r.counter("update_failure");
  s.update_no_rebuild = r.counter("update_no_rebuild");
  s.update_rejected = r.counter("update_rejected");
  s.update_empty = r.counter("update_empty");
  s.init_fetch_timeout = r.counter("init_fetch_timeout");
  s.membership_change = r.counter("membership_change");
  s.health_check_attempt = r.counter("health_check.attempt");
  s.health_check_success = r.counter("health_check.success");
  s.health_check_failure = r.counter("health_check.failure");
  s.upstream_cx_total = r.counter("upstream_cx_total");
  s.upstream_cx_active = r.gauge("upstream_cx_active");
  s.upstream_cx_connect_fail = r.counter("upstream_cx_connect_fail");
  s.upstream_cx_connect_timeout = r.counter("upstream_cx_connect_timeout");
  s.upstream_cx_destroy = r.counter("upstream_cx_destroy");
  s.upstream_cx_overflow = r.counter("upstream_cx_overflow");
  s.upstream_cx_pool_overflow = r.counter("upstream_cx_pool_overflow");
  s.upstream_cx_idle_timeout = r.counter("upstream_cx_idle_timeout");
  s.upstream_cx_max_requests = r.counter("upstream_cx_max_requests");
  s.upstream_cx_destroy_remote = r.counter("upstream_cx_destroy_remote");
  s.upstream_cx_http1_total = r.counter("upstream_cx_http1_total");
  s.upstream_cx_http2_total = r.counter("upstream_cx_http2_total");
  s.upstream_cx_rx_bytes_total = r.counter("upstream_cx_rx_bytes_total");
  s.upstream_cx_tx_bytes_total = r.counter("upstream_cx_tx_bytes_total");
  s.upstream_cx_none_healthy = r.counter("upstream_cx_none_healthy");
  s.upstream_cx_connect_attempts_exceeded = r.counter("upstream_cx_connect_attempts_exceeded");
  s.upstream_flow_control_paused_reading_total = r.counter("upstream_flow_control_paused_reading_total");
  s.upstream_flow_control_resumed_reading_total = r.counter("upstream_flow_control_resumed_reading_total");
  s.original_dst_host_invalid = r.counter("original_dst_host_invalid");
  s.original_dst_loop_refused = r.counter("original_dst_loop_refused");
  s.original_dst_host_overflow = r.counter("original_dst_host_overflow");
  s.upstream_rq_total = r.counter("upstream_rq_total");
  s.upstream_rq_active = r.gauge("upstream_rq_active");
  s.upstream_rq_pending_total = r.counter("upstream_rq_pending_total");
  s.upstream_rq_pending_active = r.gauge("upstream_rq_pending_active");
  s.upstream_rq_pending_overflow = r.counter("upstream_rq_pending_overflow");
  s.upstream_rq_timeout = r.counter("upstream_rq_timeout");
  s.upstream_rq_pending_failure_eject = r.counter("upstream_rq_pending_failure_eject");
  s.upstream_rq_cancelled = r.counter("upstream_rq_cancelled");
  s.upstream_rq_per_try_timeout = r.counter("upstream_rq_per_try_timeout");
  s.upstream_rq_per_try_idle_timeout = r.counter("upstream_rq_per_try_idle_timeout");
  s.upstream_rq_rx_reset = r.counter("upstream_rq_rx_reset");
  s.upstream_rq_tx_reset = r.counter("upstream_rq_tx_reset");
  s.upstream_rq_retry = r.counter("upstream_rq_retry");
  s.upstream_rq_retry_success = r.counter("upstream_rq_retry_success");
  s.upstream_rq_retry_overflow = r.counter("upstream_rq_retry_overflow");
  s.upstream_rq_retry_limit_exceeded = r.counter("upstream_rq_retry_limit_exceeded");
  s.upstream_rq_completed = r.counter("upstream_rq_completed");
  s.upstream_rq_time = r.histogram("upstream_rq_time");
  for (int i = 0; i < 5; ++i) s.upstream_rq_xx[i] = r.counter(absl::StrCat("upstream_rq_", i + 1, "xx"));
  for (int i = 0; i < 5; ++i) {
    s.retry_upstream_rq_xx[i] = r.counter(absl::StrCat("retry.upstream_rq_", i + 1, "xx"));
  }
  for (size_t i = 0; i < kCommonCodes.size(); ++i) {
    const StatId id = r.counter(absl::StrCat("upstream_rq_", kCommonCodes[i]));
    if (i == 0) s.upstream_rq_code_first = id;
  }
  for (size_t i = 0; i < kCommonCodes.size(); ++i) {
    const StatId id = r.counter(absl::StrCat("retry.upstream_rq_", kCommonCodes[i]));
    if (i == 0) s.retry_upstream_rq_code_first = id;
  }
  auto breakers = [&](const char* priority) {
    auto b = [&](const char* n) { return r.gauge(absl::StrCat("circuit_breakers.", priority, ".", n)); };
    CircuitBreakerStats out;
    out.cx_open = b("cx_open");
    out.cx_pool_open = b("cx_pool_open");
    out.rq_pending_open = b("rq_pending_open");
    out.rq_open = b("rq_open");
    out.rq_retry_open = b("rq_retry_open");
    return out;
  };
  s.breakers_default = breakers("default");
  s.breakers_high = breakers("high");
  s.http2 = fillHttp2CodecStats(r, "http2.");
  s.grpc = fillGrpcStats(r, "grpc.");
  return s;
}

// A gRPC method's scope: the same stats as a cluster's grpc.*, named after
// its prefix.
struct GrpcMethodSchema {
  StatSchema schema;
  GrpcClusterStats offsets;
};

const GrpcMethodSchema& grpcMethodSchema() {
  static const GrpcMethodSchema* const kSchema = [] {
    auto* built = new GrpcMethodSchema();
    SchemaRegistrar r{built->schema};
    built->offsets = fillGrpcStats(r, "");
    return built;
  }();
  return *kSchema;
}

// A cluster schema and its offsets, built once per kind.
struct ClusterSchema {
  StatSchema schema;
  ClusterStatIds offsets;
};

const ClusterSchema* buildClusterSchema(bool maglev) {
  auto* built = new ClusterSchema();
  SchemaRegistrar r{built->schema};
  built->offsets = fillClusterStats(r, maglev);
  return built;
}

const ClusterSchema& clusterSchema(bool maglev) {
  static const ClusterSchema* const kPlain = buildClusterSchema(false);
  static const ClusterSchema* const kMaglev = buildClusterSchema(true);
  return maglev ? *kMaglev : *kPlain;
}

// Hands out sinks (the ids of a ClusterStats without a scope).
struct SinkRegistrar {
  void setLazy(Lazy) {}
  StatId counter(const std::string&) { return StatId{kScalarSink}; }
  StatId gauge(const std::string&) { return StatId{kScalarSink}; }
  StatId histogram(const std::string&) { return StatId{kHistogramSink}; }
  StatId absent() { return StatId{kScalarSink}; }
};

const ClusterStatIds& sinkClusterStatIds() {
  static const ClusterStatIds kSinks = [] {
    SinkRegistrar r;
    return fillClusterStats(r, false);
  }();
  return kSinks;
}

}  // namespace

uint32_t GrpcClusterStats::statusCode(std::string_view status) {
  const bool digits = !status.empty() && status.size() <= 2 &&
                      std::all_of(status.begin(), status.end(), absl::ascii_isdigit) &&
                      (status.size() == 1 || status[0] != '0');
  uint32_t code = kStatusCodes;
  if (digits) {
    code = static_cast<uint32_t>(status[0] - '0');
    if (status.size() == 2) code = code * 10 + static_cast<uint32_t>(status[1] - '0');
  }
  return code;
}

std::string clusterStatPrefix(std::string_view name, std::string_view alt_stat_name) {
  return absl::StrCat("cluster.", sanitizeStatName(alt_stat_name.empty() ? name : alt_stat_name),
                      ".");
}

const StatSchema& grpcMethodStatSchema() { return grpcMethodSchema().schema; }
const GrpcClusterStats& grpcMethodStatOffsets() { return grpcMethodSchema().offsets; }

GrpcClusterStats grpcMethodStats(const ScopeRef& ref) {
  const GrpcClusterStats& offsets = grpcMethodSchema().offsets;
  static_assert(std::is_trivially_copyable_v<GrpcClusterStats> &&
                sizeof(GrpcClusterStats) % sizeof(uint32_t) == 0);
  auto raw =
      std::bit_cast<std::array<uint32_t, sizeof(GrpcClusterStats) / sizeof(uint32_t)>>(offsets);
  for (uint32_t& v : raw) v = ref.at(v).index;
  return std::bit_cast<GrpcClusterStats>(raw);
}

ClusterStats::ClusterStats() : ids_(&sinkClusterStatIds()) {}

void ClusterStats::countResponse(Shard& shard, uint32_t code) const {
  countClass(rebased(ids_->upstream_rq_xx), shard, code);
  countCode(at(ids_->upstream_rq_code_first), shard, code);
}

void ClusterStats::countRetriedResponse(Shard& shard, uint32_t code) const {
  countClass(rebased(ids_->retry_upstream_rq_xx), shard, code);
  countCode(at(ids_->retry_upstream_rq_code_first), shard, code);
}

const StatSchema& clusterStatSchema(bool maglev) { return clusterSchema(maglev).schema; }

OutlierDetectionStats makeOutlierDetectionStats(Store& store, std::string_view name,
                                                std::string_view alt_stat_name) {
  const std::string p = clusterStatPrefix(name, alt_stat_name) + "outlier_detection.";
  auto c = [&](const char* n) { return store.counter(absl::StrCat(p, n)); };
  OutlierDetectionStats s;
  s.ejections_active = store.gauge(absl::StrCat(p, "ejections_active"));
  s.ejections_total = c("ejections_total");
  s.ejections_overflow = c("ejections_overflow");
  s.ejections_enforced_total = c("ejections_enforced_total");
  s.ejections_consecutive_5xx = c("ejections_consecutive_5xx");
  s.ejections_success_rate = c("ejections_success_rate");
  s.ejections_detected_consecutive_5xx = c("ejections_detected_consecutive_5xx");
  s.ejections_enforced_consecutive_5xx = c("ejections_enforced_consecutive_5xx");
  s.ejections_detected_success_rate = c("ejections_detected_success_rate");
  s.ejections_enforced_success_rate = c("ejections_enforced_success_rate");
  s.ejections_detected_failure_percentage = c("ejections_detected_failure_percentage");
  s.ejections_enforced_failure_percentage = c("ejections_enforced_failure_percentage");
  return s;
}

ClusterStats makeClusterStats(Store& store, std::string_view name, std::string_view alt_stat_name,
                              bool maglev) {
  const ClusterSchema& kind = clusterSchema(maglev);
  ScopeRef ref = store.scope(clusterStatPrefix(name, alt_stat_name), kind.schema);
  if (!ref.handle) return ClusterStats();  // slot space exhausted: sinks (counted, logged)
  return ClusterStats(std::move(ref.handle), ref.first, &kind.offsets);
}

ServerStats makeServerStats(Store& store) {
  ServerStats s;
  s.live = store.gauge("server.live");
  s.uptime = store.gauge("server.uptime");
  s.concurrency = store.gauge("server.concurrency");
  s.memory_allocated = store.gauge("server.memory_allocated");
  s.days_until_first_cert_expiring = store.gauge("server.days_until_first_cert_expiring");
  s.active_clusters = store.gauge("cluster_manager.active_clusters");
  s.total_listeners_active = store.gauge("listener_manager.total_listeners_active");
  return s;
}

HttpConnManagerStats makeHttpConnManagerStats(Store& store, std::string_view stat_prefix) {
  return makeScoped<&fillHcmStats<SchemaRegistrar>, &fillHcmStats<ScopeRegistrar>>(
      store, absl::StrCat("http.", sanitizeStatName(stat_prefix), "."));
}

TcpProxyStats makeTcpProxyStats(Store& store, std::string_view stat_prefix) {
  return makeScoped<&fillTcpProxyStats<SchemaRegistrar>, &fillTcpProxyStats<ScopeRegistrar>>(
      store, absl::StrCat("tcp.", sanitizeStatName(stat_prefix), "."));
}

CorsStats makeCorsStats(Store& store, std::string_view stat_prefix) {
  return makeScoped<&fillCorsStats<SchemaRegistrar>, &fillCorsStats<ScopeRegistrar>>(
      store, absl::StrCat("http.", sanitizeStatName(stat_prefix), ".cors."));
}

ListenerStats makeListenerStats(Store& store, std::string_view address,
                                std::string_view stat_prefix) {
  std::string prefix = absl::StrCat(
      "listener.", sanitizeStatName(stat_prefix.empty() ? address : stat_prefix), ".");
  ListenerStats s =
      makeScoped<&fillListenerStats<SchemaRegistrar>, &fillListenerStats<ScopeRegistrar>>(store,
                                                                                          prefix);
  s.prefix = std::move(prefix);
  return s;
}

Http2CodecStats makeHttp2CodecStats(Store& store) {
  LooseRegistrar r{store, "", Lazy::kNo, std::nullopt};
  return fillHttp2CodecStats(r, "http2.");
}

HttpInspectorStats makeHttpInspectorStats(Store& store) {
  return HttpInspectorStats{store.counter("http_inspector.http10_found"),
                            store.counter("http_inspector.http11_found"),
                            store.counter("http_inspector.http2_found"),
                            store.counter("http_inspector.http_not_found"),
                            store.counter("http_inspector.read_error")};
}

void ListenerHttpStats::countResponse(Shard& shard, uint32_t code) const {
  countClass(downstream_rq_xx, shard, code);
}

SslStats makeSslStats(Store& store, std::string_view scope_prefix) {
  return makeScoped<&fillSslStats<SchemaRegistrar>, &fillSslStats<ScopeRegistrar>>(
      store, std::string(scope_prefix) + "ssl.");
}

ListenerHttpStats makeListenerHttpStats(Store& store, const ListenerStats& listener,
                                        std::string_view http_stat_prefix) {
  return makeScoped<&fillListenerHttpStats<SchemaRegistrar>,
                    &fillListenerHttpStats<ScopeRegistrar>>(
      store, absl::StrCat(listener.prefix, "http.", sanitizeStatName(http_stat_prefix), "."));
}

}  // namespace turnout::proxy::stats
