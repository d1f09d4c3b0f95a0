#include "proxy/common/memory_release.h"

#if defined(__linux__)
#include <elf.h>
#include <link.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <cstdint>

#include "proxy/common/thread_cache.h"

namespace turnout::proxy {

#if defined(__linux__)
namespace {

struct RelaRange {
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;
};

// The first object dl_iterate_phdr reports is the executable itself.
int findExecutableRela(dl_phdr_info* info, size_t, void* data) {
  auto* out = static_cast<RelaRange*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_DYNAMIC) continue;
    const auto* dyn = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + ph.p_vaddr);
    std::uintptr_t rela = 0;
    std::uintptr_t size = 0;
    for (; dyn->d_tag != DT_NULL; ++dyn) {
      if (dyn->d_tag == DT_RELA) rela = dyn->d_un.d_ptr;
      if (dyn->d_tag == DT_RELASZ) size = dyn->d_un.d_val;
    }
    if (rela == 0 || size == 0) break;
    // glibc has already relocated d_ptr entries of the executable's
    // dynamic section to run-time addresses; a value below the load
    // address is still an offset.
    if (rela < info->dlpi_addr) rela += info->dlpi_addr;
    out->begin = rela;
    out->end = rela + size;
    break;
  }
  return 1;  // only the executable
}

}  // namespace

PageRange relocationTablePages() {
  RelaRange range;
  dl_iterate_phdr(findExecutableRela, &range);
  if (range.begin == 0) return {};
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  // Whole pages inside the table only: its neighbours (.dynstr before it,
  // .rela.plt after it) are still read when lazy symbols resolve.
  const std::uintptr_t begin = (range.begin + page - 1) & ~(page - 1);
  const std::uintptr_t end = range.end & ~(page - 1);
  if (end <= begin) return {};
  return {begin, end - begin};
}

std::size_t releaseRelocationTable() {
  const PageRange pages = relocationTablePages();
  if (pages.bytes == 0) return 0;
  if (madvise(reinterpret_cast<void*>(pages.begin), pages.bytes, MADV_DONTNEED) != 0) return 0;
  return pages.bytes;
}

void releaseFreeHeap() {
  thread_cache::flush();
  malloc_trim(0);
}

#else

PageRange relocationTablePages() { return {}; }
std::size_t releaseRelocationTable() { return 0; }
void releaseFreeHeap() {}

#endif

}  // namespace turnout::proxy
