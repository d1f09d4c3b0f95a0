#include "proxy/common/thread_cache.h"

#include <malloc.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace turnout::proxy::thread_cache {
namespace {

constexpr size_t kClasses = 64;  // class c holds blocks of 16c + 8 bytes, c = 1..64
constexpr size_t kBytesPerClass = 128 * 1024;

struct Block {
  Block* next;
};

// Zero-initialised and trivially destructible, so that a thread's access is
// a plain TLS load, with no guard or registration on the fast path.
struct Cache {
  Block* head[kClasses + 1];
  uint32_t count[kClasses + 1];
  size_t bytes;
  bool registered;  // the Flusher below is set up
  bool dead;        // the thread is exiting: no more caching
};
constinit thread_local Cache t_cache{};

constexpr size_t classOf(size_t n) { return n <= 24 ? 1 : (n - 8 + 15) >> 4; }
constexpr size_t classSize(size_t c) { return (c << 4) + 8; }
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

// Gives the thread's blocks back to malloc when the thread exits.
struct Flusher {
  ~Flusher() {
    flush();
    t_cache.dead = true;
  }
};

void registerFlusher() {
  t_cache.registered = true;
  static thread_local Flusher flusher;
  (void)flusher;
}

void* mallocOrThrow(size_t n) {
  for (;;) {
    if (void* p = std::malloc(n)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* pop(size_t c) noexcept {
  Cache& k = t_cache;
  Block* b = k.head[c];
  if (b == nullptr) return nullptr;
  k.head[c] = b->next;
  --k.count[c];
  k.bytes -= classSize(c);
  return b;
}

void push(void* p, size_t c) noexcept {
  Cache& k = t_cache;
  const size_t size = classSize(c);
  if (k.dead || k.count[c] >= kCap[c] || k.bytes + size > kMaxCachedBytes) {
    std::free(p);
    return;
  }
  if (!k.registered) registerFlusher();
  auto* b = static_cast<Block*>(p);
  b->next = k.head[c];
  k.head[c] = b;
  ++k.count[c];
  k.bytes += size;
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
  // malloc's usable sizes are 16m + 8: the class of the largest size the
  // block holds.
  const size_t usable = malloc_usable_size(p);
  if (usable < classSize(1) || usable > kMaxBlock) {
    std::free(p);
    return;
  }
  push(p, (usable - 8) >> 4);
}

Stats stats() noexcept {
  Stats s;
  for (size_t c = 1; c <= kClasses; ++c) s.blocks += t_cache.count[c];
  s.bytes = t_cache.bytes;
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
  k.bytes = 0;
}

}  // namespace turnout::proxy::thread_cache
