#include "config/control_plane/sqlite_store.h"

#include <sqlite3.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace turnout::control_plane {
namespace {

constexpr int kSchemaVersion = 1;

// Finalizes a statement on every path out.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() const { return stmt_; }
  absl::Status error(std::string_view what) const {
    return absl::InternalError(
        absl::StrCat("sqlite: ", std::string(what), ": ", sqlite3_errmsg(db_)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

std::string_view kindKey(ResourceKind kind) { return resourceKindName(kind); }

int kindOrder(ResourceKind kind) { return static_cast<int>(kind); }

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create the data directory '", data_dir, "': ", ec.message()));
  }
  const std::string path = (std::filesystem::path(data_dir) / kFileName).string();
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                 nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::InternalError(absl::StrCat("cannot open '", path, "': ", msg));
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, path));
  sqlite3_busy_timeout(db, 5000);
  // journal_mode answers with a row; sqlite3_exec ignores it.
  if (auto s = store->exec("PRAGMA journal_mode=WAL"); !s.ok()) return s;
  if (auto s = store->exec("PRAGMA synchronous=FULL"); !s.ok()) return s;

  Statement uv(db, "PRAGMA user_version");
  if (!uv.ok() || sqlite3_step(uv.get()) != SQLITE_ROW) return uv.error("read user_version");
  const int schema = sqlite3_column_int(uv.get(), 0);
  if (schema > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' has schema version ", schema, "; this turnout-cp knows up to ",
                     kSchemaVersion, " (it was written by a newer turnout-cp)"));
  }
  if (schema == 0) {
    if (auto s = store->exec(
            "BEGIN IMMEDIATE;"
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('config_version', 0);"
            "CREATE TABLE IF NOT EXISTS resources ("
            "  kind TEXT NOT NULL, name TEXT NOT NULL, json TEXT NOT NULL,"
            "  resource_version INTEGER NOT NULL,"
            "  expires_at_ns INTEGER,"  // unix nanoseconds; NULL: never
            "  PRIMARY KEY (kind, name));"
            "PRAGMA user_version=1;"
            "COMMIT;");
        !s.ok()) {
      (void)store->exec("ROLLBACK");
      return s;
    }
  }
  return store;
}

SqliteStore::~SqliteStore() { sqlite3_close(db_); }

absl::Status SqliteStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = absl::InternalError(absl::StrCat("sqlite: ", err ? err : "error"));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SqliteStore::storedVersion() {
  Statement st(db_, "SELECT value FROM meta WHERE key = 'config_version'");
  if (!st.ok()) return st.error("read config_version");
  if (sqlite3_step(st.get()) != SQLITE_ROW) {
    return absl::DataLossError(absl::StrCat("'", path_, "' has no config_version"));
  }
  const sqlite3_int64 v = sqlite3_column_int64(st.get(), 0);
  if (v < 0) return absl::DataLossError(absl::StrCat("'", path_, "': negative config_version"));
  return static_cast<uint64_t>(v);
}

absl::StatusOr<StoredState> SqliteStore::load() {
  StoredState out;
  auto version = storedVersion();
  if (!version.ok()) return version.status();
  out.version = *version;
  Statement st(db_,
               "SELECT kind, name, json, resource_version, expires_at_ns FROM resources "
               "ORDER BY kind, name");
  if (!st.ok()) return st.error("read resources");
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    StoredResource r;
    const char* kind = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
    const char* name = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 1));
    const char* json = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 2));
    if (kind == nullptr || name == nullptr || json == nullptr || !resourceKindFromName(kind, r.kind)) {
      return absl::DataLossError(absl::StrCat("'", path_, "': a resource row of unknown kind '",
                                              kind ? kind : "", "'"));
    }
    r.name = name;
    r.json = json;
    const sqlite3_int64 rv = sqlite3_column_int64(st.get(), 3);
    r.resource_version = rv < 0 ? 0 : static_cast<uint64_t>(rv);
    if (sqlite3_column_type(st.get(), 4) != SQLITE_NULL) {
      r.expires_at = absl::FromUnixNanos(sqlite3_column_int64(st.get(), 4));
    }
    out.resources.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return st.error("read resources");
  std::stable_sort(out.resources.begin(), out.resources.end(),
                   [](const StoredResource& a, const StoredResource& b) {
                     return kindOrder(a.kind) < kindOrder(b.kind);
                   });
  return out;
}

absl::Status SqliteStore::apply(const Change& change) {
  if (auto s = exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  auto body = [&]() -> absl::Status {
    auto current = storedVersion();
    if (!current.ok()) return current.status();
    if (change.puts.empty() && change.deletes.empty() && change.version == *current) {
      return absl::OkStatus();
    }
    if (change.version <= *current) {
      return absl::FailedPreconditionError(
          absl::StrCat("store: change at config version ", change.version,
                       " is not newer than the stored version ", *current));
    }
    for (const StoredResource& r : change.puts) {
      Statement st(db_,
                   "INSERT OR REPLACE INTO resources "
                   "(kind, name, json, resource_version, expires_at_ns) VALUES (?, ?, ?, ?, ?)");
      if (!st.ok()) return st.error("write a resource");
      const std::string_view kind = kindKey(r.kind);
      sqlite3_bind_text(st.get(), 1, kind.data(), static_cast<int>(kind.size()), SQLITE_STATIC);
      sqlite3_bind_text(st.get(), 2, r.name.data(), static_cast<int>(r.name.size()),
                        SQLITE_STATIC);
      sqlite3_bind_text(st.get(), 3, r.json.data(), static_cast<int>(r.json.size()),
                        SQLITE_STATIC);
      sqlite3_bind_int64(st.get(), 4, static_cast<sqlite3_int64>(r.resource_version));
      if (r.expires_at == absl::InfiniteFuture()) {
        sqlite3_bind_null(st.get(), 5);
      } else {
        sqlite3_bind_int64(st.get(), 5, absl::ToUnixNanos(r.expires_at));
      }
      if (sqlite3_step(st.get()) != SQLITE_DONE) return st.error("write a resource");
    }
    for (const auto& [kind, name] : change.deletes) {
      Statement st(db_, "DELETE FROM resources WHERE kind = ? AND name = ?");
      if (!st.ok()) return st.error("delete a resource");
      const std::string_view k = kindKey(kind);
      sqlite3_bind_text(st.get(), 1, k.data(), static_cast<int>(k.size()), SQLITE_STATIC);
      sqlite3_bind_text(st.get(), 2, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
      if (sqlite3_step(st.get()) != SQLITE_DONE) return st.error("delete a resource");
    }
    Statement st(db_, "UPDATE meta SET value = ? WHERE key = 'config_version'");
    if (!st.ok()) return st.error("write config_version");
    sqlite3_bind_int64(st.get(), 1, static_cast<sqlite3_int64>(change.version));
    if (sqlite3_step(st.get()) != SQLITE_DONE) return st.error("write config_version");
    return absl::OkStatus();
  };
  absl::Status s = body();
  if (!s.ok()) {
    (void)exec("ROLLBACK");
    return s;
  }
  return exec("COMMIT");
}

}  // namespace turnout::control_plane
