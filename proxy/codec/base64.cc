#include "proxy/codec/base64.h"

#include <array>

namespace turnout::proxy {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::uint8_t kInvalid = 0xff;
constexpr std::uint8_t kPad = 0xfe;

constexpr std::array<std::uint8_t, 256> makeDecodeTable() {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = kInvalid;
  for (std::uint8_t i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = i;
  t[static_cast<unsigned char>('=')] = kPad;
  return t;
}

constexpr std::array<std::uint8_t, 256> kDecode = makeDecodeTable();

}  // namespace

void base64Encode(std::span<const char> in, std::string& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const std::size_t n = in.size();
  const std::size_t start = out.size();
  out.resize(start + (n + 2) / 3 * 4);
  char* o = out.data() + start;
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
    *o++ = kAlphabet[(v >> 18) & 63];
    *o++ = kAlphabet[(v >> 12) & 63];
    *o++ = kAlphabet[(v >> 6) & 63];
    *o++ = kAlphabet[v & 63];
  }
  if (i < n) {
    const bool two = i + 1 < n;
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (two ? std::uint32_t{p[i + 1]} << 8 : 0);
    *o++ = kAlphabet[(v >> 18) & 63];
    *o++ = kAlphabet[(v >> 12) & 63];
    *o++ = two ? kAlphabet[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
}

bool Base64GroupDecoder::decodeGroup(const char* group, std::string& out) {
  std::uint8_t v[4];
  for (int i = 0; i < 4; ++i) v[i] = kDecode[static_cast<unsigned char>(group[i])];
  if (v[0] >= 64 || v[1] >= 64) return false;
  if (v[2] == kInvalid || v[3] == kInvalid) return false;
  if (v[2] == kPad) {
    // "xx==": one byte; the 4 low bits of the second character are unused.
    if (v[3] != kPad || (v[1] & 0x0f) != 0) return false;
    out.push_back(static_cast<char>((v[0] << 2) | (v[1] >> 4)));
    return true;
  }
  if (v[3] == kPad) {
    // "xxx=": two bytes; the 2 low bits of the third character are unused.
    if ((v[2] & 0x03) != 0) return false;
    out.push_back(static_cast<char>((v[0] << 2) | (v[1] >> 4)));
    out.push_back(static_cast<char>(((v[1] & 0x0f) << 4) | (v[2] >> 2)));
    return true;
  }
  const std::uint32_t bits =
      (std::uint32_t{v[0]} << 18) | (std::uint32_t{v[1]} << 12) | (std::uint32_t{v[2]} << 6) | v[3];
  const char bytes[3] = {static_cast<char>(bits >> 16), static_cast<char>(bits >> 8),
                         static_cast<char>(bits)};
  out.append(bytes, 3);
  return true;
}

Base64GroupDecoder::Result Base64GroupDecoder::decode(std::string_view in, std::string& out) {
  if (failed_) return Result::kInvalid;
  std::size_t i = 0;
  if (held_ > 0) {
    while (held_ < 4 && i < in.size()) group_[held_++] = in[i++];
    if (held_ < 4) return Result::kOk;
    held_ = 0;
    if (!decodeGroup(group_, out)) {
      failed_ = true;
      return Result::kInvalid;
    }
  }
  out.reserve(out.size() + (in.size() - i) / 4 * 3);
  for (; i + 4 <= in.size(); i += 4) {
    if (!decodeGroup(in.data() + i, out)) {
      failed_ = true;
      return Result::kInvalid;
    }
  }
  while (i < in.size()) group_[held_++] = in[i++];
  return Result::kOk;
}

}  // namespace turnout::proxy
