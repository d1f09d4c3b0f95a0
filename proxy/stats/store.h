#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "proxy/stats/histogram.h"

namespace turnout::proxy::stats {

// A registered stat: a slot number, valid in every shard. Counters, gauges
// and histograms share one slot space. Slot 0 (scalars, and the default
// StatId{}) and slot 1 (histograms) are sinks: writes are accepted and never
// shown. Registration
// returns a sink only for a name registered as another kind, or when the slot
// space (2^28 slots) is exhausted; both count in overflowCount() and log.
struct StatId {
  uint32_t index = 0;
  bool operator==(const StatId&) const = default;
};

enum class StatKind : uint8_t { Counter, Gauge, Histogram };

// The stats of one kind of scope (a cluster, ...), in slot order: a name
// suffix and a kind each. Built once (a function-local static) and shared by
// every scope of that kind, so a scope's names cost one prefix string.
class StatSchema {
 public:
  // Appends a stat; returns its offset in the scope. A lazy stat is listed
  // (/stats, Prometheus) only once a shard wrote its anchor, as Envoy creates
  // such stats when first used: `lazy_anchor` is the offset of that stat
  // (kSelf: the stat itself, as grpc.*; a group's first stat makes the group
  // appear at once, as http2.* at a codec's creation).
  static constexpr uint32_t kEager = UINT32_MAX;
  static constexpr uint32_t kSelf = UINT32_MAX - 1;
  uint32_t add(std::string suffix, StatKind kind, uint32_t lazy_anchor = kEager);
  uint32_t size() const { return static_cast<uint32_t>(entries_.size()); }
  const std::string& suffix(uint32_t offset) const { return entries_[offset].suffix; }
  StatKind kind(uint32_t offset) const { return entries_[offset].kind; }
  bool lazy(uint32_t offset) const { return entries_[offset].anchor != kEager; }
  // The offset whose write lists a lazy stat.
  uint32_t anchor(uint32_t offset) const { return entries_[offset].anchor; }
  std::optional<uint32_t> find(std::string_view suffix) const;
  // Offsets sorted by suffix.
  const std::vector<uint32_t>& sortedOrder() const;

 private:
  struct Entry {
    std::string suffix;
    StatKind kind;
    uint32_t anchor;  // kEager, or the offset whose write lists it
  };
  std::vector<Entry> entries_;
  std::vector<uint32_t> sorted_;
  absl::flat_hash_map<std::string, uint32_t> index_;
};

// A Store's record of one registered scope (opaque outside store.cc).
class Scope;
// Keeps a scope's slots registered. Copies share the scope; whichever thread
// drops the last copy retires it, and the main thread's next Store::reclaim()
// frees its slots in every shard and recycles them. Caller guarantees that no
// thread writes the scope's StatIds after dropping its copy (the ids travel
// inside the same immutable config object as the handle).
using ScopeHandle = std::shared_ptr<const Scope>;

inline constexpr uint32_t kScalarSink = 0;
inline constexpr uint32_t kHistogramSink = 1;

// A registered scope: its handle and its first slot (offset k of the schema
// is StatId{first + k}). A null handle means registration failed (slot space
// exhausted): every id is then a sink.
struct ScopeRef {
  ScopeHandle handle;
  const StatSchema* schema = nullptr;
  uint32_t first = 0;
  StatId at(uint32_t offset) const {
    if (handle) return StatId{first + offset};
    return StatId{schema->kind(offset) == StatKind::Histogram ? kHistogramSink : kScalarSink};
  }
};

// One thread's slice of every stat. A shard is written by exactly one thread
// (its worker, or the main thread for the main shard) with relaxed load+store,
// so the hot path has no lock-prefixed read-modify-write; the admin (main)
// thread reads every shard and sums them. Values read mid-update are at worst
// one increment stale.
//
// Storage grows without moving: a fixed top array points to leaves of page
// pointers, and a page holds 16 slots. The owning thread allocates a leaf or
// a page the first time it writes a slot in it and publishes it with release
// (Envoy's deferred stat creation): a stat that was never written on a shard
// costs that shard nothing. The main thread frees a retired scope's pages
// (Store::reclaim), which happens after every writer dropped the scope.
class Shard {
 public:
  static constexpr uint32_t kPageBits = 4;
  static constexpr uint32_t kPageSlots = 1u << kPageBits;  // 16
  static constexpr uint32_t kLeafBits = 12;
  static constexpr uint32_t kLeafPages = 1u << kLeafBits;  // 4096 pages per leaf
  static constexpr uint32_t kTopLeaves = 4096;
  static constexpr uint32_t kMaxPages = kLeafPages * kTopLeaves;  // 2^24 pages, 2^28 slots

  Shard();
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Counter += n.
  void inc(StatId counter, uint64_t n = 1) {
    Page& p = page(counter.index);
    auto& v = p.values[counter.index & kSlotMask];
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    markUsed(p, counter.index);
  }
  // Gauge += delta (this shard's contribution; the total is the sum of shards).
  void add(StatId gauge, int64_t delta) {
    Page& p = page(gauge.index);
    auto& v = p.values[gauge.index & kSlotMask];
    v.store(v.load(std::memory_order_relaxed) + static_cast<uint64_t>(delta),
            std::memory_order_relaxed);
    markUsed(p, gauge.index);
  }
  void sub(StatId gauge, int64_t delta) { add(gauge, -delta); }
  // Sets this shard's contribution to a gauge. Use it for gauges that only one
  // shard writes (server.*, membership_*), so the sum is the value.
  void set(StatId gauge, int64_t value) {
    Page& p = page(gauge.index);
    p.values[gauge.index & kSlotMask].store(static_cast<uint64_t>(value), std::memory_order_relaxed);
    markUsed(p, gauge.index);
  }
  // Records a sample in milliseconds (Envoy's unit for every histogram).
  void record(StatId histogram, uint64_t value_ms) { recordMicros(histogram, value_ms * 1000); }
  // Records a sample in microseconds, for sub-millisecond precision.
  void recordMicros(StatId histogram, uint64_t value_us);

  // Readers (main thread; relaxed values, acquire pointers). A slot whose page
  // this shard never allocated reads 0 / unused.
  uint64_t scalar(uint32_t index) const;
  bool used(uint32_t index) const;
  // Adds this shard's samples of `histogram` into `out` (sized kCount).
  bool addHistogramTo(uint32_t histogram, HistogramSnapshot& out) const;
  // Whether any of pages [first_page, first_page + pages) is allocated here.
  bool anyPage(uint32_t first_page, uint32_t pages) const;

  // Main thread, Store::reclaim: frees pages [first_page, first_page + pages)
  // and their histograms. Caller guarantees no thread writes them any more and
  // that their reuse reaches the owner through a post (happens-before).
  void releasePages(uint32_t first_page, uint32_t pages);
  // Bytes this shard has allocated (leaves, pages and histograms), for tests.
  size_t allocatedBytes() const;

 private:
  static constexpr uint32_t kSlotMask = kPageSlots - 1;
  static constexpr uint32_t kLeafMask = kLeafPages - 1;

  // A histogram's counts, in chunks of kChunkBuckets buckets that the
  // owning thread allocates when it first records a value in them (and
  // publishes with release): the 1,728 buckets are 13.5 KiB, and a
  // histogram sampled a few times (a route configuration's update_duration,
  // one per RDS resource) touches one or two chunks.
  static constexpr uint32_t kChunkBuckets = 64;
  static constexpr uint32_t kChunks =
      (HistogramBuckets::kCount + kChunkBuckets - 1) / kChunkBuckets;
  struct HistogramChunk {
    std::atomic<uint64_t> counts[kChunkBuckets]{};
  };
  struct HistogramData {
    std::atomic<HistogramChunk*> chunks[kChunks]{};
    std::atomic<uint64_t> sum_us{0};
    ~HistogramData();
    // The bytes this histogram holds (itself and its chunks).
    size_t bytes() const;
  };
  struct Page {
    std::atomic<uint32_t> used{0};        // bit per slot, written by the owner
    std::atomic<uint32_t> histograms{0};  // bit per slot holding a HistogramData*
    std::atomic<uint64_t> values[kPageSlots]{};
  };
  struct Leaf {
    std::atomic<Page*> pages[kLeafPages]{};
  };

  Page& page(uint32_t index) {
    const uint32_t page_id = index >> kPageBits;
    Leaf* leaf = top_[page_id >> kLeafBits].load(std::memory_order_relaxed);
    if (leaf == nullptr) [[unlikely]] leaf = newLeaf(page_id >> kLeafBits);
    Page* p = leaf->pages[page_id & kLeafMask].load(std::memory_order_relaxed);
    if (p == nullptr) [[unlikely]] p = newPage(*leaf, page_id & kLeafMask);
    return *p;
  }
  const Page* findPage(uint32_t page_id) const;
  Leaf* newLeaf(uint32_t leaf_id);
  Page* newPage(Leaf& leaf, uint32_t page_in_leaf);
  static void freePage(Page* page);

  static void markUsed(Page& p, uint32_t index) {
    const uint32_t bit = 1u << (index & kSlotMask);
    const uint32_t u = p.used.load(std::memory_order_relaxed);
    if ((u & bit) == 0) p.used.store(u | bit, std::memory_order_relaxed);
  }

  std::unique_ptr<std::atomic<Leaf*>[]> top_;
};

// The process's stats: a name table (main thread only) plus one Shard per
// worker and one for the main thread. Created in main() before workers start
// and outlives them. Registration happens on the main thread; the returned
// ids reach workers inside posted immutable data (R8g), so workers never
// touch the name table.
//
// Two ways to register: loose stats (one name each, never freed: server.*,
// listener.*, http.*), and scopes (a prefix plus a shared StatSchema, freed
// when the last ScopeHandle goes: cluster.<name>.*). There is no fixed
// capacity; an idle scope costs its prefix and a few words (no values until
// a shard writes one of its stats).
class Store {
 public:
  // `workers` shards for workers 0..workers-1 plus the main-thread shard.
  explicit Store(size_t workers);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Loose registration (main thread). Registering an existing name of the same
  // kind (loose or in a live scope) returns its id; with a clashing kind the
  // sink id, and overflowCount() goes up. `lazy_anchor` (see
  // StatSchema::add): listed only once that stat is written; StatId{} for
  // the stat itself; nullopt: always listed.
  StatId counter(std::string name, std::optional<StatId> lazy_anchor = std::nullopt);
  StatId gauge(std::string name, std::optional<StatId> lazy_anchor = std::nullopt);
  StatId histogram(std::string name, std::optional<StatId> lazy_anchor = std::nullopt);

  // Scope registration (main thread): `schema.size()` stats named
  // prefix + suffix. `schema` must outlive the store (a static). Registering
  // the prefix of a live scope with the same schema returns that scope (its
  // stats carry on across a config update); with another schema the new scope
  // replaces the old one in /stats. A retired prefix starts again from zero.
  ScopeRef scope(std::string prefix, const StatSchema& schema);

  // Any thread: runs `fn` on the main thread, where registration happens
  // (Envoy creates a stat where it is first used; a worker asks the main
  // thread for it this way: the per-method gRPC stats). The server installs
  // a poster onto its main io_context before workers start; without one
  // (unit tests, tools: one thread) `fn` runs at once.
  using MainThreadPoster = std::function<void(std::function<void()>)>;
  void setMainThreadPoster(MainThreadPoster post) { post_to_main_ = std::move(post); }
  void runOnMainThread(std::function<void()> fn) const {
    if (post_to_main_) {
      post_to_main_(std::move(fn));
    } else {
      fn();
    }
  }

  // Frees the slots of every scope whose last handle went, in every shard, and
  // recycles them. Main thread; registration, resetCounters and
  // flushHistogramIntervals call it, and the admin calls it before reading.
  // Returns how many scopes it freed.
  size_t reclaim();
  // Scopes registered and not yet reclaimed (main thread).
  size_t scopeCount() const { return scopes_.size(); }

  size_t workerCount() const { return shards_.size() - 1; }
  Shard& shard(size_t worker) { return *shards_[worker]; }
  Shard& mainShard() { return *shards_.back(); }

  // Admin (main thread).
  uint64_t overflowCount() const { return overflow_; }
  // Envoy's /reset_counters: counters read 0 afterwards; gauges and
  // histograms are untouched. Implemented as a baseline so workers' relaxed
  // stores never race with it.
  void resetCounters();
  // Ends a histogram interval (Envoy's stats flush, every 5 s by default): the
  // samples since the previous call become each histogram's interval values.
  void flushHistogramIntervals();

  struct ScalarView {
    std::string_view name;  // valid during the callback only
    StatKind kind;          // Counter or Gauge
    uint64_t counter = 0;
    int64_t gauge = 0;
    bool used = false;
  };
  struct HistogramView {
    std::string_view name;  // valid during the callback only
    const HistogramSnapshot* cumulative;
    const HistogramSnapshot* interval;  // empty until the first flush
    bool used = false;
  };
  // Visits counters and gauges merged across shards, sorted by name, without
  // building a list of all names (a k-way merge of the loose stats and each
  // scope). `used_only` skips, cheaply, the scopes no shard ever wrote (the
  // callback still sees `used`). `wanted` (unset: all) picks names before
  // their values are merged: a /stats?filter= over 20,000 clusters merged
  // every histogram's shards only to drop them.
  using NameFilter = std::function<bool(std::string_view)>;
  void forEachScalar(const std::function<void(const ScalarView&)>& fn, bool used_only = false,
                     const NameFilter& wanted = nullptr) const;
  void forEachHistogram(const std::function<void(const HistogramView&)>& fn,
                        bool used_only = false, const NameFilter& wanted = nullptr) const;

  // Merged values by name, for tests and the server (main thread).
  uint64_t counterValue(std::string_view name) const;
  int64_t gaugeValue(std::string_view name) const;
  HistogramSnapshot histogramValue(std::string_view name) const;

  // Heap bytes the shards hold (values, histograms, page tables), for tests.
  size_t shardBytes() const;

 private:
  struct Loose {
    std::string name;
    StatKind kind;
    StatId id;
    std::optional<StatId> anchor;  // lazy: listed once this slot is written
  };
  struct Found {
    StatId id;
    StatKind kind;
  };
  struct Retired;
  struct Interval {
    HistogramSnapshot interval;       // the last complete interval
    HistogramSnapshot at_last_flush;  // cumulative at the last flush
  };

  StatId registerLoose(std::string name, StatKind kind, std::optional<StatId> lazy_anchor);
  std::optional<Found> find(std::string_view name) const;
  std::optional<Found> findScoped(std::string_view name) const;
  // Allocates `pages` consecutive pages (recycled when a run of that length is
  // free); nullopt when the slot space is exhausted.
  std::optional<uint32_t> allocatePages(uint32_t pages);
  bool liveScope(const Scope& s) const;
  bool scopeWritten(const Scope& s) const;
  uint64_t mergedScalar(uint32_t index) const;
  uint64_t counterReading(uint32_t index) const;
  bool mergedUsed(uint32_t index) const;
  HistogramSnapshot mergedHistogram(uint32_t index) const;
  // Calls fn(id, kind, name) for every stat shown, sorted by name.
  void forEachStat(bool used_only,
                   const std::function<void(StatId, StatKind, std::string_view)>& fn) const;

  std::vector<std::unique_ptr<Shard>> shards_;
  std::deque<Loose> loose_;  // a deque: loose_index_ views its names
  absl::flat_hash_map<absl::string_view, uint32_t> loose_index_;  // name -> loose_ index
  uint32_t loose_next_ = 0;  // next free slot in the current loose page; 0: none
  std::vector<std::unique_ptr<Scope>> scopes_;
  absl::flat_hash_map<absl::string_view, Scope*> scope_index_;  // prefix -> current scope
  uint32_t next_page_ = 1;                                     // page 0 holds the sinks
  absl::flat_hash_map<uint32_t, std::vector<uint32_t>> free_runs_;  // length -> first pages
  std::shared_ptr<Retired> retired_;
  // Sparse: only counters that were non-zero at a reset, histograms with samples.
  absl::flat_hash_map<uint32_t, uint64_t> counter_baseline_;
  absl::flat_hash_map<uint32_t, Interval> intervals_;
  uint64_t overflow_ = 0;
  MainThreadPoster post_to_main_;  // set before workers start, then read-only
};

}  // namespace turnout::proxy::stats
