#pragma once

#include "absl/strings/string_view.h"
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb.h"

namespace turnout::config {

// What the command line says about the bootstrap (Envoy's -c, --config-yaml,
// --allow-unknown-static-fields, --service-node/-cluster/-zone).
struct BootstrapLoadOptions {
  // -c/--config-path. `.pb` is binary protobuf, `.pb_text` text format, anything else
  // YAML or JSON (read by content: YAML is a superset of JSON).
  std::string config_path;
  // --config-yaml, merged over the file (proto MergeFrom, as Envoy does).
  std::string config_yaml;
  bool allow_unknown_static_fields = false;
  // Override node.id / node.cluster / node.locality.zone when non-empty.
  std::string service_node;
  std::string service_cluster;
  std::string service_zone;
};

struct LoadedBootstrap {
  envoy::config::bootstrap::v3::Bootstrap bootstrap;
  // Unknown fields that were ignored because --allow-unknown-static-fields was given.
  std::vector<std::string> warnings;
};

// Loads, merges and validates a bootstrap the way Envoy's
// InstanceUtil::loadBootstrapConfig does: parse (field-path errors, unknown fields,
// extension allowlist by type URL), merge --config-yaml, apply --service-* overrides,
// check extensions and filter order, reject every set field turnout does not honour
// (field_policy.h), then enforce the PGV rules. Semantic checks that
// need the whole config (duplicate names, unknown clusters) are SnapshotBuilder's.
//
// Runs on the main thread at startup (or in --mode validate); reads one file. Errors are
// InvalidArgument (NotFound for an unreadable file) and name the field path.
absl::StatusOr<LoadedBootstrap> loadBootstrap(const BootstrapLoadOptions& options);

// Loads a bootstrap from YAML/JSON text alone (tests, --config-yaml without -c).
absl::StatusOr<LoadedBootstrap> loadBootstrapFromYaml(const std::string& yaml,
                                                      bool allow_unknown_static_fields = false);

}  // namespace turnout::config
