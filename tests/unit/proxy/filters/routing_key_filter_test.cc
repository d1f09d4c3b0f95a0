#include "proxy/filters/routing_key_filter.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "proxy/stats/store.h"
#include "proxy/stats/well_known_stats.h"

namespace turnout::proxy {
namespace {

constexpr char kTraceA[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
// Same trace id, another parent (the app's outbound call is a child span).
constexpr char kTraceAChild[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01";
constexpr char kTraceB[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

std::int64_t g_now_ms = 1000;
std::int64_t fakeNow() { return g_now_ms; }

// The filter's view of one request: a head, the stats it writes, and the key
// it sets.
class FakeCallbacks : public StreamDecoderFilterCallbacks {
 public:
  FakeCallbacks(stats::Store& store, const stats::HttpConnManagerStats& stats,
                std::vector<std::pair<std::string, std::string>> headers)
      : store_(store), stats_(stats) {
    head_.method = "GET";
    head_.path = "/";
    head_.authority = "reviews";
    for (const auto& [n, v] : headers) head_.headers.add(n, v);
  }

  RequestHead& requestHead() override { return head_; }
  routing::RequestView requestView() override { return head_.view(scratch_); }
  void setRoutingKey(std::string_view key) override { key_ = std::string(key); }
  stats::Shard& shard() override { return store_.shard(0); }
  const stats::HttpConnManagerStats& hcmStats() override { return stats_; }
  bool healthCheckFailed() override { return false; }
  void localReply(uint16_t, std::string_view, std::string_view) override {}
  void setResponseFlag(access_log::ResponseFlag) override {}
  void startGrpcWeb(bool, bool) override {}

  std::string header(std::string_view name) const {
    const std::string_view v = head_.headers.get(name);
    return v.data() == nullptr ? "<none>" : std::string(v);
  }
  size_t count(std::string_view name) const { return head_.headers.count(name); }
  const std::string& key() const { return key_; }

 private:
  stats::Store& store_;
  const stats::HttpConnManagerStats& stats_;
  RequestHead head_;
  std::vector<routing::HeaderEntry> scratch_;
  std::string key_ = "<unset>";
};

config::RoutingKeyFilterConfig configWith(bool remember, bool recover, std::int64_t ttl_ms = 1000) {
  config::RoutingKeyFilterConfig c;
  c.extraction = routing::RoutingKeyConfig::defaults();
  c.trace.remember = remember;
  c.trace.recover = recover;
  c.trace.ttl_ms = ttl_ms;
  c.trace.max_entries = 64;
  c.trace.baggage_member = "turnout-routing-key";
  return c;
}

struct Fixture {
  stats::Store store{1};
  stats::HttpConnManagerStats stats = stats::makeHttpConnManagerStats(store, "t");
  std::shared_ptr<routing::TraceKeyTable> table = std::make_shared<routing::TraceKeyTable>(64);
  RoutingKeyFilter inbound{configWith(true, false), table, &fakeNow};
  RoutingKeyFilter outbound{configWith(false, true), table, &fakeNow};

  FakeCallbacks run(const RoutingKeyFilter& f,
                    std::vector<std::pair<std::string, std::string>> headers) {
    FakeCallbacks cb(store, stats, std::move(headers));
    REQUIRE(f.decodeHeaders(cb) == FilterHeadersStatus::Continue);
    return cb;
  }
  uint64_t counter(const std::string& name) {
    return store.counterValue("http.t.routing_key." + name);
  }
};

TEST_CASE("routing key filter recovers the inbound key for the same trace on the outbound call",
          "[proxy][routing_key]") {
  g_now_ms = 1000;
  Fixture f;
  f.run(f.inbound, {{"baggage", "turnout-routing-key=feat-x"}, {"traceparent", kTraceA}});
  CHECK(f.counter("remembered_for_trace") == 1);
  CHECK(f.counter("found") == 1);

  SECTION("same trace, no key: the key comes back as header and baggage") {
    FakeCallbacks cb = f.run(f.outbound, {{"traceparent", kTraceAChild}});
    CHECK(cb.header("x-turnout-routing-key") == "feat-x");
    CHECK(cb.header("baggage") == "turnout-routing-key=feat-x");
    CHECK(cb.key() == "feat-x");
    CHECK(f.counter("recovered_from_trace") == 1);
    CHECK(f.counter("missing") == 0);
  }
  SECTION("existing baggage is kept and the member appended to one line") {
    FakeCallbacks cb = f.run(f.outbound, {{"baggage", "userId=7"},
                                          {"traceparent", kTraceAChild},
                                          {"baggage", "session=abc;p=1"}});
    CHECK(cb.count("baggage") == 1);
    CHECK(cb.header("baggage") == "userId=7,session=abc;p=1,turnout-routing-key=feat-x");
    CHECK(cb.header("x-turnout-routing-key") == "feat-x");
  }
  SECTION("baggage that cannot take the member is left as it was; the route still gets the key") {
    const std::string full = "f=" + std::string(8180, 'v');
    FakeCallbacks cb = f.run(f.outbound, {{"baggage", full}, {"traceparent", kTraceAChild}});
    CHECK(cb.header("baggage") == full);
    CHECK(cb.header("x-turnout-routing-key") == "feat-x");
    CHECK(f.counter("recovered_from_trace") == 1);
  }
  SECTION("another trace gets nothing") {
    FakeCallbacks cb = f.run(f.outbound, {{"traceparent", kTraceB}});
    CHECK(cb.header("x-turnout-routing-key") == "<none>");
    CHECK(cb.header("baggage") == "<none>");
    CHECK(cb.key().empty());
    CHECK(f.counter("missing") == 1);
    CHECK(f.counter("recovered_from_trace") == 0);
  }
  SECTION("no traceparent, or an invalid one, gets nothing") {
    for (const char* tp : {"", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}) {
      std::vector<std::pair<std::string, std::string>> h;
      if (*tp) h.emplace_back("traceparent", tp);
      FakeCallbacks cb = f.run(f.outbound, h);
      CHECK(cb.header("x-turnout-routing-key") == "<none>");
    }
    // Two traceparent lines are no trace.
    FakeCallbacks cb =
        f.run(f.outbound, {{"traceparent", kTraceAChild}, {"traceparent", kTraceAChild}});
    CHECK(cb.header("x-turnout-routing-key") == "<none>");
    CHECK(f.counter("recovered_from_trace") == 0);
  }
  SECTION("an explicit key on the outbound request wins, and is not re-remembered") {
    FakeCallbacks cb = f.run(f.outbound, {{"x-turnout-routing-key", "feat-y"},
                                          {"traceparent", kTraceAChild}});
    CHECK(cb.header("x-turnout-routing-key") == "feat-y");
    CHECK(cb.header("baggage") == "<none>");
    CHECK(f.counter("recovered_from_trace") == 0);
    CHECK(f.counter("remembered_for_trace") == 1);
    // The table still says feat-x for the trace.
    CHECK(f.run(f.outbound, {{"traceparent", kTraceAChild}}).header("x-turnout-routing-key") ==
          "feat-x");
  }
  SECTION("a forged output header is replaced by the recovered key when it is not a source") {
    config::RoutingKeyFilterConfig c = configWith(false, true);
    c.extraction.sources = {{routing::KeySourceKind::kBaggage, "turnout-routing-key"}};
    RoutingKeyFilter strict(c, f.table, &fakeNow);
    FakeCallbacks cb = f.run(strict, {{"x-turnout-routing-key", "forged"},
                                      {"traceparent", kTraceAChild}});
    CHECK(cb.count("x-turnout-routing-key") == 1);
    CHECK(cb.header("x-turnout-routing-key") == "feat-x");
  }
  SECTION("after the ttl the key is gone") {
    g_now_ms = 1999;
    CHECK(f.run(f.outbound, {{"traceparent", kTraceAChild}}).header("x-turnout-routing-key") ==
          "feat-x");
    g_now_ms = 2000;
    CHECK(f.run(f.outbound, {{"traceparent", kTraceAChild}}).header("x-turnout-routing-key") ==
          "<none>");
  }
  SECTION("the recovering filter's shorter ttl applies too") {
    RoutingKeyFilter short_ttl(configWith(false, true, 100), f.table, &fakeNow);
    g_now_ms = 1099;
    CHECK(f.run(short_ttl, {{"traceparent", kTraceAChild}}).header("x-turnout-routing-key") ==
          "feat-x");
    g_now_ms = 1100;
    CHECK(f.run(short_ttl, {{"traceparent", kTraceAChild}}).header("x-turnout-routing-key") ==
          "<none>");
  }
  SECTION("a remembered key longer than this filter's max_key_length is not recovered") {
    config::RoutingKeyFilterConfig c = configWith(false, true);
    c.extraction.max_key_length = 5;
    RoutingKeyFilter narrow(c, f.table, &fakeNow);
    CHECK(f.run(narrow, {{"traceparent", kTraceAChild}}).header("x-turnout-routing-key") ==
          "<none>");
  }
}

TEST_CASE("routing key filter remembers only keyed requests with a valid traceparent",
          "[proxy][routing_key]") {
  g_now_ms = 1000;
  Fixture f;
  f.run(f.inbound, {{"traceparent", kTraceA}});  // no key
  f.run(f.inbound, {{"x-turnout-routing-key", "feat-x"}});  // no traceparent
  f.run(f.inbound, {{"x-turnout-routing-key", "feat-x"},
                    {"traceparent", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}});
  CHECK(f.counter("remembered_for_trace") == 0);
  CHECK(f.run(f.outbound, {{"traceparent", kTraceA}}).header("x-turnout-routing-key") ==
        "<none>");
  // A key over the table's bound is counted, not remembered.
  config::RoutingKeyFilterConfig c = configWith(true, false);
  c.extraction.max_key_length = 1024;
  RoutingKeyFilter wide(c, f.table, &fakeNow);
  f.run(wide, {{"x-turnout-routing-key", std::string(65, 'k')}, {"traceparent", kTraceA}});
  CHECK(f.counter("trace_memory_key_too_long") == 1);
  CHECK(f.counter("remembered_for_trace") == 0);
  // The REMEMBER-only filter does not recover, the RECOVER-only one does not remember.
  f.run(f.outbound, {{"x-turnout-routing-key", "feat-x"}, {"traceparent", kTraceA}});
  CHECK(f.counter("remembered_for_trace") == 0);
  f.run(f.inbound, {{"x-turnout-routing-key", "feat-x"}, {"traceparent", kTraceA}});
  CHECK(f.run(f.inbound, {{"traceparent", kTraceA}}).header("x-turnout-routing-key") == "<none>");
}

TEST_CASE("routing key filter in BOTH mode remembers and recovers on one listener",
          "[proxy][routing_key]") {
  g_now_ms = 1000;
  Fixture f;
  RoutingKeyFilter both(configWith(true, true), f.table, &fakeNow);
  f.run(both, {{"baggage", "turnout-routing-key=feat-x"}, {"traceparent", kTraceA}});
  FakeCallbacks cb = f.run(both, {{"traceparent", kTraceAChild}});
  CHECK(cb.header("x-turnout-routing-key") == "feat-x");
  CHECK(f.counter("remembered_for_trace") == 1);
  CHECK(f.counter("recovered_from_trace") == 1);
}

TEST_CASE("routing key filter counts evictions of live entries", "[proxy][routing_key]") {
  g_now_ms = 1000;
  stats::Store store{1};
  const auto stats = stats::makeHttpConnManagerStats(store, "t");
  auto table = std::make_shared<routing::TraceKeyTable>(1);
  RoutingKeyFilter inbound(configWith(true, false), table, &fakeNow);
  for (const char* tp : {kTraceA, kTraceB}) {
    FakeCallbacks cb(store, stats, {{"x-turnout-routing-key", "k"}, {"traceparent", tp}});
    inbound.decodeHeaders(cb);
  }
  CHECK(store.counterValue("http.t.routing_key.remembered_for_trace") == 2);
  CHECK(store.counterValue("http.t.routing_key.trace_memory_evicted") == 1);
}

TEST_CASE("the process has one trace-key table, sized once while in use", "[proxy][routing_key]") {
  config::RoutingKeyFilterConfig c = configWith(true, false);
  c.trace.max_entries = 77;
  auto a = RoutingKeyFilter::create(c, "a");
  REQUIRE(a.ok());
  REQUIRE((*a)->traceTable() != nullptr);
  CHECK((*a)->traceTable()->capacity() == 77);
  auto b = RoutingKeyFilter::create(configWith(false, true), "b");  // 64 entries
  REQUIRE_FALSE(b.ok());
  CHECK(b.status().message() ==
        "b.trace_key_recovery.max_entries: 64, but the process's trace-key table has 77 entries "
        "and a listener still uses it; the table is one per process and cannot be resized while "
        "in use (restart turnout to resize it)");
  c.trace.remember = false;
  c.trace.recover = true;
  auto same = RoutingKeyFilter::create(c, "c");
  REQUIRE(same.ok());
  CHECK((*same)->traceTable() == (*a)->traceTable());
  // Off: no table.
  auto off = RoutingKeyFilter::create(configWith(false, false), "d");
  REQUIRE(off.ok());
  CHECK((*off)->traceTable() == nullptr);
  // Once nothing uses it, a new size is fine.
  a->reset();
  same->reset();
  auto resized = RoutingKeyFilter::create(configWith(false, true), "e");
  REQUIRE(resized.ok());
  CHECK((*resized)->traceTable()->capacity() == 64);
}

}  // namespace
}  // namespace turnout::proxy
