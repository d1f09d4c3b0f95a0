// Feeds arbitrary bytes to the HTTP/1 client codec as responses to a few
// queued requests (the first input byte picks their methods), once whole and
// once in fuzzer-chosen chunks, then signals EOF. Invariants:
// - nothing crashes, throws, loops or reads out of bounds (ASan/UBSan);
// - decode() never reports more bytes consumed than it was given;
// - body bytes delivered never exceed the bytes sent;
// - after an error, decode() returns the same error and consumes nothing;
// - the split run produces the same events and outcome as the whole run;
// - so does a whole run with every head through Beast (the codec's fast
//   path for heads in the common shape changes nothing but the cost).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/codec/http1_client_codec.h"
#include "tests/fuzz/split_feed.h"

namespace {

using namespace turnout::proxy;

void check(bool ok) {
  if (!ok) std::abort();
}

class Harness : public ResponseDecoderCallbacks {
 public:
  explicit Harness(std::uint8_t methods, bool fast_path = true)
      : codec(*this, settings(fast_path)) {
    static const char* const kMethods[] = {"GET", "HEAD", "POST", "CONNECT"};
    for (int i = 0; i < 3; ++i) {
      RequestHead h;
      h.method = kMethods[(methods >> (2 * i)) & 3];
      h.path = "/";
      h.authority = "up";
      codec.encodeHeaders(h, true, wire);
    }
  }

  static http1::Http1Settings settings(bool fast_path) {
    http1::Http1Settings s;
    s.common_head_fast_path = fast_path;
    s.max_headers_kb = 4;
    s.max_headers_count = 20;
    s.max_chunk_line_bytes = 64;
    return s;
  }

  void feed(std::string_view bytes) {
    fed += bytes.size();
    buffer.append(bytes);
    for (int guard = 0; status.ok(); ++guard) {
      check(guard < 100000);
      auto r = codec.decode(buffer);
      if (!r.ok()) {
        status = r.status();
        auto again = codec.decode(buffer);
        check(!again.ok() && again.status() == status);
        return;
      }
      check(*r <= buffer.size());
      buffer.erase(0, *r);
      if (*r == 0) return;
    }
  }

  void eof() {
    if (status.ok()) status = codec.onEof();
    events += "EOF" + std::to_string(codec.canReuse()) + std::to_string(codec.upgraded());
  }

  void onMessageBegin() override { events += "B|"; }
  void onInformational(ResponseHead& h) override { events += "I" + std::to_string(h.status); }
  void onHeaders(ResponseHead& h, bool end) override {
    events += "H" + std::to_string(h.status) + h.reason + std::to_string(h.keep_alive) +
              std::to_string(end) + std::to_string(h.chunked) +
              (h.content_length ? std::to_string(*h.content_length) : "-");
    h.headers.forEach([&](std::string_view n, std::string_view v) {
      events.append(n);
      events.push_back(':');
      events.append(v);
      events.push_back(';');
    });
    events += "|";
  }
  void onData(std::span<const char> d, bool end) override {
    body += d.size();
    check(body <= fed);
    // How the body is sliced depends on the chunking; only its bytes and
    // where it ends are compared.
    if (end) events += "E|";
    data.append(d.data(), d.size());
  }
  void onTrailers(HeaderMap& t) override { events += "T" + std::to_string(t.size()) + "|"; }
  void onMessageComplete() override { events += "C|"; }

  http1::ClientCodec codec;
  std::string buffer, wire, events, data;
  std::size_t fed = 0, body = 0;
  absl::Status status;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* raw, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t methods = raw[0];
  const std::uint8_t seed = raw[1];
  const std::string_view input(reinterpret_cast<const char*>(raw + 2), size - 2);

  Harness whole(methods);
  whole.feed(input);
  whole.eof();

  Harness beast(methods, /*fast_path=*/false);
  beast.feed(input);
  beast.eof();

  Harness split(methods);
  turnout::fuzz::feedInChunks(split, input, seed, 23);
  split.eof();
  if (std::getenv("CODEC_FUZZ_DEBUG") != nullptr) {
    std::fprintf(stderr, "beast: %s [%s]\n", beast.events.c_str(),
                 std::string(beast.status.message()).c_str());
    std::fprintf(stderr, "whole: %s [%s]\nsplit: %s [%s]\n", whole.events.c_str(),
                 std::string(whole.status.message()).c_str(), split.events.c_str(),
                 std::string(split.status.message()).c_str());
  }
  check(whole.events == beast.events);
  check(whole.data == beast.data);
  check(whole.status == beast.status);

  check(whole.events == split.events);
  check(whole.data == split.data);
  check(whole.status == split.status);
  check(whole.body <= input.size());
  return 0;
}
