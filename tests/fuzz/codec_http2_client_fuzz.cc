// Feeds arbitrary bytes to the HTTP/2 client codec as the server's side of a
// connection on which a few requests are in flight (the first input byte
// picks how many, which carry a body and trailers, which stream stops
// acknowledging its DATA and which one is released from inside a callback),
// once whole and once in fuzzer-chosen chunks, draining the codec's output
// after every chunk as a connection would, then signals EOF. Invariants:
// - nothing crashes, throws, loops or reads out of bounds (ASan/UBSan);
// - body bytes delivered never exceed the bytes fed;
// - a stream's events follow codec.h's order and stop after
//   onMessageComplete or onReset; onMessageBegin comes once, before onHeaders;
// - an error is sticky;
// - after EOF every stream still held has ended and none is active.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/codec/http2_client_codec.h"
#include "tests/fuzz/codec_http2_fuzz_driver.h"

namespace {

using namespace turnout::proxy;
using namespace turnout::proxy::http2;

struct Stream : ResponseDecoderCallbacks {
  void onMessageBegin() override {
    check(!ended && !begun);
    begun = true;
  }
  void onInformational(ResponseHead& h) override {
    check(!ended && !begun);
    check(h.status >= 100 && h.status < 200);
  }
  void onHeaders(ResponseHead& h, bool end) override {
    check(!ended);
    check(begun);
    check(!headers);
    if (std::getenv("CODEC_FUZZ_DEBUG") != nullptr) std::fprintf(stderr, "status %u\n", h.status);
    check(h.status >= 200);
    headers = true;
    if (release_on_headers) handle.reset();
    (void)end;
  }
  void onData(std::span<const char> d, bool) override {
    check(!ended && headers);
    *body_total += d.size();
    if (consume && handle != nullptr) handle->consumed(d.size());
  }
  void onTrailers(HeaderMap&) override { check(!ended && headers); }
  void onMessageComplete() override {
    check(!ended && headers);
    ended = true;
  }
  void onReset(StreamResetReason) override {
    check(!ended);
    ended = true;
  }

  ClientStreamPtr handle;
  std::size_t* body_total = nullptr;
  bool consume = true;
  bool release_on_headers = false;
  bool begun = false;
  bool headers = false;
  bool ended = false;
};

class Harness : public ConnectionCallbacks {
 public:
  explicit Harness(std::uint8_t cfg) : codec(*this, settings()), streams(1 + (cfg & 3)) {
    for (std::size_t i = 0; i < streams.size(); ++i) {
      Stream& s = streams[i];
      s.body_total = &body;
      s.consume = !(cfg & 0x10) || i != 0;
      s.release_on_headers = (cfg & 0x20) && i == streams.size() - 1;
      s.handle = codec.newStream(s);
      check(s.handle != nullptr);
      RequestHead h;
      h.method = (cfg & 4) ? "POST" : "GET";
      h.path = "/";
      h.authority = "up";
      const bool body_follows = (cfg & 4) != 0;
      check(s.handle->encodeHeaders(h, !body_follows).ok());
      if (body_follows) {
        s.handle->encodeData(std::string_view("payload"), !(cfg & 8));
        if (cfg & 8) {
          HeaderMap t;
          t.add("x-trailer", "1");
          s.handle->encodeTrailers(t);
        }
      }
    }
    drain();
  }

  static Http2Settings settings() { return turnout::fuzz::smallSettings(); }

  void feed(std::string_view bytes) { turnout::fuzz::feed(codec, bytes, fed, body, status); }
  void drain() { turnout::fuzz::drain(codec, status); }

  void eof() {
    codec.onEof();
    check(codec.activeStreams() == 0);
    for (Stream& s : streams) {
      if (s.handle != nullptr) check(s.ended);
      s.handle.reset();
    }
  }

  void onSettings(const PeerSettings&) override {}
  void onGoAway(std::int32_t, std::uint32_t) override {}

  ClientCodec codec;
  std::vector<Stream> streams;
  std::size_t fed = 0, body = 0;
  absl::Status status;
};

}  // namespace

const char* const turnout::fuzz::kTargetName = "codec_http2_client_fuzz";

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* raw, std::size_t size) {
  return turnout::fuzz::runWholeAndSplit<Harness>(raw, size);
}
