#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "routing/traceparent.h"

namespace turnout::routing {

// The memory behind routing-key recovery from the trace id: trace-id -> key
// for a bounded time, so that an outbound call that dropped `baggage` but kept
// `traceparent` can get its inbound request's key back
// (docs/sandbox_routing.md, "Keys that apps forget to propagate").
//
// One table per process, shared by every worker thread; no lock anywhere.
// Layout: `capacity` fixed slots allocated once (zeroed pages of an anonymous mapping, so
// the resident size grows only with the slots written), open addressing with
// a probe window of kTraceKeyProbeWindow slots from the trace-id's home slot.
// Each slot is guarded by its own sequence number (a seqlock):
// - a writer claims a slot by a compare-and-swap of its even version to odd,
//   writes, then publishes version + 2; a writer that loses the race for a
//   slot tries again once and otherwise gives up (kBusy);
// - a reader copies the slot between two loads of the version and uses the
//   copy only if both loads are equal and even, so a read is never torn: it
//   returns nothing, or a key that a writer really stored for that trace id.
// Every shared word is read and written through std::atomic_ref, so there is
// no data race in the C++ sense, only retries.
//
// Where to write: the slot that already holds the trace id, else the first
// empty or expired slot in the window, else the live slot that expires
// soonest (counted as an eviction). Two writers racing on one new trace id
// may both insert it; a reader then returns the first in probe order, and
// both are keys written for that trace.
//
// Time is the caller's: any monotonic clock in milliseconds, the same one for
// every call (tests inject it).

// Keys longer than this are not remembered (kKeyTooLong); 63 is Kubernetes'
// label limit, the usual source of sandbox names.
inline constexpr std::size_t kMaxRememberedKeyLength = 64;
inline constexpr std::size_t kTraceKeyProbeWindow = 8;
inline constexpr std::size_t kMaxTraceKeyEntries = std::size_t{1} << 20;

// A key copied out of the table; no heap.
struct RememberedKey {
  std::array<char, kMaxRememberedKeyLength> bytes;
  std::uint8_t size = 0;

  std::string_view view() const { return std::string_view(bytes.data(), size); }
};

enum class RememberResult : std::uint8_t {
  kInserted,    // an empty or expired slot took it
  kUpdated,     // the trace id was there; its key and times were replaced
  kEvicted,     // it replaced the live entry of another trace (window full)
  kKeyTooLong,  // key longer than kMaxRememberedKeyLength: not remembered
  kInvalid,     // empty key or zero trace id: not remembered
  kBusy,        // every slot of the window was being written: not remembered
};

class TraceKeyTable {
 public:
  // @param capacity number of entries, in [1, kMaxTraceKeyEntries] (clamped).
  //   Allocates capacity * sizeof(Slot) bytes of zeroed memory; throws
  //   std::bad_alloc if that fails (config time only).
  explicit TraceKeyTable(std::size_t capacity);
  ~TraceKeyTable();
  TraceKeyTable(const TraceKeyTable&) = delete;
  TraceKeyTable& operator=(const TraceKeyTable&) = delete;

  // Remembers `key` for `id` from now_ms until expires_at_ms (exclusive).
  // Any thread; lock-free; never allocates.
  RememberResult remember(TraceId id, std::string_view key, std::int64_t now_ms,
                          std::int64_t expires_at_ms);

  // Copies the key remembered for `id` into `out` if one is live: now_ms is
  // before its expiry and, when max_age_ms > 0, less than max_age_ms after it
  // was written (the reader's own TTL). Any thread; lock-free; never
  // allocates. Returns false (out unspecified) when there is none.
  bool recall(TraceId id, std::int64_t now_ms, std::int64_t max_age_ms, RememberedKey& out) const;

  std::size_t capacity() const { return capacity_; }
  // The bytes the table reserved (its upper bound on resident memory).
  std::size_t reservedBytes() const;

 private:
  // Plain words (an implicit-lifetime type, valid in mmap'd zeroed memory), each
  // accessed only through std::atomic_ref.
  struct Slot {
    std::uint64_t version;  // odd while a writer holds the slot
    std::uint64_t trace_hi;
    std::uint64_t trace_lo;  // (0, 0): never written
    std::uint64_t written_ms;
    std::uint64_t expires_ms;
    std::uint64_t key_size;
    std::uint64_t key[kMaxRememberedKeyLength / 8];
  };

  std::size_t home(TraceId id) const;
  Slot& slot(std::size_t home, std::size_t i) const;

  Slot* slots_;
  std::size_t capacity_;
  std::size_t window_;
};

}  // namespace turnout::routing
