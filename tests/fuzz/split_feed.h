#pragma once

// Feeds `input` to `harness.feed()` in chunks of 1..max_chunk bytes whose
// sizes come from the input itself mixed with `seed`, so that a fuzzer
// explores every split point of a message. Shared by the codec fuzz targets
// (HTTP/1 and HTTP/2, both sides): each runs one input whole and once split
// this way and checks what must hold for both.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace turnout::fuzz {

template <class Harness>
void feedInChunks(Harness& harness, std::string_view input, std::uint8_t seed,
                  std::size_t max_chunk) {
  std::size_t pos = 0;
  std::size_t i = 0;
  while (pos < input.size()) {
    const std::size_t n =
        1 + (static_cast<std::uint8_t>(input[i % input.size()]) ^ seed) % max_chunk;
    ++i;
    const std::size_t take = n < input.size() - pos ? n : input.size() - pos;
    harness.feed(input.substr(pos, take));
    pos += take;
  }
}

}  // namespace turnout::fuzz
