#pragma once

#include <functional>
#include <string>

#include <vector>

#include "absl/status/statusor.h"
#include "config/bootstrap/bootstrap_loader.h"
#include "config/snapshot/snapshot.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb.h"

namespace turnout::config {

// Turns a loaded bootstrap (see bootstrap_loader.h: parsed, extension-checked,
// PGV-validated) into an immutable Snapshot with Envoy's defaults applied, after the
// semantic checks Envoy makes at startup: unique listener and cluster names, STATIC
// clusters with IP addresses only, LOGICAL_DNS with one endpoint, EDS clusters with an
// eds_cluster_config, load-balancer/cluster-type pairs, and inline route configurations
// (validate_clusters defaults to true) that name only known clusters. Errors are
// InvalidArgument and name the field path.
//
// Runs on the main or xDS thread; the result is shared with workers read-only.
// An Http2ProtocolOptions (HCM or cluster) at `path`: the honoured fields, range-checked.
absl::StatusOr<Http2OptionsConfig> toHttp2Options(const envoy::config::core::v3::Http2ProtocolOptions& o,
                                                  const std::string& path);

struct LoadedSnapshot {
  SnapshotConstSharedPtr snapshot;
  // Unknown fields ignored because of --allow-unknown-static-fields.
  std::vector<std::string> warnings;
};

class SnapshotBuilder {
 public:
  // loadBootstrap() then build(): everything `turnout --mode validate` checks, and
  // the first thing `--mode serve` does, so that both give the same answer.
  static absl::StatusOr<LoadedSnapshot> load(const BootstrapLoadOptions& options);

  // Returns a unique listener name for an unnamed listener (Envoy: a UUID). Injected so
  // that tests are deterministic.
  using NameGenerator = std::function<std::string()>;

  static absl::StatusOr<SnapshotConstSharedPtr> build(
      const envoy::config::bootstrap::v3::Bootstrap& bootstrap,
      NameGenerator generate_name = nullptr);
  // The same, taking the bootstrap over (no copy of its clusters).
  static absl::StatusOr<SnapshotConstSharedPtr> build(
      envoy::config::bootstrap::v3::Bootstrap&& bootstrap, NameGenerator generate_name = nullptr);

  // A random RFC 4122 version-4 UUID string.
  static std::string randomUuid();
};

}  // namespace turnout::config
