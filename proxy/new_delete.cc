// The turnout binary's global operator new and delete: small blocks through
// a per-thread cache (proxy/common/thread_cache.h), the rest through malloc
// as before. Only this executable has them (tests link the default ones and
// test the cache directly); not under AddressSanitizer, which brings its own.

#include <cstddef>
#include <new>

#include "proxy/common/thread_cache.h"

#if !defined(__SANITIZE_ADDRESS__)

namespace tc = turnout::proxy::thread_cache;

void* operator new(std::size_t n) { return tc::allocate(n); }
void* operator new[](std::size_t n) { return tc::allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return tc::allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return tc::allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { tc::deallocateUnsized(p); }
void operator delete[](void* p) noexcept { tc::deallocateUnsized(p); }
void operator delete(void* p, std::size_t n) noexcept { tc::deallocate(p, n); }
void operator delete[](void* p, std::size_t n) noexcept { tc::deallocate(p, n); }
void operator delete(void* p, const std::nothrow_t&) noexcept { tc::deallocateUnsized(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { tc::deallocateUnsized(p); }

#endif
