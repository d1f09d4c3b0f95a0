#pragma once

// What the HTTP/2 codec fuzz targets (codec_http2_{client,server}_fuzz.cc)
// share: the invariant check and the driver that feeds one input to a fresh
// Harness once whole and once in fuzzer-chosen chunks, then signals EOF.
//
// Harness(cfg) builds the codec; feed(bytes) dispatches and drains; eof()
// signals EOF and checks what must hold after it.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace turnout::fuzz {

// The target's name for failure messages; each target defines it.
extern const char* const kTargetName;

inline void checkAt(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "%s: invariant at line %d failed\n", kTargetName, line);
  std::abort();
}

// The first input byte configures the Harness, the second seeds the chunk
// sizes (1 to 61 bytes), the rest is what the peer sends.
template <class Harness>
int runWholeAndSplit(const std::uint8_t* raw, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t cfg = raw[0];
  const std::uint8_t seed = raw[1];
  const std::string_view input(reinterpret_cast<const char*>(raw + 2), size - 2);

  {
    Harness whole(cfg);
    whole.feed(input);
    whole.eof();
  }
  Harness split(cfg);
  std::size_t pos = 0;
  std::size_t i = 0;
  while (pos < input.size()) {
    const std::size_t n = 1 + (static_cast<std::uint8_t>(input[i % input.size()]) ^ seed) % 61;
    ++i;
    const std::size_t take = n < input.size() - pos ? n : input.size() - pos;
    split.feed(input.substr(pos, take));
    pos += take;
  }
  split.eof();
  return 0;
}

}  // namespace turnout::fuzz

#define check(ok) ::turnout::fuzz::checkAt((ok), __LINE__)
