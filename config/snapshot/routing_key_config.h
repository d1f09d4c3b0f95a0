#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "routing/routing_key.h"
#include "turnout/extensions/filters/http/routing_key/v3/routing_key.pb.h"

namespace turnout::config {

// The RoutingKey filter's config (type.googleapis.com/turnout.extensions.
// filters.http.routing_key.v3.RoutingKey) as the routing layer's
// RoutingKeyConfig, with the defaults applied and every name validated.
// `path` is the typed_config's field path, used in errors. Config time only.
struct RoutingKeyFilterConfig {
  routing::RoutingKeyConfig extraction;
  std::string output_header = "x-turnout-routing-key";
};

absl::StatusOr<RoutingKeyFilterConfig> toRoutingKeyFilterConfig(
    const turnout::extensions::filters::http::routing_key::v3::RoutingKey& proto,
    const std::string& path);

}  // namespace turnout::config
