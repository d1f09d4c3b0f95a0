#pragma once

#include <memory>
#include <span>
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
// the compile step are prefixed with `path` too. `compiled_hosts` are
// appended after proto's own virtual hosts (VHDS): each was translated and
// compiled once, when it arrived (compileVirtualHost), so an update that
// changes one virtual host compiles that one only, and the table around
// them costs O(virtual hosts).
absl::StatusOr<std::shared_ptr<const routing::RouteTable>> translateRouteConfiguration(
    const envoy::config::route::v3::RouteConfiguration& proto, const std::string& path,
    std::vector<routing::RouteTable::VirtualHostConstSharedPtr> compiled_hosts = {});

// One VirtualHost translated and compiled on its own, without the
// field-policy walk (the caller does it: checkVirtualHost). Errors name `path`.
absl::StatusOr<routing::RouteTable::VirtualHostConstSharedPtr> compileVirtualHost(
    const envoy::config::route::v3::VirtualHost& proto, const std::string& path);
// The same for a new version of `previous` that keeps some of its routes:
// `proto` holds the host's own fields and the new routes only, and `reuse`
// places them (routing::RouteTable::compileVirtualHost). Errors name
// proto's routes by their index there, not in the new version.
absl::StatusOr<routing::RouteTable::VirtualHostConstSharedPtr> compileVirtualHost(
    const envoy::config::route::v3::VirtualHost& proto, const std::string& path,
    const routing::RouteTable::CompiledVirtualHost& previous, std::span<const int32_t> reuse);

}  // namespace turnout::config
