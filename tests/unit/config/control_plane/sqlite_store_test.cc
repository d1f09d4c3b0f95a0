#include "config/control_plane/sqlite_store.h"

#include <catch2/catch.hpp>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/support/temp_dir.h"

namespace turnout::control_plane {
namespace {

const absl::Time kNow = absl::FromUnixNanos(1'700'000'000'123'456'789);

using test::TempDir;

// Applies a mutation to the state and the store, as the API server does.
template <typename R>
void commit(SqliteStore& store, const R& result) {
  INFO(result.status().ToString());
  REQUIRE(result.ok());
  auto s = store.apply(result->change);
  INFO(s.ToString());
  REQUIRE(s.ok());
}

TEST_CASE("the store gives back the same state and version after a reopen", "[control_plane]") {
  TempDir dir;
  const std::string data_dir = dir.path() + "/data";  // created by open()
  State state;
  {
    auto store = SqliteStore::open(data_dir);
    REQUIRE(store.ok());
    CHECK((*store)->path() == data_dir + "/turnout-cp.db");
    auto empty = (*store)->load();
    REQUIRE(empty.ok());
    CHECK(empty->version == 0);
    CHECK(empty->resources.empty());

    SqliteStore& s = **store;
    commit(s, state.putService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.5:9080"]})"));
    commit(s, state.putService("ratings", R"({"port": 80, "namespace": "shop"})"));
    commit(s, state.putService("details", R"({"port": 80})"));
    commit(s, state.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]},
                                             "labels": {"team": "a"}, "ttl": "24h"})",
                               kNow));
    commit(s, state.putSandbox("feat-y", R"({"forks": {"ratings": ["10.0.0.8:80"]}})", kNow));
    commit(s, state.putSandbox("gone", R"({"forks": {"ratings": ["10.0.0.8:80"]}})", kNow));
    commit(s, state.putRelease("reviews", R"({"versions": {"v1": ["10.0.1.1:9080"],
        "v2": ["10.0.2.1:9080"]}, "weights": {"v1": 90, "v2": 10}})"));
    commit(s, state.deleteSandbox("gone"));
    commit(s, state.deleteService("details"));
    commit(s, state.putService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.6:9080"]})"));
    CHECK(state.version() == 10);
  }
  auto store = SqliteStore::open(data_dir);
  REQUIRE(store.ok());
  auto loaded = (*store)->load();
  REQUIRE(loaded.ok());
  CHECK(loaded->version == 10);
  auto restored = State::restore(*loaded);
  INFO(restored.status().ToString());
  REQUIRE(restored.ok());
  CHECK(restored->version() == state.version());
  CHECK(restored->model() == state.model());
  // Expiry to the nanosecond, ETags, and the stored rows themselves.
  CHECK(restored->model().sandboxes.at("feat-x").expires_at == kNow + absl::Hours(24));
  CHECK(restored->etag(ResourceKind::kService, "reviews") == "\"10\"");
  CHECK(restored->etag(ResourceKind::kSandbox, "feat-x") == "\"4\"");
  CHECK(restored->etag(ResourceKind::kRelease, "reviews") == "\"7\"");
  const StoredState want = state.stored();
  REQUIRE(loaded->resources.size() == want.resources.size());
  for (size_t i = 0; i < want.resources.size(); ++i) {
    CAPTURE(i);
    CHECK(loaded->resources[i] == want.resources[i]);
  }
}

TEST_CASE("expiry is stored as one transaction", "[control_plane]") {
  TempDir dir;
  auto store = SqliteStore::open(dir.path());
  REQUIRE(store.ok());
  State state;
  commit(**store, state.putService("reviews", R"({"port": 9080})"));
  commit(**store, state.putSandbox("a", R"({"forks": {"reviews": ["10.0.0.7:1"]}, "ttl": "1h"})",
                                   kNow));
  commit(**store, state.putSandbox("b", R"({"forks": {"reviews": ["10.0.0.7:1"]}, "ttl": "1h"})",
                                   kNow));
  // Nothing due: an empty change at the current version is a no-op.
  auto none = state.expire(kNow);
  REQUIRE(none.removed.empty());
  CHECK((*store)->apply(none.change).ok());
  auto due = state.expire(kNow + absl::Hours(1));
  CHECK(due.removed.size() == 2);
  REQUIRE((*store)->apply(due.change).ok());
  auto loaded = (*store)->load();
  REQUIRE(loaded.ok());
  CHECK(loaded->version == 4);
  CHECK(loaded->resources.size() == 1);
}

TEST_CASE("a change that is not newer than the store is refused and writes nothing",
          "[control_plane]") {
  TempDir dir;
  auto store = SqliteStore::open(dir.path());
  REQUIRE(store.ok());
  State state;
  auto a = state.putService("reviews", R"({"port": 9080})");
  REQUIRE(a.ok());
  REQUIRE((*store)->apply(a->change).ok());
  Change stale = a->change;
  stale.puts[0].json = R"({"port": 1})";
  auto s = (*store)->apply(stale);
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  auto loaded = (*store)->load();
  REQUIRE(loaded.ok());
  CHECK(loaded->version == 1);
  REQUIRE(loaded->resources.size() == 1);
  CHECK(loaded->resources[0].json == a->change.puts[0].json);
}

TEST_CASE("a damaged row is reported when the state is restored", "[control_plane]") {
  TempDir dir;
  {
    auto store = SqliteStore::open(dir.path());
    REQUIRE(store.ok());
    State state;
    commit(**store, state.putService("reviews", R"({"port": 9080})"));
  }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((dir.path() + "/turnout-cp.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "UPDATE resources SET json = '{\"port\": \"x\"}'", nullptr, nullptr,
                       nullptr) == SQLITE_OK);
  sqlite3_close(db);
  auto store = SqliteStore::open(dir.path());
  REQUIRE(store.ok());
  auto loaded = (*store)->load();
  REQUIRE(loaded.ok());
  auto restored = State::restore(*loaded);
  CHECK(restored.status().code() == absl::StatusCode::kDataLoss);
  CHECK_THAT(std::string(restored.status().message()),
             Catch::Contains("stored service 'reviews': port: must be an integer"));
}

TEST_CASE("a database of a newer schema is refused", "[control_plane]") {
  TempDir dir;
  { REQUIRE(SqliteStore::open(dir.path()).ok()); }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((dir.path() + "/turnout-cp.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "PRAGMA user_version=2", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  auto store = SqliteStore::open(dir.path());
  CHECK(store.status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("an unusable data directory is an error, not a crash", "[control_plane]") {
  TempDir dir;
  const std::string file = dir.path() + "/plain-file";
  FILE* f = fopen(file.c_str(), "w");
  REQUIRE(f != nullptr);
  fclose(f);
  auto store = SqliteStore::open(file + "/sub");
  CHECK_FALSE(store.ok());
  CHECK(store.status().code() == absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace turnout::control_plane
