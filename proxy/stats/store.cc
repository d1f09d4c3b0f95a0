#include "proxy/stats/store.h"

#include <algorithm>
#include <bit>
#include <mutex>
#include <utility>

#include "proxy/common/log.h"

namespace turnout::proxy::stats {
namespace {

constexpr const char* kLogComponent = "stats";

// Debian's abseil has its own string_view.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

uint32_t pagesFor(uint32_t slots) { return (slots + Shard::kPageSlots - 1) / Shard::kPageSlots; }

}  // namespace

// ---- StatSchema -------------------------------------------------------------

uint32_t StatSchema::add(std::string suffix, StatKind kind, uint32_t lazy_anchor) {
  const auto offset = static_cast<uint32_t>(entries_.size());
  index_.emplace(suffix, offset);
  entries_.push_back(Entry{std::move(suffix), kind, lazy_anchor == kSelf ? offset : lazy_anchor});
  auto at = std::lower_bound(sorted_.begin(), sorted_.end(), offset, [this](uint32_t a, uint32_t b) {
    return entries_[a].suffix < entries_[b].suffix;
  });
  sorted_.insert(at, offset);
  return offset;
}

const std::vector<uint32_t>& StatSchema::sortedOrder() const { return sorted_; }

std::optional<uint32_t> StatSchema::find(std::string_view suffix) const {
  auto it = index_.find(av(suffix));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

// ---- Scope ------------------------------------------------------------------

class Scope {
 public:
  std::string prefix;
  const StatSchema* schema = nullptr;
  uint32_t first_page = 0;
  uint32_t pages = 0;
  size_t position = 0;   // in Store::scopes_
  bool current = false;  // Store::scope_index_ points here
  std::weak_ptr<const Scope> self;

  uint32_t first() const { return first_page << Shard::kPageBits; }
};

// Scopes whose last handle went, waiting for the main thread's reclaim(). The
// handles' deleter may run on any thread, so this list has a mutex; it is
// taken once per retired scope, at config changes, never per request.
struct Store::Retired {
  std::mutex mu;
  bool store_alive = true;
  std::vector<const Scope*> scopes;
};


// ---- Shard ------------------------------------------------------------------

Shard::HistogramData::~HistogramData() {
  for (auto& c : chunks) delete c.load(std::memory_order_acquire);
}

size_t Shard::HistogramData::bytes() const {
  size_t n = sizeof(HistogramData);
  for (const auto& c : chunks) {
    if (c.load(std::memory_order_acquire) != nullptr) n += sizeof(HistogramChunk);
  }
  return n;
}

Shard::Shard() : top_(new std::atomic<Leaf*>[kTopLeaves]()) {}

Shard::~Shard() {
  for (uint32_t l = 0; l < kTopLeaves; ++l) {
    Leaf* leaf = top_[l].load(std::memory_order_acquire);
    if (leaf == nullptr) continue;
    for (auto& p : leaf->pages) freePage(p.load(std::memory_order_acquire));
    delete leaf;
  }
}

Shard::Leaf* Shard::newLeaf(uint32_t leaf_id) {
  auto* leaf = new Leaf();
  top_[leaf_id].store(leaf, std::memory_order_release);
  return leaf;
}

Shard::Page* Shard::newPage(Leaf& leaf, uint32_t page_in_leaf) {
  auto* page = new Page();
  leaf.pages[page_in_leaf].store(page, std::memory_order_release);
  return page;
}

void Shard::freePage(Page* page) {
  if (page == nullptr) return;
  uint32_t h = page->histograms.load(std::memory_order_acquire);
  while (h != 0) {
    const int slot = std::countr_zero(h);
    h &= h - 1;
    delete reinterpret_cast<HistogramData*>(page->values[slot].load(std::memory_order_acquire));
  }
  delete page;
}

const Shard::Page* Shard::findPage(uint32_t page_id) const {
  const Leaf* leaf = top_[page_id >> kLeafBits].load(std::memory_order_acquire);
  if (leaf == nullptr) return nullptr;
  return leaf->pages[page_id & kLeafMask].load(std::memory_order_acquire);
}

void Shard::recordMicros(StatId histogram, uint64_t value_us) {
  // Page 0 holds the sinks (and a default StatId{} is the scalar sink): drop.
  if (histogram.index < kPageSlots) [[unlikely]] return;
  Page& p = page(histogram.index);
  const uint32_t slot = histogram.index & kSlotMask;
  auto* data = reinterpret_cast<HistogramData*>(p.values[slot].load(std::memory_order_relaxed));
  if (data == nullptr) {
    // Only this shard's thread writes the slot, so no compare-exchange is needed.
    data = new HistogramData();
    p.histograms.store(p.histograms.load(std::memory_order_relaxed) | (1u << slot),
                       std::memory_order_relaxed);
    p.values[slot].store(reinterpret_cast<uintptr_t>(data), std::memory_order_release);
    markUsed(p, histogram.index);
  }
  const uint32_t b = HistogramBuckets::index(value_us);
  auto& chunk_slot = data->chunks[b / kChunkBuckets];
  HistogramChunk* chunk = chunk_slot.load(std::memory_order_relaxed);
  if (chunk == nullptr) [[unlikely]] {
    chunk = new HistogramChunk();
    chunk_slot.store(chunk, std::memory_order_release);
  }
  auto& bucket = chunk->counts[b % kChunkBuckets];
  bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  data->sum_us.store(data->sum_us.load(std::memory_order_relaxed) + value_us,
                     std::memory_order_relaxed);
}

uint64_t Shard::scalar(uint32_t index) const {
  const Page* p = findPage(index >> kPageBits);
  return p == nullptr ? 0 : p->values[index & kSlotMask].load(std::memory_order_relaxed);
}

bool Shard::used(uint32_t index) const {
  const Page* p = findPage(index >> kPageBits);
  return p != nullptr && (p->used.load(std::memory_order_relaxed) & (1u << (index & kSlotMask))) != 0;
}

bool Shard::addHistogramTo(uint32_t histogram, HistogramSnapshot& out) const {
  if (histogram < kPageSlots) return false;
  const Page* p = findPage(histogram >> kPageBits);
  if (p == nullptr) return false;
  const auto* data = reinterpret_cast<const HistogramData*>(
      p->values[histogram & kSlotMask].load(std::memory_order_acquire));
  if (data == nullptr) return false;
  if (out.counts.empty()) out.counts.assign(HistogramBuckets::kCount, 0);
  uint64_t n = 0;
  for (uint32_t k = 0; k < kChunks; ++k) {
    const HistogramChunk* chunk = data->chunks[k].load(std::memory_order_acquire);
    if (chunk == nullptr) continue;
    const uint32_t first = k * kChunkBuckets;
    const uint32_t end = std::min(first + kChunkBuckets, HistogramBuckets::kCount);
    for (uint32_t i = first; i < end; ++i) {
      const uint64_t c = chunk->counts[i - first].load(std::memory_order_relaxed);
      out.counts[i] += c;
      n += c;
    }
  }
  // The bucket sum is the sample count, so quantiles and counts always agree
  // even when a record is in flight.
  out.sample_count += n;
  out.sum_us += data->sum_us.load(std::memory_order_relaxed);
  return true;
}

bool Shard::anyPage(uint32_t first_page, uint32_t pages) const {
  for (uint32_t p = first_page; p < first_page + pages; ++p) {
    if (findPage(p) != nullptr) return true;
  }
  return false;
}

void Shard::releasePages(uint32_t first_page, uint32_t pages) {
  for (uint32_t p = first_page; p < first_page + pages; ++p) {
    Leaf* leaf = top_[p >> kLeafBits].load(std::memory_order_acquire);
    if (leaf == nullptr) continue;
    freePage(leaf->pages[p & kLeafMask].exchange(nullptr, std::memory_order_acq_rel));
  }
}

size_t Shard::allocatedBytes() const {
  size_t bytes = sizeof(std::atomic<Leaf*>) * kTopLeaves;
  for (uint32_t l = 0; l < kTopLeaves; ++l) {
    const Leaf* leaf = top_[l].load(std::memory_order_acquire);
    if (leaf == nullptr) continue;
    bytes += sizeof(Leaf);
    for (const auto& slot : leaf->pages) {
      const Page* p = slot.load(std::memory_order_acquire);
      if (p == nullptr) continue;
      bytes += sizeof(Page);
      uint32_t h = p->histograms.load(std::memory_order_acquire);
      while (h != 0) {
        const int slot = std::countr_zero(h);
        h &= h - 1;
        bytes +=
            reinterpret_cast<const HistogramData*>(p->values[slot].load(std::memory_order_acquire))
                ->bytes();
      }
    }
  }
  return bytes;
}

// ---- Store ------------------------------------------------------------------

Store::Store(size_t workers) : retired_(std::make_shared<Retired>()) {
  for (size_t i = 0; i < workers + 1; ++i) shards_.push_back(std::make_unique<Shard>());
}

Store::~Store() {
  // Handles may outlive the store (a config freed after it): their deleter
  // then finds the list closed and touches nothing else.
  std::lock_guard<std::mutex> lock(retired_->mu);
  retired_->store_alive = false;
  retired_->scopes.clear();
}

std::optional<uint32_t> Store::allocatePages(uint32_t pages) {
  if (auto it = free_runs_.find(pages); it != free_runs_.end() && !it->second.empty()) {
    const uint32_t first = it->second.back();
    it->second.pop_back();
    return first;
  }
  if (next_page_ > Shard::kMaxPages - pages) return std::nullopt;
  const uint32_t first = next_page_;
  next_page_ += pages;
  return first;
}

StatId Store::registerLoose(std::string name, StatKind kind, std::optional<StatId> lazy_anchor) {
  const uint32_t sink = kind == StatKind::Histogram ? kHistogramSink : kScalarSink;
  // Loose names only: a loose stat must not alias a scope's slot, which is
  // recycled when the scope goes.
  if (auto it = loose_index_.find(av(name)); it != loose_index_.end()) {
    const Loose& l = loose_[it->second];
    if (l.kind == kind) return l.id;
    ++overflow_;
    TURNOUT_LOG(warn, kLogComponent, "stat '{}' is already registered as another kind; writes to "
                "it are dropped", name);
    return StatId{sink};
  }
  if (loose_next_ == 0) {
    std::optional<uint32_t> page = allocatePages(1);
    if (!page) {
      ++overflow_;
      TURNOUT_LOG(err, kLogComponent, "stat slots exhausted; '{}' is dropped", name);
      return StatId{sink};
    }
    loose_next_ = *page << Shard::kPageBits;
  }
  const StatId id{loose_next_++};
  if ((loose_next_ & (Shard::kPageSlots - 1)) == 0) loose_next_ = 0;
  if (lazy_anchor && *lazy_anchor == StatId{}) lazy_anchor = id;
  loose_.push_back(Loose{std::move(name), kind, id, lazy_anchor});
  loose_index_.emplace(av(loose_.back().name), static_cast<uint32_t>(loose_.size() - 1));
  return id;
}

StatId Store::counter(std::string name, std::optional<StatId> lazy_anchor) {
  return registerLoose(std::move(name), StatKind::Counter, lazy_anchor);
}
StatId Store::gauge(std::string name, std::optional<StatId> lazy_anchor) {
  return registerLoose(std::move(name), StatKind::Gauge, lazy_anchor);
}
StatId Store::histogram(std::string name, std::optional<StatId> lazy_anchor) {
  return registerLoose(std::move(name), StatKind::Histogram, lazy_anchor);
}

ScopeRef Store::scope(std::string prefix, const StatSchema& schema) {
  reclaim();
  auto it = scope_index_.find(av(prefix));
  if (it != scope_index_.end()) {
    Scope* old = it->second;
    if (old->schema == &schema) {
      if (ScopeHandle h = old->self.lock()) return ScopeRef{std::move(h), &schema, old->first()};
    }
    // Retired but not reclaimed yet, or another schema: the new scope takes
    // the name; the old one is freed when its handles go.
    old->current = false;
    scope_index_.erase(it);
  }
  const uint32_t pages = std::max<uint32_t>(1, pagesFor(schema.size()));
  std::optional<uint32_t> first_page = allocatePages(pages);
  if (!first_page) {
    // Only reachable with ~2^28 live stats: far past any memory budget.
    overflow_ += schema.size();
    TURNOUT_LOG(err, kLogComponent, "stat slots exhausted; the stats of '{}' are dropped", prefix);
    return ScopeRef{nullptr, &schema, 0};
  }
  auto owned = std::make_unique<Scope>();
  Scope* s = owned.get();
  s->prefix = std::move(prefix);
  s->schema = &schema;
  s->first_page = *first_page;
  s->pages = pages;
  s->position = scopes_.size();
  s->current = true;
  scopes_.push_back(std::move(owned));
  scope_index_.emplace(av(s->prefix), s);
  ScopeHandle handle(s, [retired = retired_](const Scope* dead) {
    std::lock_guard<std::mutex> lock(retired->mu);
    if (retired->store_alive) retired->scopes.push_back(dead);
  });
  s->self = handle;
  return ScopeRef{std::move(handle), &schema, s->first()};
}

size_t Store::reclaim() {
  std::vector<const Scope*> dead;
  {
    std::lock_guard<std::mutex> lock(retired_->mu);
    dead.swap(retired_->scopes);
  }
  for (const Scope* d : dead) {
    Scope* s = scopes_[d->position].get();
    for (auto& shard : shards_) shard->releasePages(s->first_page, s->pages);
    const uint32_t first = s->first();
    for (uint32_t k = 0; k < s->schema->size(); ++k) {
      counter_baseline_.erase(first + k);
      intervals_.erase(first + k);
    }
    free_runs_[s->pages].push_back(s->first_page);
    if (s->current) scope_index_.erase(av(s->prefix));
    const size_t pos = s->position;
    if (pos + 1 != scopes_.size()) {
      scopes_[pos] = std::move(scopes_.back());
      scopes_[pos]->position = pos;
    }
    scopes_.pop_back();
  }
  return dead.size();
}

bool Store::liveScope(const Scope& s) const { return s.current && !s.self.expired(); }

bool Store::scopeWritten(const Scope& s) const {
  for (const auto& shard : shards_) {
    if (shard->anyPage(s.first_page, s.pages)) return true;
  }
  return false;
}

std::optional<Store::Found> Store::findScoped(std::string_view name) const {
  for (size_t dot = name.find('.'); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
    auto it = scope_index_.find(av(name.substr(0, dot + 1)));
    if (it == scope_index_.end() || !liveScope(*it->second)) continue;
    const Scope& s = *it->second;
    if (std::optional<uint32_t> k = s.schema->find(name.substr(dot + 1))) {
      return Found{StatId{s.first() + *k}, s.schema->kind(*k)};
    }
  }
  return std::nullopt;
}

std::optional<Store::Found> Store::find(std::string_view name) const {
  if (auto it = loose_index_.find(av(name)); it != loose_index_.end()) {
    const Loose& l = loose_[it->second];
    return Found{l.id, l.kind};
  }
  return findScoped(name);
}

uint64_t Store::mergedScalar(uint32_t index) const {
  uint64_t sum = 0;
  for (const auto& s : shards_) sum += s->scalar(index);
  return sum;
}

uint64_t Store::counterReading(uint32_t index) const {
  const uint64_t raw = mergedScalar(index);
  auto it = counter_baseline_.find(index);
  return it == counter_baseline_.end() ? raw : raw - it->second;
}

bool Store::mergedUsed(uint32_t index) const {
  for (const auto& s : shards_) {
    if (s->used(index)) return true;
  }
  return false;
}

HistogramSnapshot Store::mergedHistogram(uint32_t index) const {
  HistogramSnapshot out;
  for (const auto& s : shards_) s->addHistogramTo(index, out);
  return out;
}

void Store::forEachStat(bool used_only,
                        const std::function<void(StatId, StatKind, std::string_view)>& fn) const {
  // Sorted without materialising every name: each loose stat is one item,
  // each live scope one item keyed by its prefix whose names (its schema's
  // suffixes, pre-sorted) all sort right after it. Sorting the items is
  // enough unless a key starts with a scope's prefix (a cluster "a" beside a
  // cluster "a.b", a scope's own loose stats); then the names interleave,
  // and a k-way merge sorts them. Only such a run interleaves: the keys
  // that start with a scope's prefix follow it in the sorted items, and
  // every name of the run sorts before the next key that does not, so each
  // run is merged on its own and the rest streams as it is (a heap over
  // every stat made /stats at 20,000 clusters spend seconds comparing).
  struct Item {
    std::string_view key;
    const Scope* scope;  // null: loose_[loose]
    uint32_t loose;
  };
  std::vector<Item> items;
  items.reserve(loose_.size() + scopes_.size());
  for (uint32_t i = 0; i < loose_.size(); ++i) items.push_back(Item{loose_[i].name, nullptr, i});
  for (const auto& owned : scopes_) {
    const Scope& s = *owned;
    if (!liveScope(s) || s.schema->size() == 0 || (used_only && !scopeWritten(s))) continue;
    items.push_back(Item{s.prefix, &s, 0});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.key < b.key; });

  struct Stream {
    const Item* item;
    size_t pos = 0;  // in the scope's sorted order
    std::string name;
  };
  auto load = [](Stream& st) {
    const Scope& s = *st.item->scope;
    st.name.resize(s.prefix.size());
    st.name += s.schema->suffix(s.schema->sortedOrder()[st.pos]);
  };
  // Emits the stream's current stat; false once it is exhausted.
  auto emit = [this, &fn, &load](Stream& st) {
    // A lazy stat no shard wrote does not exist yet, as in Envoy.
    if (st.item->scope == nullptr) {
      const Loose& l = loose_[st.item->loose];
      if (!l.anchor || mergedUsed(l.anchor->index)) fn(l.id, l.kind, l.name);
      return false;
    }
    const Scope& s = *st.item->scope;
    const uint32_t k = s.schema->sortedOrder()[st.pos];
    const StatId id{s.first() + k};
    if (!s.schema->lazy(k) || mergedUsed(s.first() + s.schema->anchor(k))) {
      fn(id, s.schema->kind(k), st.name);
    }
    if (++st.pos == s.schema->size()) return false;
    load(st);
    return true;
  };
  auto start = [&load](const Item& item) {
    Stream st{&item, 0, {}};
    if (item.scope != nullptr) {
      st.name = item.scope->prefix;
      load(st);
    } else {
      st.name = item.key;
    }
    return st;
  };

  std::vector<Stream> streams;
  std::vector<uint32_t> heap;
  for (size_t i = 0; i < items.size();) {
    // The run of items whose keys start with this scope's prefix.
    size_t end = i + 1;
    if (items[i].scope != nullptr) {
      while (end < items.size() && items[end].key.starts_with(items[i].key)) ++end;
    }
    if (end == i + 1) {
      Stream st = start(items[i]);
      while (emit(st)) {
      }
      i = end;
      continue;
    }
    streams.clear();
    for (size_t k = i; k < end; ++k) streams.push_back(start(items[k]));
    auto later = [&streams](uint32_t a, uint32_t b) { return streams[a].name > streams[b].name; };
    heap.resize(streams.size());
    for (uint32_t k = 0; k < heap.size(); ++k) heap[k] = k;
    std::make_heap(heap.begin(), heap.end(), later);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      if (emit(streams[heap.back()])) {
        std::push_heap(heap.begin(), heap.end(), later);
      } else {
        heap.pop_back();
      }
    }
    i = end;
  }
}

void Store::resetCounters() {
  reclaim();
  forEachStat(true, [&](StatId id, StatKind kind, std::string_view) {
    if (kind != StatKind::Counter) return;
    const uint64_t raw = mergedScalar(id.index);
    if (raw == 0) {
      counter_baseline_.erase(id.index);
    } else {
      counter_baseline_[id.index] = raw;
    }
  });
}

void Store::flushHistogramIntervals() {
  reclaim();
  forEachStat(true, [&](StatId id, StatKind kind, std::string_view) {
    if (kind != StatKind::Histogram) return;
    HistogramSnapshot now = mergedHistogram(id.index);
    if (now.empty()) return;
    Interval& state = intervals_[id.index];
    HistogramSnapshot interval;
    interval.counts = now.counts;
    const HistogramSnapshot& prev = state.at_last_flush;
    if (!prev.counts.empty()) {
      for (size_t b = 0; b < interval.counts.size(); ++b) interval.counts[b] -= prev.counts[b];
    }
    interval.sample_count = now.sample_count - prev.sample_count;
    interval.sum_us = now.sum_us - prev.sum_us;
    if (interval.sample_count == 0) interval.counts.clear();
    state.interval = std::move(interval);
    state.at_last_flush = std::move(now);
  });
}

void Store::forEachScalar(const std::function<void(const ScalarView&)>& fn, bool used_only,
                          const NameFilter& wanted) const {
  forEachStat(used_only, [&](StatId id, StatKind kind, std::string_view name) {
    if (kind == StatKind::Histogram) return;
    if (wanted && !wanted(name)) return;
    ScalarView v;
    v.name = name;
    v.kind = kind;
    if (kind == StatKind::Counter) {
      v.counter = counterReading(id.index);
    } else {
      v.gauge = static_cast<int64_t>(mergedScalar(id.index));
    }
    v.used = mergedUsed(id.index);
    fn(v);
  });
}

void Store::forEachHistogram(const std::function<void(const HistogramView&)>& fn,
                             bool used_only, const NameFilter& wanted) const {
  static const HistogramSnapshot kEmpty;
  forEachStat(used_only, [&](StatId id, StatKind kind, std::string_view name) {
    if (kind != StatKind::Histogram) return;
    if (wanted && !wanted(name)) return;
    const HistogramSnapshot cumulative = mergedHistogram(id.index);
    auto it = intervals_.find(id.index);
    HistogramView v;
    v.name = name;
    v.cumulative = &cumulative;
    v.interval = it == intervals_.end() ? &kEmpty : &it->second.interval;
    v.used = !cumulative.empty();
    fn(v);
  });
}

uint64_t Store::counterValue(std::string_view name) const {
  std::optional<Found> f = find(name);
  if (!f || f->kind != StatKind::Counter) return 0;
  return counterReading(f->id.index);
}

int64_t Store::gaugeValue(std::string_view name) const {
  std::optional<Found> f = find(name);
  if (!f || f->kind != StatKind::Gauge) return 0;
  return static_cast<int64_t>(mergedScalar(f->id.index));
}

HistogramSnapshot Store::histogramValue(std::string_view name) const {
  std::optional<Found> f = find(name);
  if (!f || f->kind != StatKind::Histogram) return {};
  return mergedHistogram(f->id.index);
}

size_t Store::shardBytes() const {
  size_t bytes = 0;
  for (const auto& s : shards_) bytes += s->allocatedBytes();
  return bytes;
}

}  // namespace turnout::proxy::stats
