#include "proxy/codec/grpc_framing.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace turnout::proxy {

absl::Status GrpcMessageDecoder::feed(std::span<const char> data, std::deque<std::string>& out) {
  buffer_.append(data.data(), data.size());
  std::size_t pos = 0;
  absl::Status status;
  while (buffer_.size() - pos >= 5) {
    const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data() + pos);
    const std::uint32_t len = (std::uint32_t{p[1]} << 24) | (std::uint32_t{p[2]} << 16) |
                              (std::uint32_t{p[3]} << 8) | std::uint32_t{p[4]};
    if (p[0] != 0) {
      status = absl::InvalidArgumentError("a compressed message was received; none was accepted");
      break;
    }
    if (len > max_) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("a message of ", len, " bytes is above the limit of ", max_));
      break;
    }
    if (buffer_.size() - pos - 5 < len) break;
    out.emplace_back(buffer_.data() + pos + 5, len);
    pos += 5 + len;
  }
  if (!status.ok()) {
    buffer_.clear();
    return status;
  }
  buffer_.erase(0, pos);
  // A long-lived stream (xDS) keeps its decoder for hours: do not keep the
  // capacity of the largest message ever received (an ADS snapshot of a few
  // hundred KB) once it is delivered.
  if (buffer_.empty() && buffer_.capacity() > kKeptCapacity) std::string().swap(buffer_);
  return absl::OkStatus();
}

std::string grpcPercentDecode(std::string_view in) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      const int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

GrpcStatus httpToGrpcStatus(std::uint16_t http_status) {
  switch (http_status) {
    case 400:
      return GrpcStatus::kInternal;
    case 401:
      return GrpcStatus::kUnauthenticated;
    case 403:
      return GrpcStatus::kPermissionDenied;
    case 404:
      return GrpcStatus::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus::kUnavailable;
    default:
      return GrpcStatus::kUnknown;
  }
}

std::string grpcPercentEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (unsigned char c : in) {
    if (c >= ' ' && c < '~' && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::uint64_t GrpcFrameCounter::inspect(std::span<const char> data) {
  const std::uint64_t before = frames_;
  std::size_t i = 0;
  while (i < data.size()) {
    switch (state_) {
      case State::kFlag:
        ++frames_;
        ++i;
        state_ = State::kLength;
        length_bytes_ = 0;
        remaining_ = 0;
        break;
      case State::kLength:
        remaining_ = (remaining_ << 8) | static_cast<std::uint8_t>(data[i++]);
        if (++length_bytes_ == 4) state_ = remaining_ == 0 ? State::kFlag : State::kMessage;
        break;
      case State::kMessage: {
        const std::size_t take = std::min<std::size_t>(remaining_, data.size() - i);
        i += take;
        remaining_ -= static_cast<std::uint32_t>(take);
        if (remaining_ == 0) state_ = State::kFlag;
        break;
      }
    }
  }
  return frames_ - before;
}

}  // namespace turnout::proxy
