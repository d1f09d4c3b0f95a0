#include "proxy/common/xx_hash.h"

#include <string>

#include <catch2/catch.hpp>

namespace turnout::proxy {

TEST_CASE("xxHash64 matches the reference implementation", "[hash]") {
  struct Vector {
    std::string input;
    uint64_t seed;
    uint64_t want;
  };
  // From libxxhash 0.8.1 (Debian 12), XXH64(input, size, seed). They cover
  // the short path, 4- and 8-byte tails and the 32-byte stripes.
  const Vector vectors[] = {
      {"", 0, 0xef46db3751d8e999ULL},
      {"a", 0, 0xd24ec4f1a98c6e5bULL},
      {"abc", 0, 0x44bc2cf5ad770999ULL},
      {"127.0.0.1:90", 0, 0xb6e9805bf4890ed5ULL},
      {"127.0.0.1:90", 1, 0x151eaa9a12ebfff5ULL},
      {std::string(31, 'x'), 0, 0x60dd0d01083b99f0ULL},
      {"0123456789abcdef0123456789abcdef0123456789", 7, 0x9cdb6129259b938eULL},
      {"hello world, this is a longer string for the 32-byte stripes!!", 0,
       0x2b3b1892ef7d375cULL},
      {"feat-x", 0, 0x0f260d828b6fd39eULL},
  };
  for (const auto& v : vectors) {
    INFO(v.input << " seed " << v.seed);
    CHECK(xxHash64(v.input, v.seed) == v.want);
  }
}

}  // namespace turnout::proxy
