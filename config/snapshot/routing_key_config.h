#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "routing/routing_key.h"
#include "turnout/extensions/filters/http/routing_key/v3/routing_key.pb.h"

namespace turnout::config {

// The RoutingKey filter's config (type.googleapis.com/turnout.extensions.
// filters.http.routing_key.v3.RoutingKey) as the routing layer's
// RoutingKeyConfig, with the defaults applied and every name validated.
// `path` is the typed_config's field path, used in errors. Config time only.
//
// trace_key_recovery (docs/sandbox_routing.md): `mode` says what the filter
// does with the process's trace-key table; ttl and max_entries are validated
// whatever the mode, and with OFF no table exists.
struct TraceKeyRecoveryConfig {
  static constexpr std::int64_t kDefaultTtlMs = 300'000;
  static constexpr std::size_t kDefaultMaxEntries = 16384;

  bool remember = false;
  bool recover = false;
  std::int64_t ttl_ms = kDefaultTtlMs;
  std::size_t max_entries = kDefaultMaxEntries;
  // The baggage member a recovered key is added as: the first baggage source.
  // Set when `recover`.
  std::string baggage_member;

  bool enabled() const { return remember || recover; }
};

struct RoutingKeyFilterConfig {
  routing::RoutingKeyConfig extraction;
  std::string output_header = "x-turnout-routing-key";
  TraceKeyRecoveryConfig trace;
};

absl::StatusOr<RoutingKeyFilterConfig> toRoutingKeyFilterConfig(
    const turnout::extensions::filters::http::routing_key::v3::RoutingKey& proto,
    const std::string& path);

}  // namespace turnout::config
