#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/control_plane/state.h"

namespace turnout::control_plane {

// Where turnout-cp keeps its State: SqliteStore (one replica, a data
// directory) or EtcdStore (several replicas sharing one etcd). Used from the
// one thread that owns the State: load() at start (State::restore), then
// apply() every Change a mutation returns, before the API answers.
//
// apply()'s errors tell the owner what to do with the State it ran ahead:
// - Aborted: another writer changed the store first (etcd); nothing was
//   written. Reload (State::restore(load())) and retry or answer 409.
// - Unavailable: the store could not be reached; nothing is known to be
//   written. Go back to the State before the mutation and answer 503; a shared
//   store's watch reloads if the write did land after all.
// - anything else: the store failed (500); rebuild from load().
class Store {
 public:
  // Runs on a thread of the store's, with the store revision of a change that
  // some writer made (-1: unknown, e.g. after the store came back): the owner
  // posts to its own thread and reloads there if isNewer(revision).
  using ChangeCallback = std::function<void(int64_t revision)>;

  virtual ~Store() = default;

  // Everything stored, resources ordered by kind then name.
  virtual absl::StatusOr<StoredState> load() = 0;
  // Writes one mutation atomically: its puts, its deletes and its config version.
  virtual absl::Status apply(const Change& change) = 0;
  // For messages: the data file, or the etcd URL.
  virtual std::string describe() const = 0;

  // Stores shared with other writers report changes to `on_change` until
  // unwatch(); the embedded store has no other writer and never calls it.
  virtual void watch(ChangeCallback on_change) { (void)on_change; }
  // Stops the watch (joins its thread); no callback runs after it returns.
  virtual void unwatch() {}
  // Whether a revision from the watch is newer than what this store last
  // loaded or wrote itself (its own writes come back through the watch too).
  virtual bool isNewer(int64_t revision) const {
    (void)revision;
    return false;
  }
};

}  // namespace turnout::control_plane
