#include "proxy/common/random.h"

#include <array>
#include <cstdint>
#include <set>
#include <string>

#include <catch2/catch.hpp>

namespace turnout::proxy {
namespace {

TEST_CASE("xoshiro256++ gives the reference implementation's numbers from a given state") {
  Random r = Random::fromState(1, 2, 3, 4);
  CHECK(r() == 41943041ULL);
  CHECK(r() == 58720359ULL);
  CHECK(r() == 3588806011781223ULL);
  CHECK(r() == 3591011842654386ULL);
  CHECK(r() == 9228616714210784205ULL);
}

TEST_CASE("generators seeded apart give different numbers, the same seed the same ones") {
  Random a(1), b(2), c(1);
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t x = a();
    CHECK(x == c());
    seen.insert(x);
    seen.insert(b());
  }
  CHECK(seen.size() == 2000);
  Random d = Random::fromDevice(), e = Random::fromDevice();
  CHECK(d() != e());
}

// Digit by digit, as the router wrote it before.
std::string slowUuid(uint64_t a, uint64_t b) {
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 15; i >= 0; --i) s += kHex[(a >> (i * 4)) & 0xf];
  for (int i = 15; i >= 0; --i) s += kHex[(b >> (i * 4)) & 0xf];
  s.insert(20, "-");
  s.insert(16, "-");
  s.insert(12, "-");
  s.insert(8, "-");
  return s;
}

TEST_CASE("a version-4 UUID has every digit of its two words, its version and its variant") {
  std::array<char, 36> out;
  CHECK(uuid4(0, 0, out) == "00000000-0000-4000-8000-000000000000");
  CHECK(uuid4(~0ULL, ~0ULL, out) == "ffffffff-ffff-4fff-bfff-ffffffffffff");
  CHECK(uuid4(0x0123456789abcdefULL, 0xfedcba9876543210ULL, out) ==
        "01234567-89ab-4def-bedc-ba9876543210");
  Random r(42);
  for (int i = 0; i < 20000; ++i) {
    const uint64_t a = r(), b = r();
    const std::string_view id = uuid4(a, b, out);
    REQUIRE(id == slowUuid(a, b));
    REQUIRE(id[14] == '4');
    REQUIRE(std::string_view("89ab").find(id[19]) != std::string_view::npos);
  }
  // Every nibble value in every position.
  for (uint64_t n = 0; n < 16; ++n) {
    const uint64_t word = n * 0x1111111111111111ULL;
    REQUIRE(uuid4(word, word, out) == slowUuid(word, word));
  }
}

}  // namespace
}  // namespace turnout::proxy
