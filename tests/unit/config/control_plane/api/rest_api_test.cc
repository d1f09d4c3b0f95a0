#include "config/control_plane/api/rest_api.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "config/control_plane/sqlite_store.h"
#include "tests/support/eventually.h"
#include "tests/support/temp_dir.h"

namespace turnout::control_plane {
namespace {

namespace http = beast::http;

using test::TempDir;

struct Fixture {
  TempDir dir;
  asio::io_context ioc;
  std::unique_ptr<SqliteStore> store;
  std::unique_ptr<RestApi> api;
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  std::vector<uint64_t> changes;  // the version on_change saw, each call

  Fixture() {
    auto opened = SqliteStore::open(dir.path());
    REQUIRE(opened.ok());
    store = std::move(*opened);
    RestApi::Options options;
    options.port = 0;
    auto created = RestApi::create(ioc, *store, options, [this] { return now; });
    INFO(created.status().ToString());
    REQUIRE(created.ok());
    api = std::move(*created);
    api->setOnChange([this](const State& state) { changes.push_back(state.version()); });
    api->start();
  }

  HttpResponse call(http::verb method, const std::string& target, const std::string& body = "",
                    const std::string& if_match = "") {
    HttpRequest req{method, target, 11};
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    if (!if_match.empty()) req.set(http::field::if_match, if_match);
    req.body() = body;
    return api->handle(req);
  }
};

std::string header(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST_CASE("on_change runs after each stored mutation, never after a refused call or a read", "[rest_api]") {
  Fixture f;
  CHECK(f.call(http::verb::put, "/v1/services/reviews", R"({"port": 9080})").status == 201);
  CHECK(f.call(http::verb::get, "/v1/services/reviews").status == 200);
  CHECK(f.call(http::verb::put, "/v1/services/reviews", R"({"port": 0})").status == 400);
  CHECK(f.call(http::verb::put, "/v1/sandboxes/k", R"({"forks": {"nope": ["1.2.3.4:5"]}})").status == 409);
  CHECK(f.call(http::verb::delete_, "/v1/services/reviews", "", "\"9\"").status == 412);
  const HttpResponse put = f.call(http::verb::put, "/v1/services/reviews", R"({"port": 9081})", "\"1\"");
  CHECK(put.status == 200);
  CHECK(put.body == "{\"version\":2,\"etag\":\"\\\"2\\\"\"}\n");
  CHECK(header(put, "ETag") == "\"2\"");
  CHECK(f.call(http::verb::delete_, "/v1/services/reviews").status == 200);
  CHECK(f.changes == std::vector<uint64_t>{1, 2, 3});
}

TEST_CASE("a sandbox expires from the timer: stored, on_change told, one version", "[rest_api]") {
  Fixture f;
  REQUIRE(f.call(http::verb::put, "/v1/services/reviews", R"({"port": 9080})").status == 201);
  REQUIRE(f.call(http::verb::put, "/v1/sandboxes/short", R"({"forks": {"reviews": ["1.2.3.4:5"]}, "ttl": "1s"})")
              .status == 201);
  REQUIRE(f.call(http::verb::put, "/v1/sandboxes/long", R"({"forks": {"reviews": ["1.2.3.4:6"]}, "ttl": "1h"})")
              .status == 201);
  // The timer waits 1 s of real time; by the clock the sandbox is long due.
  f.now += absl::Minutes(5);
  CHECK(test::eventually(f.ioc, [&] { return f.api->state().model().sandboxes.count("short") == 0; },
                         std::chrono::seconds(3)));
  CHECK(f.api->state().model().sandboxes.count("long") == 1);
  CHECK(f.changes == std::vector<uint64_t>{1, 2, 3, 4});
  auto stored = f.store->load();
  REQUIRE(stored.ok());
  CHECK(stored->version == 4);
  CHECK(stored->resources.size() == 2);  // reviews and long
}

TEST_CASE("proxies come from the callback", "[rest_api]") {
  Fixture f;
  CHECK(f.call(http::verb::get, "/v1/proxies").body == "{\"version\":0,\"proxies\":[]}\n");
  f.api->setProxies([] {
    ProxyStatus p;
    p.node_id = "sidecar-1";
    p.dialect = "turnout";
    p.connected_at = absl::FromUnixSeconds(0);
    p.types["routes"] = ProxyTypeStatus{.sent_version = "3", .acked_version = "2", .nack_error = "bad", .pending = false};
    return std::vector<ProxyStatus>{p};
  });
  const std::string body = f.call(http::verb::get, "/v1/proxies").body;
  CHECK(body.find("\"node_id\":\"sidecar-1\"") != std::string::npos);
  CHECK(body.find("\"connected_at\":\"1970-01-01T00:00:00.000Z\"") != std::string::npos);
  CHECK(body.find("\"routes\":{\"sent_version\":\"3\",\"acked_version\":\"2\",\"nack_error\":\"bad\","
                  "\"pending\":false}") != std::string::npos);
}

TEST_CASE("errors name the field path, quoted keys included", "[rest_api]") {
  CHECK(errorResponse(invalidArgument("forks[\"a: b\"][0]", "bad")).body ==
        "{\"error\":\"forks[\\\"a: b\\\"][0]: bad\",\"field\":\"forks[\\\"a: b\\\"][0]\"}\n");
  CHECK(errorResponse(invalidArgument("", "the body is not valid JSON: x")).body ==
        "{\"error\":\"the body is not valid JSON: x\"}\n");
  CHECK(errorResponse(conflictError("x: y")).status == 409);
  CHECK(errorResponse(conflictError("x: y")).body == "{\"error\":\"x: y\"}\n");
}

}  // namespace
}  // namespace turnout::control_plane

namespace turnout::control_plane {
namespace {

// A store shared with another writer, as EtcdStore is: apply() is guarded by
// the revision this replica last saw; the test writes as the other replica.
class SharedStore : public Store {
 public:
  absl::StatusOr<StoredState> load() override {
    seen_ = revision_;
    return stored_;
  }
  absl::Status apply(const Change& change) override {
    if (!fail_.empty()) {
      absl::Status s = fail_.front();
      fail_.erase(fail_.begin());
      if (!s.ok()) return s;
    }
    if (seen_ != revision_) return absl::AbortedError("config changed by another replica; retry");
    write(change);
    seen_ = revision_;
    return absl::OkStatus();
  }
  std::string describe() const override { return "shared"; }
  void watch(ChangeCallback on_change) override { on_change_ = std::move(on_change); }
  void unwatch() override { on_change_ = nullptr; }
  bool isNewer(int64_t revision) const override { return revision < 0 || revision > seen_; }

  // Another replica's mutation, made on the stored state.
  template <typename F>
  void writeAsOther(F mutate) {
    auto other = State::restore(stored_);
    REQUIRE(other.ok());
    auto result = mutate(*other);
    REQUIRE(result.ok());
    write(result->change);
  }
  void failNext(absl::Status s) { fail_.push_back(std::move(s)); }
  int64_t revision() const { return revision_; }
  const StoredState& stored() const { return stored_; }
  const ChangeCallback& watcher() const { return on_change_; }

 private:
  void write(const Change& change) {
    for (const StoredResource& r : change.puts) {
      std::erase_if(stored_.resources, [&](const StoredResource& x) { return x.kind == r.kind && x.name == r.name; });
      stored_.resources.push_back(r);
    }
    for (const auto& [kind, name] : change.deletes) {
      std::erase_if(stored_.resources, [&](const StoredResource& x) { return x.kind == kind && x.name == name; });
    }
    std::stable_sort(stored_.resources.begin(), stored_.resources.end(),
                     [](const StoredResource& a, const StoredResource& b) { return a.kind < b.kind; });
    stored_.version = change.version;
    ++revision_;
  }

  StoredState stored_;
  int64_t revision_ = 1;
  int64_t seen_ = 0;
  std::vector<absl::Status> fail_;
  ChangeCallback on_change_;
};

struct SharedFixture {
  asio::io_context ioc;
  SharedStore store;
  std::unique_ptr<RestApi> api;
  std::vector<uint64_t> changes;

  SharedFixture() {
    RestApi::Options options;
    options.port = 0;
    auto created = RestApi::create(ioc, store, options);
    REQUIRE(created.ok());
    api = std::move(*created);
    api->setOnChange([this](const State& state) { changes.push_back(state.version()); });
    api->start();
  }

  HttpResponse call(http::verb method, const std::string& target, const std::string& body = "",
                    const std::string& if_match = "") {
    HttpRequest req{method, target, 11};
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    if (!if_match.empty()) req.set(http::field::if_match, if_match);
    req.body() = body;
    return api->handle(req);
  }
};

TEST_CASE("shared store: another replica wrote first, reload, run the mutation again", "[rest_api]") {
  SharedFixture f;
  f.store.writeAsOther([](State& s) { return s.putService("ratings", R"({"port": 80})"); });
  CHECK(f.api->state().version() == 0);  // not seen yet
  const HttpResponse put = f.call(http::verb::put, "/v1/services/reviews", R"({"port": 9080})");
  CHECK(put.status == 201);
  CHECK(put.body == "{\"version\":2,\"etag\":\"\\\"2\\\"\"}\n");
  CHECK(f.api->state().model().services.count("ratings") == 1);
  CHECK(f.store.stored().version == 2);
  CHECK(f.changes == std::vector<uint64_t>{1, 2});  // the reload is pushed too

  // A stale If-Match: the conflict reloads, and the retry is 412, not a lost update.
  f.store.writeAsOther([](State& s) { return s.putService("reviews", R"({"port": 9090})", "\"2\""); });
  const HttpResponse stale = f.call(http::verb::put, "/v1/services/reviews", R"({"port": 7070})", "\"2\"");
  CHECK(stale.status == 412);
  CHECK(f.api->state().service("reviews")->value->port == 9090);
  CHECK(f.store.stored().version == 3);
}

TEST_CASE("shared store: a second conflict is 409, the State never runs ahead", "[rest_api]") {
  SharedFixture f;
  REQUIRE(f.call(http::verb::put, "/v1/services/reviews", R"({"port": 9080})").status == 201);
  f.store.failNext(absl::AbortedError("x"));
  f.store.failNext(absl::AbortedError("x"));
  const HttpResponse r = f.call(http::verb::put, "/v1/services/ratings", R"({"port": 80})");
  CHECK(r.status == 409);
  CHECK(r.body.find("config changed by another replica; retry") != std::string::npos);
  CHECK(f.api->state().version() == 1);
  CHECK(f.api->state().model().services.count("ratings") == 0);
  CHECK(f.call(http::verb::put, "/v1/services/ratings", R"({"port": 80})").status == 201);
  CHECK(f.store.stored().version == 2);
}

TEST_CASE("shared store: unreachable is 503 and the State goes back", "[rest_api]") {
  SharedFixture f;
  REQUIRE(f.call(http::verb::put, "/v1/services/reviews", R"({"port": 9080})").status == 201);
  f.store.failNext(absl::UnavailableError("etcd at etcd://x: connect: Connection refused"));
  const HttpResponse r = f.call(http::verb::delete_, "/v1/services/reviews");
  CHECK(r.status == 503);
  CHECK(r.body.find("the store is unavailable; nothing changed: etcd at etcd://x") != std::string::npos);
  CHECK(f.api->state().version() == 1);
  CHECK(f.api->state().model().services.count("reviews") == 1);
  CHECK(f.changes == std::vector<uint64_t>{1});
  CHECK(f.call(http::verb::get, "/healthz").status == 200);
  CHECK(f.call(http::verb::delete_, "/v1/services/reviews").status == 200);
  CHECK(f.store.stored().version == 2);
}

TEST_CASE("shared store: the watch reloads on the io_context, skipping this replica's own writes", "[rest_api]") {
  SharedFixture f;
  REQUIRE(f.store.watcher());
  REQUIRE(f.call(http::verb::put, "/v1/services/reviews", R"({"port": 9080})").status == 201);
  f.store.watcher()(f.store.revision());  // our own write coming back
  f.ioc.poll();
  CHECK(f.changes == std::vector<uint64_t>{1});
  f.store.writeAsOther([](State& s) { return s.putService("ratings", R"({"port": 80})"); });
  f.store.watcher()(f.store.revision());
  CHECK(f.changes == std::vector<uint64_t>{1});  // posted, not run yet
  f.ioc.poll();
  CHECK(f.changes == std::vector<uint64_t>{1, 2});
  CHECK(f.api->state().model().services.count("ratings") == 1);
  f.store.watcher()(-1);  // the watch came back after a break: a full reload
  f.ioc.poll();
  CHECK(f.changes == std::vector<uint64_t>{1, 2, 2});
  f.api->stop();
  CHECK(!f.store.watcher());
}

}  // namespace
}  // namespace turnout::control_plane
