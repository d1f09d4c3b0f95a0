#pragma once

// What the HTTP/1.1 server and client codecs share: the head scanner, the
// Beast parser base that handles fields, body, chunks and trailers the same
// way in both directions, the per-message decode state, and the framing
// encoders. Included only by the codecs' .cc files; not part of the public
// interface.
//
// ParserBase<Derived, isRequest, State> is a CRTP base over Beast's
// basic_parser. The derived parser handles its start line, on_header_impl
// and on_finish_impl, and provides:
//   void onHeadField(http::field f, std::string_view value);  // head fields only
//   CodecErrorCode truncatedHeadError() const;  // a complete head Beast still wants more of
//   CodecErrorCode refineError(CodecErrorCode code, std::string_view bytes) const;
// `State` derives from DecodeState<Callbacks, Head> and outlives the parser.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "proxy/codec/codec.h"
#include "proxy/codec/header_map.h"
#include "proxy/codec/http1_server_codec.h"
#include "proxy/common/asio.h"

namespace turnout::proxy::http1::detail {

using BeastError = boost::system::error_code;

// Validates a Transfer-Encoding value: only a single "chunked" coding.
bool isChunkedOnly(std::string_view value);
// The first value of a Content-Length field that Beast has already accepted
// (a list of equal decimals), without leading zeros; `buf` holds the digits.
std::string_view canonicalContentLength(std::string_view value, char (&buf)[20]);
// Fields that only mean something in a header section (RFC 9110 §6.5.1:
// framing, routing, connection options): dropped from received trailers so
// that no recipient downstream can merge them into the head.
bool isForbiddenTrailer(std::string_view name);
// A control character other than HTAB (RFC 9110 §5.5), e.g. in a quoted
// chunk-ext value, where Beast takes any byte.
bool hasControlChars(std::string_view s);
// Whether a LF comes before any CR in the first max_chunk_line_bytes + 2
// bytes of `line` (a chunk line and what follows it).
bool hasBareLfInChunkLine(std::string_view line, std::size_t max_chunk_line_bytes);
// Case-insensitive ASCII equality.
bool equalsIgnoreCase(std::string_view a, std::string_view b);
// True if `value` (a field value not obtained from `[begin,end)`, or whose
// preceding bytes after `name` contain CR/LF) came from obs-fold unfolding.
bool isObsFold(const char* begin, const char* end, std::string_view name, std::string_view value);

void appendHeaderField(std::string& out, std::string_view name, std::string_view value);
void appendChunkHeader(std::string& out, std::size_t size);
void appendUint(std::string& out, std::uint64_t v);
// Appends every field of `headers` except connection and transfer-encoding,
// which the encoders write themselves, and those for which skip(name) is true.
template <typename Skip>
void appendFields(std::string& out, const HeaderMap& headers, Skip&& skip) {
  headers.forEach([&](std::string_view n, std::string_view v) {
    if (n == "connection" || n == "transfer-encoding" || skip(n)) return;
    appendHeaderField(out, n, v);
  });
}
// Appends body bytes: one chunk (none for empty data) and, with end_stream,
// the last chunk when `chunked`; the bytes as they are otherwise.
void appendBody(std::string& out, std::span<const char> data, bool end_stream, bool chunked);
// Appends the last chunk and `trailers` when `chunked`; nothing otherwise.
void appendTrailers(std::string& out, const HeaderMap& trailers, bool chunked);

// The common shape of a head, parsed without Beast (the codecs' fast path):
// a field line `line` (without its CRLF) of a name of tchars, ':', optional
// SP/HTAB, a value of visible ASCII, SP and HTAB, optional SP/HTAB. Sets
// `name` and `value` (trimmed). False for any other line (obs-fold,
// obs-text, a control character, an empty name), which the caller leaves to
// Beast: so the fast path accepts only what Beast accepts, and gives it the
// same meaning, and every error is still Beast's.
bool splitCommonField(std::string_view line, std::string_view& name, std::string_view& value);
// A reason-phrase of visible ASCII, SP and HTAB.
bool isCommonReason(std::string_view reason);

// The framing fields of a head in the common shape, in both directions:
// exactly one Content-Length of 1 to 18 digits (forwarded as one canonical
// value, as the Beast path does), no Transfer-Encoding, a Connection of
// exactly "close" or "keep-alive" if any.
struct CommonFraming {
  enum class Field { kOther, kAdded, kDecline };
  // kAdded: a Content-Length, added to `headers`; kOther: the caller adds
  // the field; kDecline: the head is not in the common shape.
  Field onField(std::string_view name, std::string_view value, HeaderMap& headers);

  bool close = false;
  bool have_length = false;
  std::uint64_t length = 0;
};

// Calls on(name, value) for each field line of `fields` (a complete head
// after its start line: HeadScanner saw every line end with CRLF, up to the
// blank line). False as soon as a line is not in the common shape
// (splitCommonField) or `on` returns false.
template <typename OnField>
bool forEachCommonField(std::string_view fields, OnField&& on) {
  for (std::size_t i = 0;;) {
    const std::size_t eol = fields.find("\r\n", i);
    if (eol == i) return true;
    std::string_view name, value;
    if (eol == std::string_view::npos ||
        !splitCommonField(fields.substr(i, eol - i), name, value) || !on(name, value)) {
      return false;
    }
    i = eol + 2;
  }
}

// The field lines of a head in the common shape into `headers` (both
// codecs' fast paths): at most `max_fields` of them, the framing fields
// through `framing`, every other one through extra(name, value), which may
// decline the head (false), and then added. False when the head is not in
// the common shape.
template <typename Extra>
bool addCommonFields(std::string_view fields, std::size_t max_fields, HeaderMap& headers,
                     CommonFraming& framing, Extra&& extra) {
  return forEachCommonField(fields, [&](std::string_view name, std::string_view value) {
    if (headers.size() >= max_fields) return false;
    switch (framing.onField(name, value, headers)) {
      case CommonFraming::Field::kDecline:
        return false;
      case CommonFraming::Field::kAdded:
        return true;
      case CommonFraming::Field::kOther:
        break;
    }
    if (!extra(name, value)) return false;
    headers.add(name, value);
    return true;
  });
}

// Maps a Beast parser error (boost::beast::http::error) to a codec error.
CodecErrorCode mapBeastError(const BeastError& ec, bool seen_content_length,
                             bool seen_transfer_encoding);
// Finds the end of a head without handing a partial head to Beast, whose
// error detection would otherwise depend on how the bytes were split. Purely
// positional, so the outcome is the same for every chunking: a bare CR or LF,
// a first line of `max_line` bytes or more without LF, or a head of `limit`
// bytes or more without its blank line, is an error. Resumes where it
// stopped; the caller re-presents the same unconsumed bytes plus new ones.
struct HeadScanner {
  std::size_t pos = 0;
  bool lf_seen = false;
  // Sets `eom` to the head's length once found (else leaves it 0).
  CodecErrorCode scan(std::string_view bytes, std::size_t max_line, std::size_t limit,
                      std::size_t& eom);
};
// Checks the unconsumed bytes left by a body-phase need_more (a partial chunk
// line or trailer block) against the limits.
CodecErrorCode checkChunkLeftover(std::string_view leftover, const Http1Settings& settings,
                                  bool expect_crlf);

// What one ParserBase::parseSome() (or a fast-path step) did.
enum class ParseOutcome {
  kFailed,    // the codec error is in pending_error
  kWaiting,   // needs more bytes: a partial head, chunk line or body
  kComplete,  // the message is complete (or stopped)
  kProgress,  // consumed bytes; call again
};

// The decode state of one message, the same in both directions.
template <typename Callbacks, typename Head>
struct DecodeState {
  DecodeState(Callbacks& cb, const Http1Settings& s) : callbacks(cb), settings(s) {}

  absl::Status fail(CodecErrorCode code) {
    error = code;
    return codecErrorStatus(code);
  }
  // Forgets the previous message; the next one is in progress.
  void resetMessage() {
    head.clear();
    // Room for a typical head, made at the first message rather than with
    // the codec: a connection that never carries HTTP (a TCP proxy's
    // upstream) allocates none. A no-op once the capacity is there.
    head.headers.reserve(32, 2048);
    trailers.clear();
    scanner = {};
    body_bytes = 0;
    content_remaining = 0;
    headers_done = false;
    seen_content_length = false;
    seen_transfer_encoding = false;
    in_trailers = false;
    expect_crlf = false;
    close_delimited = false;
    in_message = true;
    fast_body = false;
  }
  std::uint64_t headLimit() const { return std::uint64_t{settings.max_headers_kb} * 1024; }

  // The fast path (a head in the common shape, without Beast). Its first
  // step: finds the complete head as ParserBase::parseSome does (the same
  // scanner, the same limits); its length in `eom`, else the outcome.
  std::optional<ParseOutcome> scanHead(const char* p, std::size_t n, std::size_t max_first_line,
                                       std::size_t& eom) {
    if (auto code = scanner.scan(std::string_view(p, n), max_first_line, headLimit(), eom);
        code != CodecErrorCode::kNone) {
      pending_error = code;
      return ParseOutcome::kFailed;
    }
    if (eom == 0) return ParseOutcome::kWaiting;
    return std::nullopt;
  }
  // A head in the common shape was parsed from the first `eom` bytes: they
  // are consumed and the message begins (onMessageBegin, onHeaders). True
  // when it has no body, so it is complete.
  bool beginSizedMessage(std::size_t eom, std::size_t& total) {
    total += eom;
    headers_done = true;
    fast_body = true;
    callbacks.onMessageBegin();
    const bool done = content_remaining == 0;
    callbacks.onHeaders(head, done);
    return done;
  }
  // Then the Content-Length body: delivers what of [p, p + n) belongs to it
  // (adding it to `total`); true once the body has ended.
  bool takeSizedBody(const char* p, std::size_t n, std::size_t& total) {
    const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, content_remaining));
    total += k;
    body_bytes += k;
    content_remaining -= k;
    const bool done = content_remaining == 0;
    if (k > 0 || done) callbacks.onData(std::span<const char>(p, k), done);
    return done;
  }

  Callbacks& callbacks;
  const Http1Settings settings;
  Head head;
  HeaderMap trailers;
  CodecErrorCode error = CodecErrorCode::kNone;
  // Why the last parse step stopped: set inside parser callbacks, or by
  // ParserBase::parseSome.
  CodecErrorCode pending_error = CodecErrorCode::kNone;

  // The buffer of the put() in progress.
  const char* put_begin = nullptr;
  const char* put_end = nullptr;
  HeadScanner scanner;
  std::uint64_t body_bytes = 0;
  std::uint64_t content_remaining = 0;
  bool headers_done = false;
  bool seen_content_length = false;
  bool seen_transfer_encoding = false;
  bool in_trailers = false;
  bool expect_crlf = false;  // the next chunk line starts with the previous chunk's CRLF
  // End of the last chunk data delivered in the current put (null if none).
  const char* chunk_data_end = nullptr;
  // Where the chunk line Beast parses next starts, when known in this put.
  const char* chunk_line_start = nullptr;
  bool close_delimited = false;  // the body ends at EOF (responses only)
  // A head callback stopped the parser on purpose: the message ends with its
  // head (a 2xx to CONNECT, after which the tunnel starts).
  bool stopped = false;
  bool in_message = false;
  // The message may take the fast path (the caller decides per message),
  // and its head took it: the body is counted by takeSizedBody, not Beast.
  bool fast_eligible = false;
  bool fast_body = false;
};

template <typename Derived, bool isRequest, typename State>
class ParserBase : public beast::http::basic_parser<isRequest> {
 public:
  explicit ParserBase(State& s) : s_(s) {
    this->eager(true);
    // boost::none would compare as "exceeded" in 1.74 (optional < value).
    this->body_limit(std::numeric_limits<std::uint64_t>::max());
    this->header_limit(s.settings.max_headers_kb * 1024 + 4);
  }

  // Parses the unconsumed bytes [p, p + n): the head only once it is
  // complete, else body bytes. Adds what it consumed to `total`. A first line
  // of `max_first_line` bytes or more is an error.
  ParseOutcome parseSome(const char* p, std::size_t n, std::size_t max_first_line,
                         std::size_t& total);

 protected:
  void reject(CodecErrorCode code, BeastError& ec) {
    s_.pending_error = code;
    ec = beast::http::error::bad_value;  // any error stops the parser
  }
  // Sets the head's keep-alive and framing from the parsed head.
  template <typename Head>
  void readFraming(Head& h) {
    h.keep_alive = this->keep_alive();
    h.chunked = this->chunked();
    if (auto cl = this->content_length(); cl) {
      h.content_length = *cl;
      s_.content_remaining = *cl;
    }
  }
  // Signals the end of a chunked or close-delimited body.
  void finishBody() {
    if (s_.head.chunked) {
      if (s_.trailers.empty()) {
        s_.callbacks.onData(std::span<const char>(), true);
      } else {
        s_.callbacks.onTrailers(s_.trailers);
      }
    } else if (s_.close_delimited) {
      s_.callbacks.onData(std::span<const char>(), true);
    }
  }

  State& s_;

 private:
  Derived& derived() { return static_cast<Derived&>(*this); }

  // The other direction's start line never reaches this parser; the derived
  // parser overrides its own.
  void on_request_impl(beast::http::verb, beast::string_view, beast::string_view, int,
                       BeastError& ec) override {
    ec = beast::http::error::bad_version;
  }
  void on_response_impl(int, beast::string_view, int, BeastError& ec) override {
    ec = beast::http::error::bad_version;
  }

  void on_field_impl(beast::http::field f, beast::string_view name_b, beast::string_view value_b,
                     BeastError& ec) override;
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
    // The same positional rules checkChunkLeftover() applies to a line Beast
    // has not finished, applied to the line it has, in the same order: so the
    // verdict does not depend on whether the line arrived whole. A bare LF
    // (Beast takes one inside a quoted chunk-ext) comes first.
    if (s_.chunk_line_start != nullptr &&
        hasBareLfInChunkLine(std::string_view(
                                 s_.chunk_line_start,
                                 static_cast<size_t>(s_.put_end - s_.chunk_line_start)),
                             s_.settings.max_chunk_line_bytes)) {
      reject(CodecErrorCode::kInvalidChunk, ec);
      return;
    }
    if (extensions.size() > s_.settings.max_chunk_line_bytes) {
      reject(CodecErrorCode::kChunkExtensionTooLong, ec);
      return;
    }
    if (s_.chunk_line_start != nullptr) {
      const std::string_view rest(s_.chunk_line_start,
                                  static_cast<size_t>(s_.put_end - s_.chunk_line_start));
      const size_t eol = rest.find("\r\n");
      if (eol != std::string_view::npos && eol >= s_.settings.max_chunk_line_bytes + 2) {
        reject(CodecErrorCode::kChunkExtensionTooLong, ec);
        return;
      }
    }
    // Beast takes any byte in a quoted chunk-ext value; checkChunkLeftover()
    // rejects the same line when it has not been parsed yet.
    if (hasControlChars(std::string_view(extensions.data(), extensions.size()))) {
      reject(CodecErrorCode::kInvalidChunk, ec);
      return;
    }
    s_.chunk_line_start = nullptr;
    if (size == 0) s_.in_trailers = true;
    s_.expect_crlf = size != 0;  // Beast wants CRLF after this chunk's data
  }
  std::size_t on_chunk_body_impl(std::uint64_t remain, beast::string_view body,
                                 BeastError&) override {
    s_.body_bytes += body.size();
    if (!body.empty()) s_.chunk_data_end = body.data() + body.size();
    // The chunk's data ends here: its CRLF, then the next chunk line.
    if (!body.empty() && body.size() == remain && s_.put_end - s_.chunk_data_end >= 2) {
      s_.chunk_line_start = s_.chunk_data_end + 2;
    }
    if (!body.empty()) s_.callbacks.onData(std::span<const char>(body.data(), body.size()), false);
    return body.size();
  }
};

template <typename Derived, bool isRequest, typename State>
void ParserBase<Derived, isRequest, State>::on_field_impl(beast::http::field f,
                                                          beast::string_view name_b,
                                                          beast::string_view value_b,
                                                          BeastError& ec) {
  const std::string_view name(name_b.data(), name_b.size());
  const std::string_view value(value_b.data(), value_b.size());
  if (isObsFold(s_.put_begin, s_.put_end, name, value)) {
    reject(CodecErrorCode::kObsFold, ec);
    return;
  }
  HeaderMap& map = s_.in_trailers ? s_.trailers : s_.head.headers;
  if (map.size() >= s_.settings.max_headers_count) {
    reject(CodecErrorCode::kTooManyHeaders, ec);
    return;
  }
  if (s_.in_trailers) {
    if (map.byteSize() + name.size() + value.size() > s_.headLimit()) {
      reject(CodecErrorCode::kHeadersTooLarge, ec);
      return;
    }
    if (isForbiddenTrailer(name)) return;
  } else {
    if (f == beast::http::field::content_length) {
      // Beast has checked every value against the first (RFC 9112 §6.3):
      // forward one field with one value, never the list as received.
      s_.seen_content_length = true;
      derived().onHeadField(f, value);
      if (map.has("content-length")) return;
      char buf[20];
      map.addLowercase("content-length", canonicalContentLength(value, buf));
      return;
    }
    if (f == beast::http::field::transfer_encoding) {
      s_.seen_transfer_encoding = true;
      if (s_.head.version_minor == 0) {
        reject(CodecErrorCode::kTransferEncodingNotAllowed, ec);
        return;
      }
      if (!isChunkedOnly(value)) {
        reject(CodecErrorCode::kInvalidTransferEncoding, ec);
        return;
      }
    }
    derived().onHeadField(f, value);
  }
  map.add(name, value);
}

template <typename Derived, bool isRequest, typename State>
ParseOutcome ParserBase<Derived, isRequest, State>::parseSome(const char* p, std::size_t n,
                                                              std::size_t max_first_line,
                                                              std::size_t& total) {
  const auto fail = [&](CodecErrorCode code) {
    s_.pending_error = code;
    return ParseOutcome::kFailed;
  };
  if (!s_.headers_done) {
    std::size_t eom = 0;
    if (auto code = s_.scanner.scan(std::string_view(p, n), max_first_line, s_.headLimit(), eom);
        code != CodecErrorCode::kNone) {
      return fail(code);
    }
    if (eom == 0) return ParseOutcome::kWaiting;  // the caller keeps the partial head
    // Beast sees the head alone, so that what follows it cannot change how
    // the head parses (it wants 8 bytes for a version, for instance).
    n = eom;
  }
  s_.put_begin = p;
  s_.put_end = p + n;
  s_.chunk_data_end = nullptr;
  s_.chunk_line_start = nullptr;
  if (s_.headers_done && s_.head.chunked && !s_.in_trailers) {
    if (!s_.expect_crlf) {
      s_.chunk_line_start = p;
    } else if (n >= 2 && p[0] == '\r' && p[1] == '\n') {
      s_.chunk_line_start = p + 2;
    }
  }
  // Whether these bytes start with the CRLF that ends the previous chunk's
  // data, before parsing (a last chunk parsed in this put resets the flag).
  const bool expect_crlf_at_start = s_.expect_crlf;
  const bool chunked_body = s_.headers_done && s_.head.chunked;
  BeastError ec;
  const std::size_t used = this->put(asio::const_buffer(p, n), ec);
  total += used;
  const std::string_view leftover(p + used, n - used);
  // A chunk header parsed inside a put that then fails (in the trailers,
  // say) can leave `used` right behind the previous chunk's data, or at the
  // start of the put, while expect_crlf already describes the later state:
  // the leftover then starts with that chunk's CRLF.
  const auto leftover_expects_crlf = [&] {
    return s_.expect_crlf ||
           (s_.chunk_data_end != nullptr && leftover.data() == s_.chunk_data_end) ||
           (used == 0 && expect_crlf_at_start);
  };
  if (s_.pending_error != CodecErrorCode::kNone) {
    // A chunked body rejected by a callback (a trailer field, a chunk-ext)
    // gets the positional verdict first, as Beast's own errors below do: the
    // split input saw that verdict before Beast had the whole block.
    if (chunked_body) {
      if (auto code = checkChunkLeftover(leftover, s_.settings, leftover_expects_crlf());
          code != CodecErrorCode::kNone) {
        s_.pending_error = code;
      }
    }
    return ParseOutcome::kFailed;
  }
  if (s_.stopped) return ParseOutcome::kComplete;
  if (ec == beast::http::error::need_more) {
    // Beast wants more than a complete head: it is truncated (a version).
    if (!s_.headers_done) return fail(derived().truncatedHeadError());
    if (auto code = checkChunkLeftover(leftover, s_.settings, s_.expect_crlf);
        code != CodecErrorCode::kNone) {
      return fail(code);
    }
    return ParseOutcome::kWaiting;
  }
  if (ec) {
    CodecErrorCode code = derived().refineError(
        mapBeastError(ec, s_.seen_content_length, s_.seen_transfer_encoding),
        std::string_view(p, n));
    if (s_.headers_done) {
      // In the body phase a positional limit on the chunk line wins, so the
      // code does not depend on how the bytes were split.
      if (auto limit_code = checkChunkLeftover(leftover, s_.settings, leftover_expects_crlf());
          limit_code != CodecErrorCode::kNone) {
        code = limit_code;
      }
    }
    return fail(code);
  }
  if (this->is_done()) return ParseOutcome::kComplete;
  if (used == 0) return ParseOutcome::kWaiting;  // defensive: no progress without need_more
  return ParseOutcome::kProgress;
}

}  // namespace turnout::proxy::http1::detail
