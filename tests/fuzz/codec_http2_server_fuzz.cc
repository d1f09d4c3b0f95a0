// Feeds arbitrary bytes to the HTTP/2 server codec as a client's side of a
// connection (the first input byte picks whether requests are answered at
// once, with a body, whether request DATA is acknowledged and whether a
// stream is released from inside its callbacks), once whole and once in
// fuzzer-chosen chunks, draining the codec's output after every chunk, then
// signals EOF. Invariants:
// - nothing crashes, throws, loops or reads out of bounds (ASan/UBSan);
// - request body bytes delivered never exceed the bytes fed;
// - a stream's events follow codec.h's order; after onMessageComplete only
//   onReset may come, and nothing after onReset;
// - an error is sticky; after EOF no stream is active.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/codec/http2_server_codec.h"
#include "tests/fuzz/codec_http2_fuzz_driver.h"

namespace {

using namespace turnout::proxy;
using namespace turnout::proxy::http2;

struct Stream : RequestDecoderCallbacks {
  void onMessageBegin() override {
    check(!begun && !reset);
    begun = true;
  }
  void onHeaders(RequestHead&, bool) override {
    check(begun && !headers && !reset);
    headers = true;
    if (cfg & 1) {
      ResponseHead h;
      h.status = 200;
      (void)handle->encodeHeaders(h, !(cfg & 2));
      if (cfg & 2) handle->encodeData(std::string_view("response"), true);
    }
    if (cfg & 8) handle.reset();
  }
  void onData(std::span<const char> d, bool) override {
    check(headers && !complete && !reset);
    *body_total += d.size();
    if ((cfg & 4) && handle != nullptr) handle->consumed(d.size());
  }
  void onTrailers(HeaderMap&) override { check(headers && !complete && !reset); }
  void onMessageComplete() override {
    check(headers && !complete && !reset);
    complete = true;
  }
  void onReset(StreamResetReason) override {
    check(!reset);
    reset = true;
  }

  ServerStreamPtr handle;
  std::size_t* body_total = nullptr;
  std::uint8_t cfg = 0;
  bool begun = false, headers = false, complete = false, reset = false;
};

class Harness : public ServerCallbacks {
 public:
  explicit Harness(std::uint8_t c) : cfg(c), codec(*this, settings()) {}

  static Http2Settings settings() {
    Http2Settings s = turnout::fuzz::smallSettings();
    s.max_concurrent_streams = 16;
    return s;
  }

  RequestDecoderCallbacks& newStream(ServerStreamPtr stream) override {
    check(streams.size() < 100000);
    streams.push_back(std::make_unique<Stream>());
    Stream& s = *streams.back();
    s.handle = std::move(stream);
    s.body_total = &body;
    s.cfg = cfg;
    return s;
  }
  void onSettings(const PeerSettings&) override {}
  void onGoAway(std::int32_t, std::uint32_t) override {}

  void feed(std::string_view bytes) { turnout::fuzz::feed(codec, bytes, fed, body, status); }

  void eof() {
    codec.onEof();
    check(codec.activeStreams() == 0);
    for (auto& s : streams) s->handle.reset();
  }

  std::uint8_t cfg;
  ServerCodec codec;
  std::vector<std::unique_ptr<Stream>> streams;
  std::size_t fed = 0, body = 0;
  absl::Status status;
};

}  // namespace

const char* const turnout::fuzz::kTargetName = "codec_http2_server_fuzz";

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* raw, std::size_t size) {
  return turnout::fuzz::runWholeAndSplit<Harness>(raw, size);
}
