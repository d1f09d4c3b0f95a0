#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/control_plane/state.h"

namespace turnout::control_plane {

// Where turnout-cp keeps its State (docs/control_plane.md, "The store"):
// SqliteStore (the default, one process) or EtcdStore (several replicas).
// Used from the one thread that owns the State: load() at start and after a
// failed write, apply() for every Change a mutation returns, before the API
// answers.
class Store {
 public:
  virtual ~Store() = default;
  // Everything stored.
  virtual absl::StatusOr<StoredState> load() = 0;
  // Writes one mutation atomically. Aborted: another replica wrote first (the
  // stored version is not the one this change follows); nothing was written
  // and the caller reloads. Other errors: Internal/Unavailable.
  virtual absl::Status apply(const Change& change) = 0;
  // For logs: the file or the URL.
  virtual std::string describe() const = 0;
};

}  // namespace turnout::control_plane
