#include "proxy/common/thread_cache.h"

#include <malloc.h>

#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace turnout::proxy::thread_cache {
namespace {

TEST_CASE("a freed small block is handed out again for a request of its class") {
  flush();
  void* a = allocate(100);
  REQUIRE(malloc_usable_size(a) >= 100);
  deallocate(a, 100);
  CHECK(stats().blocks == 1);
  CHECK(stats().bytes == 104);  // the class of 100 bytes: 16 * 6 + 8
  void* b = allocate(97);       // same class
  CHECK(b == a);
  CHECK(stats().blocks == 0);
  void* c = allocate(120);  // another class: not that block
  CHECK(c != a);
  deallocate(b, 97);
  deallocate(c, 120);
  flush();
  CHECK(stats().blocks == 0);
  CHECK(stats().bytes == 0);
}

TEST_CASE("every block holds what was asked, for every size up to the largest cached") {
  flush();
  std::vector<std::pair<unsigned char*, size_t>> blocks;
  for (size_t n = 0; n <= kMaxBlock + 64; ++n) {
    auto* p = static_cast<unsigned char*>(allocate(n));
    REQUIRE(p != nullptr);
    REQUIRE(malloc_usable_size(p) >= n);
    std::memset(p, static_cast<int>(n & 0xff), n);
    blocks.emplace_back(p, n);
  }
  for (auto& [p, n] : blocks) {
    for (size_t i = 0; i < n; ++i) REQUIRE(p[i] == static_cast<unsigned char>(n & 0xff));
  }
  // Freed, then asked again in reverse: each reuse still holds its request.
  for (auto& [p, n] : blocks) deallocate(p, n);
  for (size_t n = kMaxBlock + 64; n-- > 0;) {
    void* p = allocate(n);
    REQUIRE(malloc_usable_size(p) >= n);
    std::memset(p, 0xab, n);
    deallocate(p, n);
  }
  flush();
}

TEST_CASE("a block freed without its size goes to the class its usable size holds") {
  flush();
  void* p = allocate(200);
  deallocateUnsized(p);
  CHECK(stats().blocks == 1);
  void* q = allocate(200);
  CHECK(q == p);
  deallocateUnsized(q);
  // A block from plain malloc whose usable size is not a class (too large)
  // goes back to malloc.
  void* big = std::malloc(kMaxBlock + 4096);
  deallocateUnsized(big);
  CHECK(stats().blocks == 1);
  flush();
}

TEST_CASE("a block freed without its size is cached by what malloc says it holds, for every size") {
  flush();
  for (size_t n = 1; n <= kMaxBlock + 64; ++n) {
    void* p = std::malloc(n);
    REQUIRE(p != nullptr);
    const size_t usable = malloc_usable_size(p);
    deallocateUnsized(p);
    if (usable > kMaxBlock) {
      REQUIRE(stats().blocks == 0);  // went back to malloc
      continue;
    }
    // The largest class the block holds: 16c + 8 to 1,032, then steps of 64.
    const size_t held =
        usable <= 1032 ? (usable - 8) / 16 * 16 + 8 : 1032 + (usable - 1032) / 64 * 64;
    REQUIRE(stats().blocks == 1);
    REQUIRE(stats().bytes == held);
    flush();
  }
  // An mmapped block is larger than any class.
  void* huge = std::malloc(size_t{1} << 20);
  deallocateUnsized(huge);
  CHECK(stats().blocks == 0);
  flush();
}

TEST_CASE("blocks over 1 KiB are cached in 64-byte classes, sized or not") {
  flush();
  void* a = allocate(2000);  // class 1,032 + 64 * 16 = 2,056
  REQUIRE(malloc_usable_size(a) >= 2000);
  deallocate(a, 2000);
  CHECK(stats().bytes == 2056);
  void* b = allocate(2056);  // the top of the same class
  CHECK(b == a);
  deallocateUnsized(b);  // by its usable size: the same class again
  CHECK(stats().bytes == 2056);
  void* c = allocate(1993);  // the bottom of that class
  CHECK(c == a);
  void* d = allocate(2057);  // the next class: not that block
  CHECK(d != a);
  REQUIRE(malloc_usable_size(d) >= 2057);
  deallocate(c, 1993);
  deallocate(d, 2057);
  CHECK(stats().blocks == 2);
  void* e = allocate(kMaxBlock);
  deallocate(e, kMaxBlock);
  CHECK(stats().blocks == 3);
  void* f = allocate(kMaxBlock + 1);  // above the largest class: malloc's
  deallocate(f, kMaxBlock + 1);
  CHECK(stats().blocks == 3);
  flush();
}

TEST_CASE("the cache is bounded per class and per thread") {
  flush();
  std::vector<void*> many;
  for (unsigned i = 0; i < 2 * kMaxPerClass; ++i) many.push_back(allocate(24));
  for (void* p : many) deallocate(p, 24);
  CHECK(stats().blocks == kMaxPerClass);
  many.clear();
  // Every class filled: the bytes stay under the thread's bound.
  for (size_t n = 24; n <= kMaxBlock; n += 16) {
    for (int i = 0; i < 50; ++i) many.push_back(allocate(n));
  }
  for (void* p : many) deallocateUnsized(p);
  CHECK(stats().bytes <= kMaxCachedBytes);
  CHECK(stats().bytes > kMaxCachedBytes / 2);
  flush();
}

TEST_CASE(
    "the cache keeps nothing inside the blocks it holds, and hands them out last freed first") {
  flush();
  std::vector<void*> blocks;
  for (int i = 0; i < 300; ++i) blocks.push_back(allocate(200));
  for (void* p : blocks) {
    deallocate(p, 200);
    // The whole block is the cache's to keep, not to write in: the next
    // allocation must not depend on what the block holds.
    std::memset(p, 0xa5, 200);
  }
  CHECK(stats().blocks == 300);
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    void* p = allocate(200);
    REQUIRE(p == *it);
  }
  CHECK(stats().blocks == 0);
  for (void* p : blocks) deallocate(p, 200);
  flush();
  CHECK(stats().blocks == 0);
}

TEST_CASE("blocks freed on another thread join that thread's cache, and leave with it") {
  flush();
  std::vector<void*> blocks;
  for (int i = 0; i < 16; ++i) blocks.push_back(allocate(64));
  Stats other;
  Stats after_flush;
  std::thread t([&] {
    for (void* p : blocks) deallocate(p, 64);
    other = stats();
    // What the thread allocates next comes from those blocks.
    void* again = allocate(64);
    std::set<void*> mine(blocks.begin(), blocks.end());
    CHECK(mine.count(again) == 1);
    deallocate(again, 64);
  });
  t.join();
  CHECK(other.blocks == 16);
  CHECK(stats().blocks == 0);  // this thread's cache is its own
  (void)after_flush;
}

}  // namespace
}  // namespace turnout::proxy::thread_cache
