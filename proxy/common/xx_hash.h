#pragma once

#include <cstdint>
#include <string_view>

namespace turnout::proxy {

// XXH64 (xxHash, 64-bit), the hash Envoy uses everywhere through
// HashUtil::xxHash64: request hash policies and Maglev's table offsets and
// skips. Bit-for-bit the reference algorithm, so turnout hashes a key to the
// same value, and picks the same Maglev host, as Envoy. Pure; any thread.
uint64_t xxHash64(std::string_view input, uint64_t seed = 0);

}  // namespace turnout::proxy
