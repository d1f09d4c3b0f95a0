#pragma once

// What the HTTP/2 codec fuzz targets (codec_http2_{client,server}_fuzz.cc)
// share: the invariant check and the driver that feeds one input to a fresh
// Harness once whole and once in fuzzer-chosen chunks, then signals EOF.
//
// Harness(cfg) builds the codec; feed(bytes) dispatches and drains (feed()
// below); eof() signals EOF and checks what must hold after it.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "proxy/codec/http2_codec.h"
#include "tests/fuzz/split_feed.h"

namespace turnout::fuzz {

// The target's name for failure messages; each target defines it.
extern const char* const kTargetName;

inline void checkAt(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "%s: invariant at line %d failed\n", kTargetName, line);
  std::abort();
}

// Small windows and header limits, so that inputs reach them.
inline turnout::proxy::http2::Http2Settings smallSettings() {
  turnout::proxy::http2::Http2Settings s;
  s.initial_stream_window_size = 65535;
  s.initial_connection_window_size = 65535 * 4;
  s.max_headers_count = 20;
  s.max_headers_kb = 4;
  return s;
}

// Drains the codec's output as a connection would; keeps the first error.
template <class Codec>
void drain(Codec& codec, absl::Status& status) {
  std::string out;
  const absl::Status st = codec.drainOutput(out, 1 << 20);
  if (!st.ok() && status.ok()) status = st;
}

// Dispatches `bytes` (counted in `fed`) and drains. Checks that an error is
// sticky and that the body bytes delivered (`body`) never exceed those fed.
template <class Codec>
void feed(Codec& codec, std::string_view bytes, std::size_t& fed, const std::size_t& body,
          absl::Status& status) {
  fed += bytes.size();
  const absl::Status st = codec.dispatch(bytes);
  if (!status.ok()) checkAt(!st.ok(), __LINE__);
  if (!st.ok()) status = st;
  drain(codec, status);
  checkAt(body <= fed, __LINE__);
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
  feedInChunks(split, input, seed, 61);
  split.eof();
  return 0;
}

}  // namespace turnout::fuzz

#define check(ok) ::turnout::fuzz::checkAt((ok), __LINE__)
