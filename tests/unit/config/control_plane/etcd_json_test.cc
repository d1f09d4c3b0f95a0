#include "config/control_plane/etcd_json.h"

#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace turnout::control_plane {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

const absl::Time kNow = absl::FromUnixNanos(1'700'000'000'123'456'789);

std::string b64(const std::string& s) { return absl::Base64Escape(s); }
std::string unb64(const std::string& s) {
  std::string out;
  REQUIRE(absl::Base64Unescape(s, &out));
  return out;
}

Struct parse(const std::string& json) {
  Value v;
  auto s = google::protobuf::util::JsonStringToMessage(json, &v);
  INFO(json);
  REQUIRE(s.ok());
  REQUIRE(v.kind_case() == Value::kStructValue);
  return v.struct_value();
}

const Value& at(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  INFO(name);
  REQUIRE(it != s.fields().end());
  return it->second;
}

// A fake etcd: the keys a txn request writes, applied to `kv` (key -> value,
// mod_revision) at `revision`, as etcd does when the compare holds.
struct FakeEtcd {
  std::map<std::string, std::pair<std::string, int64_t>> kv;
  int64_t revision = 1;

  int64_t modRevision(const std::string& key) const {
    auto it = kv.find(key);
    return it == kv.end() ? 0 : it->second.second;
  }

  // The txn answer's body.
  std::string txn(const std::string& request) {
    Struct txn = parse(request);
    const Struct& compare = at(txn, "compare").list_value().values(0).struct_value();
    REQUIRE(at(compare, "target").string_value() == "MOD");
    REQUIRE(at(compare, "result").string_value() == "EQUAL");
    const std::string key = unb64(at(compare, "key").string_value());
    const int64_t guard = std::stoll(at(compare, "mod_revision").string_value());
    if (modRevision(key) != guard) {
      return absl::StrCat("{\"header\":{\"revision\":\"", revision, "\"}}");
    }
    ++revision;
    for (const Value& op : at(txn, "success").list_value().values()) {
      const Struct& o = op.struct_value();
      if (o.fields().count("request_put")) {
        const Struct& put = at(o, "request_put").struct_value();
        kv[unb64(at(put, "key").string_value())] = {unb64(at(put, "value").string_value()),
                                                    revision};
      } else {
        const Struct& del = at(o, "request_delete_range").struct_value();
        REQUIRE(!del.fields().count("range_end"));
        kv.erase(unb64(at(del, "key").string_value()));
      }
    }
    return absl::StrCat("{\"header\":{\"revision\":\"", revision,
                        "\"},\"succeeded\":true,\"responses\":[]}");
  }

  // The range answer's body for everything under `prefix`.
  std::string range(const std::string& prefix) const {
    std::string kvs;
    for (const auto& [key, value] : kv) {
      if (key.compare(0, prefix.size() + 1, prefix + "/") != 0) continue;
      if (!kvs.empty()) kvs += ',';
      absl::StrAppend(&kvs, "{\"key\":\"", b64(key),
                      "\",\"create_revision\":\"1\",\"mod_revision\":\"", value.second,
                      "\",\"version\":\"1\",\"value\":\"", b64(value.first), "\"}");
    }
    return absl::StrCat("{\"header\":{\"cluster_id\":\"1\",\"revision\":\"", revision,
                        "\"},\"kvs\":[", kvs, "],\"count\":\"", kv.size(), "\"}");
  }
};

TEST_CASE("etcd URLs: host, port, prefix and every kind of bad one", "[control_plane][etcd]") {
  auto e = parseEtcdUrl("etcd://127.0.0.1:2379");
  REQUIRE(e.ok());
  CHECK(e->host == "127.0.0.1");
  CHECK(e->port == 2379);
  CHECK(e->prefix == "/turnout-cp");
  CHECK(e->url() == "etcd://127.0.0.1:2379/turnout-cp");

  e = parseEtcdUrl("etcd://etcd.local:12379/shop/cp/");
  REQUIRE(e.ok());
  CHECK(e->host == "etcd.local");
  CHECK(e->prefix == "/shop/cp");

  e = parseEtcdUrl("etcd://[::1]:2379/x");
  REQUIRE(e.ok());
  CHECK(e->host == "::1");
  CHECK(e->url() == "etcd://[::1]:2379/x");

  for (const auto& [url, why] : std::vector<std::pair<std::string, std::string>>{
           {"http://127.0.0.1:2379", "not an etcd:// URL"},
           {"etcd://127.0.0.1", "no port"},
           {"etcd://:2379", "no host"},
           {"etcd://127.0.0.1:", "1-65535"},
           {"etcd://127.0.0.1:0", "1-65535"},
           {"etcd://127.0.0.1:65536", "1-65535"},
           {"etcd://127.0.0.1:+80", "1-65535"},
           {"etcd://::1:2379", "brackets"},
           {"etcd://[::1:2379", "unterminated IPv6"},
           {"etcd://a b:2379", "host has a character"},
           {"etcd://u:p@h:2379", "user information"},
           {"etcd://h:2379/", "prefix is empty"},
           {"etcd://h:2379/a//b", "empty segment"},
           {"etcd://h:2379/a?b", "prefix may hold only"},
       }) {
    INFO(url);
    auto bad = parseEtcdUrl(url);
    REQUIRE(!bad.ok());
    CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
    const std::string message(bad.status().message());
    CHECK(message.find("--store '" + url + "': ") == 0);
    CHECK(message.find(why) != std::string::npos);
  }
}

TEST_CASE("etcd key layout", "[control_plane][etcd]") {
  CHECK(etcdVersionKey("/turnout-cp") == "/turnout-cp/version");
  CHECK(etcdResourceKey("/turnout-cp", ResourceKind::kSandbox, "feat-x") ==
        "/turnout-cp/r/sandbox/feat-x");
  CHECK(etcdResourceKey("/p", ResourceKind::kService, "reviews") == "/p/r/service/reviews");
  CHECK(etcdResourceKey("/p", ResourceKind::kRelease, "reviews") == "/p/r/release/reviews");
  CHECK(etcdPrefixEnd("/p/") == "/p0");
  CHECK(etcdPrefixEnd(std::string("a\xff", 2)) == "b");
  // The range and watch cover <prefix>/ and nothing else (not /turnout-cp2/...).
  Struct range = parse(etcdRangeRequest("/turnout-cp"));
  CHECK(unb64(at(range, "key").string_value()) == "/turnout-cp/");
  CHECK(unb64(at(range, "range_end").string_value()) == "/turnout-cp0");
  Struct watch = parse(etcdWatchRequest("/turnout-cp", 42));
  const Struct& create = at(watch, "create_request").struct_value();
  CHECK(unb64(at(create, "key").string_value()) == "/turnout-cp/");
  CHECK(unb64(at(create, "range_end").string_value()) == "/turnout-cp0");
  CHECK(at(create, "start_revision").string_value() == "42");
}

TEST_CASE("etcd records keep the JSON, the resource version and the expiry exactly",
          "[control_plane][etcd]") {
  StoredResource r{ResourceKind::kSandbox, "feat-x", R"({"key":"feat-x","note":"a \"q\"\n"})", 7,
                   kNow + absl::Hours(1)};
  const std::string value = encodeEtcdRecord(r);
  auto back = decodeEtcdRecord("/p/r/sandbox/feat-x", ResourceKind::kSandbox, "feat-x", value);
  REQUIRE(back.ok());
  CHECK(*back == r);

  StoredResource service{ResourceKind::kService, "reviews", R"({"name":"reviews"})", 3,
                         absl::InfiniteFuture()};
  CHECK(encodeEtcdRecord(service).find("expires_at_ns") == std::string::npos);
  back = decodeEtcdRecord("k", ResourceKind::kService, "reviews", encodeEtcdRecord(service));
  REQUIRE(back.ok());
  CHECK(*back == service);

  for (const std::string bad :
       {"not json", "[]", R"({"resource_version":"1"})", R"({"json":"{}"})",
        R"({"json":"{}","resource_version":"0"})", R"({"json":"{}","resource_version":"x"})",
        R"({"json":"{}","resource_version":"1","expires_at_ns":"soon"})",
        R"({"json":"{}","resource_version":"1","extra":1})"}) {
    INFO(bad);
    auto damaged = decodeEtcdRecord("/p/r/service/a", ResourceKind::kService, "a", bad);
    REQUIRE(!damaged.ok());
    CHECK(damaged.status().code() == absl::StatusCode::kDataLoss);
    CHECK(std::string(damaged.status().message()).find("etcd key /p/r/service/a: ") == 0);
  }
}

TEST_CASE("a state written through txns comes back whole from a range", "[control_plane][etcd]") {
  FakeEtcd etcd;
  const std::string prefix = "/turnout-cp";
  // Another prefix in the same etcd is not ours.
  etcd.kv["/turnout-cp2/version"] = {"9", 1};
  etcd.kv["/other"] = {"x", 1};

  auto empty = parseEtcdRange(prefix, etcd.range(prefix));
  REQUIRE(empty.ok());
  CHECK(empty->state.version == 0);
  CHECK(empty->state.resources.empty());
  CHECK(empty->version_mod_revision == 0);

  State state;
  int64_t guard = 0;
  auto commit = [&](const absl::StatusOr<MutationResult>& result) {
    INFO(result.status().ToString());
    REQUIRE(result.ok());
    auto answer = parseEtcdTxn(etcd.txn(etcdTxnRequest(prefix, result->change, guard)));
    REQUIRE(answer.ok());
    REQUIRE(answer->succeeded);
    guard = answer->revision;
  };
  commit(state.putService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.5:9080"]})"));
  commit(state.putService("ratings", R"({"port": 80})"));
  commit(state.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}, "ttl": "1h"})",
                          kNow));
  commit(state.putRelease("reviews",
                          R"({"versions": {"v1": ["10.0.1.1:9080"], "v2": ["10.0.2.1:9080"]},
                                         "weights": {"v1": 90, "v2": 10}})"));
  commit(state.deleteService("ratings"));

  auto loaded = parseEtcdRange(prefix, etcd.range(prefix));
  INFO(loaded.status().ToString());
  REQUIRE(loaded.ok());
  CHECK(loaded->state.version == 5);
  CHECK(loaded->state.resources ==
        state.stored().resources);  // services, then sandboxes, then releases
  CHECK(loaded->revision == etcd.revision);
  CHECK(loaded->version_mod_revision == guard);
  auto restored = State::restore(loaded->state);
  REQUIRE(restored.ok());
  CHECK(restored->stored().resources == state.stored().resources);

  // A txn guarded by a stale mod_revision (another replica wrote) writes nothing.
  State other = *restored;
  auto late = other.putService("late", R"({"port": 1})");
  REQUIRE(late.ok());
  auto conflict = parseEtcdTxn(etcd.txn(etcdTxnRequest(prefix, late->change, guard - 1)));
  REQUIRE(conflict.ok());
  CHECK(!conflict->succeeded);
  CHECK(parseEtcdRange(prefix, etcd.range(prefix))->state.version == 5);
}

TEST_CASE("a txn names each key once: a put and a delete of one key is the delete",
          "[control_plane][etcd]") {
  Change change;
  change.version = 4;
  change.puts.push_back({ResourceKind::kSandbox, "a", "{}", 4, absl::InfiniteFuture()});
  change.deletes.emplace_back(ResourceKind::kSandbox, "a");
  change.deletes.emplace_back(ResourceKind::kSandbox, "b");
  Struct txn = parse(etcdTxnRequest("/p", change, 12));
  CHECK(
      at(at(txn, "compare").list_value().values(0).struct_value(), "mod_revision").string_value() ==
      "12");
  const auto& ops = at(txn, "success").list_value().values();
  REQUIRE(ops.size() == 3);
  CHECK(ops[0].struct_value().fields().count("request_delete_range") == 1);
  CHECK(ops[1].struct_value().fields().count("request_delete_range") == 1);
  const Struct& version = at(ops[2].struct_value(), "request_put").struct_value();
  CHECK(unb64(at(version, "key").string_value()) == "/p/version");
  CHECK(unb64(at(version, "value").string_value()) == "4");
}

TEST_CASE("damaged etcd contents and error answers are errors, not state",
          "[control_plane][etcd]") {
  const std::string prefix = "/p";
  auto range = [&](const std::string& key, const std::string& value) {
    return absl::StrCat(R"({"header":{"revision":"5"},"kvs":[{"key":")", b64(key),
                        R"(","mod_revision":"3","value":")", b64(value), R"("}]})");
  };
  auto r = parseEtcdRange(prefix, range("/p/version", "x"));
  CHECK(r.status().code() == absl::StatusCode::kDataLoss);
  r = parseEtcdRange(prefix, range("/p/junk", "1"));
  CHECK(r.status().code() == absl::StatusCode::kDataLoss);
  CHECK(std::string(r.status().message()).find("/p/junk") != std::string::npos);
  r = parseEtcdRange(prefix, range("/p/r/widget/a", "{}"));
  CHECK(r.status().code() == absl::StatusCode::kDataLoss);
  r = parseEtcdRange(prefix, range("/p/r/service/", "{}"));
  CHECK(r.status().code() == absl::StatusCode::kDataLoss);
  r = parseEtcdRange(prefix, range("/p/r/service/a", R"({"json":"{}","resource_version":"1"})"));
  CHECK(r.status().code() == absl::StatusCode::kDataLoss);  // no version key
  r = parseEtcdRange(prefix, "<html>");
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  r = parseEtcdRange(prefix, R"({"error":"etcdserver: request timed out","code":14})");
  CHECK(r.status().code() == absl::StatusCode::kUnavailable);
  CHECK(std::string(r.status().message()).find("request timed out") != std::string::npos);
  auto t = parseEtcdTxn(R"({"error":"etcdserver: duplicate key given in txn request",)"
                        R"("message":"etcdserver: duplicate key given in txn request","code":3})");
  CHECK(t.status().code() == absl::StatusCode::kUnavailable);
  CHECK(etcdErrorMessage("plain text\n") == "plain text");
}

TEST_CASE("etcd watch messages", "[control_plane][etcd]") {
  auto m = parseEtcdWatchMessage(R"({"result":{"header":{"revision":"2"},"created":true}})");
  REQUIRE(m.ok());
  CHECK(m->created);
  CHECK(m->last_event_revision == 0);
  m = parseEtcdWatchMessage(
      R"({"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"eA==","mod_revision":"8"}},)"
      R"({"type":"DELETE","kv":{"key":"eQ==","mod_revision":"9"}}]}})");
  REQUIRE(m.ok());
  CHECK(!m->created);
  CHECK(m->revision == 9);
  CHECK(m->last_event_revision == 9);
  m = parseEtcdWatchMessage(
      R"({"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"5","cancel_reason":"compacted"}})");
  REQUIRE(m.ok());
  CHECK(m->canceled);
  CHECK(m->compact_revision == 5);
  CHECK(m->reason == "compacted");
  CHECK(
      parseEtcdWatchMessage(R"({"error":{"grpc_code":14,"message":"closing"}})").status().code() ==
      absl::StatusCode::kUnavailable);
  CHECK(!parseEtcdWatchMessage("{").ok());
}

TEST_CASE("HTTP/1.1 answers: head, Content-Length, chunked, fed piece by piece",
          "[control_plane][etcd]") {
  auto a = parseHttpAnswer(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  REQUIRE(a.ok());
  CHECK(a->status == 200);
  CHECK(a->body == "{}");
  a = parseHttpAnswer(
      "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n");
  REQUIRE(a.ok());
  CHECK(a->status == 503);
  CHECK(a->body == "abcde");
  CHECK(!parseHttpAnswer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}").ok());
  CHECK(!parseHttpAnswer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab").ok());
  CHECK(!parseHttpAnswer("garbage\r\n\r\n").ok());
  CHECK(!parseHttpAnswer("HTTP/1.1 200 OK\r\n").ok());

  auto head = parseHttpHead("HTTP/1.1 200 OK\r\nTransfer");
  REQUIRE(head.ok());
  CHECK(!head->has_value());

  // A watch stream, one byte at a time: the same lines come out.
  const std::string stream =
      "19\r\n{\"result\":{\"created\":1}}\n\r\n5\r\nab\ncd\r\n3\r\ne\nf\r\n0\r\n\r\n";
  ChunkedDecoder decoder;
  std::string out;
  for (char c : stream) REQUIRE(decoder.feed(std::string_view(&c, 1), out).ok());
  CHECK(decoder.done());
  CHECK(out == "{\"result\":{\"created\":1}}\nab\ncde\nf");
  ChunkedDecoder bad;
  CHECK(!bad.feed("zz\r\n", out).ok());
  ChunkedDecoder no_crlf;
  CHECK(!no_crlf.feed("1\r\naXY\r\n", out).ok());
}

}  // namespace
}  // namespace turnout::control_plane
