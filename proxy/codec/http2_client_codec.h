#pragma once

// The upstream side of HTTP/2 on nghttp2 (docs/http2_codec.md): one
// ClientCodec per connection multiplexes many ClientStreams. Sans-I/O: the
// owner feeds received bytes to dispatch(), writes what drainOutput() hands
// it, and closes the transport when wantsRead() and wantsWrite() are both
// false (after the GOAWAY that ended the session has been drained).
//
// Flow control: received DATA is acknowledged to the peer (WINDOW_UPDATE)
// only when the caller says it has written the bytes on:
// ClientStream::consumed(n). A stream whose reader stalls therefore stops
// receiving after its window (Http2Settings::initial_stream_window_size),
// and the connection after its own window, so a slow reader cannot make the
// proxy buffer without bound. Releasing a stream acknowledges whatever it
// had not.
//
// Lifetimes: ClientStreams belong to the codec and are recycled; a caller
// holds one through a ClientStreamPtr, whose release ends its use (resetting
// the stream if it is still open). Every ClientStreamPtr must be released
// before the codec is destroyed. Destroying the codec calls no callbacks.
//
// Events reach a stream's ResponseDecoderCallbacks in the order codec.h
// describes (onInformational*, onMessageBegin, onHeaders, onData*,
// onTrailers?, onMessageComplete), or end with onReset(reason); after
// onMessageComplete or onReset nothing more arrives for that stream. They
// are called from inside dispatch(), drainOutput() (a stream refused before
// its HEADERS went out) and onEof(). Views passed to onData are valid during
// the call only; heads and trailers stay valid until the stream is released.

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

class ClientCodec;
struct ClientSession;

// One request/response exchange on a ClientCodec: the request encoder and
// the response's flow-control handle. id(), bufferedBytes(),
// unconsumedBytes(), wireBytesReceived() and remoteComplete() (the response
// ended) come from StreamState.
class ClientStream : public StreamState<ClientSession, ResponseDecoderCallbacks, ResponseHead> {
 public:
  struct Releaser {
    void operator()(ClientStream* stream) const { stream->release(); }
  };

  // Queues the request HEADERS: pseudo-headers from head.method, scheme,
  // authority and path (CONNECT: method and authority only; an HTTP/1.1
  // upgrade (head.upgrade): an extended CONNECT, RFC 8441, with its
  // protocol as :protocol and no content-length, whose 2xx is handed on
  // as a 101 with `upgrade: <protocol>`); every field of
  // head.headers except the connection-specific ones (connection,
  // keep-alive, proxy-connection, transfer-encoding, upgrade, host, and te
  // other than "trailers"); content-length from head.content_length when
  // the fields have none. An error if this stream already sent HEADERS, or
  // the connection can no longer start streams (the stream is then unused).
  // Assigns id().
  absl::Status encodeHeaders(const RequestHead& head, bool end_stream);
  // Queues body bytes (copied). Ignored unless HEADERS went out without
  // end_stream and the request is not yet ended.
  void encodeData(std::span<const char> data, bool end_stream);
  // Ends the request with trailers (copied); empty trailers just end it.
  void encodeTrailers(const HeaderMap& trailers);
  // Resets the stream (RST_STREAM: CANCEL for kLocalReset, REFUSED_STREAM
  // for kLocalRefusedStreamReset, PROTOCOL_ERROR for kProtocolError). No
  // callback follows.
  void resetStream(StreamResetReason reason = StreamResetReason::kLocalReset);
  // The caller wrote on (or dropped) `n` more bytes delivered by onData: they
  // are acknowledged to the peer for this stream and the connection.
  void consumed(std::size_t n);

 private:
  friend class ClientCodec;
  friend struct ClientSession;
  template <class, class>
  friend struct SessionBase;

  void release();
  void clear();
  bool exchangeComplete() const { return remote_end_; }

  bool headers_sent_ = false;
  bool final_headers_ = false;  // the final (non-1xx) response head arrived
  bool not_sent_ = false;       // its HEADERS could not be sent
  bool request_sent_ = false;   // its HEADERS went out
  bool extended_connect_ = false;  // sent as an extended CONNECT (an upgrade)
  std::string upgrade_protocol_;   // its :protocol (capacity kept across uses)
};

using ClientStreamPtr = std::unique_ptr<ClientStream, ClientStream::Releaser>;

// One upstream HTTP/2 connection, on its worker thread. The connection
// preface and our SETTINGS are queued at construction. dispatch(),
// drainOutput(), wantsWrite(), wantsRead(), goAway(), activeStreams()
// (streams whose HEADERS were queued and that have not closed),
// peerSettings() and status() come from Http2Connection.
class ClientCodec : public Http2Connection<ClientSession> {
 public:
  // `callbacks` must outlive the codec.
  // `stats`: where Envoy's codec stats are counted (cluster.<name>.http2.*;
  // none by default).
  explicit ClientCodec(ConnectionCallbacks& callbacks, const Http2Settings& settings = {},
                       const CodecStatsSink& stats = {});
  ~ClientCodec();

  // The transport closed. Every stream still open is reset
  // (kConnectionTermination, or kProtocolError after a codec error).
  void onEof();

  // A new stream, or nullptr when !acceptsStreams(). Beyond the peer's
  // max_concurrent_streams, HEADERS wait in the codec until a stream ends.
  // `callbacks` must stay valid until the stream is released.
  ClientStreamPtr newStream(ResponseDecoderCallbacks& callbacks);
  // No GOAWAY sent or received, no error, no EOF.
  bool acceptsStreams() const;
};

extern template class Http2Connection<ClientSession>;

}  // namespace turnout::proxy::http2
