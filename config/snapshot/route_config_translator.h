#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "envoy/config/route/v3/route.pb.h"
#include "routing/route_config.h"
#include "routing/route_table.h"

namespace turnout::config {

// Translates an Envoy v3 RouteConfiguration (already PGV-validated) into the
// routing layer's plain structs, field by field. Every set field is first checked
// against the shared field policy (config/bootstrap/field_policy.h): honoured,
// documented as inert, or rejected with its path. `path` is the field path of
// `proto` in the bootstrap or xDS resource and prefixes every error. Called on the
// main/xDS thread when a snapshot is built.
absl::StatusOr<routing::RouteConfiguration> toRouteConfiguration(
    const envoy::config::route::v3::RouteConfiguration& proto, const std::string& path);

// One HeaderMatcher (used by filters that match headers, e.g. health_check).
absl::StatusOr<routing::HeaderMatcher> toHeaderMatcher(
    const envoy::config::route::v3::HeaderMatcher& proto, const std::string& path);

// toRouteConfiguration() followed by routing::RouteTable::create(); errors from
// the compile step are prefixed with `path` too. `checked_hosts` are
// appended after proto's own virtual hosts (VHDS), translated without the
// field-policy walk: their caller checked each one when it arrived
// (checkVirtualHost). Merging them into a copy of `proto` instead cost a
// copy of every route at each VHDS update.
absl::StatusOr<std::shared_ptr<const routing::RouteTable>> translateRouteConfiguration(
    const envoy::config::route::v3::RouteConfiguration& proto, const std::string& path,
    const std::vector<const envoy::config::route::v3::VirtualHost*>& checked_hosts = {});

}  // namespace turnout::config
