#include "routing/trace_key_table.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace turnout::routing {
namespace {

TraceId id(std::uint64_t n) { return TraceId{0x4bf92f3577b34da6ULL ^ (n << 1), n + 1}; }

std::string recall(const TraceKeyTable& t, TraceId tid, std::int64_t now, std::int64_t max_age = 0) {
  RememberedKey k;
  if (!t.recall(tid, now, max_age, k)) return "<none>";
  return std::string(k.view());
}

TEST_CASE("trace key table recalls a remembered key for the same trace id only", "[routing]") {
  TraceKeyTable t(1024);
  CHECK(t.remember(id(1), "feat-x", 0, 1000) == RememberResult::kInserted);
  CHECK(recall(t, id(1), 10) == "feat-x");
  CHECK(recall(t, id(2), 10) == "<none>");
  CHECK(recall(t, TraceId{}, 10) == "<none>");
  // Same high half, different low half: another trace.
  CHECK(recall(t, TraceId{id(1).hi, id(1).lo + 1}, 10) == "<none>");
}

TEST_CASE("trace key table forgets a key at its expiry, and earlier for a reader's shorter ttl",
          "[routing]") {
  TraceKeyTable t(64);
  REQUIRE(t.remember(id(1), "feat-x", 1000, 1300) == RememberResult::kInserted);
  CHECK(recall(t, id(1), 1000) == "feat-x");
  CHECK(recall(t, id(1), 1299) == "feat-x");
  CHECK(recall(t, id(1), 1300) == "<none>");
  CHECK(recall(t, id(1), 99999) == "<none>");
  // The reader's own ttl (max age since written) applies too.
  CHECK(recall(t, id(1), 1099, 100) == "feat-x");
  CHECK(recall(t, id(1), 1100, 100) == "<none>");
  CHECK(recall(t, id(1), 1299, 1000) == "feat-x");
}

TEST_CASE("trace key table replaces the key of a trace remembered again", "[routing]") {
  TraceKeyTable t(64);
  REQUIRE(t.remember(id(1), "feat-x", 0, 100) == RememberResult::kInserted);
  CHECK(t.remember(id(1), "feat-y-longer-than-sixteen-bytes", 50, 500) == RememberResult::kUpdated);
  CHECK(recall(t, id(1), 200) == "feat-y-longer-than-sixteen-bytes");
  CHECK(t.remember(id(1), "z", 60, 500) == RememberResult::kUpdated);
  CHECK(recall(t, id(1), 200) == "z");
}

TEST_CASE("trace key table does not remember keys over the bound, empty keys or zero ids",
          "[routing]") {
  TraceKeyTable t(64);
  const std::string max(kMaxRememberedKeyLength, 'k');
  CHECK(t.remember(id(1), max, 0, 100) == RememberResult::kInserted);
  CHECK(recall(t, id(1), 1) == max);
  CHECK(t.remember(id(2), max + "k", 0, 100) == RememberResult::kKeyTooLong);
  CHECK(recall(t, id(2), 1) == "<none>");
  CHECK(t.remember(id(3), "", 0, 100) == RememberResult::kInvalid);
  CHECK(t.remember(TraceId{}, "feat-x", 0, 100) == RememberResult::kInvalid);
  // A too-long key does not disturb what the trace had.
  CHECK(t.remember(id(1), max + "k", 0, 100) == RememberResult::kKeyTooLong);
  CHECK(recall(t, id(1), 1) == max);
}

TEST_CASE("trace key table holds at most its capacity and reports evictions", "[routing]") {
  const std::size_t capacity = GENERATE(1, 2, 7, 8, 9, 100, 1000);
  TraceKeyTable t(capacity);
  CHECK(t.capacity() == capacity);
  CHECK(t.reservedBytes() <= capacity * 128);
  std::size_t evicted = 0;
  const std::size_t n = capacity * 4 + 16;
  for (std::size_t i = 0; i < n; ++i) {
    const RememberResult r = t.remember(id(i), "k" + std::to_string(i), 0, 1000);
    REQUIRE((r == RememberResult::kInserted || r == RememberResult::kEvicted));
    if (r == RememberResult::kEvicted) ++evicted;
  }
  std::size_t live = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string got = recall(t, id(i), 1);
    if (got == "<none>") continue;
    CHECK(got == "k" + std::to_string(i));
    ++live;
  }
  CAPTURE(capacity, evicted, live);
  CHECK(live <= capacity);
  CHECK(live == n - evicted);
  CHECK(evicted >= n - capacity);
}

TEST_CASE("trace key table reuses expired slots before evicting live ones, then the one "
          "expiring soonest",
          "[routing]") {
  // Capacity == window: every trace probes the whole table.
  TraceKeyTable t(kTraceKeyProbeWindow);
  for (std::uint64_t i = 0; i < kTraceKeyProbeWindow; ++i) {
    // Trace 3 expires at 103, the rest at 1000 + i.
    const std::int64_t expiry = i == 3 ? 103 : 1000 + static_cast<std::int64_t>(i);
    REQUIRE(t.remember(id(i), "k" + std::to_string(i), 0, expiry) == RememberResult::kInserted);
  }
  // Trace 3 is expired at 200: a new trace takes its slot, nobody is evicted.
  CHECK(t.remember(id(100), "new", 200, 5000) == RememberResult::kInserted);
  for (std::uint64_t i = 0; i < kTraceKeyProbeWindow; ++i) {
    if (i != 3) CHECK(recall(t, id(i), 200) == "k" + std::to_string(i));
  }
  // Full of live entries: the one expiring soonest (trace 0, at 1000) goes.
  CHECK(t.remember(id(101), "newer", 300, 5000) == RememberResult::kEvicted);
  CHECK(recall(t, id(0), 300) == "<none>");
  CHECK(recall(t, id(101), 300) == "newer");
  CHECK(recall(t, id(100), 300) == "new");
  CHECK(recall(t, id(1), 300) == "k1");
}

TEST_CASE("trace key table clamps its capacity to the documented bounds", "[routing]") {
  CHECK(TraceKeyTable(0).capacity() == 1);
  CHECK(TraceKeyTable(kMaxTraceKeyEntries + 1).capacity() == kMaxTraceKeyEntries);
}

// The key a writer stores for trace `n`, generation `g`: it names the trace
// and has a length that depends on g, so a torn read (another trace's id, a
// key mixed from two writes, a length from one write and bytes from another)
// fails keyIsFor().
std::string keyFor(std::uint64_t n, std::uint64_t g) {
  const std::string stem = std::to_string(n) + "." + std::to_string(g) + ".";
  std::string key = stem;
  const std::size_t len = 8 + (n * 7 + g * 13) % (kMaxRememberedKeyLength - 7);
  while (key.size() < len) key += static_cast<char>('a' + (key.size() + n + g) % 26);
  return key.substr(0, std::max(len, stem.size()));
}

bool keyIsFor(std::string_view key, std::uint64_t n) {
  const std::size_t dot1 = key.find('.');
  if (dot1 == std::string_view::npos || key.substr(0, dot1) != std::to_string(n)) return false;
  const std::size_t dot2 = key.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || dot2 == dot1 + 1 || dot2 - dot1 > 12) return false;
  for (char c : key.substr(dot1 + 1, dot2 - dot1 - 1)) {
    if (c < '0' || c > '9') return false;
  }
  const std::uint64_t g = std::stoull(std::string(key.substr(dot1 + 1, dot2 - dot1 - 1)));
  return key == keyFor(n, g);
}

TEST_CASE("trace key table: concurrent writers and readers never see a torn entry",
          "[routing][threads]") {
  // A small table and few traces, so that writers keep overwriting each
  // other in the very slots the readers are reading; readers read until the
  // writers are done.
  constexpr std::size_t kCapacity = 16;
  TraceKeyTable t(kCapacity);
  constexpr std::uint64_t kTraces = 24;
  constexpr int kWriters = 2;
  constexpr int kReaders = 2;
  constexpr int kWrites = 1'000'000;
  constexpr std::uint64_t kMaxReads = 50'000'000;
  std::atomic<int> started{0};
  std::atomic<int> writers_left{kWriters};
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> torn{0};
  std::atomic<std::uint64_t> busy{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      started.fetch_add(1);
      while (started.load() < kWriters + kReaders) {
      }
      std::uint64_t x = 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(w + 1);
      for (int i = 0; i < kWrites; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const std::uint64_t n = x % kTraces;
        const std::uint64_t g = x >> 40;
        if (t.remember(id(n), keyFor(n, g), i, i + 1000000) == RememberResult::kBusy) {
          busy.fetch_add(1);
        }
      }
      writers_left.fetch_sub(1);
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      started.fetch_add(1);
      while (started.load() < kWriters + kReaders) {
      }
      RememberedKey k;
      std::uint64_t local_hits = 0;
      for (std::uint64_t i = 0; i < kMaxReads && writers_left.load() > 0; ++i) {
        const std::uint64_t n = (i * 7 + static_cast<std::uint64_t>(r)) % kTraces;
        if (!t.recall(id(n), 0, 0, k)) continue;
        ++local_hits;
        if (!keyIsFor(k.view(), n)) torn.fetch_add(1);
      }
      hits.fetch_add(local_hits);
    });
  }
  for (auto& th : threads) th.join();
  INFO("hits " << hits.load() << ", busy " << busy.load());
  CHECK(torn.load() == 0);
  CHECK(hits.load() > 0);
  // Afterwards every entry is whole and names its own trace.
  std::size_t live = 0;
  for (std::uint64_t n = 0; n < kTraces; ++n) {
    RememberedKey k;
    if (!t.recall(id(n), 0, 0, k)) continue;
    ++live;
    CHECK(keyIsFor(k.view(), n));
  }
  CHECK(live > 0);
  CHECK(live <= kCapacity);
}

TEST_CASE("stress keys are self-checking", "[routing]") {
  // The checker above must be able to fail.
  CHECK(keyIsFor(keyFor(5, 9), 5));
  CHECK_FALSE(keyIsFor(keyFor(5, 9), 6));
  std::string torn = keyFor(5, 9);
  torn.back() = torn.back() == 'a' ? 'b' : 'a';
  CHECK_FALSE(keyIsFor(torn, 5));
  CHECK_FALSE(keyIsFor(keyFor(5, 9).substr(0, keyFor(5, 9).size() - 1), 5));
  std::set<std::size_t> lengths;
  for (std::uint64_t g = 0; g < 64; ++g) lengths.insert(keyFor(5, g).size());
  CHECK(lengths.size() > 8);
  for (std::uint64_t g = 0; g < 64; ++g) CHECK(keyFor(5, g).size() <= kMaxRememberedKeyLength);
}

}  // namespace
}  // namespace turnout::routing
