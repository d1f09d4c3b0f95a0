#include "proxy/codec/http1_server_codec.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "proxy/codec/http1_parser_base.h"
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
using detail::BeastError;

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
  // valid: removeIf only rewrites the entry list). Every one goes (RFC 9110
  // §7.6.1): the first 16 on the stack, any beyond in `more` (a field the
  // client meant for this hop only must not reach the upstream because the
  // list was long).
  std::string_view listed[16];
  std::size_t n_listed = 0;
  std::vector<std::string_view> more;
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
        more.push_back(tok);
      }
    }
  });
  auto nominated = [&](std::string_view name) {
    for (std::size_t i = 0; i < n_listed; ++i) {
      if (detail::equalsIgnoreCase(listed[i], name)) return true;
    }
    for (std::string_view tok : more) {
      if (detail::equalsIgnoreCase(tok, name)) return true;
    }
    return false;
  };
  headers.removeIf([&](std::string_view name, std::string_view value) {
    if (name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
        name == "transfer-encoding") {
      return true;
    }
    if (name == "upgrade") return !keep_upgrade;
    if (name == "te") return !detail::equalsIgnoreCase(value, "trailers");
    if (name == "host" || name == "content-length") return false;
    if (nominated(name)) return !(keep_upgrade && name == "upgrade");
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

bool isHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool isUnreservedOrSubDelim(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '-': case '.': case '_': case '~':                         // unreserved
    case '!': case '$': case '&': case '\'': case '(': case ')':     // sub-delims
    case '*': case '+': case ',': case ';': case '=':
      return true;
    default:
      return false;
  }
}

// RFC 9110 §7.2 / RFC 3986 §3.2: uri-host [ ":" port ], no userinfo. The host
// is a non-empty reg-name (unreserved, sub-delims, pct-encoded), or an
// IP-literal in brackets (IPv6address or IPvFuture); a port, when its ':' is
// there, is 1 to 5 digits up to 65535. `require_port` for CONNECT's
// authority-form (RFC 9112 §3.2.3).
bool isValidAuthority(std::string_view a, bool require_port) {
  std::string_view host = a;
  std::string_view port;
  bool has_port = false;
  if (!a.empty() && a.front() == '[') {
    const std::size_t close = a.find(']');
    if (close == std::string_view::npos) return false;
    host = a.substr(0, close + 1);
    const std::string_view after = a.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return false;
      has_port = true;
      port = after.substr(1);
    }
    const std::string_view lit = host.substr(1, host.size() - 2);
    if (lit.empty()) return false;
    if (lit.front() == 'v' || lit.front() == 'V') {  // IPvFuture
      std::size_t i = 1;
      while (i < lit.size() && isHexDigit(lit[i])) ++i;
      if (i == 1 || i >= lit.size() || lit[i] != '.' || i + 1 == lit.size()) return false;
      for (++i; i < lit.size(); ++i) {
        if (!isUnreservedOrSubDelim(lit[i]) && lit[i] != ':') return false;
      }
    } else {
      char buf[INET6_ADDRSTRLEN];
      if (lit.size() >= sizeof(buf)) return false;
      lit.copy(buf, lit.size());
      buf[lit.size()] = '\0';
      in6_addr addr;
      if (::inet_pton(AF_INET6, buf, &addr) != 1) return false;
    }
  } else {
    const std::size_t colon = a.rfind(':');
    if (colon != std::string_view::npos) {
      host = a.substr(0, colon);
      port = a.substr(colon + 1);
      has_port = true;
    }
    if (host.empty()) return false;
    for (std::size_t i = 0; i < host.size(); ++i) {
      const char c = host[i];
      if (c == '%') {
        if (i + 2 >= host.size() || !isHexDigit(host[i + 1]) || !isHexDigit(host[i + 2])) {
          return false;
        }
        i += 2;
      } else if (!isUnreservedOrSubDelim(c)) {
        return false;  // '@' (userinfo), ':' , '/', space, CTLs, '[', ...
      }
    }
  }
  if (!has_port) return !require_port;
  if (port.empty() || port.size() > 5) return false;
  std::uint32_t n = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return n <= 65535;
}

// Everything of the server codec but the parser itself, which refers to it.
struct MessageState : detail::DecodeState<RequestDecoderCallbacks, RequestHead> {
  using DecodeState::DecodeState;

  CodecErrorCode parseTarget(std::string_view method, std::string_view target);
  absl::Status fail(CodecErrorCode code) {
    close_after_response = true;
    return DecodeState::fail(code);
  }
  void finishResponse();

  std::uint32_t host_count = 0;
  bool host_valid = true;  // every Host field so far is a valid authority
  bool absolute_form = false;
  bool message_complete = false;  // paused until the response ends

  // Response side.
  bool response_chunked = false;
  bool upgrade_pending = false;
  bool upgraded = false;
  bool close_after_response = false;
};

class RequestParser final : public detail::ParserBase<RequestParser, true, MessageState> {
 public:
  using ParserBase::ParserBase;

 private:
  friend ParserBase;

  void on_request_impl(http::verb, beast::string_view method, beast::string_view target,
                       int version, BeastError& ec) override {
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

  void onHeadField(http::field f, std::string_view value) {
    switch (f) {
      case http::field::host:
        ++s_.host_count;
        // An empty Host is allowed only where Host is optional (HTTP/1.0),
        // and then means none.
        if (!(value.empty() ? s_.head.version_minor == 0 : isValidAuthority(value, false))) {
          s_.host_valid = false;
        }
        if (!s_.absolute_form) s_.head.authority.assign(value);
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
    // RFC 9112 §3.2: 400 to a Host with an invalid field value, whatever the
    // form of the request-target.
    if (!s_.host_valid) {
      reject(CodecErrorCode::kInvalidHost, ec);
      return;
    }
    RequestHead& h = s_.head;
    // RFC 9112 §3.2.2: with an absolute-form (or authority-form) target, the
    // target's authority replaces Host, so that nothing after the codec sees
    // two different authorities.
    if (s_.absolute_form && s_.host_count == 1 && h.headers.get("host") != h.authority) {
      h.headers.set("host", h.authority);
    }
    readFraming(h);
    h.upgrade = upgrade() && h.version_minor == 1 && h.headers.has("upgrade");
    const std::string_view proto = h.upgradeProtocol();
    if (h.upgrade && absl::EqualsIgnoreCase(absl::string_view(proto.data(), proto.size()), "h2c")) {
      // As Envoy: an h2c upgrade (RFC 7540 §3.2) is not taken; the request
      // is served as the HTTP/1.1 request it also is.
      h.headers.remove("upgrade");
      h.headers.remove("http2-settings");
      h.upgrade = false;
    }
    s_.callbacks.onHeaders(h, is_done());
  }

  void on_finish_impl(BeastError&) override {
    finishBody();
    s_.message_complete = true;
    s_.callbacks.onMessageComplete();
  }

  CodecErrorCode truncatedHeadError() const { return CodecErrorCode::kInvalidVersion; }
  CodecErrorCode refineError(CodecErrorCode code, std::string_view bytes) const {
    if (code == CodecErrorCode::kInvalidVersion && hasWellFormedVersion(bytes)) {
      return CodecErrorCode::kUnsupportedVersion;
    }
    return code;
  }
};

// A request head in the common shape, parsed without Beast (which costs
// about 2,000 instructions for a curl-like head): an upper-case method other
// than CONNECT, an origin-form target of visible ASCII within
// max_request_target_bytes, "HTTP/1.1", fields that detail::splitCommonField
// takes, exactly one valid Host, at most one Content-Length, no
// Transfer-Encoding, a Connection of exactly "close" or "keep-alive" if any,
// at most max_headers_count fields. `b` is a complete head. Fills s.head and
// the framing as the Beast path does; false for anything else, which then
// goes to Beast from the start of the head (the caller resets the message).
bool parseCommonRequestHead(std::string_view b, MessageState& s) {
  std::size_t sp = 0;
  while (sp < b.size() && b[sp] >= 'A' && b[sp] <= 'Z') ++sp;
  if (sp == 0 || sp >= b.size() || b[sp] != ' ') return false;
  const std::string_view method = b.substr(0, sp);
  if (method == "CONNECT") return false;
  const std::size_t eol = b.find("\r\n");
  if (eol < sp + 11 || b.substr(eol - 9, 9) != " HTTP/1.1") return false;
  const std::string_view target = b.substr(sp + 1, eol - 9 - sp - 1);
  if (target.empty() || target.front() != '/' ||
      target.size() > s.settings.max_request_target_bytes) {
    return false;
  }
  for (const char c : target) {
    if (c <= ' ' || c >= 0x7f) return false;
  }
  RequestHead& h = s.head;
  h.version_minor = 1;
  h.method.assign(method);
  h.path.assign(target);
  detail::CommonFraming framing;
  const bool common = detail::addCommonFields(
      b.substr(eol + 2), s.settings.max_headers_count, h.headers, framing,
      [&](std::string_view name, std::string_view value) {
        if (name.size() == 4 && detail::equalsIgnoreCase(name, "host")) {
          if (++s.host_count > 1 || !isValidAuthority(value, false)) return false;
          h.authority.assign(value);
        } else if (name.size() == 6 && detail::equalsIgnoreCase(name, "expect")) {
          if (detail::equalsIgnoreCase(value, "100-continue")) h.expect_continue = true;
        }
        return true;
      });
  if (!common || s.host_count != 1) return false;
  h.keep_alive = !framing.close;
  h.chunked = false;
  if (framing.have_length) h.content_length = framing.length;
  s.content_remaining = framing.length;
  return true;
}

}  // namespace

struct ServerCodec::State : MessageState {
  using MessageState::MessageState;
  void beginMessage();
  // The message goes to Beast (from its first byte).
  void startBeast() {
    fast_eligible = false;
    parser.emplace(*this);
  }
  // The fast path: what it did with [p, p + n), as ParserBase::parseSome
  // reports it, or nullopt when the head is not in the common shape and
  // Beast takes over.
  std::optional<detail::ParseOutcome> parseFast(const char* p, std::size_t n, std::size_t& total);
  std::optional<RequestParser> parser;
};

void ServerCodec::State::beginMessage() {
  resetMessage();
  host_count = 0;
  host_valid = true;
  absolute_form = false;
  message_complete = false;
  response_chunked = false;
  upgrade_pending = false;
  fast_eligible = settings.common_head_fast_path;
  if (fast_eligible) {
    parser.reset();  // the previous message's, if it was Beast's
  } else {
    startBeast();
  }
}

std::optional<detail::ParseOutcome> ServerCodec::State::parseFast(const char* p, std::size_t n,
                                                                  std::size_t& total) {
  if (!fast_body) {
    std::size_t eom = 0;
    if (auto outcome = scanHead(p, n, std::size_t{settings.max_request_target_bytes} + 64, eom)) {
      return outcome;
    }
    if (!parseCommonRequestHead(std::string_view(p, eom), *this)) {
      resetMessage();
      host_count = 0;
      startBeast();
      return std::nullopt;
    }
    if (!beginSizedMessage(eom, total)) return detail::ParseOutcome::kProgress;
  } else if (!takeSizedBody(p, n, total)) {
    return detail::ParseOutcome::kWaiting;
  }
  message_complete = true;
  callbacks.onMessageComplete();
  return detail::ParseOutcome::kComplete;
}

CodecErrorCode MessageState::parseTarget(std::string_view method, std::string_view target) {
  if (method == "CONNECT") {
    // authority-form
    if (!isValidAuthority(target, true)) return CodecErrorCode::kInvalidUrl;
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
  if (!isValidAuthority(authority, false)) return CodecErrorCode::kInvalidUrl;
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
    // A response marked close ends the connection after the current
    // request, whose body may still be streaming (full duplex): decode it,
    // but no request after it.
    if (s.upgraded || (s.close_after_response && !s.in_message)) break;
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
    std::optional<detail::ParseOutcome> outcome;
    if (s.fast_eligible) outcome = s.parseFast(bytes.data() + total, bytes.size() - total, total);
    if (!outcome) {
      outcome = s.parser->parseSome(bytes.data() + total, bytes.size() - total,
                                    std::size_t{s.settings.max_request_target_bytes} + 64, total);
    }
    switch (*outcome) {
      case detail::ParseOutcome::kFailed: return s.fail(s.pending_error);
      case detail::ParseOutcome::kWaiting: return total;
      case detail::ParseOutcome::kComplete:
        s.in_message = false;
        return total;  // paused until the response is encoded
      case detail::ParseOutcome::kProgress: break;
    }
  }
  return total;
}

absl::Status ServerCodec::onEof() {
  State& s = *s_;
  if (s.error != CodecErrorCode::kNone) return codecErrorStatus(s.error);
  if (s.upgraded || s.close_after_response) return absl::OkStatus();
  if (s.in_message && !s.message_complete) return s.fail(CodecErrorCode::kPrematureEof);
  return absl::OkStatus();
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
    detail::appendFields(out, head.headers, [](std::string_view) { return false; });
    out.append("\r\n");
    return;
  }
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
  detail::appendFields(out, head.headers,
                       [&](std::string_view n) { return n == "upgrade" && !switching; });
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
  // The switch happens with the head: what follows, on both sides, is the
  // tunnel's bytes (an HTTP/2 upstream's DATA come as encodeData, raw).
  if (s.upgrade_pending) s.upgraded = true;
  if (end_stream) s.finishResponse();
}

void ServerCodec::encodeData(std::span<const char> data, bool end_stream, std::string& out) {
  detail::appendBody(out, data, end_stream, s_->response_chunked);
  if (end_stream) s_->finishResponse();
}

void ServerCodec::encodeTrailers(const HeaderMap& trailers, std::string& out) {
  detail::appendTrailers(out, trailers, s_->response_chunked);
  s_->finishResponse();
}

void MessageState::finishResponse() {
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
bool ServerCodec::inRequest() const { return s_->in_message; }
CodecErrorCode ServerCodec::error() const { return s_->error; }
std::uint64_t ServerCodec::bodyBytesReceived() const { return s_->body_bytes; }

}  // namespace http1
}  // namespace turnout::proxy
