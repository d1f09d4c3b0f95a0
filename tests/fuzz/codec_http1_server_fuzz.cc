// Feeds arbitrary bytes to the HTTP/1 server codec, once whole and once in
// fuzzer-chosen chunks, playing a connection that keeps unconsumed bytes and
// answers every complete request. Invariants:
// - nothing crashes, throws, loops or reads out of bounds (ASan/UBSan);
// - decode() never reports more bytes consumed than it was given;
// - body bytes delivered never exceed the bytes sent;
// - after an error, decode() returns the same error and consumes nothing;
// - the split run produces the same events and outcome as the whole run;
// - EOF is an error whenever a request is in progress (never "waiting");
// - a whole run with every head through Beast gives the same events and
//   outcome (the codec's fast path for heads in the common shape changes
//   nothing but the cost).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/codec/http1_server_codec.h"
#include "tests/fuzz/split_feed.h"

namespace {

using namespace turnout::proxy;

void check(bool ok) {
  if (!ok) std::abort();
}

class Harness : public RequestDecoderCallbacks {
 public:
  explicit Harness(bool fast_path = true) : codec(*this, settings(fast_path)) {}

  static http1::Http1Settings settings(bool fast_path) {
    http1::Http1Settings s;
    s.common_head_fast_path = fast_path;
    s.max_headers_kb = 4;  // small limits so the fuzzer reaches them
    s.max_headers_count = 20;
    s.max_request_target_bytes = 512;
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
      if (codec.paused()) {
        ResponseHead h;
        h.status = 200;
        out.clear();
        codec.encodeHeaders(h, false, out);
        codec.encodeData(std::span<const char>("ok", 2), true, out);
        continue;
      }
      if (*r == 0) return;
    }
  }

  // The client closes. Returns false if the codec says all is well although a
  // request has begun and not completed.
  bool eof() {
    const bool in_progress = begins != completes && !codec.upgraded();
    if (status.ok()) status = codec.onEof();
    events += "EOF";
    return !(status.ok() && in_progress);
  }

  void onMessageBegin() override {
    ++begins;
    events += "B|";
  }
  void onHeaders(RequestHead& h, bool end) override {
    events += "H " + h.method + " " + h.path + " " + h.authority + " " + h.scheme +
              std::to_string(h.version_minor) + std::to_string(h.keep_alive) +
              std::to_string(h.expect_continue) + std::to_string(h.upgrade) + std::to_string(end) +
              std::to_string(h.chunked) +
              (h.content_length ? std::to_string(*h.content_length) : "-");
    h.headers.forEach([&](std::string_view n, std::string_view v) {
      events.append(n);
      events.push_back(':');
      events.append(v);
      events.push_back(';');
    });
    events += "|";
    check(h.headers.size() <= 20);
  }
  void onData(std::span<const char> d, bool end) override {
    body += d.size();
    check(body <= fed);
    // How the body is sliced depends on the chunking; only its bytes and
    // where it ends are compared.
    if (end) events += "E|";
    data.append(d.data(), d.size());
  }
  void onTrailers(HeaderMap& t) override {
    events += "T" + std::to_string(t.size()) + "|";
  }
  void onMessageComplete() override {
    ++completes;
    events += "C|";
  }

  http1::ServerCodec codec;
  std::string buffer, out, events, data;
  std::size_t fed = 0, body = 0, begins = 0, completes = 0;
  absl::Status status;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* raw, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t seed = raw[0];
  const std::string_view input(reinterpret_cast<const char*>(raw + 1), size - 1);

  Harness whole;
  whole.feed(input);
  check(whole.eof());

  Harness beast(/*fast_path=*/false);
  beast.feed(input);
  check(beast.eof());

  Harness split;
  // Chunk sizes drawn from the input itself, so the fuzzer controls them.
  turnout::fuzz::feedInChunks(split, input, seed, 23);
  check(split.eof());
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
  check(whole.codec.error() == beast.codec.error());
  check(whole.codec.shouldClose() == beast.codec.shouldClose());

  check(whole.events == split.events);
  check(whole.data == split.data);
  check(whole.status == split.status);
  check(whole.codec.error() == split.codec.error());
  check(whole.body <= input.size());
  return 0;
}
