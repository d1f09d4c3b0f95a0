#include "routing/traceparent.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace turnout::routing {
namespace {

constexpr char kTrace[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kParent[] = "00f067aa0ba902b7";
const std::string kValid = std::string("00-") + kTrace + "-" + kParent + "-01";

struct Case {
  std::string value;
  TraceparentError error;
};

constexpr TraceparentError kOk = TraceparentError::kNone;
constexpr TraceparentError kMalformed = TraceparentError::kMalformed;

std::string tp(const std::string& version, const std::string& trace, const std::string& parent,
               const std::string& flags, const std::string& suffix = "") {
  return version + "-" + trace + "-" + parent + "-" + flags + suffix;
}

TEST_CASE("traceparent parses the spec's example into its fields", "[routing]") {
  const TraceparentParse p = parseTraceparent(kValid);
  REQUIRE(p.ok());
  CHECK(p.value.version == 0);
  CHECK(p.value.trace_id.hi == 0x4bf92f3577b34da6ULL);
  CHECK(p.value.trace_id.lo == 0xa3ce929d0e0e4736ULL);
  CHECK(p.value.parent_id == 0x00f067aa0ba902b7ULL);
  CHECK(p.value.flags == 0x01);
}

TEST_CASE("traceparent accepts exactly the W3C grammar", "[routing]") {
  const std::string zeros32(32, '0');
  const std::string zeros16(16, '0');
  const Case c = GENERATE_COPY(values<Case>({
      {kValid, kOk},
      // Flags: any two lowercase hex digits.
      {tp("00", kTrace, kParent, "00"), kOk},
      {tp("00", kTrace, kParent, "ff"), kOk},
      {tp("00", kTrace, kParent, "0F"), kMalformed},
      {tp("00", kTrace, kParent, "0"), kMalformed},
      {tp("00", kTrace, kParent, "001"), kMalformed},
      // OWS around the value only.
      {" \t" + kValid + "\t ", kOk},
      {kValid + "\r", kMalformed},
      {"\n" + kValid, kMalformed},
      {tp("00", kTrace, kParent, "01", " "), kOk},
      {"00 -" + std::string(kTrace) + "-" + kParent + "-01", kMalformed},
      // Uppercase hex anywhere is invalid.
      {tp("00", "4BF92F3577B34DA6A3CE929D0E0E4736", kParent, "01"), kMalformed},
      {tp("00", "4bf92f3577b34da6a3ce929d0e0e473A", kParent, "01"), kMalformed},
      {tp("00", kTrace, "00F067AA0BA902B7", "01"), kMalformed},
      {tp("0A", kTrace, kParent, "01"), kMalformed},
      // Non-hex characters.
      {tp("00", "4bf92f3577b34da6a3ce929d0e0e473g", kParent, "01"), kMalformed},
      {tp("00", kTrace, "00f067aa0ba902bz", "01"), kMalformed},
      {tp("0x", kTrace, kParent, "01"), kMalformed},
      {tp("00", kTrace, kParent, "0g"), kMalformed},
      {tp("00", "+bf92f3577b34da6a3ce929d0e0e4736", kParent, "01"), kMalformed},
      // Wrong field sizes and separators.
      {tp("00", std::string(kTrace).substr(1), kParent, "01"), kMalformed},
      {tp("00", std::string(kTrace) + "0", kParent, "01"), kMalformed},
      {tp("00", kTrace, std::string(kParent).substr(1), "01"), kMalformed},
      {tp("00", kTrace, std::string(kParent) + "0", "01"), kMalformed},
      {tp("000", kTrace, kParent, "01"), kMalformed},
      {"00_" + std::string(kTrace) + "-" + kParent + "-01", kMalformed},
      {"00-" + std::string(kTrace) + "_" + kParent + "-01", kMalformed},
      {"00-" + std::string(kTrace) + "-" + kParent + "_01", kMalformed},
      {"", kMalformed},
      {"00", kMalformed},
      {kValid.substr(0, 54), kMalformed},
      // Version 00 is exactly 55 characters: no suffix of any kind.
      {kValid + "-", kMalformed},
      {kValid + "-what-the-future-will-be-like", kMalformed},
      {kValid + "0", kMalformed},
      // All-zero ids.
      {tp("00", zeros32, kParent, "01"), TraceparentError::kZeroTraceId},
      {tp("00", kTrace, zeros16, "01"), TraceparentError::kZeroParentId},
      {tp("00", zeros32, zeros16, "01"), TraceparentError::kZeroTraceId},
      // Version ff is invalid whatever follows.
      {tp("ff", kTrace, kParent, "01"), TraceparentError::kInvalidVersion},
      {tp("ff", kTrace, kParent, "01", "-x"), TraceparentError::kInvalidVersion},
      {tp("FF", kTrace, kParent, "01"), kMalformed},
      // Higher versions: the version-00 fields, then the end or "-" and anything.
      {tp("01", kTrace, kParent, "01"), kOk},
      {tp("cc", kTrace, kParent, "09"), kOk},
      {tp("fe", kTrace, kParent, "01"), kOk},
      {tp("01", kTrace, kParent, "01", "-"), kOk},
      {tp("01", kTrace, kParent, "01", "-what-the-future-will-be-like"), kOk},
      {tp("01", kTrace, kParent, "01", "-ANY thing!"), kOk},
      {tp("01", kTrace, kParent, "01", "0"), kMalformed},
      {tp("01", kTrace, kParent, "01", "x-y"), kMalformed},
      {tp("01", kTrace, kParent, "0"), kMalformed},
      {tp("01", kTrace, kParent, "0G"), kMalformed},
      {tp("01", zeros32, kParent, "01", "-x"), TraceparentError::kZeroTraceId},
      {tp("01", kTrace, zeros16, "01", "-x"), TraceparentError::kZeroParentId},
      {tp("01", "4BF92F3577B34DA6A3CE929D0E0E4736", kParent, "01", "-x"), kMalformed},
  }));
  CAPTURE(c.value);
  const TraceparentParse p = parseTraceparent(c.value);
  CHECK(p.error == c.error);
  CHECK(p.ok() == (c.error == kOk));
}

TEST_CASE("traceparent of a higher version keeps its version and the version-00 fields",
          "[routing]") {
  const TraceparentParse p = parseTraceparent(tp("cc", kTrace, kParent, "09", "-extra"));
  REQUIRE(p.ok());
  CHECK(p.value.version == 0xcc);
  CHECK(p.value.trace_id == parseTraceparent(kValid).value.trace_id);
  CHECK(p.value.parent_id == 0x00f067aa0ba902b7ULL);
  CHECK(p.value.flags == 0x09);
}

TEST_CASE("traceparent rejects a byte other than lowercase hex at every position", "[routing]") {
  // Every position of the valid value, every byte: only lowercase hex digits
  // in a hex field (or the same byte) keep it valid.
  for (std::size_t i = 0; i < kValid.size(); ++i) {
    const bool dash = kValid[i] == '-';
    for (int b = 0; b < 256; ++b) {
      std::string v = kValid;
      v[i] = static_cast<char>(b);
      const bool hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f');
      bool expect_ok = dash ? b == '-' : hex;
      // OWS at either end is trimmed, which leaves 54 characters.
      const bool edge = i == 0 || i + 1 == kValid.size();
      if (edge && (b == ' ' || b == '\t')) expect_ok = false;
      const TraceparentParse p = parseTraceparent(v);
      CAPTURE(i, b);
      CHECK(p.ok() == expect_ok);
    }
  }
}

TEST_CASE("traceparent distinguishes ids that differ in one hex digit", "[routing]") {
  const TraceId base = parseTraceparent(kValid).value.trace_id;
  std::vector<TraceId> seen{base};
  for (std::size_t i = 3; i < 35; ++i) {
    std::string v = kValid;
    v[i] = v[i] == '0' ? '1' : '0';
    const TraceparentParse p = parseTraceparent(v);
    REQUIRE(p.ok());
    for (const TraceId& other : seen) CHECK_FALSE(p.value.trace_id == other);
    seen.push_back(p.value.trace_id);
  }
}

TEST_CASE("traceparent header: absent, repeated or one line", "[routing]") {
  SECTION("absent") {
    const RequestView view("GET", "a", "/", {});
    CHECK(parseTraceparentHeader(view).error == TraceparentError::kMissing);
  }
  SECTION("one line") {
    std::vector<HeaderEntry> headers{{"traceparent", kValid}};
    const RequestView view("GET", "a", "/", headers);
    const TraceparentParse p = parseTraceparentHeader(view);
    REQUIRE(p.ok());
    CHECK(p.value.flags == 1);
  }
  SECTION("two lines, even equal ones, are not one trace") {
    std::vector<HeaderEntry> headers{{"traceparent", kValid}, {"traceparent", kValid}};
    const RequestView view("GET", "a", "/", headers);
    CHECK(parseTraceparentHeader(view).error == TraceparentError::kRepeated);
  }
  SECTION("an invalid line") {
    std::vector<HeaderEntry> headers{{"traceparent", "00-x"}};
    const RequestView view("GET", "a", "/", headers);
    CHECK(parseTraceparentHeader(view).error == TraceparentError::kMalformed);
  }
}

TEST_CASE("traceparent error names are stable", "[routing]") {
  CHECK(traceparentErrorName(TraceparentError::kNone) == "none");
  CHECK(traceparentErrorName(TraceparentError::kMissing) == "missing");
  CHECK(traceparentErrorName(TraceparentError::kRepeated) == "repeated");
  CHECK(traceparentErrorName(TraceparentError::kMalformed) == "malformed");
  CHECK(traceparentErrorName(TraceparentError::kInvalidVersion) == "invalid_version");
  CHECK(traceparentErrorName(TraceparentError::kZeroTraceId) == "zero_trace_id");
  CHECK(traceparentErrorName(TraceparentError::kZeroParentId) == "zero_parent_id");
}

}  // namespace
}  // namespace turnout::routing
