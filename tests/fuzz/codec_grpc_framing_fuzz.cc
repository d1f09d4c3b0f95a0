// Feeds arbitrary bytes to the gRPC message decoder (proxy/codec/grpc_framing),
// once whole and once in fuzzer-chosen chunks. Invariants:
// - nothing crashes, reads out of bounds or allocates past the limit (ASan);
// - both runs give the same messages and the same outcome;
// - re-framing the messages reproduces the input's prefix they came from;
// - no message is above the limit; what is buffered is below a frame's size;
// - grpc-message percent-encoding round-trips any bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <string>
#include <string_view>

#include "proxy/codec/grpc_framing.h"
#include "tests/fuzz/split_feed.h"

namespace {

using turnout::proxy::GrpcMessageDecoder;

constexpr std::size_t kLimit = 4096;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Harness {
  GrpcMessageDecoder decoder{kLimit};
  std::deque<std::string> messages;
  bool failed = false;
  void feed(std::string_view bytes) {
    if (failed) return;
    failed = !decoder.feed(std::span<const char>(bytes.data(), bytes.size()), messages).ok();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  Harness whole;
  whole.feed(input);
  Harness split;
  turnout::fuzz::feedInChunks(split, input, data[0], 7);
  check(whole.failed == split.failed);
  check(whole.messages == split.messages);
  std::string reframed;
  for (const auto& m : whole.messages) {
    check(m.size() <= kLimit);
    const auto prefix = turnout::proxy::grpcFramePrefix(m.size());
    reframed.append(prefix.data(), prefix.size());
    reframed += m;
  }
  check(input.substr(0, reframed.size()) == reframed);
  if (!whole.failed) check(whole.decoder.buffered() == input.size() - reframed.size());
  const std::string text(input);
  check(turnout::proxy::grpcPercentDecode(turnout::proxy::grpcPercentEncode(text)) == text);
  return 0;
}
