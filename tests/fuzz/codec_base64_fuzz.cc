// Feeds arbitrary text to gRPC-Web's base64 decoder (proxy/codec/base64),
// once whole and once in fuzzer-chosen chunks. Invariants:
// - nothing crashes or reads out of bounds (ASan);
// - both runs give the same bytes, the same outcome and the same held count;
// - at most 3 characters are ever held, and 3 bytes come per 4 characters at
//   most;
// - what decodes re-encodes, group by group, to the text it came from (the
//   decoder accepts canonical base64 only);
// - any bytes encoded decode back to themselves.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/codec/base64.h"
#include "tests/fuzz/split_feed.h"

namespace {

using turnout::proxy::Base64GroupDecoder;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Harness {
  Base64GroupDecoder decoder;
  std::string out;
  bool failed = false;
  void feed(std::string_view text) {
    if (failed) return;
    failed = decoder.decode(text, out) != Base64GroupDecoder::Result::kOk;
    check(decoder.held() < 4);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Harness whole;
  whole.feed(input);
  Harness split;
  if (!input.empty()) turnout::fuzz::feedInChunks(split, input, 0x5a, 7);
  check(whole.failed == split.failed);
  if (!whole.failed) {
    check(whole.out == split.out);
    check(whole.decoder.held() == split.decoder.held());
    check(whole.out.size() <= size / 4 * 3);
    // Canonical: each group re-encodes to itself.
    std::string reencoded;
    const std::string_view groups = input.substr(0, size - whole.decoder.held());
    for (std::size_t at = 0; at < groups.size(); at += 4) {
      std::string bytes;
      Base64GroupDecoder one;
      check(one.decode(groups.substr(at, 4), bytes) == Base64GroupDecoder::Result::kOk);
      turnout::proxy::base64Encode(std::span<const char>(bytes.data(), bytes.size()), reencoded);
    }
    check(reencoded == groups);
  }
  std::string encoded;
  turnout::proxy::base64Encode(std::span<const char>(input.data(), input.size()), encoded);
  Harness round;
  round.feed(encoded);
  check(!round.failed && round.decoder.held() == 0 && round.out == input);
  return 0;
}
