#pragma once

// The upstream side of HTTP/1.1: encodes requests and parses the responses.
// Sans-I/O, with the same decode() contract as ServerCodec (see
// http1_server_codec.h): it returns how many bytes it consumed, the caller
// keeps the rest; errors are sticky and every error means "answer the client
// 502 and close this upstream connection".

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proxy/codec/codec.h"
#include "proxy/codec/http1_server_codec.h"

namespace turnout::proxy::http1 {

// Used by one upstream connection, on its worker thread. Requests may be
// pipelined: each encodeHeaders() queues the expectation of one response
// (so that a response to HEAD, or a 2xx to CONNECT, is known to have no body).
class ClientCodec {
 public:
  // `callbacks` must outlive the codec.
  explicit ClientCodec(ResponseDecoderCallbacks& callbacks, const Http1Settings& settings = {});
  ~ClientCodec();
  ClientCodec(const ClientCodec&) = delete;
  ClientCodec& operator=(const ClientCodec&) = delete;

  // Request encoding; appends wire bytes to `out`. The request line uses
  // head.path (head.authority for CONNECT); `host` is written from
  // head.authority (the head's own host fields are then skipped). Framing: a
  // content-length field in the head, else none when end_stream (with
  // "content-length: 0" for POST/PUT/PATCH), else chunked. connection and
  // transfer-encoding fields in the head are ignored: "connection: upgrade"
  // is written when head.upgrade, "connection: close" when
  // head.close_connection.
  void encodeHeaders(const RequestHead& head, bool end_stream, std::string& out);
  void encodeData(std::span<const char> data, bool end_stream, std::string& out);
  // Queues the expectation of one response to a complete request whose bytes
  // the caller wrote itself (a request encoded once by encodeHeaders and
  // encodeData and re-sent as is, as turnout-bench does): what encodeHeaders
  // records for `method`, without encoding anything.
  void expectResponse(std::string_view method);
  // Ends the request. Trailers are written only with chunked framing.
  void encodeTrailers(const HeaderMap& trailers, std::string& out);

  // Parses response bytes.
  // @return bytes consumed, or the sticky codec error.
  absl::StatusOr<std::size_t> decode(std::span<const char> bytes);
  // The upstream closed its side. Completes a close-delimited response;
  // an error if a response was outstanding or incomplete (kPrematureEof).
  absl::Status onEof();

  // No response is outstanding and the connection can carry another request
  // (keep-alive on both sides, the last request fully encoded, no error, no
  // upgrade, no EOF).
  bool canReuse() const;
  // A 101 (or 2xx to CONNECT) was decoded: the caller tunnels raw bytes.
  bool upgraded() const;
  CodecErrorCode error() const;
  // Body bytes of the current (or last) response delivered so far.
  std::uint64_t bodyBytesReceived() const;

  struct State;

 private:
  std::unique_ptr<State> s_;
};

}  // namespace turnout::proxy::http1
