#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"
#include "config/snapshot/snapshot.h"
#include "envoy/config/route/v3/route.pb.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "routing/route_table.h"

namespace turnout::config {

// A DiscoveryResponse read from a file (Envoy's path_config_source): YAML or
// JSON with `version_info` and `resources`, each an Any whose `@type` must be
// the subscription's type URL. Every resource goes through the same checks as
// the bootstrap (parse with field paths, extension allowlist, field policy,
// PGV rules, SnapshotBuilder's semantic checks); errors name the path inside
// the file: `resources[1].connect_timeout: ...`. Stateless; main thread.

inline constexpr char kClusterTypeUrl[] = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
inline constexpr char kListenerTypeUrl[] =
    "type.googleapis.com/envoy.config.listener.v3.Listener";
inline constexpr char kRouteConfigurationTypeUrl[] =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
inline constexpr char kClusterLoadAssignmentTypeUrl[] =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
// VHDS (Delta only): one VirtualHost per resource, named
// `<route_config_name>/<x>` (docs/xds.md, "VHDS").
inline constexpr char kVirtualHostTypeUrl[] =
    "type.googleapis.com/envoy.config.route.v3.VirtualHost";

// What a resource's unknown fields (fields its type does not define: those
// of a newer API) do. kReject: the response is refused, and the error names
// the first. kReport: the resource is taken without them, and each is listed,
// with its path, in the result's `unknown_fields` (Envoy's default for
// dynamic config, which warns and counts; --reject-unknown-dynamic-fields
// refuses). YAML/JSON files: a field name the type lacks; xDS (binary): a
// field number, in the resource or the payload of any Any in it. kIgnore:
// taken without them, not looked for where that can be avoided, and not
// listed (--ignore-unknown-dynamic-fields: no log, no count).
enum class UnknownFields { kReject, kReport, kIgnore };

// CDS / LDS: a Snapshot that holds the file's clusters / listeners (and
// nothing else). Listeners' inline routes are not checked against clusters
// (more arrive by CDS, as Envoy does with dynamic clusters).
struct DiscoverySnapshot {
  std::string version_info;
  SnapshotConstSharedPtr snapshot;
  std::vector<std::string> warnings;
  std::vector<std::string> unknown_fields;  // UnknownFields::kReport
};
absl::StatusOr<DiscoverySnapshot> parseClusterResponse(
    const std::string& text, UnknownFields unknown = UnknownFields::kReject);
absl::StatusOr<DiscoverySnapshot> parseListenerResponse(
    const std::string& text, UnknownFields unknown = UnknownFields::kReject);

// RDS: each RouteConfiguration compiled, by name. validate_clusters defaults
// to false, as for Envoy's RDS.
struct DiscoveryRoutes {
  std::string version_info;
  std::vector<std::pair<std::string, std::shared_ptr<const routing::RouteTable>>> tables;
  // The accepted protos, in the order of `tables` (for /config_dump).
  std::vector<envoy::config::route::v3::RouteConfiguration> configs;
  std::vector<std::string> warnings;
  std::vector<std::string> unknown_fields;  // UnknownFields::kReport
};
absl::StatusOr<DiscoveryRoutes> parseRouteResponse(const std::string& text,
                                                   UnknownFields unknown = UnknownFields::kReject);

// Where a RouteConfiguration's `vhds` can be served from: nowhere (a file,
// an inline route_config), a State-of-the-World ADS stream (refused: VHDS
// needs Delta), or a Delta ADS stream (accepted when its config_source is
// `ads: {}`).
enum class VhdsSource { kNone, kSotwAds, kDeltaAds };
// The RouteConfiguration's vhds (if set) checked against `available`; Ok
// when it has none. Errors name `<path>.vhds...` and say why, as Envoy's
// "vhds: only 'DELTA_GRPC' or 'ADS' (which uses Delta xDS) is supported as
// a config source".
absl::Status checkVhds(const envoy::config::route::v3::RouteConfiguration& rc,
                       const std::string& path, VhdsSource available);

// EDS: each ClusterLoadAssignment translated by translateLoadAssignment()
// (endpoint_translator.h), the same code as a cluster's inline
// load_assignment. cluster_name is the key an EDS cluster matches with its
// service_name (or its name); a name twice is an error.
struct DiscoveryEndpoints {
  struct Assignment {
    std::string cluster_name;
    std::vector<LocalityEndpointsConfig> localities;
  };
  std::string version_info;
  std::vector<Assignment> assignments;
  std::vector<std::string> warnings;
  std::vector<std::string> unknown_fields;  // UnknownFields::kReport
  // cluster_name -> its index in `assignments` (filled by the parsers).
  absl::flat_hash_map<std::string, size_t> index;

  // The assignment named `cluster_name`, or null; O(1).
  const Assignment* find(const std::string& cluster_name) const;
};
absl::StatusOr<DiscoveryEndpoints> parseEndpointResponse(
    const std::string& text, UnknownFields unknown = UnknownFields::kReject);

// The same four, from the resources of an xDS DiscoveryResponse (each Any
// already of the type's URL): every check above applies; errors name
// `resources[i]...` of the response.
using AnyList = google::protobuf::RepeatedPtrField<google::protobuf::Any>;
absl::StatusOr<DiscoverySnapshot> parseClusterResources(
    const std::string& version_info, const AnyList& resources,
    UnknownFields unknown = UnknownFields::kReject);
absl::StatusOr<DiscoverySnapshot> parseListenerResources(
    const std::string& version_info, const AnyList& resources,
    UnknownFields unknown = UnknownFields::kReject);
// VHDS: one VirtualHost resource, checked as an inline virtual host is
// (extension allowlist, field policy, PGV rules, translation) and compiled
// on its own; errors name `path` (`resources[2].routes[0].route.cluster:
// ...`). What needs the rest of the table (a domain twice, the route
// configuration's max_direct_response_body_size_bytes) is checked when the
// table is built from the compiled virtual hosts. Unknown fields are
// appended to `unknown_fields`, or refused when it is null.
absl::StatusOr<routing::RouteTable::VirtualHostConstSharedPtr> checkVirtualHost(
    const envoy::config::route::v3::VirtualHost& vh, const std::string& path,
    std::vector<std::string>* unknown_fields = nullptr);

// The keys of a VHDS virtual host's routes, in route order: two
// independent 64-bit hashes of each route's bytes as received.
using RouteKeys = std::vector<absl::uint128>;
// The keys of the routes of a serialized VirtualHost (empty when it does
// not split).
RouteKeys routeKeys(std::string_view bytes);
// checkVirtualHost() for a VHDS resource as received (`bytes`, the Any's
// value) that may be a new version of `previous` (null: none), whose routes
// had the keys `previous_keys`. A route whose bytes the previous version
// had is not parsed, checked or compiled again: the new host shares it
// (routing::RouteTable::compileVirtualHost with reuse). So a sandbox added
// to a virtual host of 10,000 routes parses, checks and compiles the host's
// own fields and one route. Anything that path does not take, errors
// included, goes through the whole check, so results and error paths (a
// route's index in this version) are the same. `keys` receives this
// version's keys (empty when `bytes` does not parse).
absl::StatusOr<routing::RouteTable::VirtualHostConstSharedPtr> checkVirtualHost(
    std::string_view bytes, const std::string& path,
    const routing::RouteTable::CompiledVirtualHost* previous, const RouteKeys& previous_keys,
    RouteKeys& keys, std::vector<std::string>* unknown_fields = nullptr);

// RDS: a route configuration with vhds is accepted only when `vhds` is
// kDeltaAds; its table then holds its inline virtual hosts only (the
// caller merges the VHDS ones in), and `configs` keeps the vhds field.
absl::StatusOr<DiscoveryRoutes> parseRouteResources(const std::string& version_info,
                                                    const AnyList& resources,
                                                    VhdsSource vhds = VhdsSource::kNone,
                                                    UnknownFields unknown = UnknownFields::kReject);

// One compiled virtual host of an accepted route configuration, with its
// routes' keys (a new version of it shares the routes it kept).
struct HeldVirtualHost {
  routing::RouteTable::VirtualHostConstSharedPtr compiled;
  std::shared_ptr<const RouteKeys> route_keys;
};
// The virtual hosts of accepted route configurations, compiled, by route
// configuration name and then by a hash of each one's bytes as received.
using CompiledVirtualHosts =
    absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, HeldVirtualHost>>;
// parseRouteResources() for an xDS stream, where every response repeats
// every virtual host (State of the World): a virtual host whose bytes hash
// as one in `reuse` under the same route configuration is neither checked
// nor compiled again (a one-sandbox update at 10,000 sandboxes checked and
// compiled all 20,000 routes), and a virtual host whose bytes changed
// shares the routes the held one of its name had (checkVirtualHost with a
// previous version: a sandbox added to a virtual host of 10,000 routes
// compiles one route). The route configuration around them is
// checked and its table built as VHDS builds one. Anything this path does
// not take (an unparsable resource, vhds, an error anywhere) goes through
// parseRouteResources() whole, so errors and results are the same. On
// success `compiled` holds this response's virtual hosts for the next one
// (empty after the whole path: the next response checks all). A held
// virtual host's unknown fields were reported when it came, and are not
// again.
absl::StatusOr<DiscoveryRoutes> parseRouteResourcesReusing(
    const std::string& version_info, const AnyList& resources, VhdsSource vhds,
    const CompiledVirtualHosts& reuse, CompiledVirtualHosts& compiled,
    UnknownFields unknown = UnknownFields::kReject);
absl::StatusOr<DiscoveryEndpoints> parseEndpointResources(
    const std::string& version_info, const AnyList& resources,
    UnknownFields unknown = UnknownFields::kReject);

}  // namespace turnout::config
