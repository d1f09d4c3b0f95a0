#include "proxy/codec/base64.h"

#include <catch2/catch.hpp>

#include <random>
#include <string>

namespace turnout::proxy {
namespace {

std::string encode(const std::string& in) {
  std::string out;
  base64Encode(std::span<const char>(in.data(), in.size()), out);
  return out;
}

// Decodes `in` whole; "<invalid>" when the decoder refuses it, "<held>" when
// it ends inside a group.
std::string decode(const std::string& in) {
  Base64GroupDecoder d;
  std::string out;
  if (d.decode(in, out) != Base64GroupDecoder::Result::kOk) return "<invalid>";
  if (d.held() != 0) return "<held>";
  return out;
}

TEST_CASE("base64 encodes RFC 4648's test vectors with padding", "[base64]") {
  CHECK(encode("") == "");
  CHECK(encode("f") == "Zg==");
  CHECK(encode("fo") == "Zm8=");
  CHECK(encode("foo") == "Zm9v");
  CHECK(encode("foob") == "Zm9vYg==");
  CHECK(encode("fooba") == "Zm9vYmE=");
  CHECK(encode("foobar") == "Zm9vYmFy");
  CHECK(encode(std::string("\xff\xfe\x00", 3)) == "//4A");
  std::string appended = "x";
  base64Encode(std::span<const char>("fo", 2), appended);
  CHECK(appended == "xZm8=");
}

TEST_CASE("base64 decodes RFC 4648's test vectors", "[base64]") {
  CHECK(decode("") == "");
  CHECK(decode("Zg==") == "f");
  CHECK(decode("Zm8=") == "fo");
  CHECK(decode("Zm9v") == "foo");
  CHECK(decode("Zm9vYmFy") == "foobar");
  CHECK(decode("//4A") == std::string("\xff\xfe\x00", 3));
}

TEST_CASE("padding may end any group: concatenated chunks decode", "[base64]") {
  CHECK(decode("Zg==Zm8=Zm9v") == "ffofoo");
  CHECK(decode("Zm8=Zg==") == "fof");
}

TEST_CASE("base64 refuses what is not canonical base64", "[base64]") {
  CHECK(decode("Zm9") == "<held>");  // no padding
  CHECK(decode("Zg") == "<held>");
  CHECK(decode("Zm9v!A==") == "<invalid>");  // outside the alphabet
  CHECK(decode("Zm 9v") == "<invalid>");     // whitespace
  CHECK(decode("Z===") == "<invalid>");      // padding too early
  CHECK(decode("=Zg=") == "<invalid>");
  CHECK(decode("Zg=g") == "<invalid>");      // data after padding in a group
  CHECK(decode("Zh==") == "<invalid>");      // unused bits set ("f" is Zg==)
  CHECK(decode("Zm9=") == "<invalid>");      // unused bits set ("fo" is Zm8=)
  CHECK(decode("Zm9v-_==") == "<invalid>");  // the URL-safe alphabet is not gRPC-Web's
}

TEST_CASE("a decoder that failed stays failed", "[base64]") {
  Base64GroupDecoder d;
  std::string out;
  CHECK(d.decode("!!!!", out) == Base64GroupDecoder::Result::kInvalid);
  CHECK(d.decode("Zm9v", out) == Base64GroupDecoder::Result::kInvalid);
  CHECK(out.empty());
}

TEST_CASE("base64 decodes the same whatever the chunking", "[base64]") {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::string bytes(rng() % 300, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    const std::string text = encode(bytes);
    Base64GroupDecoder d;
    std::string out;
    size_t at = 0;
    while (at < text.size()) {
      const size_t n = std::min<size_t>(text.size() - at, rng() % 9);
      REQUIRE(d.decode(std::string_view(text).substr(at, n), out) ==
              Base64GroupDecoder::Result::kOk);
      CHECK(d.held() < 4);
      at += n;
    }
    CHECK(d.held() == 0);
    CHECK(out == bytes);
  }
}

}  // namespace
}  // namespace turnout::proxy
