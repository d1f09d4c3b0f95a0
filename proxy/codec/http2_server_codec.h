#pragma once

// The downstream side of HTTP/2 on nghttp2 (docs/http2_codec.md), in the
// same sans-I/O shape as ClientCodec: dispatch() in, drainOutput() out,
// close when wantsRead() and wantsWrite() are both false, then onEof().
//
// Each request the peer opens reaches ServerCallbacks::newStream() with a
// ServerStreamPtr, the response encoder, which the caller owns from then on;
// it returns the RequestDecoderCallbacks that receive the request (codec.h's
// order: onMessageBegin, onHeaders, onData*, onTrailers?,
// onMessageComplete). onReset(reason) ends a stream abnormally; on the
// server side it can follow onMessageComplete, when the client resets the
// stream (or the connection ends) before the response was sent in full.
//
// Flow control is the client codec's rule: request DATA is acknowledged only
// by ServerStream::consumed(n) (or when the stream is released).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proxy/codec/codec.h"
#include "proxy/codec/http2_codec.h"
#include "proxy/codec/http2_connection.h"
#include "proxy/codec/http2_stream_state.h"

namespace turnout::proxy::http2 {

struct ServerSession;
class ServerStream;

struct ServerStreamReleaser {
  void operator()(ServerStream* stream) const;
};
using ServerStreamPtr = std::unique_ptr<ServerStream, ServerStreamReleaser>;

class ServerCallbacks : public ConnectionCallbacks {
 public:
  // A request stream opened (its HEADERS are being decoded). The returned
  // callbacks must stay valid until `stream` is released.
  virtual RequestDecoderCallbacks& newStream(ServerStreamPtr stream) = 0;
};

// One request/response exchange on a ServerCodec: the response encoder and
// the request's flow-control handle. id(), bufferedBytes(),
// unconsumedBytes(), wireBytesReceived() and remoteComplete() (the request
// ended) come from StreamState.
class ServerStream : public StreamState<ServerSession, RequestDecoderCallbacks, RequestHead> {
 public:
  // Queues the response head: a 1xx (not 101) as an interim head, anything
  // else as the final one. :status from head.status, every field except the
  // connection-specific ones, content-length from head.content_length when
  // the fields have none. An error after the final head, or once the stream
  // is closed.
  absl::Status encodeHeaders(const ResponseHead& head, bool end_stream);
  void encodeData(std::span<const char> data, bool end_stream);
  void encodeTrailers(const HeaderMap& trailers);
  // RST_STREAM (CANCEL for kLocalReset, REFUSED_STREAM for
  // kLocalRefusedStreamReset, PROTOCOL_ERROR for kProtocolError). No
  // callback follows.
  void resetStream(StreamResetReason reason = StreamResetReason::kLocalReset);
  // The caller wrote on `n` more request bytes delivered by onData.
  void consumed(std::size_t n);

 private:
  friend struct ServerSession;
  friend struct ServerStreamReleaser;
  friend class ServerCodec;
  template <class, class>
  friend struct SessionBase;

  void release();
  void clear();
  bool exchangeComplete() const { return remote_end_ && local_end_sent_; }

  bool request_headers_ = false;   // the request head arrived (later HEADERS are trailers)
  bool response_started_ = false;  // the final response head was queued
  bool local_end_sent_ = false;    // END_STREAM went out
};

// One downstream HTTP/2 connection, on its worker thread. Expects the
// client connection preface first; our SETTINGS are queued at construction.
// dispatch(), drainOutput(), wantsWrite(), wantsRead(), goAway() (graceful
// shutdown: streams up to the last one seen complete, the client retries the
// rest elsewhere), activeStreams(), peerSettings() and status() come from
// Http2Connection.
class ServerCodec : public Http2Connection<ServerSession> {
 public:
  // `callbacks` must outlive the codec.
  // `stats`: where Envoy's http2.* codec stats are counted (none by default).
  explicit ServerCodec(ServerCallbacks& callbacks, const Http2Settings& settings = {},
                       const CodecStatsSink& stats = {});
  ~ServerCodec();

  // The transport closed: every stream still open is reset.
  void onEof();
};

extern template class Http2Connection<ServerSession>;

}  // namespace turnout::proxy::http2
