#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "config/snapshot/routing_key_config.h"
#include "proxy/stream/filter.h"
#include "routing/trace_key_table.h"

namespace turnout::proxy {

// turnout.filters.http.routing_key: extracts the routing key once
// (routing::extractRoutingKey: baggage, tracestate, plain headers in the
// configured order) and normalises it into the output header, replacing
// whatever the client sent there; with no key the header is removed, so a
// client cannot forge a sandbox the propagated context does not name.
//
// With trace_key_recovery (docs/sandbox_routing.md, "Keys that apps forget to
// propagate"): REMEMBER stores trace-id -> key in the process's one
// routing::TraceKeyTable for a request that has a key and a valid
// `traceparent`; RECOVER gives a request with a valid `traceparent` and no
// key the key remembered for its trace id, in the output header and as a
// member of `baggage`. A key the request carries always wins. Lock-free: the
// table is shared by every worker without a lock; a request looks it up only
// when it has no key and has a traceparent.
//
// Counts http.<prefix>.routing_key.{found,missing,<keyErrorName>,
// recovered_from_trace,remembered_for_trace,trace_memory_evicted,
// trace_memory_key_too_long,trace_memory_busy}. A request counts in exactly
// one of found, recovered_from_trace and missing.
class RoutingKeyFilter : public StreamFilter {
 public:
  // Monotonic milliseconds; tests inject their own.
  using NowMs = std::int64_t (*)();
  static std::int64_t steadyNowMs();

  // The filter of `config`, holding the process's trace-key table when
  // recovery is on. Config time (main or xDS thread). Fails, naming
  // `path`.trace_key_recovery.max_entries, when a table of another size is
  // still in use by a listener: the table is one per process and cannot be
  // resized while it is shared.
  static absl::StatusOr<std::shared_ptr<const RoutingKeyFilter>> create(
      config::RoutingKeyFilterConfig config, const std::string& path, NowMs now = &steadyNowMs);

  // `trace_table`: required (non-null) when config.trace.enabled().
  RoutingKeyFilter(config::RoutingKeyFilterConfig config,
                   std::shared_ptr<routing::TraceKeyTable> trace_table = nullptr,
                   NowMs now = &steadyNowMs)
      : config_(std::move(config)), trace_table_(std::move(trace_table)), now_(now) {}

  const config::RoutingKeyFilterConfig& config() const { return config_; }
  const routing::TraceKeyTable* traceTable() const { return trace_table_.get(); }

  // StreamFilter
  FilterHeadersStatus decodeHeaders(StreamDecoderFilterCallbacks& callbacks) const override;

 private:
  void remember(const routing::RequestView& view, std::string_view key,
                StreamDecoderFilterCallbacks& cb) const;
  // True if a key was recovered and written to the request.
  bool recover(const routing::RequestView& view, StreamDecoderFilterCallbacks& cb) const;

  const config::RoutingKeyFilterConfig config_;
  const std::shared_ptr<routing::TraceKeyTable> trace_table_;
  const NowMs now_;
};

// The process's trace-key table of `entries` entries: the one in use if its
// size matches, a new one if none is in use. Config time; thread-safe. Errors
// name `path`.max_entries.
absl::StatusOr<std::shared_ptr<routing::TraceKeyTable>> processTraceKeyTable(
    std::size_t entries, const std::string& path);

}  // namespace turnout::proxy
