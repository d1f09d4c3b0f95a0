#include "proxy/common/thread_cache.h"

#include <malloc.h>

#include <algorithm>
#include <array>
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

struct Block {
  Block* next;
};

// `bytes` is also the thread's state: kUnregistered until its first push
// (which sets up the Flusher below), kDead once the thread exits. Both are
// far above any real count, so push()'s fast path tests one bound for all
// three. Constant-initialised and trivially destructible, so that a
// thread's access is a plain TLS load, with no guard on the fast path.
constexpr size_t kUnregistered = SIZE_MAX / 4;
constexpr size_t kDead = SIZE_MAX / 2;
struct Cache {
  Block* head[kClasses + 1];
  uint32_t count[kClasses + 1];
  size_t bytes;
};
constinit thread_local Cache t_cache{{}, {}, kUnregistered};

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
  Block* b = k.head[c];
  if (b == nullptr) return nullptr;
  k.head[c] = b->next;
  --k.count[c];
  k.bytes -= kSize[c];
  return b;
}

// Whether `c` and the thread have room for one more block (false too while
// the thread is unregistered or exiting: its byte count is above any bound).
[[gnu::always_inline]] inline bool hasRoom(const Cache& k, size_t c) noexcept {
  return k.bytes + kSize[c] <= kMaxCachedBytes && k.count[c] < kCap[c];
}

[[gnu::always_inline]] inline void insert(Cache& k, void* p, size_t c) noexcept {
  auto* b = static_cast<Block*>(p);
  b->next = k.head[c];
  k.head[c] = b;
  ++k.count[c];
  k.bytes += kSize[c];
}

// push() without room: a thread's first push sets up its Flusher; a full
// class or thread, or an exiting thread, gives the block to malloc.
[[gnu::noinline]] void pushSlow(void* p, size_t c) noexcept {
  Cache& k = t_cache;
  if (k.bytes == kUnregistered) {
    k.bytes = 0;
    static thread_local Flusher flusher;
    (void)flusher;
  }
  if (hasRoom(k, c)) {
    insert(k, p, c);
  } else {
    std::free(p);
  }
}

[[gnu::always_inline]] inline void push(void* p, size_t c) noexcept {
  Cache& k = t_cache;
  if (hasRoom(k, c)) [[likely]] {
    insert(k, p, c);
  } else {
    pushSlow(p, c);
  }
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
  const size_t usable = malloc_usable_size(p);
  if (usable < classSize(1) || usable > kMaxBlock) {
    std::free(p);
    return;
  }
  push(p, classHeldBy(usable));
}

Stats stats() noexcept {
  Stats s;
  for (size_t c = 1; c <= kClasses; ++c) s.blocks += t_cache.count[c];
  s.bytes = t_cache.bytes < kUnregistered ? t_cache.bytes : 0;
  return s;
}

void flush() noexcept {
  Cache& k = t_cache;
  for (size_t c = 1; c <= kClasses; ++c) {
    while (Block* b = k.head[c]) {
      k.head[c] = b->next;
      std::free(b);
    }
    k.count[c] = 0;
  }
  // Unregistered and exiting threads hold nothing and keep their state.
  if (k.bytes < kUnregistered) k.bytes = 0;
}

}  // namespace turnout::proxy::thread_cache
