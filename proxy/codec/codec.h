#pragma once

// The protocol-neutral codec interface (STYLE.md R6). A codec is sans-I/O: it
// holds no socket and no timer. The connection that owns it feeds received
// bytes to decode() and receives events through a callbacks interface; the
// encoders append wire bytes to a caller-owned buffer. Everything runs on the
// owning connection's worker thread; nothing here is thread-safe.
//
// decode() never throws and never asserts on peer input (R10): a peer can
// only make it return an error, which is sticky.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proxy/codec/header_map.h"
#include "routing/request_view.h"

namespace turnout::proxy {

// Every way a peer's bytes can be rejected. See codecErrorInfo() for the
// details string, the HTTP status the caller answers with and whether the
// connection must be closed.
enum class CodecErrorCode : std::uint8_t {
  kNone = 0,
  kCodecError,                  // malformed message not covered below
  kInvalidMethod,               // method is not a token
  kInvalidUrl,                  // request-target malformed / not origin, absolute, authority or *
  kRequestTargetTooLong,        // request-target above max_request_target_bytes
  kInvalidVersion,              // HTTP-version malformed
  kUnsupportedVersion,          // well-formed version other than 1.0 / 1.1
  kHeadersTooLarge,             // header (or trailer) block above the byte limit
  kTooManyHeaders,              // more fields than max_headers_count
  kInvalidHeaderName,           // field name not a token, or whitespace before ':'
  kInvalidCharacters,           // CTL / NUL / bare LF in a field value or reason phrase
  kInvalidLineEnding,           // bare CR
  kObsFold,                     // obsolete line folding
  kContentLengthAndChunked,     // both Content-Length and Transfer-Encoding
  kInvalidContentLength,        // invalid or conflicting Content-Length values
  kContentLengthNotAllowed,     // non-zero Content-Length on a 1xx or 204 response
  kInvalidTransferEncoding,     // any coding other than a single "chunked"
  kTransferEncodingNotAllowed,  // Transfer-Encoding on an HTTP/1.0 message
  kInvalidChunk,                // bad chunk size, chunk extension or chunk framing
  kChunkExtensionTooLong,       // chunk line above max_chunk_line_bytes
  kMissingHost,                 // HTTP/1.1 request without Host
  kMultipleHost,                // more than one Host field
  kInvalidHost,                 // Host (or request-target authority) not uri-host [":" port]
  kInvalidStatus,               // malformed status line (responses)
  kPrematureEof,                // connection closed inside a message (the peer is gone:
                                // a server codec's caller closes without answering)
  kUnexpectedResponse,          // response bytes with no request outstanding
};

struct CodecErrorInfo {
  std::string_view details;         // Envoy-style response-code details
  std::uint16_t downstream_status;  // status to answer a client with (server codec)
  bool close_connection;            // framing can no longer be trusted
};

// The table of error descriptions. Upstream (client codec) errors are all
// answered with 502 and close the upstream connection.
constexpr CodecErrorInfo codecErrorInfo(CodecErrorCode code) {
  switch (code) {
    case CodecErrorCode::kNone: return {"", 200, false};
    case CodecErrorCode::kCodecError: return {"http1.codec_error", 400, true};
    case CodecErrorCode::kInvalidMethod: return {"http1.invalid_method", 400, true};
    case CodecErrorCode::kInvalidUrl: return {"http1.invalid_url", 400, true};
    case CodecErrorCode::kRequestTargetTooLong: return {"http1.request_target_too_long", 414, true};
    case CodecErrorCode::kInvalidVersion: return {"http1.invalid_version", 400, true};
    case CodecErrorCode::kUnsupportedVersion: return {"http1.unsupported_version", 505, true};
    case CodecErrorCode::kHeadersTooLarge: return {"http1.headers_too_large", 431, true};
    case CodecErrorCode::kTooManyHeaders: return {"http1.too_many_headers", 431, true};
    case CodecErrorCode::kInvalidHeaderName: return {"http1.invalid_header_name", 400, true};
    case CodecErrorCode::kInvalidCharacters: return {"http1.invalid_characters", 400, true};
    case CodecErrorCode::kInvalidLineEnding: return {"http1.invalid_line_ending", 400, true};
    case CodecErrorCode::kObsFold: return {"http1.obs_fold", 400, true};
    case CodecErrorCode::kContentLengthAndChunked:
      return {"http1.content_length_and_chunked_not_allowed", 400, true};
    case CodecErrorCode::kInvalidContentLength: return {"http1.invalid_content_length", 400, true};
    case CodecErrorCode::kContentLengthNotAllowed:
      return {"http1.content_length_not_allowed", 502, true};
    case CodecErrorCode::kInvalidTransferEncoding:
      return {"http1.invalid_transfer_encoding", 501, true};
    case CodecErrorCode::kTransferEncodingNotAllowed:
      return {"http1.transfer_encoding_not_allowed", 400, true};
    case CodecErrorCode::kInvalidChunk: return {"http1.invalid_chunk", 400, true};
    case CodecErrorCode::kChunkExtensionTooLong:
      return {"http1.chunk_extension_too_long", 400, true};
    case CodecErrorCode::kMissingHost: return {"http1.missing_host_header", 400, true};
    case CodecErrorCode::kMultipleHost: return {"http1.multiple_host_headers", 400, true};
    // Envoy's shared detail for an authority that fails its spec checks.
    case CodecErrorCode::kInvalidHost: return {"http.invalid_authority", 400, true};
    case CodecErrorCode::kInvalidStatus: return {"http1.invalid_status", 502, true};
    case CodecErrorCode::kPrematureEof: return {"http1.premature_eof", 502, true};
    case CodecErrorCode::kUnexpectedResponse: return {"http1.unexpected_response", 502, true};
  }
  return {"http1.codec_error", 400, true};
}

// The absl::Status a codec returns for `code`: InvalidArgument whose message
// is the details string.
inline absl::Status codecErrorStatus(CodecErrorCode code) {
  const std::string_view d = codecErrorInfo(code).details;
  return absl::InvalidArgumentError(absl::string_view(d.data(), d.size()));
}

// ---- Stream resets (added with the HTTP/2 codec, proxy/codec/http2_*) ------
// Why a stream ended before both of its directions completed. The names and
// meanings are Envoy's Http::StreamResetReason; the subset a codec reports.
enum class StreamResetReason : std::uint8_t {
  kLocalReset,                // this side reset the stream (a timeout, the caller gave up)
  kLocalRefusedStreamReset,   // never sent: the connection could no longer start streams
  kRemoteReset,               // the peer reset the stream (RST_STREAM other than REFUSED_STREAM)
  kRemoteRefusedStreamReset,  // the peer refused it unprocessed (REFUSED_STREAM, or above
                              // the last stream id of its GOAWAY)
  kConnectionTermination,     // the connection ended while the stream was open
  kProtocolError,             // the codec rejected the peer's frames for this stream
  kConnectionFailure,         // the connection for the stream could not be made (pools)
  kOverflow,                  // a circuit breaker refused the stream (pools)
};

// Envoy's resetReasonToString() text, for logs and response details.
constexpr std::string_view streamResetReasonName(StreamResetReason reason) {
  switch (reason) {
    case StreamResetReason::kLocalReset: return "local reset";
    case StreamResetReason::kLocalRefusedStreamReset: return "local refused stream reset";
    case StreamResetReason::kRemoteReset: return "remote reset";
    case StreamResetReason::kRemoteRefusedStreamReset: return "remote refused stream reset";
    case StreamResetReason::kConnectionTermination: return "connection termination";
    case StreamResetReason::kProtocolError: return "protocol error";
    case StreamResetReason::kConnectionFailure: return "connection failure";
    case StreamResetReason::kOverflow: return "overflow";
  }
  return "protocol error";
}

// The peer never processed the request: it may be sent again on another
// connection whatever its method.
constexpr bool isRefusedStream(StreamResetReason reason) {
  return reason == StreamResetReason::kLocalRefusedStreamReset ||
         reason == StreamResetReason::kRemoteRefusedStreamReset;
}
// ---- end of stream resets ---------------------------------------------------

// A request head. Owned and reused by the server codec (capacity kept across
// requests); the client codec only reads one.
struct RequestHead {
  std::string method;
  std::string path;       // request-target as sent, or the path part of absolute-form
  std::string authority;  // absolute-form authority, else Host
  std::string scheme = "http";
  HeaderMap headers;      // every field as received, names lowercased (Host included)
  std::uint8_t version_minor = 1;  // HTTP/1.<minor>
  bool keep_alive = true;          // per Connection and version (RFC 9112 §9.3)
  bool expect_continue = false;    // HTTP/1.1 Expect: 100-continue
  bool upgrade = false;            // Connection: upgrade plus an Upgrade field
  bool chunked = false;            // body framed with chunked coding
  std::optional<std::uint64_t> content_length;
  // Encoding only (client codec): write "connection: close".
  bool close_connection = false;

  void clear();
  // The Upgrade protocol (e.g. "websocket"), or empty.
  std::string_view upgradeProtocol() const { return headers.get("upgrade"); }
  // A routing view over this head. `scratch` is reused; the view is valid
  // while this head and `scratch` are unchanged.
  routing::RequestView view(std::vector<routing::HeaderEntry>& scratch) const;
};

// A response head. Owned and reused by the client codec; the server codec
// only reads one.
struct ResponseHead {
  std::uint16_t status = 200;
  std::string reason;  // decoded reason phrase; when encoding, empty = standard phrase
  HeaderMap headers;
  std::uint8_t version_minor = 1;
  bool keep_alive = true;  // decoding: the upstream connection may be reused
  bool chunked = false;
  std::optional<std::uint64_t> content_length;
  // Encoding only (server codec): write "connection: close" and close after.
  bool close_connection = false;

  void clear();
};

// Events of one decoded message, in this order:
//   onMessageBegin, onHeaders(head, end_stream), onData(bytes, end_stream)*,
//   onTrailers(trailers)?, onMessageComplete.
// End of stream is signalled exactly once: by onHeaders(.., true), by
// onData(.., true) (possibly empty) or by onTrailers. Views passed to onData
// point into the buffer given to decode() and are valid only during the call.
// Heads and trailers are owned by the codec and stay valid until the next
// onMessageBegin. Callbacks must not call decode() re-entrantly.
template <typename Head>
class DecoderCallbacks {
 public:
  virtual ~DecoderCallbacks() = default;
  virtual void onMessageBegin() = 0;
  virtual void onHeaders(Head& head, bool end_stream) = 0;
  virtual void onData(std::span<const char> data, bool end_stream) = 0;
  virtual void onTrailers(HeaderMap& trailers) = 0;
  virtual void onMessageComplete() = 0;

  // ---- Stream resets (added with the HTTP/2 codec) ----
  // The stream ended abnormally, before or after onMessageBegin; no event
  // follows for this message. Multiplexed codecs call it; the default
  // ignores it so that existing HTTP/1 callbacks compile unchanged.
  virtual void onReset(StreamResetReason reason) { (void)reason; }
};

using RequestDecoderCallbacks = DecoderCallbacks<RequestHead>;

class ResponseDecoderCallbacks : public DecoderCallbacks<ResponseHead> {
 public:
  // A 1xx other than 101 (e.g. 100 Continue). The final response follows.
  virtual void onInformational(ResponseHead& head) = 0;
};

}  // namespace turnout::proxy
