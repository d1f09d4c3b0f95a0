// HeadScanner finds the end of an HTTP/1 head and enforces the line-ending
// and size rules before Beast parses it. It scans with memchr; this checks it
// against the byte-by-byte definition it replaced, on random heads fed in
// random pieces.

#include <catch2/catch.hpp>

#include <cctype>
#include <random>
#include <string>
#include <string_view>

#include "proxy/codec/http1_parser_base.h"

namespace turnout::proxy::http1::detail {
namespace {

// The definition: each byte in turn, limits first.
struct ReferenceScanner {
  std::size_t pos = 0;
  bool lf_seen = false;
  CodecErrorCode scan(std::string_view b, std::size_t max_line, std::size_t limit,
                      std::size_t& eom) {
    std::size_t i = pos;
    for (; i < b.size(); ++i) {
      if (!lf_seen && i >= max_line) return CodecErrorCode::kRequestTargetTooLong;
      if (i >= limit) return CodecErrorCode::kHeadersTooLarge;
      const char c = b[i];
      if (c == '\r') {
        if (i + 1 >= b.size()) break;
        if (b[i + 1] != '\n') return CodecErrorCode::kInvalidLineEnding;
      } else if (c == '\n') {
        if (i == 0 || b[i - 1] != '\r') return CodecErrorCode::kInvalidLineEnding;
        lf_seen = true;
        if (i >= 3 && b[i - 2] == '\n') {
          eom = i + 1;
          pos = i + 1;
          return CodecErrorCode::kNone;
        }
      }
    }
    pos = i;
    return CodecErrorCode::kNone;
  }
};

std::string escaped(std::string_view b) {
  std::string out;
  for (char c : b) out += c == '\r' ? std::string("\\r") : c == '\n' ? std::string("\\n") : std::string(1, c);
  return out;
}

TEST_CASE("head scanner finds the head's end and refuses bad line endings and sizes",
          "[codec][http1]") {
  auto once = [](std::string_view b, std::size_t max_line = 1000, std::size_t limit = 1000) {
    HeadScanner s;
    std::size_t eom = 0;
    const CodecErrorCode code = s.scan(b, max_line, limit, eom);
    return std::make_pair(code, eom);
  };
  CHECK(once("GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY") ==
        std::make_pair(CodecErrorCode::kNone, std::size_t{27}));
  CHECK(once("GET / HTTP/1.1\r\nHost: a\r\n").second == 0);  // not complete yet
  CHECK(once("GET / HTTP/1.1\nHost: a\r\n\r\n").first == CodecErrorCode::kInvalidLineEnding);
  CHECK(once("GET / HTTP/1.1\r\nHost:\ra\r\n\r\n").first == CodecErrorCode::kInvalidLineEnding);
  CHECK(once("\nGET / HTTP/1.1\r\n\r\n").first == CodecErrorCode::kInvalidLineEnding);
  CHECK(once("GET /aaaaaaaaaa HTTP/1.1\r\n\r\n", 10).first ==
        CodecErrorCode::kRequestTargetTooLong);
  CHECK(once("GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaa\r\n\r\n", 1000, 20).first ==
        CodecErrorCode::kHeadersTooLarge);
  // A CR at the end of what arrived is judged with the next byte.
  HeadScanner s;
  std::size_t eom = 0;
  const std::string head = "GET / HTTP/1.1\r\n\r\n";
  CHECK(s.scan(std::string_view(head).substr(0, 15), 1000, 1000, eom) == CodecErrorCode::kNone);
  CHECK(s.pos == 14);
  CHECK(s.scan(head, 1000, 1000, eom) == CodecErrorCode::kNone);
  CHECK(eom == head.size());
}

TEST_CASE("head scanner agrees with the byte-by-byte definition on random input",
          "[codec][http1]") {
  std::mt19937 rng(20261204);
  // Mostly well-formed lines, with stray CRs and LFs.
  const char alphabet[] = {'a', 'b', ':', ' ', '\r', '\n', '\r', '\n', 'x', 'y'};
  for (int round = 0; round < 20000; ++round) {
    std::string b;
    const int len = static_cast<int>(rng() % 64);
    for (int k = 0; k < len; ++k) {
      if (rng() % 4 == 0) {
        b += "\r\n";
      } else {
        b += alphabet[rng() % sizeof(alphabet)];
      }
    }
    const std::size_t max_line = 1 + rng() % 40;
    const std::size_t limit = 1 + rng() % 70;
    HeadScanner fast;
    ReferenceScanner ref;
    std::size_t fast_eom = 0;
    std::size_t ref_eom = 0;
    // Fed as it might arrive: growing prefixes of the same bytes.
    std::size_t have = 0;
    for (;;) {
      have = std::min(b.size(), have + 1 + rng() % 9);
      const std::string_view part(b.data(), have);
      const CodecErrorCode f = fast.scan(part, max_line, limit, fast_eom);
      const CodecErrorCode r = ref.scan(part, max_line, limit, ref_eom);
      INFO("input " << escaped(b) << " have " << have << " max_line " << max_line
                    << " limit " << limit);
      REQUIRE(static_cast<int>(f) == static_cast<int>(r));
      REQUIRE(fast_eom == ref_eom);
      if (f != CodecErrorCode::kNone || fast_eom != 0) break;
      REQUIRE(fast.pos == ref.pos);
      REQUIRE(fast.lf_seen == ref.lf_seen);
      if (have == b.size()) break;
    }
  }
}

TEST_CASE(
    "splitCommonField takes exactly tchar names and visible-ASCII values, at every "
    "position of the word-at-a-time check",
    "[codec][http1]") {
  const auto is_text = [](unsigned c) { return c == '\t' || (c >= 0x20 && c < 0x7f); };
  for (unsigned b = 0; b < 256; ++b) {
    for (std::size_t at = 0; at < 19; ++at) {
      std::string value(19, 'v');
      value[at] = static_cast<char>(b);
      std::string_view name, got;
      const std::string line = "x-name: " + value;
      const bool ok = splitCommonField(line, name, got);
      // OWS at either end is trimmed, not refused.
      const bool edge_ows = (b == ' ' || b == '\t') && (at == 0 || at == 18);
      CAPTURE(b, at);
      CHECK(ok == is_text(b));
      if (ok) {
        CHECK(name == "x-name");
        CHECK(got.size() == (edge_ows ? 18u : 19u));
      }
    }
  }
  std::string_view n, v;
  CHECK(splitCommonField("a:", n, v));
  CHECK((n == "a" && v.empty()));
  CHECK(splitCommonField("A!#$%&'*+-.^_`|~9:\t x \t", n, v));
  CHECK(v == "x");
  CHECK_FALSE(splitCommonField(": x", n, v));
  CHECK_FALSE(splitCommonField("a b: x", n, v));
  CHECK_FALSE(splitCommonField(" a: x", n, v));
  CHECK_FALSE(splitCommonField("a(: x", n, v));
  CHECK_FALSE(splitCommonField("no colon", n, v));
}

TEST_CASE("equalsIgnoreCase folds letters only", "[codec][http1]") {
  CHECK(equalsIgnoreCase("Content-Length", "content-length"));
  CHECK(equalsIgnoreCase("KEEP-ALIVE", "keep-alive"));
  CHECK_FALSE(equalsIgnoreCase("@", "`"));  // 0x40 / 0x60: not letters
  CHECK_FALSE(equalsIgnoreCase("[", "{"));
  CHECK_FALSE(equalsIgnoreCase("a", "b"));
  CHECK_FALSE(equalsIgnoreCase("ab", "a"));
  for (int c = 0; c < 256; ++c) {
    for (int d = 0; d < 256; ++d) {
      const char x = static_cast<char>(c), y = static_cast<char>(d);
      const bool expected = std::tolower(static_cast<unsigned char>(x)) ==
                                std::tolower(static_cast<unsigned char>(y)) &&
                            (c < 128) == (d < 128);
      CAPTURE(c, d);
      if (equalsIgnoreCase(std::string_view(&x, 1), std::string_view(&y, 1)) != expected) FAIL();
    }
  }
}

}  // namespace
}  // namespace turnout::proxy::http1::detail
