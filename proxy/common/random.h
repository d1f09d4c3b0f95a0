#pragma once

// A worker's random numbers, and the version-4 UUIDs made from them
// (x-request-id).
//
// xoshiro256++ (Blackman and Vigna, https://prng.di.unimi.it/): four words
// of state, a handful of instructions per number. std::mt19937_64 was ~44
// instructions a number (its 312-word twist amortised), and a request takes
// four (the route's runtime fraction, the load balancer, the request ID).
// Neither is for secrets; turnout draws none here.
//
// uuid4() writes the 32 hex digits eight at a time (the nibbles spread into
// bytes, then one add and a fix-up for a-f), not digit by digit: ~260 -> ~60
// instructions per request ID.

#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>

namespace turnout::proxy {

class Random {
 public:
  // The state from `seed` through splitmix64, as the authors advise (never
  // all zero).
  explicit Random(uint64_t seed) {
    for (uint64_t& word : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31);
    }
  }
  // Seeded from the system's entropy (64 bits of it).
  static Random fromDevice() {
    std::random_device device;
    return Random((uint64_t{device()} << 32) ^ device());
  }
  // The state itself (tests: the reference implementation's vectors).
  static Random fromState(uint64_t s0, uint64_t s1, uint64_t s2, uint64_t s3) {
    Random r(0);
    r.s_[0] = s0;
    r.s_[1] = s1;
    r.s_[2] = s2;
    r.s_[3] = s3;
    return r;
  }

  uint64_t operator()() {
    const uint64_t result = rotl(s_[0] + s_[3], 23) + s_[0];
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

namespace random_detail {

// The 8 hex digits of `v`, most significant first, lowercase.
inline void hex8(uint32_t v, char* out) {
  uint64_t x = v;
  // One nibble per byte, the most significant nibble in the highest byte.
  x = ((x & 0xffff0000ULL) << 16) | (x & 0xffffULL);
  x = ((x & 0x0000ff000000ff00ULL) << 8) | (x & 0x000000ff000000ffULL);
  x = ((x & 0x00f000f000f000f0ULL) << 4) | (x & 0x000f000f000f000fULL);
  // 1 in each byte whose nibble is 10 or more: those become 'a'-'f'.
  const uint64_t letters = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
  x += 0x3030303030303030ULL + letters * ('a' - '0' - 10);
  x = __builtin_bswap64(x);  // the most significant digit first in memory
  std::memcpy(out, &x, 8);
}

}  // namespace random_detail

// An RFC 4122 version-4 UUID (8-4-4-4-12 lowercase hex digits) from two
// random words, written into `out` (no allocation).
inline std::string_view uuid4(uint64_t a, uint64_t b, std::array<char, 36>& out) {
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char hex[32];
  random_detail::hex8(static_cast<uint32_t>(a >> 32), hex);
  random_detail::hex8(static_cast<uint32_t>(a), hex + 8);
  random_detail::hex8(static_cast<uint32_t>(b >> 32), hex + 16);
  random_detail::hex8(static_cast<uint32_t>(b), hex + 24);
  char* p = out.data();
  std::memcpy(p, hex, 8);
  p[8] = '-';
  std::memcpy(p + 9, hex + 8, 4);
  p[13] = '-';
  std::memcpy(p + 14, hex + 12, 4);
  p[18] = '-';
  std::memcpy(p + 19, hex + 16, 4);
  p[23] = '-';
  std::memcpy(p + 24, hex + 20, 12);
  return std::string_view(out.data(), out.size());
}

}  // namespace turnout::proxy
