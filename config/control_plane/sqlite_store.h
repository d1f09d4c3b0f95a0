#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/control_plane/state.h"
#include "config/control_plane/store.h"

struct sqlite3;

namespace turnout::control_plane {

// turnout-cp's embedded store: `<data dir>/turnout-cp.db`, SQLite in WAL mode
// with synchronous=FULL, so a committed mutation survives a crash. One table of
// resources (kind, name, JSON, resource version, expiry) and the config
// version. Used from the one thread that owns the State: load() once at start
// (State::restore), then apply() every Change a mutation returns, before the
// API answers. Errors are Internal (500), or DataLoss for a damaged file.
// If apply() fails the State is ahead of the disk: the owner answers 500 and
// rebuilds it with State::restore(load()), so that what was acknowledged and
// what is stored never differ.
class SqliteStore : public Store {
 public:
  static constexpr char kFileName[] = "turnout-cp.db";

  // Opens (creating the directory and the database if needed) the store in
  // `data_dir`. A database of a newer schema is refused.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> open(const std::string& data_dir);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // Everything stored, resources ordered by kind then name.
  absl::StatusOr<StoredState> load() override;

  // Writes one mutation in one transaction: its puts, its deletes and its config
  // version. A change whose version is not above the stored one is refused
  // (FailedPrecondition) and writes nothing, except an empty change at the
  // stored version, which is a no-op (State::expire with nothing due).
  absl::Status apply(const Change& change) override;

  const std::string& path() const { return path_; }
  std::string describe() const override { return path_; }

 private:
  SqliteStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  absl::Status exec(const char* sql);
  absl::StatusOr<uint64_t> storedVersion();

  sqlite3* db_;
  std::string path_;
};

}  // namespace turnout::control_plane
