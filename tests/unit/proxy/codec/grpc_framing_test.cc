#include "proxy/codec/grpc_framing.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <string>

namespace turnout::proxy {
namespace {

std::string frame(const std::string& body) {
  std::string out(5, '\0');
  const auto n = static_cast<uint32_t>(body.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + body;
}

TEST_CASE("grpc decoder delivers messages split across reads and keeps the rest", "[codec][grpc]") {
  GrpcMessageDecoder d(1 << 20);
  std::deque<std::string> out;
  const std::string wire = frame("hello") + frame("") + frame("world!");
  REQUIRE(d.feed({wire.data(), 3}, out).ok());
  CHECK(out.empty());
  CHECK(d.buffered() == 3);
  REQUIRE(d.feed({wire.data() + 3, wire.size() - 5}, out).ok());
  REQUIRE(out.size() == 2);
  CHECK(out[0] == "hello");
  CHECK(out[1].empty());
  CHECK(d.buffered() == 9);  // the third message's header and 4 of its 6 bytes
  REQUIRE(d.feed({wire.data() + wire.size() - 2, 2}, out).ok());
  REQUIRE(out.size() == 3);
  CHECK(out[2] == "world!");
  CHECK(d.buffered() == 0);
}

TEST_CASE("grpc decoder refuses compressed and oversized messages", "[codec][grpc]") {
  std::deque<std::string> out;
  GrpcMessageDecoder small(4);
  const std::string big = frame("12345");
  auto st = small.feed({big.data(), big.size()}, out);
  CHECK(st.code() == absl::StatusCode::kResourceExhausted);
  CHECK(out.empty());
  CHECK(small.buffered() == 0);

  GrpcMessageDecoder d(1 << 20);
  std::string compressed = frame("x");
  compressed[0] = 1;
  st = d.feed({compressed.data(), compressed.size()}, out);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(out.empty());
}

TEST_CASE("grpc decoder frees a large message's buffer once it is delivered", "[codec][grpc]") {
  // An xDS stream lives for hours: it must not keep the capacity of the
  // largest snapshot it ever received.
  GrpcMessageDecoder d(64u << 20);
  std::deque<std::string> out;
  const std::string wire = frame(std::string(300 * 1024, 'x'));
  REQUIRE(d.feed({wire.data(), wire.size() / 2}, out).ok());
  CHECK(d.bufferCapacity() > GrpcMessageDecoder::kKeptCapacity);
  REQUIRE(d.feed({wire.data() + wire.size() / 2, wire.size() - wire.size() / 2}, out).ok());
  REQUIRE(out.size() == 1);
  CHECK(out[0].size() == 300 * 1024);
  CHECK(d.buffered() == 0);
  CHECK(d.bufferCapacity() <= GrpcMessageDecoder::kKeptCapacity);

  // Small messages keep their (small) buffer: no allocation per message.
  const std::string small = frame("abc") + frame("de");
  REQUIRE(d.feed({small.data(), small.size() - 1}, out).ok());
  const auto cap = d.bufferCapacity();
  REQUIRE(d.feed({small.data() + small.size() - 1, 1}, out).ok());
  CHECK(out.back() == "de");
  CHECK(d.bufferCapacity() == cap);
}

TEST_CASE("the frame counter counts each message once, however the bytes are split",
          "[codec][grpc]") {
  const std::string wire = frame("hello") + frame("") + frame(std::string(70000, 'x')) + frame("!");
  GrpcFrameCounter whole;
  CHECK(whole.inspect({wire.data(), wire.size()}) == 4);
  for (size_t chunk : {1, 2, 5, 7, 4096}) {
    GrpcFrameCounter split;
    uint64_t total = 0;
    for (size_t i = 0; i < wire.size(); i += chunk) {
      total += split.inspect({wire.data() + i, std::min(chunk, wire.size() - i)});
    }
    INFO(chunk);
    CHECK(total == 4);
    CHECK(split.frames() == 4);
  }
}

TEST_CASE("the frame counter counts a message at its first prefix byte", "[codec][grpc]") {
  const std::string wire = frame("abc");
  GrpcFrameCounter c;
  CHECK(c.inspect({wire.data(), 1}) == 1);
  CHECK(c.inspect({wire.data() + 1, wire.size() - 1}) == 0);
  CHECK(c.inspect({}) == 0);
  // A compressed flag counts the same (the counter does not judge).
  const std::string compressed = "\x01" + frame("zz").substr(1);
  CHECK(c.inspect({compressed.data(), compressed.size()}) == 1);
}

TEST_CASE("HTTP statuses map to gRPC statuses as Envoy's httpToGrpcStatus", "[codec][grpc]") {
  CHECK(httpToGrpcStatus(400) == GrpcStatus::kInternal);
  CHECK(httpToGrpcStatus(401) == GrpcStatus::kUnauthenticated);
  CHECK(httpToGrpcStatus(403) == GrpcStatus::kPermissionDenied);
  CHECK(httpToGrpcStatus(404) == GrpcStatus::kUnimplemented);
  CHECK(httpToGrpcStatus(429) == GrpcStatus::kUnavailable);
  CHECK(httpToGrpcStatus(502) == GrpcStatus::kUnavailable);
  CHECK(httpToGrpcStatus(503) == GrpcStatus::kUnavailable);
  CHECK(httpToGrpcStatus(504) == GrpcStatus::kUnavailable);
  CHECK(httpToGrpcStatus(408) == GrpcStatus::kUnknown);
  CHECK(httpToGrpcStatus(500) == GrpcStatus::kUnknown);
  CHECK(httpToGrpcStatus(200) == GrpcStatus::kUnknown);
  CHECK(static_cast<int>(GrpcStatus::kUnauthenticated) == 16);
  CHECK(static_cast<int>(GrpcStatus::kPermissionDenied) == 7);
}

TEST_CASE("grpc-message is percent-encoded outside ' '..'}' and for '%' as Envoy's",
          "[codec][grpc]") {
  CHECK(grpcPercentEncode("no healthy upstream") == "no healthy upstream");
  CHECK(grpcPercentEncode("100% done~\n\xc3\xa9") == "100%25 done%7E%0A%C3%A9");
  CHECK(grpcPercentEncode("").empty());
  CHECK(grpcPercentDecode(grpcPercentEncode("100% done~\n\xc3\xa9")) == "100% done~\n\xc3\xa9");
}

}  // namespace
}  // namespace turnout::proxy
