#pragma once

// Base64 (RFC 4648 section 4: the standard alphabet, padding mandatory) for
// gRPC-Web's text mode (grpc/doc/PROTOCOL-WEB.md), sans-I/O.
//
// A gRPC-Web text body is a concatenation of base64 chunks, each padded on
// its own, so padding may end any 4-character group, not only the last one.
// Base64GroupDecoder decodes such a stream group by group as it arrives,
// holding at most 3 characters between calls; base64Encode pads what it is
// given, so each chunk it produces can be decoded on its own.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace turnout::proxy {

// Appends the padded base64 encoding of `in` to `out`.
void base64Encode(std::span<const char> in, std::string& out);

class Base64GroupDecoder {
 public:
  enum class Result : std::uint8_t {
    kOk,
    // A character outside the alphabet, padding anywhere but the end of a
    // group, or a final group whose unused bits are not zero (a
    // non-canonical encoding).
    kInvalid,
  };

  // Decodes the groups that `in` completes (with the characters held from
  // the last call) and appends their bytes to `out`; holds the remainder.
  // After kInvalid the decoder is spent.
  Result decode(std::string_view in, std::string& out);
  // Characters of an incomplete group held: 0 at a valid end of stream.
  std::size_t held() const { return held_; }

 private:
  // Decodes one whole group; false when it is invalid.
  static bool decodeGroup(const char* group, std::string& out);

  char group_[4] = {};
  std::size_t held_ = 0;
  bool failed_ = false;
};

}  // namespace turnout::proxy
