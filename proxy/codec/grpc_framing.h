#pragma once

// gRPC's length-prefixed message framing (grpc/doc/PROTOCOL-HTTP2.md), shared
// by the xDS client (GrpcStream) and turnout-cp's gRPC server: a 1-byte
// compressed flag, a 32-bit big-endian length, the message.

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace turnout::proxy {

// gRPC status codes used here (grpc/include/grpcpp/impl/codegen/status_code_enum.h).
enum class GrpcStatus : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kResourceExhausted = 8,
  kPermissionDenied = 7,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kUnauthenticated = 16,
};

// The gRPC status of an HTTP status that is not a gRPC answer (gRPC's
// http-grpc-status-mapping.md, Envoy's Grpc::Utility::httpToGrpcStatus):
// 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
// 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
GrpcStatus httpToGrpcStatus(std::uint16_t http_status);

// The 5-byte prefix of an uncompressed message of `size` bytes.
inline std::array<char, 5> grpcFramePrefix(std::size_t size) {
  const auto len = static_cast<std::uint32_t>(size);
  return {0, static_cast<char>(len >> 24), static_cast<char>(len >> 16),
          static_cast<char>(len >> 8), static_cast<char>(len)};
}

// Splits a byte stream into whole messages. A compressed message (none is
// ever accepted: nothing advertises an encoding) or one above the limit is
// an error (InvalidArgument / ResourceExhausted); the decoder is then spent.
class GrpcMessageDecoder {
 public:
  explicit GrpcMessageDecoder(std::size_t max_message_bytes) : max_(max_message_bytes) {}
  // Appends the messages `data` completes to `out`.
  absl::Status feed(std::span<const char> data, std::deque<std::string>& out);
  // Bytes of an incomplete message held.
  std::size_t buffered() const { return buffer_.size(); }
  // Capacity kept between messages; a larger buffer is freed once empty.
  static constexpr std::size_t kKeptCapacity = 16 * 1024;
  std::size_t bufferCapacity() const { return buffer_.capacity(); }

 private:
  std::size_t max_;
  std::string buffer_;
};

// Counts the messages of a gRPC byte stream as it passes, holding nothing
// (Envoy's Grpc::FrameInspector): a message counts when its first prefix
// byte is seen, so a message split over chunks counts once. Never fails:
// what follows a message's declared length is the next prefix.
class GrpcFrameCounter {
 public:
  // Inspects the next chunk; returns how many messages started in it.
  std::uint64_t inspect(std::span<const char> data);
  std::uint64_t frames() const { return frames_; }

 private:
  enum class State : std::uint8_t { kFlag, kLength, kMessage };
  State state_ = State::kFlag;
  std::uint8_t length_bytes_ = 0;  // of the prefix's length read so far
  std::uint32_t remaining_ = 0;    // kLength: the length so far; kMessage: bytes left
  std::uint64_t frames_ = 0;
};

// grpc-message is percent-encoded. The encoder is Envoy's
// (PercentEncoding::encode with "%" reserved): bytes outside ' '..'}' and '%'
// become %XX, so '~', which gRPC would allow, is encoded too; every decoder
// takes both.
std::string grpcPercentDecode(std::string_view in);
std::string grpcPercentEncode(std::string_view in);

}  // namespace turnout::proxy
