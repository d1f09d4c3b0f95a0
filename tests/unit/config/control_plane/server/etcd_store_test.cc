// The etcd store's pure parts: URLs, records, the guarded transaction and the
// range answer. The store against a real etcd: tests/integration/control_plane_etcd_test.py.

#include "config/control_plane/store/etcd_store.h"

#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"

namespace turnout::control_plane {
namespace {

std::string b64(const std::string& s) { return absl::Base64Escape(s); }

TEST_CASE("etcd URLs: host, port, prefix, and clear errors", "[control_plane][etcd]") {
  auto u = etcd::parseUrl("etcd://127.0.0.1:23790/team/a/");
  REQUIRE(u.ok());
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 23790);
  CHECK(u->prefix == "/team/a");
  u = etcd::parseUrl("etcd://etcd.local");
  REQUIRE(u.ok());
  CHECK(u->port == 2379);
  CHECK(u->prefix == "/turnout-cp");
  u = etcd::parseUrl("etcd://[::1]:2380");
  REQUIRE(u.ok());
  CHECK(u->host == "::1");
  CHECK(u->port == 2380);
  for (const char* bad : {"etcd://", "http://h:1", "etcd://h:0", "etcd://h:x", "etcd://::1:2379",
                          "etcd://[::1", "etcd://h/", "etcd://:2379"}) {
    CAPTURE(bad);
    auto r = etcd::parseUrl(bad);
    REQUIRE(!r.ok());
    CHECK(absl::StrContains(r.status().message(), "etcd://HOST[:PORT][/PREFIX]"));
  }
}

TEST_CASE("a record keeps the resource's version, expiry and JSON", "[control_plane][etcd]") {
  StoredResource r;
  r.kind = ResourceKind::kSandbox;
  r.name = "feat-x";
  r.json = "{\"forks\":{}}\nsecond line";
  r.resource_version = 42;
  r.expires_at = absl::FromUnixSeconds(1'800'000'000);
  auto back = etcd::decodeRecord(r.kind, r.name, etcd::encodeRecord(r));
  REQUIRE(back.ok());
  CHECK(*back == r);
  r.expires_at = absl::InfiniteFuture();
  back = etcd::decodeRecord(r.kind, r.name, etcd::encodeRecord(r));
  REQUIRE(back.ok());
  CHECK(*back == r);
  for (const char* bad : {"no newline", "x -\n{}", "1\n{}", "1 soon\n{}"}) {
    CAPTURE(bad);
    auto d = etcd::decodeRecord(ResourceKind::kService, "s", bad);
    REQUIRE(!d.ok());
    CHECK(d.status().code() == absl::StatusCode::kDataLoss);
    CHECK(absl::StrContains(d.status().message(), "stored service 's'"));
  }
}

TEST_CASE("a change is one transaction guarded by the version it follows", "[control_plane][etcd]") {
  Change first;
  first.version = 1;
  first.puts.push_back({ResourceKind::kService, "reviews", "{}", 1, absl::InfiniteFuture()});
  const std::string t1 = etcd::txnRequest("/p", first);
  // Version 0 is no version key at all.
  CHECK(absl::StrContains(t1, "\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":\"0\""));
  CHECK(absl::StrContains(t1, b64("/p/version")));
  CHECK(absl::StrContains(t1, b64("/p/r/service/reviews")));
  CHECK(absl::StrContains(t1, b64("1")));

  Change later;
  later.version = 8;
  later.deletes.emplace_back(ResourceKind::kSandbox, "feat-x");
  const std::string t8 = etcd::txnRequest("/p", later);
  CHECK(absl::StrContains(t8, "\"target\":\"VALUE\",\"result\":\"EQUAL\",\"value\":\"" + b64("7") + "\""));
  CHECK(absl::StrContains(t8, "request_delete_range"));
  CHECK(absl::StrContains(t8, b64("/p/r/sandbox/feat-x")));
  CHECK(absl::StrContains(t8, "\"value\":\"" + b64("8") + "\"}}]}"));
}

TEST_CASE("a range answer becomes the stored state; foreign or broken keys are handled",
          "[control_plane][etcd]") {
  StoredResource svc{ResourceKind::kService, "reviews", "{\"port\":1}", 3, absl::InfiniteFuture()};
  StoredResource sb{ResourceKind::kSandbox, "k", "{}", 4, absl::FromUnixSeconds(5)};
  auto kv = [](const std::string& k, const std::string& v) {
    return "{\"key\":\"" + b64(k) + "\",\"value\":\"" + b64(v) + "\",\"mod_revision\":\"9\"}";
  };
  const std::string json = "{\"header\":{\"revision\":\"17\"},\"kvs\":[" +
                           kv("/p/r/sandbox/k", etcd::encodeRecord(sb)) + "," +
                           kv("/p/r/service/reviews", etcd::encodeRecord(svc)) + "," +
                           kv("/p/version", "4") + "," + kv("/p/other", "x") + "],\"count\":\"4\"}";
  int64_t revision = 0;
  auto st = etcd::parseRange("/p", json, &revision);
  REQUIRE(st.ok());
  CHECK(revision == 17);
  CHECK(st->version == 4);
  REQUIRE(st->resources.size() == 2);
  CHECK(st->resources[0] == svc);  // by kind, then name
  CHECK(st->resources[1] == sb);

  auto empty = etcd::parseRange("/p", "{\"header\":{\"revision\":\"1\"}}", &revision);
  REQUIRE(empty.ok());
  CHECK(empty->version == 0);
  CHECK(empty->resources.empty());

  auto bad_kind = etcd::parseRange("/p", "{\"kvs\":[" + kv("/p/r/widget/x", "1 -\n{}") + "]}", &revision);
  REQUIRE(!bad_kind.ok());
  CHECK(bad_kind.status().code() == absl::StatusCode::kDataLoss);
  auto bad_version = etcd::parseRange("/p", "{\"kvs\":[" + kv("/p/version", "x") + "]}", &revision);
  REQUIRE(!bad_version.ok());
  CHECK(!etcd::parseRange("/p", "not json", &revision).ok());
}

}  // namespace
}  // namespace turnout::control_plane
