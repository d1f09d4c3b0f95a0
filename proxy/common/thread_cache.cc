#include "proxy/common/thread_cache.h"

#include <malloc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace turnout::proxy::thread_cache {
namespace {

// Class c holds blocks of 16c + 8 bytes for c = 1..64 (24 to 1,032: every
// size malloc hands out), then of 1,032 + 64(c - 64) bytes for c = 65..112
// (to 4,104: coroutine frames of the larger coroutines, which are allocated
// and freed once per request).
constexpr size_t kSmallClasses = 64;
constexpr size_t kSmallMax = 1032;
constexpr size_t kClasses = 112;
constexpr size_t kBytesPerClass = 512 * 1024;

// A class's cached blocks are a stack of pointers, not a list threaded
// through the blocks: handing a block out reads only the stack's top, not
// the block. A list's pop read the block's link, and a block freed 100
// streams ago is out of the L1 cache: that load was 98 % of this
// function's samples and 5 % of an h2c 100-stream request's CPU (perf,
// cpu-clock, 2026-12-07). The miss moved to the block's first use rather
// than going away (bench/compare/simultaneous.sh found both builds even),
// but the allocator no longer waits on it. The stack of a class grows from
// kFirstSlots by doubling, to kCap[c] pointers, and is malloc's memory.
struct Stack {
  void** slots;
  uint32_t count;
  uint32_t capacity;
};
constexpr uint32_t kFirstSlots = 16;

// `bytes` is also the thread's state: kUnregistered until its first push
// (which sets up the Flusher below), kDead once the thread exits. Both are
// far above any real count, so push()'s fast path tests one bound for all
// three. Constant-initialised and trivially destructible, so that a
// thread's access is a plain TLS load, with no guard on the fast path.
constexpr size_t kUnregistered = SIZE_MAX / 4;
constexpr size_t kDead = SIZE_MAX / 2;
struct Cache {
  Stack cls[kClasses + 1];
  size_t bytes;
};
constinit thread_local Cache t_cache{{}, kUnregistered};

// The smallest class that holds n bytes (n <= kMaxBlock).
constexpr size_t classOf(size_t n) {
  if (n <= 24) return 1;
  if (n <= kSmallMax) return (n - 8 + 15) >> 4;
  return kSmallClasses + (n - kSmallMax + 63) / 64;
}
constexpr size_t classSize(size_t c) {
  return c <= kSmallClasses ? (c << 4) + 8 : kSmallMax + ((c - kSmallClasses) << 6);
}
// The largest class a block of `usable` bytes holds (24 <= usable <= kMaxBlock).
constexpr size_t classHeldBy(size_t usable) {
  if (usable <= kSmallMax) return (usable - 8) >> 4;
  return kSmallClasses + (usable - kSmallMax) / 64;
}
// Blocks kept per class: kBytesPerClass of them, 4 to kMaxPerClass.
constexpr std::array<uint32_t, kClasses + 1> kCap = [] {
  std::array<uint32_t, kClasses + 1> cap{};
  for (size_t c = 1; c <= kClasses; ++c) {
    cap[c] = static_cast<uint32_t>(
        std::clamp<size_t>(kBytesPerClass / classSize(c), 4, size_t{kMaxPerClass}));
  }
  return cap;
}();
static_assert(classSize(kClasses) == kMaxBlock);
static_assert(classOf(24) == 1 && classOf(25) == 2 && classOf(40) == 2 && classOf(1032) == 64);
static_assert(classOf(1033) == 65 && classOf(1096) == 65 && classOf(1097) == 66);
static_assert(classHeldBy(1032) == 64 && classHeldBy(1095) == 64 && classHeldBy(1096) == 65);
static_assert(classHeldBy(kMaxBlock) == kClasses && classHeldBy(kMaxBlock - 1) == kClasses - 1);

constexpr std::array<uint32_t, kClasses + 1> kSize = [] {
  std::array<uint32_t, kClasses + 1> size{};
  for (size_t c = 1; c <= kClasses; ++c) size[c] = static_cast<uint32_t>(classSize(c));
  return size;
}();

// Gives the thread's blocks back to malloc when the thread exits.
struct Flusher {
  ~Flusher() {
    flush();
    t_cache.bytes = kDead;
  }
};

void* mallocOrThrow(size_t n) {
  for (;;) {
    if (void* p = std::malloc(n)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

[[gnu::always_inline]] inline void* pop(size_t c) noexcept {
  Cache& k = t_cache;
  Stack& s = k.cls[c];
  if (s.count == 0) return nullptr;
  k.bytes -= kSize[c];
  return s.slots[--s.count];
}

// Whether the thread has room for one more block of class `c` (false too
// while the thread is unregistered or exiting: its byte count is above any
// bound).
[[gnu::always_inline]] inline bool threadHasRoom(const Cache& k, size_t c) noexcept {
  return k.bytes + kSize[c] <= kMaxCachedBytes;
}

[[gnu::always_inline]] inline void insert(Cache& k, void* p, size_t c) noexcept {
  Stack& s = k.cls[c];
  s.slots[s.count++] = p;
  k.bytes += kSize[c];
}

// push() without room: a thread's first push sets up its Flusher; a full
// stack grows up to the class's bound; a full class or thread, an exiting
// thread, or a failed growth gives the block to malloc.
[[gnu::noinline]] void pushSlow(void* p, size_t c) noexcept {
  Cache& k = t_cache;
  if (k.bytes == kUnregistered) {
    k.bytes = 0;
    static thread_local Flusher flusher;
    (void)flusher;
  }
  Stack& s = k.cls[c];
  if (threadHasRoom(k, c) && s.count == s.capacity && s.capacity < kCap[c]) {
    const uint32_t grown = std::min(s.capacity == 0 ? kFirstSlots : 2 * s.capacity, kCap[c]);
    if (void* slots = std::realloc(s.slots, grown * sizeof(void*))) {
      s.slots = static_cast<void**>(slots);
      s.capacity = grown;
    }
  }
  if (threadHasRoom(k, c) && s.count < s.capacity) {
    insert(k, p, c);
  } else {
    std::free(p);
  }
}

[[gnu::always_inline]] inline void push(void* p, size_t c) noexcept {
  Cache& k = t_cache;
  if (threadHasRoom(k, c) && k.cls[c].count < k.cls[c].capacity) [[likely]] {
    insert(k, p, c);
  } else {
    pushSlow(p, c);
  }
}

// glibc's malloc keeps a chunk's size in the word before the block, with
// flags in its three low bits (2: an mmapped chunk). malloc_usable_size
// reads that word, and then the next chunk's header to check that this one
// is in use: a line past the block's end, cold for a block written long
// before it is freed (nghttp2's items, coroutine frames). It was 4 of an
// h2c request's ~280 L1 misses (callgrind's cache simulation, 2026-12-07),
// and its ~13 instructions ran 9 to 14 times a request. A block being freed
// is in use, so the first word is enough. Whether this malloc keeps that
// layout (not, say, a preloaded jemalloc) is checked once against
// malloc_usable_size.
//
// Under AddressSanitizer (the fuzz targets, whose nghttp2 sessions allocate
// here) malloc is the sanitizer's: its blocks have another layout, and the
// word before one is a redzone it reports on reading.
#if defined(__SANITIZE_ADDRESS__)
#define TURNOUT_THREAD_CACHE_FOREIGN_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define TURNOUT_THREAD_CACHE_FOREIGN_MALLOC 1
#endif
#endif

#if !defined(TURNOUT_THREAD_CACHE_FOREIGN_MALLOC)
enum class Layout : int { kUnknown, kGlibc, kOther };
constinit std::atomic<Layout> g_layout{Layout::kUnknown};

size_t headerUsable(void* p) noexcept {
  const size_t word =
      *reinterpret_cast<const size_t*>(reinterpret_cast<uintptr_t>(p) - sizeof(size_t));
  // An mmapped chunk is over any class: report it as such.
  if ((word & 2) != 0) return SIZE_MAX;
  return (word & ~size_t{7}) - sizeof(size_t);
}

[[gnu::noinline]] Layout probeLayout() noexcept {
  Layout layout = Layout::kGlibc;
  for (size_t n : {1, 24, 25, 100, 1000, 1032, 1033, 2000, 4000, 4104}) {
    void* p = std::malloc(n);
    if (p == nullptr) return Layout::kUnknown;  // try again later
    if (headerUsable(p) != malloc_usable_size(p)) layout = Layout::kOther;
    std::free(p);
  }
  g_layout.store(layout, std::memory_order_relaxed);
  return layout;
}
#endif

[[gnu::always_inline]] inline size_t usableSize(void* p) noexcept {
#if defined(TURNOUT_THREAD_CACHE_FOREIGN_MALLOC)
  return malloc_usable_size(p);
#else
  Layout layout = g_layout.load(std::memory_order_relaxed);
  if (layout == Layout::kUnknown) [[unlikely]]
    layout = probeLayout();
  return layout == Layout::kGlibc ? headerUsable(p) : malloc_usable_size(p);
#endif
}

}  // namespace

void* allocate(size_t n) {
  if (n > kMaxBlock) return mallocOrThrow(n);
  const size_t c = classOf(n);
  if (void* p = pop(c)) return p;
  return mallocOrThrow(classSize(c));
}

void* tryAllocate(size_t n) noexcept {
  if (n > kMaxBlock) return std::malloc(n);
  const size_t c = classOf(n);
  if (void* p = pop(c)) return p;
  return std::malloc(classSize(c));
}

void deallocate(void* p, size_t n) noexcept {
  if (p == nullptr) return;
  if (n > kMaxBlock) {
    std::free(p);
    return;
  }
  push(p, classOf(n));
}

void deallocateUnsized(void* p) noexcept {
  if (p == nullptr) return;
  // The class of the largest size the block holds (malloc may hand out a
  // little more than a class asked for).
  const size_t usable = usableSize(p);
  if (usable < classSize(1) || usable > kMaxBlock) {
    std::free(p);
    return;
  }
  push(p, classHeldBy(usable));
}

Stats stats() noexcept {
  Stats s;
  for (size_t c = 1; c <= kClasses; ++c) s.blocks += t_cache.cls[c].count;
  s.bytes = t_cache.bytes < kUnregistered ? t_cache.bytes : 0;
  return s;
}

void flush() noexcept {
  Cache& k = t_cache;
  for (size_t c = 1; c <= kClasses; ++c) {
    Stack& s = k.cls[c];
    while (s.count > 0) std::free(s.slots[--s.count]);
    std::free(s.slots);
    s = Stack{};
  }
  // Unregistered and exiting threads hold nothing and keep their state.
  if (k.bytes < kUnregistered) k.bytes = 0;
}

}  // namespace turnout::proxy::thread_cache
