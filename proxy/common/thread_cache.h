#pragma once

// A per-thread cache of small blocks in front of malloc, behind the turnout
// binary's global operator new and delete (proxy/new_delete.cc).
//
// Why: a proxied request allocates about 25 small blocks, most of them
// coroutine frames, and frees them in runs of one size as long as the
// requests in flight (32 connections, 64 streams). glibc's per-thread cache
// keeps 7 blocks per size, so most of those frees and the allocations after
// them go to its arenas: 8 % of the instructions of an HTTP/1.1 request and
// 14 % of an HTTP/2 one (bench/compare/instructions.sh;
// bench/results/2026-12-04-2cpu-x86_64-instructions-alloc.md). This keeps
// up to a bounded number of blocks per size class per thread instead.
//
// Blocks are plain malloc blocks: one freed on another thread than the one
// that allocated it joins that thread's cache, and malloc_usable_size gives
// the class of a block freed without its size. Classes are the sizes malloc
// hands out exactly (16c + 8 bytes, 24 to 1,032), then steps of 64 bytes to
// 4,104, so a block of a class can serve any request of that class. The
// larger classes are for coroutine frames: the router's attempt and the
// HTTP/2 stream's frames are over 1 KiB, and went to malloc and free once
// per request each (2026-12-06: about 1,000 instructions of an h2c
// request). Bounded: at most kMaxCachedBytes per thread (and 512 KiB or
// kMaxPerClass blocks per class); a thread's blocks go
// back to malloc when it exits, and frees after that go straight to free().
//
// Sized for the requests in flight on one worker: at 192 KiB and 128 blocks
// per class, four HTTP/2 connections of 100 streams each (400 requests of
// about 25 blocks) overflowed the cache, and malloc and free were again 12 %
// of an HTTP/2 request's instructions; at 1 MiB, 3 % (2026-12-06, bench/
// results/2026-12-06-2cpu-x86_64-instructions-h2-vs-haproxy.md). At 1 MiB
// and 128 KiB per class the same load overflowed again later (malloc and
// free about 1,400 of its 32,000 instructions): 100 streams of a
// connection end in one read, and their frames are freed as one run. At
// 4 MiB and 512 KiB per class they stay here: 31,983 -> 30,003 instructions
// per request. Blocks held here would otherwise sit in malloc's free
// lists: the cache adds at most its bound to a worker's RSS, and a config
// update flushes it (Worker::postConfig).

#include <cstddef>

namespace turnout::proxy::thread_cache {

constexpr size_t kMaxBlock = 4104;               // larger requests go to malloc
constexpr size_t kMaxCachedBytes = 4 * 1024 * 1024;  // per thread
constexpr unsigned kMaxPerClass = 4096;          // blocks of one size, per thread

// At least `n` bytes, aligned as malloc's; throws std::bad_alloc as
// operator new does (after trying the new-handler).
void* allocate(size_t n);
// As allocate(), for C code (nghttp2's allocator): null when malloc fails.
void* tryAllocate(size_t n) noexcept;
// `n` as given to allocate(); null is ignored.
void deallocate(void* p, size_t n) noexcept;
void deallocateUnsized(void* p) noexcept;

struct Stats {
  size_t blocks = 0;
  size_t bytes = 0;
};
// This thread's cache.
Stats stats() noexcept;
// Frees this thread's cached blocks.
void flush() noexcept;

}  // namespace turnout::proxy::thread_cache
