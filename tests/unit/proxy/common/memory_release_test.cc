#include "proxy/common/memory_release.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace turnout::proxy {
namespace {

// How many of [begin, begin + bytes) are mapped in this process's page
// table (/proc/self/pagemap bit 63; readable without privileges).
size_t presentPages(std::uintptr_t begin, size_t bytes) {
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const int fd = open("/proc/self/pagemap", O_RDONLY);
  REQUIRE(fd >= 0);
  size_t present = 0;
  for (std::uintptr_t p = begin; p < begin + bytes; p += page) {
    std::uint64_t entry = 0;
    REQUIRE(pread(fd, &entry, sizeof entry, static_cast<off_t>(p / page * sizeof entry)) ==
            sizeof entry);
    present += (entry >> 63) & 1;
  }
  close(fd);
  return present;
}

long rssAnonKiB() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "RssAnon:") {
      status >> value;
      return value;
    }
    status.ignore(1 << 12, '\n');
  }
  FAIL("no RssAnon in /proc/self/status");
  return 0;
}

}  // namespace

TEST_CASE("the executable's relocation table leaves the page table once read", "[memory]") {
  const PageRange pages = relocationTablePages();
  // The test binary is position-independent (as turnout): it has one.
  REQUIRE(pages.bytes > 0);
  REQUIRE(pages.begin % static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE)) == 0);
  // The loader read every entry before main().
  CHECK(presentPages(pages.begin, pages.bytes) > 0);
  CHECK(releaseRelocationTable() == pages.bytes);
  CHECK(presentPages(pages.begin, pages.bytes) == 0);
  // Nothing needs them: a call through the PLT, an allocation, a second release.
  CHECK(getpid() > 0);
  CHECK(std::string(100, 'x').size() == 100);
  CHECK(releaseRelocationTable() == pages.bytes);
}

TEST_CASE("releaseFreeHeap gives freed pages below the heap's top back", "[memory]") {
  // 32 MiB of 4 KiB chunks (past tcache and fastbins), then one chunk that
  // stays and pins the top: freeing the others leaves their pages mapped
  // inside the heap, where free() never returns them.
  std::vector<void*> chunks;
  for (int i = 0; i < 8192; ++i) {
    void* p = std::malloc(4096);
    REQUIRE(p != nullptr);
    static_cast<volatile char*>(p)[0] = 1;
    static_cast<volatile char*>(p)[2048] = 1;
    chunks.push_back(p);
  }
  void* pin = std::malloc(4096);
  for (void* p : chunks) std::free(p);
  const long before = rssAnonKiB();
  releaseFreeHeap();
  const long after = rssAnonKiB();
  std::free(pin);
  INFO("RssAnon " << before << " KiB -> " << after << " KiB");
  CHECK(before - after > 16 * 1024);
}

}  // namespace turnout::proxy
