#include "proxy/codec/http1_server_codec.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <optional>

#include "proxy/common/asio.h"

namespace turnout::proxy {

void RequestHead::clear() {
  method.clear();
  path.clear();
  authority.clear();
  scheme.assign("http");
  headers.clear();
  version_minor = 1;
  keep_alive = true;
  expect_continue = false;
  upgrade = false;
  chunked = false;
  content_length.reset();
  close_connection = false;
}

routing::RequestView RequestHead::view(std::vector<routing::HeaderEntry>& scratch) const {
  headers.fillEntries(scratch);
  return routing::RequestView(method, authority, path, scratch, scheme);
}

void ResponseHead::clear() {
  status = 200;
  reason.clear();
  headers.clear();
  version_minor = 1;
  keep_alive = true;
  chunked = false;
  content_length.reset();
  close_connection = false;
}

namespace http1 {
namespace http = beast::http;
using BeastError = boost::system::error_code;

namespace detail {

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

}  // namespace detail

std::string_view reasonPhrase(std::uint16_t status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Entity";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

void stripHopByHopHeaders(HeaderMap& headers, bool keep_upgrade) {
  // Collect the names listed in Connection first (views into the arena stay
  // valid: removeIf only rewrites the entry list).
  std::string_view listed[16];
  std::size_t n_listed = 0;
  bool listed_overflow = false;
  headers.forEach([&](std::string_view name, std::string_view value) {
    if (name != "connection") return;
    while (!value.empty()) {
      const std::size_t comma = value.find(',');
      std::string_view tok = value.substr(0, comma);
      value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
      while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
      if (tok.empty()) continue;
      if (n_listed < std::size(listed)) {
        listed[n_listed++] = tok;
      } else {
        listed_overflow = true;
      }
    }
  });
  (void)listed_overflow;  // Beyond 16 nominated fields the rest are kept.
  headers.removeIf([&](std::string_view name, std::string_view value) {
    if (name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
        name == "transfer-encoding") {
      return true;
    }
    if (name == "upgrade") return !keep_upgrade;
    if (name == "te") return !detail::equalsIgnoreCase(value, "trailers");
    if (name == "host" || name == "content-length") return false;
    for (std::size_t i = 0; i < n_listed; ++i) {
      if (detail::equalsIgnoreCase(listed[i], name)) {
        return !(keep_upgrade && name == "upgrade");
      }
    }
    return false;
  });
}

namespace {

std::string_view sv(beast::string_view s) { return std::string_view(s.data(), s.size()); }

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && detail::equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// Whether a rejected request line ends in a well-formed "HTTP/d.d\r\n", so
// the version is merely unsupported rather than malformed.
bool hasWellFormedVersion(std::string_view bytes) {
  const std::size_t cr = bytes.find('\r');
  if (cr == std::string_view::npos || cr < 8 || bytes.size() < cr + 2 || bytes[cr + 1] != '\n') {
    return false;
  }
  const std::string_view v = bytes.substr(cr - 8, 8);
  return v.starts_with("HTTP/") && v[5] >= '0' && v[5] <= '9' && v[6] == '.' && v[7] >= '0' &&
         v[7] <= '9' && (cr == 8 || bytes[cr - 9] == ' ');
}

// Everything of the server codec but the parser itself, which refers to it.
struct MessageState {
  MessageState(RequestDecoderCallbacks& cb, const Http1Settings& s) : callbacks(cb), settings(s) {
    head.headers.reserve(32, 2048);
  }

  CodecErrorCode parseTarget(std::string_view method, std::string_view target);
  absl::Status fail(CodecErrorCode code) {
    error = code;
    close_after_response = true;
    return codecErrorStatus(code);
  }
  void finishResponse();

  RequestDecoderCallbacks& callbacks;
  const Http1Settings settings;
  RequestHead head;
  HeaderMap trailers;
  CodecErrorCode error = CodecErrorCode::kNone;
  CodecErrorCode pending_error = CodecErrorCode::kNone;  // set inside parser callbacks

  // The buffer of the put() in progress, and the head bytes consumed before it.
  const char* put_begin = nullptr;
  const char* put_end = nullptr;
  std::uint64_t head_bytes = 0;  // size of the complete head
  detail::HeadScanner scanner;
  std::uint64_t body_bytes = 0;
  std::uint64_t content_remaining = 0;

  std::uint32_t field_count = 0;
  std::uint32_t host_count = 0;
  bool absolute_form = false;
  bool start_line_done = false;
  bool headers_done = false;
  bool seen_content_length = false;
  bool seen_transfer_encoding = false;
  bool in_trailers = false;
  bool expect_crlf = false;  // the next chunk line starts with the previous chunk's CRLF
  bool message_complete = false;  // paused until the response ends
  bool in_message = false;

  // Response side.
  bool response_started = false;
  bool response_chunked = false;
  bool upgrade_pending = false;
  bool upgraded = false;
  bool close_after_response = false;
};

class RequestParser final : public http::basic_parser<true> {
 public:
  explicit RequestParser(MessageState& s) : s_(s) {}

 private:
  bool reject(CodecErrorCode code, BeastError& ec) {
    s_.pending_error = code;
    ec = http::error::bad_value;  // any error stops the parser
    return false;
  }

  void on_request_impl(http::verb, beast::string_view method, beast::string_view target,
                       int version, BeastError& ec) override {
    s_.start_line_done = true;
    s_.head.version_minor = static_cast<std::uint8_t>(version % 10);
    s_.head.method.assign(method.data(), method.size());
    if (target.size() > s_.settings.max_request_target_bytes) {
      reject(CodecErrorCode::kRequestTargetTooLong, ec);
      return;
    }
    if (auto code = s_.parseTarget(sv(method), sv(target)); code != CodecErrorCode::kNone) {
      reject(code, ec);
      return;
    }
    s_.callbacks.onMessageBegin();
  }

  void on_response_impl(int, beast::string_view, int, BeastError& ec) override {
    ec = http::error::bad_version;  // unreachable for a request parser
  }

  void on_field_impl(http::field f, beast::string_view name_b, beast::string_view value_b,
                     BeastError& ec) override {
    const std::string_view name = sv(name_b);
    const std::string_view value = sv(value_b);
    if (detail::isObsFold(s_.put_begin, s_.put_end, name, value)) {
      reject(CodecErrorCode::kObsFold, ec);
      return;
    }
    HeaderMap& map = s_.in_trailers ? s_.trailers : s_.head.headers;
    if (map.size() >= s_.settings.max_headers_count) {
      reject(CodecErrorCode::kTooManyHeaders, ec);
      return;
    }
    const std::uint64_t limit = std::uint64_t{s_.settings.max_headers_kb} * 1024;
    if (s_.in_trailers) {
      if (map.byteSize() + name.size() + value.size() > limit) {
        reject(CodecErrorCode::kHeadersTooLarge, ec);
        return;
      }
    }
    if (!s_.in_trailers) {
      switch (f) {
        case http::field::host:
          ++s_.host_count;
          if (!s_.absolute_form) s_.head.authority.assign(value);
          break;
        case http::field::content_length:
          s_.seen_content_length = true;
          break;
        case http::field::transfer_encoding:
          s_.seen_transfer_encoding = true;
          if (s_.head.version_minor == 0) {
            reject(CodecErrorCode::kTransferEncodingNotAllowed, ec);
            return;
          }
          if (!detail::isChunkedOnly(value)) {
            reject(CodecErrorCode::kInvalidTransferEncoding, ec);
            return;
          }
          break;
        case http::field::expect:
          if (s_.head.version_minor == 1 && detail::equalsIgnoreCase(value, "100-continue")) {
            s_.head.expect_continue = true;
          }
          break;
        default:
          break;
      }
    }
    map.add(name, value);
  }

  void on_header_impl(BeastError& ec) override {
    s_.headers_done = true;
    if (s_.host_count > 1) {
      reject(CodecErrorCode::kMultipleHost, ec);
      return;
    }
    if (s_.host_count == 0 && s_.head.version_minor == 1) {
      reject(CodecErrorCode::kMissingHost, ec);
      return;
    }
    RequestHead& h = s_.head;
    h.keep_alive = keep_alive();
    h.upgrade = upgrade() && h.version_minor == 1 && h.headers.has("upgrade");
    h.chunked = chunked();
    if (auto cl = content_length(); cl) {
      h.content_length = *cl;
      s_.content_remaining = *cl;
    }
    const bool end_stream = is_done();
    s_.callbacks.onHeaders(h, end_stream);
  }

  void on_body_init_impl(const boost::optional<std::uint64_t>&, BeastError&) override {}

  std::size_t on_body_impl(beast::string_view body, BeastError&) override {
    s_.body_bytes += body.size();
    s_.content_remaining -= body.size();
    s_.callbacks.onData(std::span<const char>(body.data(), body.size()),
                        s_.content_remaining == 0);
    return body.size();
  }

  void on_chunk_header_impl(std::uint64_t size, beast::string_view extensions,
                            BeastError& ec) override {
    if (extensions.size() > s_.settings.max_chunk_line_bytes) {
      reject(CodecErrorCode::kChunkExtensionTooLong, ec);
      return;
    }
    if (size == 0) s_.in_trailers = true;
    s_.expect_crlf = size != 0;  // Beast wants CRLF after this chunk's data
  }

  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, BeastError&) override {
    s_.body_bytes += body.size();
    if (!body.empty()) s_.callbacks.onData(std::span<const char>(body.data(), body.size()), false);
    return body.size();
  }

  void on_finish_impl(BeastError&) override {
    if (s_.head.chunked) {
      if (s_.trailers.empty()) {
        s_.callbacks.onData(std::span<const char>(), true);
      } else {
        s_.callbacks.onTrailers(s_.trailers);
      }
    }
    s_.message_complete = true;
    s_.callbacks.onMessageComplete();
  }

  MessageState& s_;
};

}  // namespace

struct ServerCodec::State : MessageState {
  using MessageState::MessageState;
  void beginMessage();
  std::optional<RequestParser> parser;
};

void ServerCodec::State::beginMessage() {
  parser.emplace(*this);
  parser->eager(true);
  // boost::none would compare as "exceeded" in 1.74 (optional < value).
  parser->body_limit(std::numeric_limits<std::uint64_t>::max());
  parser->header_limit(settings.max_headers_kb * 1024 + 4);
  head.clear();
  trailers.clear();
  head_bytes = 0;
  scanner = {};
  body_bytes = 0;
  content_remaining = 0;
  field_count = 0;
  host_count = 0;
  absolute_form = false;
  start_line_done = false;
  headers_done = false;
  seen_content_length = false;
  seen_transfer_encoding = false;
  in_trailers = false;
  expect_crlf = false;
  message_complete = false;
  in_message = true;
  response_started = false;
  response_chunked = false;
  upgrade_pending = false;
}

CodecErrorCode MessageState::parseTarget(std::string_view method, std::string_view target) {
  if (method == "CONNECT") {
    // authority-form
    if (target.empty() || target.front() == '/' || target.find('/') != std::string_view::npos) {
      return CodecErrorCode::kInvalidUrl;
    }
    head.authority.assign(target);
    absolute_form = true;
    return CodecErrorCode::kNone;
  }
  if (target.front() == '/') {
    head.path.assign(target);
    return CodecErrorCode::kNone;
  }
  if (target == "*") {
    if (method != "OPTIONS") return CodecErrorCode::kInvalidUrl;
    head.path.assign(target);
    return CodecErrorCode::kNone;
  }
  std::size_t scheme_len = 0;
  if (startsWithIgnoreCase(target, "http://")) {
    scheme_len = 4;
  } else if (startsWithIgnoreCase(target, "https://")) {
    scheme_len = 5;
  } else {
    return CodecErrorCode::kInvalidUrl;
  }
  head.scheme.assign(scheme_len == 4 ? "http" : "https");
  std::string_view rest = target.substr(scheme_len + 3);
  const std::size_t end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, end);
  if (authority.empty() || authority.find('@') != std::string_view::npos) {
    return CodecErrorCode::kInvalidUrl;
  }
  head.authority.assign(authority);
  absolute_form = true;
  rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (rest.empty() || rest.front() != '/') head.path.assign("/");
  head.path.append(rest);
  return CodecErrorCode::kNone;
}

ServerCodec::ServerCodec(RequestDecoderCallbacks& callbacks, const Http1Settings& settings)
    : s_(std::make_unique<State>(callbacks, settings)) {}

ServerCodec::~ServerCodec() = default;

absl::StatusOr<std::size_t> ServerCodec::decode(std::span<const char> bytes) {
  State& s = *s_;
  if (s.error != CodecErrorCode::kNone) {
    return codecErrorStatus(s.error);
  }
  std::size_t total = 0;
  while (total < bytes.size()) {
    if (s.upgraded || s.close_after_response) break;
    if (!s.in_message) {
      if (s.message_complete) break;  // paused: the response is not done
      // Tolerate empty lines between pipelined requests (RFC 9112 §2.2).
      const std::size_t left = bytes.size() - total;
      if (bytes[total] == '\r') {
        if (left < 2) break;
        if (bytes[total + 1] == '\n') {
          total += 2;
          continue;
        }
      }
      s.beginMessage();
    }
    if (s.message_complete) break;
    const char* p = bytes.data() + total;
    std::size_t n = bytes.size() - total;
    if (!s.headers_done) {
      std::size_t eom = 0;
      const std::uint64_t limit = std::uint64_t{s.settings.max_headers_kb} * 1024;
      if (auto code = s.scanner.scan(std::string_view(p, n),
                                     std::size_t{s.settings.max_request_target_bytes} + 64, limit,
                                     eom);
          code != CodecErrorCode::kNone) {
        return s.fail(code);
      }
      if (eom == 0) break;  // the caller keeps the partial head
      // Beast sees the head alone, so that what follows it cannot change
      // how the head parses (it wants 8 bytes for a version, for instance).
      n = eom;
      s.head_bytes = eom;
    }
    s.put_begin = p;
    s.put_end = p + n;
    BeastError ec;
    const std::size_t used = s.parser->put(asio::const_buffer(p, n), ec);
    total += used;
    if (s.pending_error != CodecErrorCode::kNone) return s.fail(s.pending_error);
    if (ec == http::error::need_more) {
      const std::string_view leftover(p + used, n - used);
      // Beast wants more than a complete head: it is truncated (a version).
      if (!s.headers_done) return s.fail(CodecErrorCode::kInvalidVersion);
      if (auto code = detail::checkChunkLeftover(leftover, s.settings, s.expect_crlf);
          code != CodecErrorCode::kNone) {
        return s.fail(code);
      }
      break;
    }
    if (ec) {
      CodecErrorCode code =
          detail::mapBeastError(ec, s.seen_content_length, s.seen_transfer_encoding);
      if (code == CodecErrorCode::kInvalidVersion &&
          hasWellFormedVersion(std::string_view(p, n))) {
        code = CodecErrorCode::kUnsupportedVersion;
      }
      if (s.headers_done) {
        // In the body phase a positional limit on the chunk line wins, so
        // the code does not depend on how the bytes were split.
        if (auto limit_code =
                detail::checkChunkLeftover(std::string_view(p + used, n - used), s.settings,
                                           s.expect_crlf);
            limit_code != CodecErrorCode::kNone) {
          code = limit_code;
        }
      }
      return s.fail(code);
    }
    if (s.parser->is_done()) {
      s.in_message = false;
      break;  // paused until the response is encoded
    }
    if (used == 0) break;  // defensive: no progress without need_more
  }
  return total;
}

void ServerCodec::encodeHeaders(const ResponseHead& head, bool end_stream, std::string& out) {
  State& s = *s_;
  const std::uint16_t status = head.status;
  const bool informational = status >= 100 && status < 200 && status != 101;
  out.append(head.version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
  char digits[3] = {static_cast<char>('0' + status / 100 % 10),
                    static_cast<char>('0' + status / 10 % 10), static_cast<char>('0' + status % 10)};
  out.append(digits, 3);
  out.push_back(' ');
  out.append(head.reason.empty() ? reasonPhrase(status) : std::string_view(head.reason));
  out.append("\r\n");
  if (informational) {
    head.headers.forEach([&](std::string_view n, std::string_view v) {
      if (n != "connection" && n != "transfer-encoding") detail::appendHeaderField(out, n, v);
    });
    out.append("\r\n");
    return;
  }
  s.response_started = true;
  const bool head_request = s.head.method == "HEAD";
  const bool connect_ok = s.head.method == "CONNECT" && status >= 200 && status < 300;
  const bool switching = status == 101 && s.head.upgrade;
  const bool bodiless = status == 204 || status == 304 || status == 101 || connect_ok;
  bool close = head.close_connection || !s.head.keep_alive || s.error != CodecErrorCode::kNone;
  s.response_chunked = false;
  if (!bodiless && !head.headers.has("content-length")) {
    if (end_stream) {
      if (!head_request) detail::appendHeaderField(out, "content-length", "0");
    } else if (!head_request) {
      if (s.head.version_minor == 1) {
        s.response_chunked = true;
        detail::appendHeaderField(out, "transfer-encoding", "chunked");
      } else {
        close = true;  // HTTP/1.0 client: body delimited by close
      }
    }
  }
  head.headers.forEach([&](std::string_view n, std::string_view v) {
    if (n == "connection" || n == "transfer-encoding") return;
    if (n == "upgrade" && !switching) return;
    detail::appendHeaderField(out, n, v);
  });
  if (switching) {
    detail::appendHeaderField(out, "connection", "upgrade");
    s.upgrade_pending = true;
  } else if (connect_ok) {
    s.upgrade_pending = true;
  } else if (close) {
    detail::appendHeaderField(out, "connection", "close");
  } else if (s.head.version_minor == 0) {
    detail::appendHeaderField(out, "connection", "keep-alive");
  }
  if (close) s.close_after_response = true;
  out.append("\r\n");
  if (end_stream) s.finishResponse();
}

void ServerCodec::encodeData(std::span<const char> data, bool end_stream, std::string& out) {
  State& s = *s_;
  if (s.response_chunked) {
    if (!data.empty()) {
      detail::appendChunkHeader(out, data.size());
      out.append(data.data(), data.size());
      out.append("\r\n");
    }
    if (end_stream) out.append("0\r\n\r\n");
  } else {
    out.append(data.data(), data.size());
  }
  if (end_stream) s.finishResponse();
}

void ServerCodec::encodeTrailers(const HeaderMap& trailers, std::string& out) {
  State& s = *s_;
  if (s.response_chunked) {
    out.append("0\r\n");
    trailers.forEach(
        [&](std::string_view n, std::string_view v) { detail::appendHeaderField(out, n, v); });
    out.append("\r\n");
  }
  s.finishResponse();
}

void MessageState::finishResponse() {
  response_started = false;
  if (upgrade_pending) {
    upgraded = true;
    return;
  }
  // A response that ends before its request leaves the request's remaining
  // bytes unframed for us: close.
  if (!message_complete) close_after_response = true;
  message_complete = false;
  in_message = false;
}

bool ServerCodec::paused() const { return s_->message_complete && !s_->upgraded; }
bool ServerCodec::upgraded() const { return s_->upgraded; }
bool ServerCodec::shouldClose() const { return s_->close_after_response; }
CodecErrorCode ServerCodec::error() const { return s_->error; }
std::uint64_t ServerCodec::bodyBytesReceived() const { return s_->body_bytes; }

}  // namespace http1
}  // namespace turnout::proxy
