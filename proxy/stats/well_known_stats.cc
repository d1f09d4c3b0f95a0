#include "proxy/stats/well_known_stats.h"

#include "absl/strings/str_cat.h"
#include "routing/routing_key.h"

namespace turnout::proxy::stats {
namespace {

void countClass(const std::array<StatId, 5>& xx, Shard& shard, uint32_t code) {
  if (code >= 100 && code < 600) shard.inc(xx[code / 100 - 1]);
}

std::array<StatId, 5> registerClasses(Store& store, const std::string& prefix) {
  std::array<StatId, 5> out;
  for (int i = 0; i < 5; ++i) out[i] = store.counter(absl::StrCat(prefix, i + 1, "xx"));
  return out;
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

HttpConnManagerStats makeHttpConnManagerStats(Store& store, std::string_view stat_prefix) {
  const std::string p = absl::StrCat("http.", sanitizeStatName(stat_prefix), ".");
  auto c = [&](const char* n) { return store.counter(absl::StrCat(p, n)); };
  auto g = [&](const char* n) { return store.gauge(absl::StrCat(p, n)); };
  HttpConnManagerStats s;
  s.downstream_cx_total = c("downstream_cx_total");
  s.downstream_cx_active = g("downstream_cx_active");
  s.downstream_cx_destroy = c("downstream_cx_destroy");
  s.downstream_cx_http1_active = g("downstream_cx_http1_active");
  s.downstream_cx_http1_total = c("downstream_cx_http1_total");
  s.downstream_cx_protocol_error = c("downstream_cx_protocol_error");
  s.downstream_rq_total = c("downstream_rq_total");
  s.downstream_rq_active = g("downstream_rq_active");
  s.downstream_rq_completed = c("downstream_rq_completed");
  s.downstream_rq_xx = registerClasses(store, p + "downstream_rq_");
  s.downstream_rq_time = store.histogram(p + "downstream_rq_time");
  s.downstream_rq_timeout = c("downstream_rq_timeout");
  s.downstream_rq_idle_timeout = c("downstream_rq_idle_timeout");
  s.downstream_rq_rx_reset = c("downstream_rq_rx_reset");
  s.downstream_rq_too_large = c("downstream_rq_too_large");
  s.downstream_rq_header_timeout = c("downstream_rq_header_timeout");
  s.no_route = c("no_route");
  s.no_cluster = c("no_cluster");
  s.rq_redirect = c("rq_redirect");
  s.rq_direct_response = c("rq_direct_response");
  s.rq_total = c("rq_total");
  s.rq_reset_after_downstream_response_started = c("rq_reset_after_downstream_response_started");
  s.routing_key_found = c("routing_key.found");
  s.routing_key_missing = c("routing_key.missing");
  for (uint8_t e = 1; e < s.routing_key_error.size(); ++e) {
    const auto err = static_cast<routing::KeyError>(e);
    s.routing_key_error[e] =
        c(absl::StrCat("routing_key.", std::string(routing::keyErrorName(err))).c_str());
  }
  return s;
}

ListenerStats makeListenerStats(Store& store, std::string_view address, std::string_view stat_prefix) {
  ListenerStats s;
  s.scope = absl::StrCat("listener.", sanitizeStatName(stat_prefix.empty() ? address : stat_prefix), ".");
  s.downstream_cx_total = store.counter(s.scope + "downstream_cx_total");
  s.downstream_cx_destroy = store.counter(s.scope + "downstream_cx_destroy");
  s.downstream_cx_active = store.gauge(s.scope + "downstream_cx_active");
  s.downstream_cx_length_ms = store.histogram(s.scope + "downstream_cx_length_ms");
  s.no_filter_chain_match = store.counter(s.scope + "no_filter_chain_match");
  return s;
}

void ListenerHttpStats::countResponse(Shard& shard, uint32_t code) const {
  countClass(downstream_rq_xx, shard, code);
}

ListenerHttpStats makeListenerHttpStats(Store& store, const ListenerStats& listener,
                                        std::string_view http_stat_prefix) {
  ListenerHttpStats s;
  s.downstream_rq_xx = registerClasses(
      store, absl::StrCat(listener.scope, "http.", sanitizeStatName(http_stat_prefix), ".downstream_rq_"));
  return s;
}

void ClusterStats::countResponse(Shard& shard, uint32_t code) const {
  countClass(upstream_rq_xx, shard, code);
  if (code < upstream_rq_code.size() && upstream_rq_code[code].index != 0) {
    shard.inc(upstream_rq_code[code]);
  }
}

void ClusterStats::countRetriedResponse(Shard& shard, uint32_t code) const {
  countClass(retry_upstream_rq_xx, shard, code);
  if (code < retry_upstream_rq_code.size() && retry_upstream_rq_code[code].index != 0) {
    shard.inc(retry_upstream_rq_code[code]);
  }
}

OutlierDetectionStats makeOutlierDetectionStats(Store& store, std::string_view name,
                                                std::string_view alt_stat_name) {
  const std::string p = absl::StrCat("cluster.",
                                     sanitizeStatName(alt_stat_name.empty() ? name : alt_stat_name),
                                     ".outlier_detection.");
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
  const std::string p =
      absl::StrCat("cluster.", sanitizeStatName(alt_stat_name.empty() ? name : alt_stat_name), ".");
  auto c = [&](const char* n) { return store.counter(absl::StrCat(p, n)); };
  auto g = [&](const char* n) { return store.gauge(absl::StrCat(p, n)); };
  ClusterStats s;
  s.upstream_cx_total = c("upstream_cx_total");
  s.upstream_cx_active = g("upstream_cx_active");
  s.upstream_cx_connect_fail = c("upstream_cx_connect_fail");
  s.upstream_cx_connect_timeout = c("upstream_cx_connect_timeout");
  s.upstream_cx_destroy = c("upstream_cx_destroy");
  s.upstream_cx_overflow = c("upstream_cx_overflow");
  s.upstream_cx_pool_overflow = c("upstream_cx_pool_overflow");
  s.upstream_cx_idle_timeout = c("upstream_cx_idle_timeout");
  s.upstream_cx_max_requests = c("upstream_cx_max_requests");
  s.upstream_cx_destroy_remote = c("upstream_cx_destroy_remote");
  s.upstream_rq_total = c("upstream_rq_total");
  s.upstream_rq_active = g("upstream_rq_active");
  s.upstream_rq_pending_total = c("upstream_rq_pending_total");
  s.upstream_rq_pending_active = g("upstream_rq_pending_active");
  s.upstream_rq_pending_overflow = c("upstream_rq_pending_overflow");
  s.upstream_rq_timeout = c("upstream_rq_timeout");
  s.upstream_rq_pending_failure_eject = c("upstream_rq_pending_failure_eject");
  s.upstream_rq_cancelled = c("upstream_rq_cancelled");
  s.upstream_rq_per_try_timeout = c("upstream_rq_per_try_timeout");
  s.upstream_rq_per_try_idle_timeout = c("upstream_rq_per_try_idle_timeout");
  s.upstream_rq_rx_reset = c("upstream_rq_rx_reset");
  s.upstream_rq_tx_reset = c("upstream_rq_tx_reset");
  s.upstream_rq_retry = c("upstream_rq_retry");
  s.upstream_rq_retry_success = c("upstream_rq_retry_success");
  s.upstream_rq_retry_overflow = c("upstream_rq_retry_overflow");
  s.upstream_rq_retry_limit_exceeded = c("upstream_rq_retry_limit_exceeded");
  s.upstream_rq_completed = c("upstream_rq_completed");
  s.upstream_rq_time = store.histogram(p + "upstream_rq_time");
  s.upstream_rq_xx = registerClasses(store, p + "upstream_rq_");
  s.retry_upstream_rq_xx = registerClasses(store, p + "retry.upstream_rq_");
  for (uint16_t code : kCommonCodes) {
    s.upstream_rq_code[code] = c(absl::StrCat("upstream_rq_", code).c_str());
    s.retry_upstream_rq_code[code] = c(absl::StrCat("retry.upstream_rq_", code).c_str());
  }
  s.membership_total = g("membership_total");
  s.membership_healthy = g("membership_healthy");
  s.health_check_attempt = c("health_check.attempt");
  s.health_check_success = c("health_check.success");
  s.health_check_failure = c("health_check.failure");
  s.outlier_detection_ejections_active = g("outlier_detection.ejections_active");
  s.outlier_detection_ejections_total = c("outlier_detection.ejections_total");
  s.membership_change = c("membership_change");
  if (maglev) {
    s.maglev_min_entries_per_host = g("maglev_lb.min_entries_per_host");
    s.maglev_max_entries_per_host = g("maglev_lb.max_entries_per_host");
  }
  s.update_attempt = c("update_attempt");
  s.update_success = c("update_success");
  s.update_failure = c("update_failure");
  s.update_no_rebuild = c("update_no_rebuild");
  auto breakers = [&](const char* priority) {
    auto b = [&](const char* n) {
      return store.gauge(absl::StrCat(p, "circuit_breakers.", priority, ".", n));
    };
    return CircuitBreakerStats{b("cx_open"), b("cx_pool_open"), b("rq_pending_open"),
                               b("rq_open"), b("rq_retry_open")};
  };
  s.breakers_default = breakers("default");
  s.breakers_high = breakers("high");
  return s;
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

}  // namespace turnout::proxy::stats
