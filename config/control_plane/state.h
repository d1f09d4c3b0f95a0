#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/control_plane/model.h"

namespace turnout::control_plane {

// turnout-cp's state: the model, a config version and an ETag per resource.
// Pure: no I/O, no clock (callers pass `now`), no threads; the owner (the API
// server) serialises calls. Every mutation that succeeds bumps the config version
// by one and returns it with a Change, which the owner hands to the store
// (SqliteStore::apply) and uses to push config. A failed mutation changes
// nothing. Errors use model.h's kinds (400/404/409/412).
//
// ETags are strong and quoted: `"<n>"`, n being the config version that last
// wrote the resource. An `if_match` is the If-Match header as received: `*`
// (the resource must exist) or a comma-separated list of entity tags; a stale
// or absent resource fails with FailedPrecondition (412). Weak tags (W/"...")
// never match, as RFC 9110 says for If-Match.

enum class ResourceKind { kService, kSandbox, kRelease };
// "service", "sandbox", "release".
std::string_view resourceKindName(ResourceKind kind);
// The inverse: false for an unknown name.
bool resourceKindFromName(std::string_view name, ResourceKind& out);

// One resource as stored: its JSON (toJson) and what JSON does not carry.
struct StoredResource {
  ResourceKind kind = ResourceKind::kService;
  std::string name;
  std::string json;
  uint64_t resource_version = 0;  // the config version that wrote it (its ETag)
  absl::Time expires_at = absl::InfiniteFuture();  // sandboxes

  bool operator==(const StoredResource&) const = default;
};

// What one mutation did, for the store and for pushes.
struct Change {
  uint64_t version = 0;  // the config version it produced
  std::vector<StoredResource> puts;
  std::vector<std::pair<ResourceKind, std::string>> deletes;
};

struct MutationResult {
  uint64_t version = 0;  // the config version this mutation produced
  std::string etag;      // the resource's new ETag; empty after a delete
  Change change;
};

// A resource with its ETag, as GET returns it. `value` points into the State
// and is valid until its next mutation.
template <typename T>
struct Versioned {
  const T* value = nullptr;
  std::string etag;
};

// Everything a store holds.
struct StoredState {
  uint64_t version = 0;
  std::vector<StoredResource> resources;
};

std::string etagFor(uint64_t resource_version);

class State {
 public:
  State() { restartJournal(); }

  // Rebuilds a State from a store's contents: every resource is parsed and
  // checked again (a damaged row is an error naming it), references too.
  // Sandboxes past their TTL are kept until the owner's first expire(now).
  static absl::StatusOr<State> restore(const StoredState& stored);
  // The inverse of restore(): every resource as the store keeps it.
  StoredState stored() const;

  uint64_t version() const { return version_; }
  const Model& model() const { return model_; }

  // NotFound when absent.
  absl::StatusOr<Versioned<Service>> service(std::string_view name) const;
  absl::StatusOr<Versioned<Sandbox>> sandbox(std::string_view key) const;
  absl::StatusOr<Versioned<Release>> release(std::string_view service) const;
  // The ETag of a resource; empty when absent.
  std::string etag(ResourceKind kind, std::string_view name) const;

  // PUT: create or replace. `json` is the request body (parseService etc.);
  // the typed overloads validate their value the same way (the CLI, tests).
  absl::StatusOr<MutationResult> putService(std::string_view name, std::string_view json,
                                            std::optional<std::string_view> if_match = {});
  absl::StatusOr<MutationResult> putService(Service service,
                                            std::optional<std::string_view> if_match = {});
  // The sandbox expires at now + its TTL (a replace restarts the TTL).
  absl::StatusOr<MutationResult> putSandbox(std::string_view key, std::string_view json,
                                            absl::Time now,
                                            std::optional<std::string_view> if_match = {});
  absl::StatusOr<MutationResult> putSandbox(Sandbox sandbox, absl::Time now,
                                            std::optional<std::string_view> if_match = {});
  absl::StatusOr<MutationResult> putRelease(std::string_view service, std::string_view json,
                                            std::optional<std::string_view> if_match = {});
  absl::StatusOr<MutationResult> putRelease(Release release,
                                            std::optional<std::string_view> if_match = {});

  // DELETE: NotFound when absent (FailedPrecondition if `if_match` is given).
  // A service that a sandbox forks or that has a release is a conflict (409).
  absl::StatusOr<MutationResult> deleteService(std::string_view name,
                                               std::optional<std::string_view> if_match = {});
  absl::StatusOr<MutationResult> deleteSandbox(std::string_view key,
                                               std::optional<std::string_view> if_match = {});
  absl::StatusOr<MutationResult> deleteRelease(std::string_view service,
                                               std::optional<std::string_view> if_match = {});

  // What one resource and the config version are before a put or delete of
  // it, so that the owner can take back a mutation its store refused
  // without copying the whole State (a copy per mutation made loading
  // 10,000 sandboxes quadratic).
  struct Checkpoint {
    ResourceKind kind = ResourceKind::kService;
    std::string name;
    uint64_t version = 0;
    std::optional<uint64_t> resource_version;
    std::optional<Service> service;
    std::optional<Sandbox> sandbox;
    std::optional<Release> release;
  };
  Checkpoint checkpoint(ResourceKind kind, std::string_view name) const;
  // Puts the resource and the config version back as `c` saw them. Only
  // valid for the one put or delete made after checkpoint().
  void rollback(const Checkpoint& c);

  // Removes every sandbox whose expires_at <= now, as one mutation. With none
  // due it changes nothing: `removed` is empty and change.version is the
  // current version.
  struct Expiry {
    std::vector<std::string> removed;
    Change change;
  };
  Expiry expire(absl::Time now);
  // The earliest expires_at of any sandbox (InfiniteFuture if none), for the
  // owner's timer. Kept across mutations: a put or delete of a sandbox that
  // did not hold the earliest expiry costs O(1), not a walk over every
  // sandbox (the API asks after each mutation).
  absl::Time nextExpiry() const;

  // Starts model().journal afresh (a new epoch, every sandbox's forks
  // indexed, no change listed): for a State restored from a store or put
  // back from a copy, whose journal says nothing of how the model a reader
  // last saw became this one. Made by the constructor and restore().
  void restartJournal();

 private:
  // Lists `service` in model_.journal as changed, at a new revision.
  void journalService(const std::string& service);
  // The sandbox `key` forked `before` and now is `after` (null: gone):
  // re-indexes its forks and lists the services of both.
  void journalSandbox(const std::string& key, const std::vector<std::string>& before,
                      const Sandbox* after);
  static std::vector<std::string> forkedServices(const Sandbox& sandbox);

  absl::Status checkIfMatch(ResourceKind kind, std::string_view name,
                            const std::optional<std::string_view>& if_match) const;
  std::map<std::string, uint64_t>& versionsOf(ResourceKind kind);
  const std::map<std::string, uint64_t>& versionsOf(ResourceKind kind) const;
  MutationResult commitPut(ResourceKind kind, const std::string& name, std::string json,
                           absl::Time expires_at);
  MutationResult commitDelete(ResourceKind kind, const std::string& name);
  // Keeps next_expiry_ true: a sandbox's expiry went (`before`) and/or came
  // (`after`).
  void noteExpiry(std::optional<absl::Time> before, std::optional<absl::Time> after);

  Model model_;
  uint64_t version_ = 0;
  // name -> the config version that last wrote it, per kind.
  std::map<std::string, uint64_t> service_versions_;
  std::map<std::string, uint64_t> sandbox_versions_;
  std::map<std::string, uint64_t> release_versions_;
  mutable std::optional<absl::Time> next_expiry_;  // nextExpiry(); empty: walk again
};

}  // namespace turnout::control_plane
