#include "proxy/codec/http1_parser_base.h"

#include <cctype>

namespace turnout::proxy::http1::detail {
namespace http = beast::http;

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

bool isChunkedOnly(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return equalsIgnoreCase(v, "chunked");
}

bool isObsFold(const char* begin, const char* end, std::string_view name, std::string_view value) {
  // Beast unfolds obs-fold into a private buffer, or (when the first line is
  // empty) returns a view that starts after the fold.
  if (value.data() < begin || value.data() > end) return true;
  const char* p = name.data() + name.size();
  if (p < begin || p > value.data()) return true;
  for (; p < value.data(); ++p) {
    if (*p == '\r' || *p == '\n') return true;
  }
  return false;
}

void appendUint(std::string& out, std::uint64_t v) {
  char buf[20];
  char* p = buf + sizeof(buf);
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  out.append(p, static_cast<std::size_t>(buf + sizeof(buf) - p));
}

void appendChunkHeader(std::string& out, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[18];
  char* p = buf + sizeof(buf);
  *--p = '\n';
  *--p = '\r';
  do {
    *--p = kHex[size & 0xf];
    size >>= 4;
  } while (size != 0);
  out.append(p, static_cast<std::size_t>(buf + sizeof(buf) - p));
}

void appendHeaderField(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

CodecErrorCode mapBeastError(const BeastError& ec, bool seen_content_length,
                             bool seen_transfer_encoding) {
  if (ec.category() != http::make_error_code(http::error::need_more).category()) {
    return CodecErrorCode::kCodecError;
  }
  switch (static_cast<http::error>(ec.value())) {
    case http::error::bad_method: return CodecErrorCode::kInvalidMethod;
    case http::error::bad_target: return CodecErrorCode::kInvalidUrl;
    case http::error::bad_version: return CodecErrorCode::kInvalidVersion;
    case http::error::bad_status:
    case http::error::bad_reason: return CodecErrorCode::kInvalidStatus;
    case http::error::bad_field: return CodecErrorCode::kInvalidHeaderName;
    case http::error::bad_value: return CodecErrorCode::kInvalidCharacters;
    case http::error::bad_line_ending: return CodecErrorCode::kInvalidLineEnding;
    case http::error::bad_content_length:
      return seen_transfer_encoding ? CodecErrorCode::kContentLengthAndChunked
                                    : CodecErrorCode::kInvalidContentLength;
    case http::error::bad_transfer_encoding:
      return seen_content_length ? CodecErrorCode::kContentLengthAndChunked
                                 : CodecErrorCode::kInvalidTransferEncoding;
    case http::error::bad_chunk:
    case http::error::bad_chunk_extension: return CodecErrorCode::kInvalidChunk;
    case http::error::header_limit: return CodecErrorCode::kHeadersTooLarge;
    case http::error::partial_message: return CodecErrorCode::kPrematureEof;
    default: return CodecErrorCode::kCodecError;
  }
}

// The bytes from the current chunk line on (possibly preceded by the CRLF
// that ends the previous chunk's data). Judged by position only, so the
// answer is the same however the bytes were split: a chunk line of more than
// max_chunk_line_bytes, or a last chunk whose trailer block is not complete
// within max_headers_kb, is an error.
CodecErrorCode checkChunkLeftover(std::string_view rest, const Http1Settings& settings,
                                  bool expect_crlf) {
  // After chunk data Beast wants CRLF first and reports anything else itself.
  if (expect_crlf && !rest.starts_with("\r\n")) return CodecErrorCode::kNone;
  const std::size_t start = expect_crlf ? 2 : 0;
  const std::size_t window = start + settings.max_chunk_line_bytes + 2;
  // Any CR in the line either ends it or is a bare CR, which Beast reports as
  // soon as it sees the next byte; without one the line is simply too long.
  const std::size_t cr = rest.substr(0, window).find('\r', start);
  if (cr == std::string_view::npos) {
    return rest.size() >= window ? CodecErrorCode::kChunkExtensionTooLong : CodecErrorCode::kNone;
  }
  if (cr + 1 >= rest.size() || rest[cr + 1] != '\n') return CodecErrorCode::kNone;
  const std::size_t eol = cr;
  std::size_t i = start;
  while (i < eol && rest[i] == '0') ++i;
  const bool last_chunk = i > start && (i == eol || !std::isxdigit(static_cast<unsigned char>(rest[i])));
  if (!last_chunk) return CodecErrorCode::kNone;
  const std::size_t limit = std::size_t{settings.max_headers_kb} * 1024;
  const std::string_view trailers = rest.substr(eol);  // starts with the line's CRLF
  if (trailers.starts_with("\r\n\r\n")) return CodecErrorCode::kNone;
  if (trailers.substr(0, limit + 4).find("\r\n\r\n") == std::string_view::npos &&
      trailers.size() >= limit + 4) {
    return CodecErrorCode::kHeadersTooLarge;
  }
  return CodecErrorCode::kNone;
}

CodecErrorCode HeadScanner::scan(std::string_view b, std::size_t max_line, std::size_t limit,
                                 std::size_t& eom) {
  std::size_t i = pos;
  for (; i < b.size(); ++i) {
    if (!lf_seen && i >= max_line) return CodecErrorCode::kRequestTargetTooLong;
    if (i >= limit) return CodecErrorCode::kHeadersTooLarge;
    const char c = b[i];
    if (c == '\r') {
      if (i + 1 >= b.size()) break;  // judged when the next byte arrives
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

void appendBody(std::string& out, std::span<const char> data, bool end_stream, bool chunked) {
  if (chunked) {
    if (!data.empty()) {
      appendChunkHeader(out, data.size());
      out.append(data.data(), data.size());
      out.append("\r\n");
    }
    if (end_stream) out.append("0\r\n\r\n");
  } else {
    out.append(data.data(), data.size());
  }
}

void appendTrailers(std::string& out, const HeaderMap& trailers, bool chunked) {
  if (!chunked) return;
  out.append("0\r\n");
  trailers.forEach([&](std::string_view n, std::string_view v) { appendHeaderField(out, n, v); });
  out.append("\r\n");
}

}  // namespace turnout::proxy::http1::detail
