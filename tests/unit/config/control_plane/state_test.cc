#include "config/control_plane/state.h"

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>

namespace turnout::control_plane {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

const char* kReviews = R"({"port": 9080, "endpoints": ["10.0.0.5:9080"]})";
const char* kFeatX = R"({"forks": {"reviews": ["10.0.0.7:9080"]}, "ttl": "24h"})";

State withReviews() {
  State s;
  REQUIRE(s.putService("reviews", kReviews).ok());
  return s;
}

TEST_CASE("every mutation bumps the config version by one and returns it", "[control_plane]") {
  State s;
  CHECK(s.version() == 0);
  auto a = s.putService("reviews", kReviews);
  REQUIRE(a.ok());
  CHECK(a->version == 1);
  CHECK(a->etag == "\"1\"");
  auto b = s.putSandbox("feat-x", kFeatX, kNow);
  REQUIRE(b.ok());
  CHECK(b->version == 2);
  auto c = s.putService("reviews", R"({"port": 9081})");
  REQUIRE(c.ok());
  CHECK(c->version == 3);
  CHECK(c->etag == "\"3\"");
  auto d = s.deleteSandbox("feat-x");
  REQUIRE(d.ok());
  CHECK(d->version == 4);
  CHECK(d->etag.empty());
  CHECK(s.version() == 4);
  CHECK(s.model().services.at("reviews").port == 9081);
}

TEST_CASE("a mutation's change lists what the store must write", "[control_plane]") {
  State s;
  auto a = s.putService("reviews", kReviews);
  REQUIRE(a.ok());
  CHECK(a->change.version == 1);
  REQUIRE(a->change.puts.size() == 1);
  CHECK(a->change.puts[0].kind == ResourceKind::kService);
  CHECK(a->change.puts[0].name == "reviews");
  CHECK(a->change.puts[0].resource_version == 1);
  CHECK(a->change.puts[0].json == toJson(s.model().services.at("reviews")));
  CHECK(a->change.deletes.empty());
  auto b = s.putSandbox("feat-x", kFeatX, kNow);
  REQUIRE(b.ok());
  CHECK(b->change.puts[0].expires_at == kNow + absl::Hours(24));
  auto d = s.deleteSandbox("feat-x");
  REQUIRE(d.ok());
  CHECK(d->change.puts.empty());
  REQUIRE(d->change.deletes.size() == 1);
  CHECK(d->change.deletes[0] == std::make_pair(ResourceKind::kSandbox, std::string("feat-x")));
}

TEST_CASE("a failed mutation changes nothing", "[control_plane]") {
  State s = withReviews();
  const Model before = s.model();
  CHECK(httpStatusFor(s.putService("reviews", R"({"port": 0})").status()) == 400);
  CHECK(httpStatusFor(s.putSandbox("feat-x", R"({"forks": {"nope": ["10.0.0.1:1"]}})", kNow)
                          .status()) == 409);
  CHECK(httpStatusFor(s.deleteSandbox("nope").status()) == 404);
  CHECK(httpStatusFor(s.putService("reviews", kReviews, "\"7\"").status()) == 412);
  CHECK(s.version() == 1);
  CHECK(s.model() == before);
}

TEST_CASE("reads return the resource and its ETag, or NotFound", "[control_plane]") {
  State s = withReviews();
  auto svc = s.service("reviews");
  REQUIRE(svc.ok());
  CHECK(svc->value->port == 9080);
  CHECK(svc->etag == "\"1\"");
  CHECK(s.etag(ResourceKind::kService, "reviews") == "\"1\"");
  CHECK(s.etag(ResourceKind::kService, "nope").empty());
  CHECK(httpStatusFor(s.service("nope").status()) == 404);
  CHECK(httpStatusFor(s.sandbox("nope").status()) == 404);
  CHECK(httpStatusFor(s.release("reviews").status()) == 404);
}

TEST_CASE("If-Match: the current ETag passes, a stale or absent one fails with 412",
          "[control_plane]") {
  State s = withReviews();
  // Stale.
  auto stale = s.putService("reviews", R"({"port": 1})", "\"0\"");
  CHECK(httpStatusFor(stale.status()) == 412);
  CHECK_THAT(std::string(stale.status().message()),
             Catch::Contains("service 'reviews' is at ETag \"1\", not \"0\""));
  // Current, alone or in a list, and *.
  auto ok = s.putService("reviews", R"({"port": 2})", "\"1\"");
  REQUIRE(ok.ok());
  CHECK(s.putService("reviews", R"({"port": 3})", "\"9\", \"2\"").ok());
  CHECK(s.putService("reviews", R"({"port": 4})", "*").ok());
  // Weak tags never match (RFC 9110 strong comparison).
  CHECK(httpStatusFor(s.putService("reviews", R"({"port": 5})", "W/\"4\"").status()) == 412);
  // A resource that does not exist fails any If-Match, * included.
  CHECK(httpStatusFor(s.putService("ratings", R"({"port": 5})", "*").status()) == 412);
  CHECK(httpStatusFor(s.deleteService("ratings", "*").status()) == 412);
  CHECK(httpStatusFor(s.deleteService("ratings").status()) == 404);
  // Deletes check it too.
  CHECK(httpStatusFor(s.deleteService("reviews", "\"1\"").status()) == 412);
  CHECK(s.deleteService("reviews", "\"4\"").ok());
  // A re-created resource gets a new ETag: the old one does not match.
  REQUIRE(s.putService("reviews", kReviews).ok());
  CHECK(httpStatusFor(s.putService("reviews", kReviews, "\"4\"").status()) == 412);
}

TEST_CASE("If-Match applies to sandboxes and releases", "[control_plane]") {
  State s = withReviews();
  auto sb = s.putSandbox("feat-x", kFeatX, kNow);
  REQUIRE(sb.ok());
  CHECK(httpStatusFor(s.putSandbox("feat-x", kFeatX, kNow, "\"1\"").status()) == 412);
  CHECK(s.putSandbox("feat-x", kFeatX, kNow, sb->etag).ok());
  const char* rel = R"({"versions": {"v1": ["10.0.0.1:1"]}, "weights": {"v1": 100}})";
  auto r = s.putRelease("reviews", rel);
  REQUIRE(r.ok());
  CHECK(httpStatusFor(s.putRelease("reviews", rel, "\"1\"").status()) == 412);
  CHECK(httpStatusFor(s.deleteRelease("reviews", "\"1\"").status()) == 412);
  CHECK(s.deleteRelease("reviews", r->etag).ok());
  CHECK(httpStatusFor(s.deleteRelease("reviews").status()) == 404);
}

TEST_CASE("a sandbox must fork known services, a forked service cannot be deleted",
          "[control_plane]") {
  State s = withReviews();
  auto bad = s.putSandbox("feat-x", R"({"forks": {"ratings": ["10.0.0.7:1"]}})", kNow);
  CHECK(httpStatusFor(bad.status()) == 409);
  REQUIRE(s.putSandbox("feat-x", kFeatX, kNow).ok());
  REQUIRE(s.putSandbox("feat-y", kFeatX, kNow).ok());
  auto del = s.deleteService("reviews");
  CHECK(httpStatusFor(del.status()) == 409);
  CHECK_THAT(std::string(del.status().message()),
             Catch::Contains("forked by sandboxes 'feat-x', 'feat-y'"));
  REQUIRE(s.deleteSandbox("feat-x").ok());
  REQUIRE(s.deleteSandbox("feat-y").ok());
  CHECK(s.deleteService("reviews").ok());
}

TEST_CASE("a release needs its service, and keeps the service from being deleted",
          "[control_plane]") {
  State s;
  const char* rel = R"({"versions": {"v1": ["10.0.0.1:1"], "v2": ["10.0.0.2:1"]},
                        "weights": {"v1": 90, "v2": 10}})";
  CHECK(httpStatusFor(s.putRelease("reviews", rel).status()) == 409);
  REQUIRE(s.putService("reviews", kReviews).ok());
  REQUIRE(s.putRelease("reviews", rel).ok());
  CHECK(httpStatusFor(s.deleteService("reviews").status()) == 409);
  // A sandbox named like a version of a service it forks would share its cluster.
  CHECK(httpStatusFor(s.putSandbox("v2", kFeatX, kNow).status()) == 409);
  REQUIRE(s.deleteRelease("reviews").ok());
  CHECK(s.deleteService("reviews").ok());
}

TEST_CASE("expire removes the sandboxes past their TTL as one mutation", "[control_plane]") {
  State s = withReviews();
  REQUIRE(s.putSandbox("short", R"({"forks": {"reviews": ["10.0.0.7:1"]}, "ttl": "30m"})", kNow)
              .ok());
  REQUIRE(s.putSandbox("long", R"({"forks": {"reviews": ["10.0.0.7:1"]}, "ttl": "7d"})", kNow)
              .ok());
  REQUIRE(s.putSandbox("forever", R"({"forks": {"reviews": ["10.0.0.7:1"]}})", kNow).ok());
  REQUIRE(s.putSandbox("short2", R"({"forks": {"reviews": ["10.0.0.7:1"]}, "ttl": "1800s"})",
                       kNow)
              .ok());
  CHECK(s.version() == 5);
  CHECK(s.nextExpiry() == kNow + absl::Minutes(30));

  auto none = s.expire(kNow + absl::Minutes(29));
  CHECK(none.removed.empty());
  CHECK(none.change.version == 5);
  CHECK(s.version() == 5);

  auto due = s.expire(kNow + absl::Minutes(30));
  CHECK(due.removed == std::vector<std::string>{"short", "short2"});
  CHECK(due.change.version == 6);
  CHECK(due.change.deletes.size() == 2);
  CHECK(s.version() == 6);
  CHECK(s.model().sandboxes.size() == 2);
  CHECK(s.etag(ResourceKind::kSandbox, "short").empty());
  CHECK(s.nextExpiry() == kNow + absl::Hours(24 * 7));

  auto later = s.expire(kNow + absl::Hours(24 * 365 * 10));
  CHECK(later.removed == std::vector<std::string>{"long"});
  CHECK(s.model().sandboxes.count("forever") == 1);
  CHECK(s.nextExpiry() == absl::InfiniteFuture());
}

TEST_CASE("nextExpiry follows puts, deletes and rollbacks of the earliest sandbox",
          "[control_plane]") {
  State s = withReviews();
  CHECK(s.nextExpiry() == absl::InfiniteFuture());
  REQUIRE(s.putSandbox("a", R"({"forks": {"reviews": ["10.0.0.7:1"]}, "ttl": "1h"})", kNow).ok());
  CHECK(s.nextExpiry() == kNow + absl::Hours(1));
  REQUIRE(s.putSandbox("b", R"({"forks": {"reviews": ["10.0.0.7:1"]}, "ttl": "2h"})", kNow).ok());
  REQUIRE(s.putSandbox("c", R"({"forks": {"reviews": ["10.0.0.7:1"]}})", kNow).ok());
  CHECK(s.nextExpiry() == kNow + absl::Hours(1));
  // The earliest one is replaced with a later expiry: the next is b's.
  REQUIRE(s.putSandbox("a", R"({"forks": {"reviews": ["10.0.0.7:1"]}, "ttl": "3h"})", kNow).ok());
  CHECK(s.nextExpiry() == kNow + absl::Hours(2));
  // A sooner one comes.
  REQUIRE(s.putSandbox("d", R"({"forks": {"reviews": ["10.0.0.7:1"]}, "ttl": "10m"})", kNow).ok());
  CHECK(s.nextExpiry() == kNow + absl::Minutes(10));
  // Deleting one that is not the earliest keeps it; deleting the earliest moves it.
  REQUIRE(s.deleteSandbox("c").ok());
  CHECK(s.nextExpiry() == kNow + absl::Minutes(10));
  const State::Checkpoint before = s.checkpoint(ResourceKind::kSandbox, "d");
  REQUIRE(s.deleteSandbox("d").ok());
  CHECK(s.nextExpiry() == kNow + absl::Hours(2));
  // A failed store write rolls the delete back: d's expiry is the next again.
  s.rollback(before);
  CHECK(s.nextExpiry() == kNow + absl::Minutes(10));
}

TEST_CASE("replacing a sandbox restarts its TTL", "[control_plane]") {
  State s = withReviews();
  REQUIRE(s.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:1"]}, "ttl": "1h"})", kNow)
              .ok());
  REQUIRE(s.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:1"]}, "ttl": "1h"})",
                       kNow + absl::Minutes(50))
              .ok());
  CHECK(s.expire(kNow + absl::Minutes(61)).removed.empty());
  CHECK(s.expire(kNow + absl::Minutes(110)).removed == std::vector<std::string>{"feat-x"});
}

TEST_CASE("stored() and restore() give back the same state and version", "[control_plane]") {
  State s = withReviews();
  REQUIRE(s.putService("ratings", R"({"port": 80, "namespace": "shop"})").ok());
  REQUIRE(s.putSandbox("feat-x", kFeatX, kNow).ok());
  REQUIRE(s.putRelease("ratings", R"({"versions": {"v2": ["10.0.0.2:1"]},
      "matches": [{"headers": {"x-canary": "1"}, "version": "v2"}]})")
              .ok());
  REQUIRE(s.putService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.6:9080"]})").ok());
  auto restored = State::restore(s.stored());
  REQUIRE(restored.ok());
  CHECK(restored->version() == s.version());
  CHECK(restored->model() == s.model());
  for (auto [kind, name] : {std::pair{ResourceKind::kService, "reviews"},
                            std::pair{ResourceKind::kService, "ratings"},
                            std::pair{ResourceKind::kSandbox, "feat-x"},
                            std::pair{ResourceKind::kRelease, "ratings"}}) {
    CAPTURE(name);
    CHECK(restored->etag(kind, name) == s.etag(kind, name));
  }
  // The restored state keeps counting from where it was.
  auto next = restored->deleteSandbox("feat-x");
  REQUIRE(next.ok());
  CHECK(next->version == s.version() + 1);
}

TEST_CASE("restore refuses damaged stored state", "[control_plane]") {
  StoredState bad_json{1, {{ResourceKind::kService, "reviews", "{\"port\": 0}", 1, absl::InfiniteFuture()}}};
  auto a = State::restore(bad_json);
  CHECK(a.status().code() == absl::StatusCode::kDataLoss);
  CHECK_THAT(std::string(a.status().message()), Catch::Contains("stored service 'reviews': port"));

  StoredState dangling{2, {{ResourceKind::kSandbox, "feat-x", kFeatX, 2, absl::InfiniteFuture()}}};
  CHECK(State::restore(dangling).status().code() == absl::StatusCode::kDataLoss);

  StoredState future{1, {{ResourceKind::kService, "reviews", kReviews, 5, absl::InfiniteFuture()}}};
  CHECK(State::restore(future).status().code() == absl::StatusCode::kDataLoss);

  StoredState twice{2, {{ResourceKind::kService, "reviews", kReviews, 1, absl::InfiniteFuture()},
                        {ResourceKind::kService, "reviews", kReviews, 2, absl::InfiniteFuture()}}};
  CHECK(State::restore(twice).status().code() == absl::StatusCode::kDataLoss);
}

TEST_CASE("rollback takes back one put or delete: resource, ETag and config version",
          "[control_plane][state]") {
  State s;
  const absl::Time now = absl::Now();
  REQUIRE(s.putService("reviews", R"({"port": 9080, "endpoints": ["10.0.0.5:9080"]})").ok());
  REQUIRE(s.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.7:9080"]}})", now).ok());
  const State before = s;
  auto same = [&] {
    CHECK(s.model() == before.model());
    CHECK(s.version() == before.version());
    for (const char* key : {"feat-x", "feat-y"}) {
      CHECK(s.etag(ResourceKind::kSandbox, key) == before.etag(ResourceKind::kSandbox, key));
    }
    CHECK(s.etag(ResourceKind::kService, "reviews") == before.etag(ResourceKind::kService, "reviews"));
  };
  SECTION("a replace") {
    auto c = s.checkpoint(ResourceKind::kSandbox, "feat-x");
    REQUIRE(s.putSandbox("feat-x", R"({"forks": {"reviews": ["10.0.0.8:9080"]}})", now).ok());
    REQUIRE_FALSE(s.model() == before.model());
    s.rollback(c);
    same();
  }
  SECTION("a create") {
    auto c = s.checkpoint(ResourceKind::kSandbox, "feat-y");
    REQUIRE(s.putSandbox("feat-y", R"({"forks": {"reviews": ["10.0.0.8:9080"]}})", now).ok());
    s.rollback(c);
    same();
  }
  SECTION("a delete") {
    auto c = s.checkpoint(ResourceKind::kSandbox, "feat-x");
    REQUIRE(s.deleteSandbox("feat-x").ok());
    s.rollback(c);
    same();
    // The next mutation gets the version the taken-back one had.
    auto again = s.deleteSandbox("feat-x");
    REQUIRE(again.ok());
    CHECK(again->version == before.version() + 1);
  }
  SECTION("a service and a release") {
    auto c = s.checkpoint(ResourceKind::kService, "reviews");
    REQUIRE(s.putService("reviews", R"({"port": 9081, "endpoints": ["10.0.0.5:9081"]})").ok());
    s.rollback(c);
    same();
    auto r = s.checkpoint(ResourceKind::kRelease, "reviews");
    REQUIRE(s.putRelease("reviews", R"({"versions": {"v1": ["10.0.1.1:9080"]}, "weights": {"v1": 100}})").ok());
    s.rollback(r);
    same();
  }
}

// The journal's index, made again from the sandboxes.
std::map<std::string, std::set<std::string>> forksIndex(const Model& m) {
  std::map<std::string, std::set<std::string>> out;
  for (const auto& [key, sandbox] : m.sandboxes) {
    for (const auto& [service, endpoints] : sandbox.forks) out[service].insert(key);
  }
  return out;
}

// The services the journal lists after `revision`.
std::set<std::string> listedSince(const Model& m, uint64_t revision) {
  std::set<std::string> out;
  for (const auto& [r, service] : m.journal.services) {
    if (r > revision) out.insert(service);
  }
  return out;
}

TEST_CASE("the model's journal indexes the forks and lists the services each change touched",
          "[control_plane]") {
  State s;
  const uint64_t epoch = s.model().journal.epoch;
  CHECK(epoch != 0);
  REQUIRE(s.putService("reviews", kReviews).ok());
  REQUIRE(s.putService("ratings", R"({"port": 9081})").ok());
  uint64_t r = s.model().journal.revision;
  REQUIRE(s.putSandbox("feat-x", kFeatX, kNow).ok());
  CHECK(listedSince(s.model(), r) == std::set<std::string>{"reviews"});
  r = s.model().journal.revision;
  // A sandbox moving its fork lists both services.
  REQUIRE(s.putSandbox("feat-x", R"({"forks": {"ratings": ["10.0.0.7:9081"]}, "ttl": "1h"})", kNow)
              .ok());
  CHECK(listedSince(s.model(), r) == std::set<std::string>{"reviews", "ratings"});
  REQUIRE(s.putSandbox("feat-y", R"({"forks": {"reviews": ["10.0.0.8:9080"],
                                                "ratings": ["10.0.0.8:9081"]}})",
                       kNow)
              .ok());
  CHECK(s.model().journal.forks == forksIndex(s.model()));
  // A service forked by a sandbox cannot go: the index names who forks it.
  auto refused = s.deleteService("ratings");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("'feat-x', 'feat-y'") != std::string::npos);
  r = s.model().journal.revision;
  REQUIRE(
      s.putRelease("reviews", R"({"versions": {"v1": ["10.0.1.1:9080"], "v2": ["10.0.1.2:9080"]},
                                      "weights": {"v1": 90, "v2": 10}})")
          .ok());
  CHECK(listedSince(s.model(), r) == std::set<std::string>{"reviews"});
  // A rollback lists what it put back, and the index follows it.
  const State::Checkpoint c = s.checkpoint(ResourceKind::kSandbox, "feat-y");
  REQUIRE(s.deleteSandbox("feat-y").ok());
  CHECK(s.model().journal.forks == forksIndex(s.model()));
  r = s.model().journal.revision;
  s.rollback(c);
  CHECK(listedSince(s.model(), r) == std::set<std::string>{"reviews", "ratings"});
  CHECK(s.model().journal.forks == forksIndex(s.model()));
  // An expiry.
  r = s.model().journal.revision;
  CHECK(s.expire(kNow + absl::Hours(2)).removed == std::vector<std::string>{"feat-x"});
  CHECK(listedSince(s.model(), r) == std::set<std::string>{"ratings"});
  CHECK(s.model().journal.forks == forksIndex(s.model()));
  CHECK(s.model().journal.forks.at("ratings") == std::set<std::string>{"feat-y"});
  // Revisions only grow, and the epoch stays until the journal restarts.
  CHECK(s.model().journal.epoch == epoch);
  CHECK(s.model().journal.revision > epoch);
  const uint64_t before = s.model().journal.revision;
  s.restartJournal();
  CHECK(s.model().journal.epoch > before);
  CHECK(s.model().journal.services.empty());
  CHECK(s.model().journal.forks == forksIndex(s.model()));
  // restore() indexes what it loads.
  auto restored = State::restore(s.stored());
  REQUIRE(restored.ok());
  CHECK(restored->model().journal.forks == forksIndex(restored->model()));
  CHECK(restored->model().journal.epoch > s.model().journal.epoch);
  CHECK(restored->model() == s.model());  // the journal is not part of the model's value
}

TEST_CASE("a journal that grew too long starts its list again", "[control_plane]") {
  State s = withReviews();
  const uint64_t r = s.model().journal.revision;
  for (int i = 0; i < 9000; ++i) {
    REQUIRE(s.putService("reviews", i % 2 == 0 ? kReviews : R"({"port": 9081})").ok());
  }
  const ModelJournal& j = s.model().journal;
  CHECK(j.services.size() < 9000);
  CHECK(j.complete_since > r);  // a reader that saw `r` must look at everything
  CHECK(j.services.back().first == j.revision);
}

}  // namespace
}  // namespace turnout::control_plane
