#pragma once

// Gives memory that turnout no longer uses back to the kernel, so an idle
// sidecar's RSS is what it holds, not what it once touched (docs/memory.md).

#include <cstddef>
#include <cstdint>

namespace turnout::proxy {

// The executable's dynamic relocation table (`.rela.dyn`, about 1 MiB for a
// position-independent turnout) is read once, by the dynamic loader, before
// main(). Its pages stay mapped and count in RSS for the life of the
// process. This drops them (madvise MADV_DONTNEED on a read-only file
// mapping: the pages are only unmapped, and would be read back from the
// file if anything touched them again). Returns the bytes released; 0 where
// there is no such table (a static, non-PIE build) or the platform has no
// way to do it.
std::size_t releaseRelocationTable();

// The whole pages inside the executable's `.rela.dyn` (what
// releaseRelocationTable drops): {0, 0} where there are none.
struct PageRange {
  std::uintptr_t begin = 0;
  std::size_t bytes = 0;
};
PageRange relocationTablePages();

// Returns the free pages inside the heap (glibc keeps the pages of freed
// chunks below the top of the heap mapped) to the kernel: malloc_trim(0),
// after giving the calling thread's cached blocks (thread_cache.h) back.
// Meant for after a config generation was replaced and its temporaries
// freed; it walks every arena, so not for a hot path.
void releaseFreeHeap();

}  // namespace turnout::proxy
