#include "proxy/codec/http1_client_codec.h"

#include <optional>

#include "absl/container/inlined_vector.h"
#include "proxy/codec/http1_parser_base.h"
#include "proxy/common/asio.h"

namespace turnout::proxy::http1 {
namespace http = beast::http;
using detail::BeastError;

namespace {

// What a queued request implies about its response.
struct Outstanding {
  bool head = false;     // HEAD: the response has no body
  bool connect = false;  // CONNECT: a 2xx switches to a tunnel
};

struct ResponseState : detail::DecodeState<ResponseDecoderCallbacks, ResponseHead> {
  using DecodeState::DecodeState;

  absl::InlinedVector<Outstanding, 2> outstanding;
  bool informational = false;  // the message in progress is a 1xx
  bool upgraded = false;
  bool eof = false;
  bool reusable = true;  // every exchange so far allows keep-alive

  // Request side.
  bool request_in_progress = false;
  bool request_chunked = false;
  bool request_close = false;
};

class ResponseParser final : public detail::ParserBase<ResponseParser, false, ResponseState> {
 public:
  using ParserBase::ParserBase;

 private:
  friend ParserBase;

  void on_response_impl(int code, beast::string_view reason, int version,
                        BeastError& ec) override {
    if (code < 100) {  // Beast takes any three digits
      reject(CodecErrorCode::kInvalidStatus, ec);
      return;
    }
    s_.head.status = static_cast<std::uint16_t>(code);
    s_.head.reason.assign(reason.data(), reason.size());
    s_.head.version_minor = static_cast<std::uint8_t>(version % 10);
    s_.informational = code >= 100 && code < 200 && code != 101;
    if (!s_.informational) s_.callbacks.onMessageBegin();
  }

  void onHeadField(http::field, std::string_view) {}

  void on_header_impl(BeastError& ec) override {
    s_.headers_done = true;
    ResponseHead& h = s_.head;
    // Envoy's rule for the framing fields of a 1xx or 204 (RFC 9110 §8.6,
    // RFC 9112 §6.1), which have no content: Transfer-Encoding is an error, a
    // non-zero Content-Length is an error, "content-length: 0" is dropped.
    bool drop_content_length = false;
    if (h.status < 200 || h.status == 204) {
      if (s_.seen_transfer_encoding) {
        reject(CodecErrorCode::kTransferEncodingNotAllowed, ec);
        return;
      }
      if (const std::string_view cl = h.headers.get("content-length"); cl.data() != nullptr) {
        if (cl != "0") {
          reject(CodecErrorCode::kContentLengthNotAllowed, ec);
          return;
        }
        h.headers.remove("content-length");
        drop_content_length = true;
      }
    }
    if (s_.informational) {
      s_.callbacks.onInformational(h);
      return;
    }
    readFraming(h);
    if (drop_content_length) h.content_length.reset();
    s_.close_delimited = need_eof();
    const Outstanding req = s_.outstanding.front();
    if (req.connect && h.status >= 200 && h.status < 300) {
      // The tunnel starts right after this head, whatever framing fields it
      // carries: stop the parser here.
      s_.upgraded = true;
      s_.stopped = true;
      s_.callbacks.onHeaders(h, true);
      s_.callbacks.onMessageComplete();
      ec = http::error::end_of_stream;
      return;
    }
    if (h.status == 101) s_.upgraded = true;
    s_.callbacks.onHeaders(h, is_done());
  }

  void on_finish_impl(BeastError&) override {
    if (s_.informational) return;
    finishBody();
    s_.callbacks.onMessageComplete();
  }

  CodecErrorCode truncatedHeadError() const { return CodecErrorCode::kInvalidStatus; }
  CodecErrorCode refineError(CodecErrorCode code, std::string_view) const {
    return code == CodecErrorCode::kInvalidVersion ? CodecErrorCode::kInvalidStatus : code;
  }
};

// A final response head in the common shape, parsed without Beast (which
// costs about 3,500 instructions for nginx's five fields): "HTTP/1.1", a
// status of 200-599 other than 204 and 304, a plain reason, fields that
// detail::splitCommonField takes, exactly one Content-Length of up to 18
// digits, no Transfer-Encoding, a Connection of exactly "close" or
// "keep-alive" if any, at most max_headers_count fields. `b` is a complete
// head (HeadScanner: every line ends with CRLF). Fills s.head and the
// framing; false for anything else, which then goes to Beast from the start
// of the head (the caller resets the message).
bool parseCommonResponseHead(std::string_view b, ResponseState& s) {
  if (b.size() < 17 || b.substr(0, 9) != "HTTP/1.1 " || b[12] != ' ') return false;
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (b[9] < '2' || b[9] > '5' || !digit(b[10]) || !digit(b[11])) return false;
  const int status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
  if (status == 204 || status == 304) return false;
  std::size_t eol = b.find("\r\n", 13);
  const std::string_view reason = b.substr(13, eol - 13);
  if (!detail::isCommonReason(reason)) return false;
  ResponseHead& h = s.head;
  h.status = static_cast<std::uint16_t>(status);
  h.reason.assign(reason.data(), reason.size());
  h.version_minor = 1;
  detail::CommonFraming framing;
  const bool common =
      detail::addCommonFields(b.substr(eol + 2), s.settings.max_headers_count, h.headers, framing,
                              [](std::string_view, std::string_view) { return true; });
  if (!common || !framing.have_length) return false;  // close-delimited: Beast's
  h.keep_alive = !framing.close;
  h.chunked = false;
  h.content_length = framing.length;
  s.content_remaining = framing.length;
  return true;
}

}  // namespace

struct ClientCodec::State : ResponseState {
  using ResponseState::ResponseState;

  void beginMessage() {
    const Outstanding& req = outstanding.front();
    resetMessage();
    informational = false;
    fast_eligible = settings.common_head_fast_path && !req.head && !req.connect;
    if (fast_eligible) {
      parser.reset();  // the previous message's, if it was Beast's
    } else {
      startBeast();
    }
  }
  // The message goes to Beast (from its first byte).
  void startBeast() {
    fast_eligible = false;
    parser.emplace(*this);
    if (outstanding.front().head) parser->skip(true);
  }

  // The fast path (parseCommonResponseHead, then the Content-Length body):
  // what it did with [p, p + n), as ParserBase::parseSome reports it, or
  // nullopt when the head is not in the common shape and Beast takes over.
  std::optional<detail::ParseOutcome> parseFast(const char* p, std::size_t n, std::size_t& total) {
    if (fast_body) {
      if (!takeSizedBody(p, n, total)) return detail::ParseOutcome::kWaiting;
      callbacks.onMessageComplete();
      return detail::ParseOutcome::kComplete;
    }
    std::size_t eom = 0;
    if (auto outcome = scanHead(p, n, headLimit(), eom)) return outcome;
    if (!parseCommonResponseHead(std::string_view(p, eom), *this)) {
      resetMessage();
      startBeast();
      return std::nullopt;
    }
    if (!beginSizedMessage(eom, total)) return detail::ParseOutcome::kProgress;
    callbacks.onMessageComplete();
    return detail::ParseOutcome::kComplete;
  }

  // The message in progress is complete.
  void endMessage() {
    in_message = false;
    if (informational) return;  // the final response is still to come
    outstanding.erase(outstanding.begin());
    if (!head.keep_alive || close_delimited) reusable = false;
  }

  std::optional<ResponseParser> parser;
};

ClientCodec::ClientCodec(ResponseDecoderCallbacks& callbacks, const Http1Settings& settings)
    : s_(std::make_unique<State>(callbacks, settings)) {}

ClientCodec::~ClientCodec() = default;

absl::StatusOr<std::size_t> ClientCodec::decode(std::span<const char> bytes) {
  State& s = *s_;
  if (s.error != CodecErrorCode::kNone) return codecErrorStatus(s.error);
  std::size_t total = 0;
  while (total < bytes.size()) {
    if (s.upgraded || s.eof) break;
    if (!s.in_message) {
      if (s.outstanding.empty()) return s.fail(CodecErrorCode::kUnexpectedResponse);
      s.beginMessage();
    }
    std::optional<detail::ParseOutcome> outcome;
    if (s.fast_eligible) outcome = s.parseFast(bytes.data() + total, bytes.size() - total, total);
    if (!outcome) {
      outcome =
          s.parser->parseSome(bytes.data() + total, bytes.size() - total, s.headLimit(), total);
    }
    switch (*outcome) {
      case detail::ParseOutcome::kFailed: return s.fail(s.pending_error);
      case detail::ParseOutcome::kWaiting: return total;
      case detail::ParseOutcome::kComplete: s.endMessage(); break;
      case detail::ParseOutcome::kProgress: break;
    }
  }
  return total;
}

absl::Status ClientCodec::onEof() {
  State& s = *s_;
  if (s.error != CodecErrorCode::kNone) return codecErrorStatus(s.error);
  if (s.eof || s.upgraded) {
    s.eof = true;
    return absl::OkStatus();
  }
  s.eof = true;
  s.reusable = false;
  if (s.in_message && s.fast_body) return s.fail(CodecErrorCode::kPrematureEof);
  if (s.in_message && s.parser && s.parser->got_some()) {
    BeastError ec;
    s.parser->put_eof(ec);
    if (ec) return s.fail(CodecErrorCode::kPrematureEof);
    if (s.pending_error != CodecErrorCode::kNone) return s.fail(s.pending_error);
    s.endMessage();
    if (!s.outstanding.empty()) return s.fail(CodecErrorCode::kPrematureEof);
    return absl::OkStatus();
  }
  if (!s.outstanding.empty()) return s.fail(CodecErrorCode::kPrematureEof);
  return absl::OkStatus();
}

void ClientCodec::encodeHeaders(const RequestHead& head, bool end_stream, std::string& out) {
  State& s = *s_;
  const bool connect = head.method == "CONNECT";
  out.append(head.method);
  out.push_back(' ');
  if (connect) {
    out.append(head.authority);
  } else {
    out.append(head.path.empty() ? std::string_view("/") : std::string_view(head.path));
  }
  out.append(" HTTP/1.1\r\n");
  const bool write_host = !head.authority.empty();
  if (write_host) detail::appendHeaderField(out, "host", head.authority);
  s.request_chunked = false;
  if (!head.headers.has("content-length")) {
    if (end_stream) {
      if (head.method == "POST" || head.method == "PUT" || head.method == "PATCH") {
        detail::appendHeaderField(out, "content-length", "0");
      }
    } else if (!connect) {
      s.request_chunked = true;
      detail::appendHeaderField(out, "transfer-encoding", "chunked");
    }
  }
  detail::appendFields(out, head.headers,
                       [&](std::string_view n) { return write_host && n == "host"; });
  if (head.upgrade) {
    detail::appendHeaderField(out, "connection", "upgrade");
  } else if (head.close_connection) {
    detail::appendHeaderField(out, "connection", "close");
  }
  out.append("\r\n");
  if (head.close_connection) s.request_close = true;
  expectResponse(head.method);
  s.request_in_progress = !end_stream;
}

void ClientCodec::expectResponse(std::string_view method) {
  s_->outstanding.push_back(Outstanding{method == "HEAD", method == "CONNECT"});
}

void ClientCodec::encodeData(std::span<const char> data, bool end_stream, std::string& out) {
  detail::appendBody(out, data, end_stream, s_->request_chunked);
  if (end_stream) s_->request_in_progress = false;
}

void ClientCodec::encodeTrailers(const HeaderMap& trailers, std::string& out) {
  detail::appendTrailers(out, trailers, s_->request_chunked);
  s_->request_in_progress = false;
}

bool ClientCodec::canReuse() const {
  const State& s = *s_;
  return s.error == CodecErrorCode::kNone && !s.upgraded && !s.eof && s.reusable &&
         !s.request_close && !s.request_in_progress && !s.in_message && s.outstanding.empty();
}

bool ClientCodec::upgraded() const { return s_->upgraded; }
CodecErrorCode ClientCodec::error() const { return s_->error; }
std::uint64_t ClientCodec::bodyBytesReceived() const { return s_->body_bytes; }

}  // namespace turnout::proxy::http1
