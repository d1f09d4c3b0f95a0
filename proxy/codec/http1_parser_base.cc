#include "proxy/codec/http1_parser_base.h"

#include <cctype>
#include <cstdint>
#include <cstring>
#include <limits>

namespace turnout::proxy::http1::detail {
namespace http = beast::http;

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const unsigned char x = static_cast<unsigned char>(a[i]);
    const unsigned char y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    // Equal but for case only when they differ in bit 0x20 and are letters.
    const unsigned char lower = x | 0x20;
    if ((x ^ y) != 0x20 || lower < 'a' || lower > 'z') return false;
  }
  return true;
}

bool isChunkedOnly(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return equalsIgnoreCase(v, "chunked");
}

namespace {

// RFC 9110 §5.6.2 tchar; visible ASCII, SP and HTAB (a field value or a
// reason-phrase without obs-text).
struct CharClasses {
  bool tchar[256] = {};
  bool text[256] = {};
  constexpr CharClasses() {
    for (int c = '0'; c <= '9'; ++c) tchar[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) tchar[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) tchar[c] = true;
    for (const char c : std::string_view("!#$%&'*+-.^_`|~"))
      tchar[static_cast<unsigned char>(c)] = true;
    for (int c = 0x20; c < 0x7f; ++c) text[c] = true;
    text[static_cast<unsigned char>('\t')] = true;
  }
};
constexpr CharClasses kChars;

bool allText(std::string_view s) {
  const char* p = s.data();
  std::size_t n = s.size();
  // Eight bytes at a time while none is below 0x20, 0x7f or above
  // (Hacker's Delight "hasless"/"haszero", exact): a word with an HTAB, or a
  // bad byte, is left to the byte loop.
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    const std::uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;
    const std::uint64_t x = w ^ (kOnes * 0x7f);
    const std::uint64_t del = (x - kOnes) & ~x & kHigh;
    if ((below_space | del | (w & kHigh)) != 0) break;
  }
  for (; n > 0; ++p, --n) {
    if (!kChars.text[static_cast<unsigned char>(*p)]) return false;
  }
  return true;
}

}  // namespace

bool splitCommonField(std::string_view line, std::string_view& name, std::string_view& value) {
  std::size_t i = 0;
  while (i < line.size() && kChars.tchar[static_cast<unsigned char>(line[i])]) ++i;
  if (i == 0 || i == line.size() || line[i] != ':') return false;
  name = line.substr(0, i);
  std::size_t b = i + 1;
  std::size_t e = line.size();
  while (b < e && (line[b] == ' ' || line[b] == '\t')) ++b;
  while (e > b && (line[e - 1] == ' ' || line[e - 1] == '\t')) --e;
  value = line.substr(b, e - b);
  return allText(value);
}

bool isCommonReason(std::string_view reason) { return allText(reason); }

CommonFraming::Field CommonFraming::onField(std::string_view name, std::string_view value,
                                            HeaderMap& headers) {
  if (name.size() == 14 && equalsIgnoreCase(name, "content-length")) {
    if (have_length || value.empty() || value.size() > 18) return Field::kDecline;
    for (const char c : value) {
      if (c < '0' || c > '9') return Field::kDecline;
      length = length * 10 + static_cast<std::uint64_t>(c - '0');
    }
    have_length = true;
    char buf[20];
    headers.addLowercase("content-length", canonicalContentLength(value, buf));
    return Field::kAdded;
  }
  if (name.size() == 17 && equalsIgnoreCase(name, "transfer-encoding")) return Field::kDecline;
  if (name.size() == 10 && equalsIgnoreCase(name, "connection")) {
    if (equalsIgnoreCase(value, "close")) {
      close = true;
    } else if (!equalsIgnoreCase(value, "keep-alive")) {
      return Field::kDecline;
    }
  }
  return Field::kOther;
}

std::string_view canonicalContentLength(std::string_view v, char (&buf)[20]) {
  std::size_t i = 0;
  while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
  while (i + 1 < v.size() && v[i] == '0' && v[i + 1] >= '0' && v[i + 1] <= '9') ++i;
  std::size_t n = 0;
  while (i < v.size() && n < sizeof(buf) && v[i] >= '0' && v[i] <= '9') buf[n++] = v[i++];
  return std::string_view(buf, n);
}

bool isForbiddenTrailer(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "content-length", "transfer-encoding", "host",    "connection",
      "keep-alive",     "proxy-connection",  "te",      "upgrade",
      "trailer",
  };
  for (std::string_view n : kNames) {
    if (equalsIgnoreCase(name, n)) return true;
  }
  return false;
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
  // A field of common size is put together on the stack and appended once:
  // one capacity check and no two-byte copies.
  char line[256];
  const std::size_t n = name.size() + value.size() + 4;
  if (n > sizeof(line)) {
    out.append(name);
    out.append(": ", 2);
    out.append(value);
    out.append("\r\n", 2);
    return;
  }
  char* p = line;
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  if (!value.empty()) std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p++ = '\n';
  out.append(line, n);
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

bool hasControlChars(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return true;
  }
  return false;
}

bool hasBareLfInChunkLine(std::string_view line, std::size_t max_chunk_line_bytes) {
  const std::size_t i = line.substr(0, max_chunk_line_bytes + 2).find_first_of("\r\n");
  return i != std::string_view::npos && line[i] == '\n';
}

namespace {

// Whether Beast would accept `line` (a chunk line without its CRLF) as a
// chunk-size and chunk-ext (RFC 9112 §7.1.1) once it has the whole line: the
// same grammar as basic_parser's parse_hex and parse_chunk_extensions, except
// that the line's end is an end, where Beast's quoted-string runs on past it
// and waits for a closing quote that may never come. Also false for a control
// character, which on_chunk_header_impl rejects in a line Beast accepts.
bool isValidChunkLine(std::string_view l) {
  if (hasControlChars(l)) return false;
  std::size_t i = 0;
  std::uint64_t size = 0;
  for (; i < l.size(); ++i) {
    const int d = http::detail::unhex(l[i]);
    if (d < 0) break;
    if (size > std::numeric_limits<std::uint64_t>::max() / 16) return false;
    size *= 16;
    if (std::numeric_limits<std::uint64_t>::max() - size < static_cast<std::uint64_t>(d)) {
      return false;
    }
    size += static_cast<std::uint64_t>(d);
  }
  if (i == 0) return false;
  const auto bws = [&] {
    const std::size_t from = i;
    while (i < l.size() && (l[i] == ' ' || l[i] == '\t')) ++i;
    return i != from;
  };
  const auto token = [&] {
    const std::size_t from = i;
    while (i < l.size() && http::detail::is_token_char(l[i])) ++i;
    return i != from;
  };
  for (;;) {
    if (i == l.size()) return true;
    bws();
    if (i == l.size() || l[i] != ';') return false;
    for (;;) {  // after each ';'
      ++i;
      bws();
      if (!token()) return false;
      const bool had_bws = bws();
      if (i == l.size()) return !had_bws;
      if (l[i] == ';') continue;
      if (l[i] != '=') return false;
      ++i;
      bws();
      if (i == l.size()) return false;
      if (l[i] != '"') {
        if (!token()) return false;
      } else {
        for (++i;; ++i) {
          if (i == l.size()) return false;
          if (l[i] == '"') break;
          if (l[i] == '\\' && ++i == l.size()) return false;
        }
        ++i;
      }
      break;
    }
  }
}

}  // namespace

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
  // A LF before it can only be a bare LF, which Beast would wait on until a
  // CRLF or the length limit arrived: it is an error now.
  if (hasBareLfInChunkLine(rest.substr(start), settings.max_chunk_line_bytes)) {
    return CodecErrorCode::kInvalidChunk;
  }
  const std::size_t cr = rest.substr(0, window).find('\r', start);
  if (cr == std::string_view::npos) {
    return rest.size() >= window ? CodecErrorCode::kChunkExtensionTooLong : CodecErrorCode::kNone;
  }
  if (cr + 1 >= rest.size() || rest[cr + 1] != '\n') return CodecErrorCode::kNone;
  const std::size_t eol = cr;
  if (!isValidChunkLine(rest.substr(start, eol - start))) return CodecErrorCode::kInvalidChunk;
  std::size_t i = start;
  while (i < eol && rest[i] == '0') ++i;
  const bool last_chunk = i > start && (i == eol || !std::isxdigit(static_cast<unsigned char>(rest[i])));
  if (!last_chunk) return CodecErrorCode::kNone;
  const std::size_t limit = std::size_t{settings.max_headers_kb} * 1024;
  const std::string_view trailers = rest.substr(eol);  // starts with the line's CRLF
  if (trailers.starts_with("\r\n\r\n")) return CodecErrorCode::kNone;
  // The trailer block as Beast will see it, up to its first CRLFCRLF: a bare
  // CR or LF in it is an error (as in a head, see HeadScanner), found here
  // before the block is complete so that no peer can hold it open with one.
  const std::string_view window_bytes = trailers.substr(0, limit + 4);
  for (std::size_t i = 2; i < window_bytes.size(); ++i) {
    const char c = window_bytes[i];
    if (c == '\r') {
      if (i + 1 < window_bytes.size() && window_bytes[i + 1] != '\n') {
        return CodecErrorCode::kInvalidLineEnding;
      }
    } else if (c == '\n') {
      if (window_bytes[i - 1] != '\r') return CodecErrorCode::kInvalidLineEnding;
      if (window_bytes[i - 2] == '\n' && window_bytes[i - 3] == '\r') {
        return CodecErrorCode::kNone;  // the block's CRLFCRLF
      }
    }
  }
  if (trailers.size() >= limit + 4) return CodecErrorCode::kHeadersTooLarge;
  return CodecErrorCode::kNone;
}

CodecErrorCode HeadScanner::scan(std::string_view b, std::size_t max_line, std::size_t limit,
                                 std::size_t& eom) {
  // Line by line with memchr (vectorised in libc) rather than byte by byte:
  // the same verdicts, in the same order, as checking each byte in turn
  // (limits first, then CR without LF, then LF without CR).
  const char* const data = b.data();
  std::size_t i = pos;
  for (;;) {
    // The first index at which a limit is exceeded.
    const std::size_t cap = lf_seen ? limit : std::min(limit, max_line);
    const std::size_t end = std::min(b.size(), cap);
    const void* lf = i < end ? std::memchr(data + i, '\n', end - i) : nullptr;
    const std::size_t nl = lf != nullptr ? static_cast<std::size_t>(static_cast<const char*>(lf) - data)
                                         : end;
    // A CR in [i, nl) must be the one right before the LF at nl.
    if (i < nl) {
      const void* cr = std::memchr(data + i, '\r', nl - i);
      if (cr != nullptr) {
        const std::size_t j = static_cast<std::size_t>(static_cast<const char*>(cr) - data);
        if (j + 1 >= b.size()) {  // judged when the next byte arrives
          pos = j;
          return CodecErrorCode::kNone;
        }
        if (b[j + 1] != '\n') return CodecErrorCode::kInvalidLineEnding;
        // Else j + 1 is the LF at nl, or one at `end` == cap: the limit below.
      }
    }
    if (lf == nullptr) {
      if (end == b.size()) {  // nothing wrong so far; wait for more
        pos = end;
        return CodecErrorCode::kNone;
      }
      return !lf_seen && end >= max_line ? CodecErrorCode::kRequestTargetTooLong
                                         : CodecErrorCode::kHeadersTooLarge;
    }
    if (nl == 0 || b[nl - 1] != '\r') return CodecErrorCode::kInvalidLineEnding;
    lf_seen = true;
    if (nl >= 3 && b[nl - 2] == '\n') {
      eom = nl + 1;
      pos = nl + 1;
      return CodecErrorCode::kNone;
    }
    i = nl + 1;
  }
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
