#pragma once

// The connection half of the HTTP/2 codecs' public API
// (docs/http2_codec.md): ClientCodec and ServerCodec are both an
// Http2Connection over their session (ClientSession, ServerSession, defined
// in their .cc files, which instantiate it). Sans-I/O: bytes in through
// dispatch(), bytes out through drainOutput(), on the owning connection's
// thread only; close the transport when wantsRead() and wantsWrite() are
// both false, then call the codec's onEof().

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "proxy/codec/http2_codec.h"

namespace turnout::proxy::http2 {

template <class Session>
class Http2Connection {
 public:
  Http2Connection(const Http2Connection&) = delete;
  Http2Connection& operator=(const Http2Connection&) = delete;

  // Feeds received bytes; all are consumed. An error is sticky: the
  // connection must close (after draining the GOAWAY, if any).
  absl::Status dispatch(std::span<const char> bytes);
  // Appends frames to send to `out` until it holds at least `limit` bytes or
  // nothing is left.
  absl::Status drainOutput(std::string& out, std::size_t limit = SIZE_MAX);
  bool wantsWrite() const;
  // False once the session is over (GOAWAY sent or received and no stream
  // left, or a protocol error): drain the output, then close.
  bool wantsRead() const;
  // Sends GOAWAY with the last stream id the peer opened (graceful with
  // kNoError): streams already started complete, the peer retries the rest
  // elsewhere. No new stream starts after it.
  void goAway(std::uint32_t error_code = kNoError);
  // Streams that have started and not closed.
  std::size_t activeStreams() const;
  const PeerSettings& peerSettings() const;
  // Ok, or the sticky error: InvalidArgument with Envoy-style details
  // ("http2.codec_error", "http2.flood", ...).
  absl::Status status() const;
  // Takes back this codec's gauge contributions (streams_active,
  // pending_send_bytes) and stops counting stats: for an owner whose stat
  // scope ends before the codec (CodecStatsSink).
  void detachStats();

 protected:
  explicit Http2Connection(std::unique_ptr<Session> session);
  ~Http2Connection();

  std::unique_ptr<Session> s_;
};

}  // namespace turnout::proxy::http2
