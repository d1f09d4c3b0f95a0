#pragma once

// HTTP/1.1 codecs for the data plane (STYLE.md R6). The server codec parses
// requests from a downstream client and encodes the responses; the client
// codec (http1_client_codec.h) does the reverse towards an upstream.
//
// Both are sans-I/O. decode() takes the bytes the connection has read but
// not yet consumed, and returns how many it consumed; the caller keeps the
// rest (e.g. in a beast::flat_buffer) and presents them again, followed by
// newly read bytes, on the next call. Nothing is copied or buffered inside
// the codec: body bytes are delivered as views into the caller's bytes, and
// a partial head or chunk line stays in the caller's buffer. The codec bounds
// how much the caller must hold: a head larger than max_request_headers_kb, or
// a chunk line longer than max_chunk_line_bytes, is an error.
//
// Errors are sticky: after one, decode() consumes nothing and returns the same
// error. error() gives the code; codecErrorInfo() maps it to the details
// string, the status to answer with and whether to close.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proxy/codec/codec.h"

namespace turnout::proxy::http1 {

struct Http1Settings {
  // Limit on the head (request/status line plus fields), and separately on a
  // trailer block. Envoy's max_request_headers_kb.
  std::uint32_t max_headers_kb = 60;
  // Limit on the number of fields in the head, and separately in trailers.
  std::uint32_t max_headers_count = 100;
  // Limit on the request-target (server codec).
  std::uint32_t max_request_target_bytes = 16 * 1024;
  // Limit on one chunk-size line, extensions included.
  std::uint32_t max_chunk_line_bytes = 4096;
  // Heads in the common shape are parsed without Beast (the client codec:
  // detail::splitCommonField). Off only in tests and fuzzers that check
  // that both paths give the same events.
  bool common_head_fast_path = true;
};

// Removes the hop-by-hop fields a proxy must not forward (RFC 9110 §7.6.1):
// connection, keep-alive, proxy-connection, transfer-encoding, upgrade
// (unless `keep_upgrade`), te (unless its value is "trailers"), and every
// field named in a Connection header, except host and content-length, which
// framing and routing depend on.
void stripHopByHopHeaders(HeaderMap& headers, bool keep_upgrade);

// The standard reason phrase for `status`, or "Unknown".
std::string_view reasonPhrase(std::uint16_t status);

// Parses requests from a downstream client and encodes the responses.
//
// Keep-alive and pipelining: after a request's onMessageComplete the codec
// pauses (paused() is true) and decode() consumes nothing until the response
// to that request has been fully encoded; then the caller calls decode()
// again with the bytes it still holds. Upgrade: once the head of a 101 (or
// of a 2xx to CONNECT) has been encoded, upgraded() is true and the bytes
// after the request belong to the tunnel; decode() consumes nothing, and
// encodeData() writes the tunnel's bytes as they are (no framing).
class ServerCodec {
 public:
  // `callbacks` must outlive the codec.
  explicit ServerCodec(RequestDecoderCallbacks& callbacks, const Http1Settings& settings = {});
  ~ServerCodec();
  ServerCodec(const ServerCodec&) = delete;
  ServerCodec& operator=(const ServerCodec&) = delete;

  // Parses as much of `bytes` as it can, emitting events.
  // @return the number of bytes consumed, or the (sticky) codec error, whose
  //         message is the details string.
  absl::StatusOr<std::size_t> decode(std::span<const char> bytes);
  // The client closed its side (EOF). An error (kPrematureEof, sticky) if a
  // request is in progress, head or body, and not yet answered: its framing
  // can never complete, so the caller closes without answering. OK between
  // requests, after an upgrade, or once the response has ended the exchange.
  absl::Status onEof();

  // Response encoding. Appends wire bytes to `out`. A 1xx other than 101 is
  // informational (e.g. 100 Continue) and may precede the final response.
  // The codec writes the connection and transfer-encoding fields itself and
  // ignores them in `head.headers`; a content-length field in the head selects
  // fixed-length framing, otherwise chunked (HTTP/1.1) or close-delimited
  // (HTTP/1.0) framing is used when a body follows.
  void encodeHeaders(const ResponseHead& head, bool end_stream, std::string& out);
  void encodeData(std::span<const char> data, bool end_stream, std::string& out);
  // Ends the response. Trailers are written only with chunked framing.
  void encodeTrailers(const HeaderMap& trailers, std::string& out);

  // A complete request is waiting for its response to be encoded.
  bool paused() const;
  // The connection has switched protocols; the caller tunnels raw bytes.
  bool upgraded() const;
  // The connection must be closed once the encoded bytes are flushed
  // (Connection: close either way, HTTP/1.0 without keep-alive, close-
  // delimited response, response ended before the request, or an error).
  // A request is being decoded (its head arrived, its end has not, and no
  // response ended it first).
  bool inRequest() const;
  bool shouldClose() const;
  CodecErrorCode error() const;
  // Body bytes of the current (or last) request delivered so far.
  std::uint64_t bodyBytesReceived() const;

  struct State;  // the Beast parser and per-message state

 private:
  std::unique_ptr<State> s_;
};

}  // namespace turnout::proxy::http1
