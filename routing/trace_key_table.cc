#include "routing/trace_key_table.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

namespace turnout::routing {
namespace {

using Ref = std::atomic_ref<std::uint64_t>;

static_assert(kMaxRememberedKeyLength % 8 == 0);
static_assert(Ref::required_alignment <= alignof(std::uint64_t));

std::uint64_t load(const std::uint64_t& word, std::memory_order order = std::memory_order_relaxed) {
  // atomic_ref needs a non-const referent; the load does not write.
  return Ref(const_cast<std::uint64_t&>(word)).load(order);
}

void store(std::uint64_t& word, std::uint64_t value,
           std::memory_order order = std::memory_order_relaxed) {
  Ref(word).store(value, order);
}

// splitmix64's finaliser over both halves: trace ids are meant to be random,
// but some tracers leave the high half zero (64-bit ids widened).
std::uint64_t mix(TraceId id) {
  std::uint64_t z = id.hi ^ (id.lo * 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

enum class Rank : int { kSame = 0, kEmpty = 1, kExpired = 2, kLive = 3 };

}  // namespace

TraceKeyTable::TraceKeyTable(std::size_t capacity)
    : capacity_(std::clamp<std::size_t>(capacity, 1, kMaxTraceKeyEntries)),
      window_(std::min(capacity_, kTraceKeyProbeWindow)) {
  // An anonymous mapping of its own: zeroed pages the kernel maps on first
  // write, so an idle table costs address space, not memory. (calloc would
  // give the same only while the size is above glibc's mmap threshold, which
  // rises as large blocks are freed; below it the table came from the heap
  // and calloc zeroed, so made resident, all of it: 1.8 MB for 16,384
  // entries in every idle sidecar.) Slot is an implicit-lifetime type.
  void* p =
      mmap(nullptr, reservedBytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  slots_ = static_cast<Slot*>(p);
}

TraceKeyTable::~TraceKeyTable() { munmap(slots_, reservedBytes()); }

std::size_t TraceKeyTable::reservedBytes() const { return capacity_ * sizeof(Slot); }

std::size_t TraceKeyTable::home(TraceId id) const {
  // Lemire's multiply-shift: uniform over [0, capacity) without a division.
  return static_cast<std::size_t>(
      (static_cast<unsigned __int128>(mix(id)) * capacity_) >> 64);
}

TraceKeyTable::Slot& TraceKeyTable::slot(std::size_t home, std::size_t i) const {
  std::size_t at = home + i;
  if (at >= capacity_) at -= capacity_;
  return slots_[at];
}

RememberResult TraceKeyTable::remember(TraceId id, std::string_view key, std::int64_t now_ms,
                                       std::int64_t expires_at_ms) {
  if (key.size() > kMaxRememberedKeyLength) return RememberResult::kKeyTooLong;
  if (key.empty() || id.isZero()) return RememberResult::kInvalid;
  const std::size_t h = home(id);
  for (int attempt = 0; attempt < 2; ++attempt) {
    // Choose a slot from a consistent snapshot of each one's header.
    Slot* best = nullptr;
    std::uint64_t best_version = 0;
    Rank best_rank = Rank::kLive;
    std::int64_t best_expiry = 0;
    for (std::size_t i = 0; i < window_; ++i) {
      Slot& s = slot(h, i);
      const std::uint64_t v = load(s.version, std::memory_order_acquire);
      if (v & 1) continue;
      const std::uint64_t hi = load(s.trace_hi);
      const std::uint64_t lo = load(s.trace_lo);
      const auto expiry = static_cast<std::int64_t>(load(s.expires_ms));
      std::atomic_thread_fence(std::memory_order_acquire);
      if (load(s.version) != v) continue;
      Rank rank = Rank::kLive;
      if (hi == id.hi && lo == id.lo) {
        rank = Rank::kSame;
      } else if ((hi | lo) == 0) {
        rank = Rank::kEmpty;
      } else if (expiry <= now_ms) {
        rank = Rank::kExpired;
      }
      if (best == nullptr || rank < best_rank ||
          (rank == best_rank && rank == Rank::kLive && expiry < best_expiry)) {
        best = &s;
        best_version = v;
        best_rank = rank;
        best_expiry = expiry;
      }
      if (rank == Rank::kSame) break;
    }
    if (best == nullptr) continue;
    // Claim it only if nobody wrote it since we looked: then what we evict is
    // what we ranked.
    std::uint64_t expected = best_version;
    if (!Ref(best->version)
             .compare_exchange_strong(expected, best_version + 1, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      continue;
    }
    std::atomic_thread_fence(std::memory_order_release);
    store(best->trace_hi, id.hi);
    store(best->trace_lo, id.lo);
    store(best->written_ms, static_cast<std::uint64_t>(now_ms));
    store(best->expires_ms, static_cast<std::uint64_t>(expires_at_ms));
    store(best->key_size, key.size());
    std::uint64_t words[kMaxRememberedKeyLength / 8] = {};
    std::memcpy(words, key.data(), key.size());
    const std::size_t used = (key.size() + 7) / 8;
    for (std::size_t w = 0; w < used; ++w) store(best->key[w], words[w]);
    store(best->version, best_version + 2, std::memory_order_release);
    switch (best_rank) {
      case Rank::kSame: return RememberResult::kUpdated;
      case Rank::kLive: return RememberResult::kEvicted;
      case Rank::kEmpty:
      case Rank::kExpired: return RememberResult::kInserted;
    }
  }
  return RememberResult::kBusy;
}

bool TraceKeyTable::recall(TraceId id, std::int64_t now_ms, std::int64_t max_age_ms,
                           RememberedKey& out) const {
  if (id.isZero()) return false;
  const std::size_t h = home(id);
  for (std::size_t i = 0; i < window_; ++i) {
    const Slot& s = slot(h, i);
    // A slot caught mid-write is read again a few times, then skipped: its
    // writer may be storing this very trace id, but a reader never waits.
    for (int tries = 0; tries < 4; ++tries) {
      const std::uint64_t v = load(s.version, std::memory_order_acquire);
      if (v & 1) continue;
      if (load(s.trace_hi) != id.hi || load(s.trace_lo) != id.lo) {
        std::atomic_thread_fence(std::memory_order_acquire);
        if (load(s.version) != v) continue;
        break;  // another trace's slot
      }
      const auto written = static_cast<std::int64_t>(load(s.written_ms));
      const auto expiry = static_cast<std::int64_t>(load(s.expires_ms));
      const std::uint64_t size = load(s.key_size);
      std::uint64_t words[kMaxRememberedKeyLength / 8];
      const std::size_t used = size <= kMaxRememberedKeyLength ? (size + 7) / 8 : 0;
      for (std::size_t w = 0; w < used; ++w) words[w] = load(s.key[w]);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (load(s.version) != v) continue;
      // A consistent copy of this trace's entry.
      if (size == 0 || size > kMaxRememberedKeyLength) break;
      if (now_ms >= expiry) break;
      if (max_age_ms > 0 && now_ms - written >= max_age_ms) break;
      std::memcpy(out.bytes.data(), words, size);
      out.size = static_cast<std::uint8_t>(size);
      return true;
    }
  }
  return false;
}

}  // namespace turnout::routing
