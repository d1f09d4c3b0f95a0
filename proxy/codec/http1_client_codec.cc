#include "proxy/codec/http1_client_codec.h"

#include <limits>
#include <optional>

#include "absl/container/inlined_vector.h"
#include "proxy/common/asio.h"

namespace turnout::proxy::http1 {
namespace http = beast::http;
using BeastError = boost::system::error_code;

namespace {

// What a queued request implies about its response.
struct Outstanding {
  bool head = false;     // HEAD: the response has no body
  bool connect = false;  // CONNECT: a 2xx switches to a tunnel
};

struct ResponseState {
  ResponseState(ResponseDecoderCallbacks& cb, const Http1Settings& s) : callbacks(cb), settings(s) {
    head.headers.reserve(32, 2048);
  }

  absl::Status fail(CodecErrorCode code) {
    error = code;
    return codecErrorStatus(code);
  }

  ResponseDecoderCallbacks& callbacks;
  const Http1Settings settings;
  ResponseHead head;
  HeaderMap trailers;
  absl::InlinedVector<Outstanding, 2> outstanding;
  CodecErrorCode error = CodecErrorCode::kNone;
  CodecErrorCode pending_error = CodecErrorCode::kNone;

  const char* put_begin = nullptr;
  const char* put_end = nullptr;
  detail::HeadScanner scanner;
  std::uint64_t body_bytes = 0;
  std::uint64_t content_remaining = 0;
  bool headers_done = false;
  bool seen_content_length = false;
  bool seen_transfer_encoding = false;
  bool in_trailers = false;
  bool expect_crlf = false;  // the next chunk line starts with the previous chunk's CRLF
  bool in_message = false;
  bool informational = false;  // the message in progress is a 1xx
  bool close_delimited = false;
  bool upgraded = false;
  bool tunnel_stop = false;  // a 2xx to CONNECT stopped the parser
  bool eof = false;
  bool reusable = true;  // every exchange so far allows keep-alive

  // Request side.
  bool request_in_progress = false;
  bool request_chunked = false;
  bool request_close = false;
};

class ResponseParser final : public http::basic_parser<false> {
 public:
  explicit ResponseParser(ResponseState& s) : s_(s) {}

 private:
  void reject(CodecErrorCode code, BeastError& ec) {
    s_.pending_error = code;
    ec = http::error::bad_value;
  }

  void on_request_impl(http::verb, beast::string_view, beast::string_view, int,
                       BeastError& ec) override {
    ec = http::error::bad_version;  // unreachable for a response parser
  }

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

  void on_field_impl(http::field f, beast::string_view name_b, beast::string_view value_b,
                     BeastError& ec) override {
    const std::string_view name(name_b.data(), name_b.size());
    const std::string_view value(value_b.data(), value_b.size());
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
      if (f == http::field::content_length) s_.seen_content_length = true;
      if (f == http::field::transfer_encoding) {
        s_.seen_transfer_encoding = true;
        if (s_.head.version_minor == 0) {
          reject(CodecErrorCode::kTransferEncodingNotAllowed, ec);
          return;
        }
        if (!detail::isChunkedOnly(value)) {
          reject(CodecErrorCode::kInvalidTransferEncoding, ec);
          return;
        }
      }
    }
    map.add(name, value);
  }

  void on_header_impl(BeastError& ec) override {
    s_.headers_done = true;
    ResponseHead& h = s_.head;
    if (s_.informational) {
      s_.callbacks.onInformational(h);
      return;
    }
    h.keep_alive = keep_alive();
    h.chunked = chunked();
    if (auto cl = content_length(); cl) {
      h.content_length = *cl;
      s_.content_remaining = *cl;
    }
    s_.close_delimited = need_eof();
    const Outstanding req = s_.outstanding.front();
    if (req.connect && h.status >= 200 && h.status < 300) {
      // The tunnel starts right after this head, whatever framing fields it
      // carries: stop the parser here.
      s_.upgraded = true;
      s_.tunnel_stop = true;
      s_.callbacks.onHeaders(h, true);
      s_.callbacks.onMessageComplete();
      ec = http::error::end_of_stream;
      return;
    }
    if (h.status == 101) s_.upgraded = true;
    s_.callbacks.onHeaders(h, is_done());
  }

  void on_body_init_impl(const boost::optional<std::uint64_t>&, BeastError&) override {}

  std::size_t on_body_impl(beast::string_view body, BeastError&) override {
    s_.body_bytes += body.size();
    bool end = false;
    if (!s_.close_delimited) {
      s_.content_remaining -= body.size();
      end = s_.content_remaining == 0;
    }
    s_.callbacks.onData(std::span<const char>(body.data(), body.size()), end);
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
    if (s_.informational) return;
    if (s_.head.chunked) {
      if (s_.trailers.empty()) {
        s_.callbacks.onData(std::span<const char>(), true);
      } else {
        s_.callbacks.onTrailers(s_.trailers);
      }
    } else if (s_.close_delimited) {
      s_.callbacks.onData(std::span<const char>(), true);
    }
    s_.callbacks.onMessageComplete();
  }

  ResponseState& s_;
};

}  // namespace

struct ClientCodec::State : ResponseState {
  using ResponseState::ResponseState;

  void beginMessage() {
    parser.emplace(*this);
    parser->eager(true);
    // boost::none would compare as "exceeded" in 1.74 (optional < value).
  parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser->header_limit(settings.max_headers_kb * 1024 + 4);
    const Outstanding& req = outstanding.front();
    if (req.head) parser->skip(true);
    head.clear();
    trailers.clear();
    scanner = {};
    body_bytes = 0;
    content_remaining = 0;
    headers_done = false;
    seen_content_length = false;
    seen_transfer_encoding = false;
    in_trailers = false;
    expect_crlf = false;
    informational = false;
    close_delimited = false;
    in_message = true;
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
    const char* p = bytes.data() + total;
    std::size_t n = bytes.size() - total;
    if (!s.headers_done) {
      std::size_t eom = 0;
      const std::uint64_t limit = std::uint64_t{s.settings.max_headers_kb} * 1024;
      if (auto code = s.scanner.scan(std::string_view(p, n), limit, limit, eom);
          code != CodecErrorCode::kNone) {
        return s.fail(code);
      }
      if (eom == 0) break;  // the caller keeps the partial head
      // Beast sees the head alone, so that what follows it cannot change
      // how the head parses (it wants 8 bytes for a version, for instance).
      n = eom;
    }
    s.put_begin = p;
    s.put_end = p + n;
    BeastError ec;
    const std::size_t used = s.parser->put(asio::const_buffer(p, n), ec);
    total += used;
    if (s.pending_error != CodecErrorCode::kNone) return s.fail(s.pending_error);
    if (s.tunnel_stop) {
      s.endMessage();
      break;
    }
    if (ec == http::error::need_more) {
      const std::string_view leftover(p + used, n - used);
      // Beast wants more than a complete head: it is truncated (a version).
      if (!s.headers_done) return s.fail(CodecErrorCode::kInvalidStatus);
      if (auto code = detail::checkChunkLeftover(leftover, s.settings, s.expect_crlf);
                 code != CodecErrorCode::kNone) {
        return s.fail(code);
      }
      break;
    }
    if (ec) {
      CodecErrorCode code =
          detail::mapBeastError(ec, s.seen_content_length, s.seen_transfer_encoding);
      if (code == CodecErrorCode::kInvalidVersion) code = CodecErrorCode::kInvalidStatus;
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
      s.endMessage();
      continue;
    }
    if (used == 0) break;  // defensive: no progress without need_more
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
  if (s.in_message && s.parser->got_some()) {
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
  head.headers.forEach([&](std::string_view n, std::string_view v) {
    if (n == "connection" || n == "transfer-encoding") return;
    if (write_host && n == "host") return;
    detail::appendHeaderField(out, n, v);
  });
  if (head.upgrade) {
    detail::appendHeaderField(out, "connection", "upgrade");
  } else if (head.close_connection) {
    detail::appendHeaderField(out, "connection", "close");
  }
  out.append("\r\n");
  if (head.close_connection) s.request_close = true;
  s.outstanding.push_back(Outstanding{head.method == "HEAD", connect});
  s.request_in_progress = !end_stream;
}

void ClientCodec::encodeData(std::span<const char> data, bool end_stream, std::string& out) {
  State& s = *s_;
  if (s.request_chunked) {
    if (!data.empty()) {
      detail::appendChunkHeader(out, data.size());
      out.append(data.data(), data.size());
      out.append("\r\n");
    }
    if (end_stream) out.append("0\r\n\r\n");
  } else {
    out.append(data.data(), data.size());
  }
  if (end_stream) s.request_in_progress = false;
}

void ClientCodec::encodeTrailers(const HeaderMap& trailers, std::string& out) {
  State& s = *s_;
  if (s.request_chunked) {
    out.append("0\r\n");
    trailers.forEach(
        [&](std::string_view n, std::string_view v) { detail::appendHeaderField(out, n, v); });
    out.append("\r\n");
  }
  s.request_in_progress = false;
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
