#pragma once

// What a ClientStream and a ServerStream share (docs/http2_codec.md): the
// flow-control and progress accessors of the public API, and the state the
// sessions (http2_session_base.h) keep on every stream.

#include <cstddef>
#include <cstdint>

#include "proxy/codec/header_map.h"
#include "proxy/codec/http2_send_buffer.h"

namespace turnout::proxy::http2 {

template <class Derived, class Stream>
struct SessionBase;

// Session: the codec's session; Callbacks: what receives the peer's message
// (ResponseDecoderCallbacks or RequestDecoderCallbacks); Head: that message's
// head.
template <class Session, class Callbacks, class Head>
class StreamState {
 public:
  // The HTTP/2 stream id; -1 before it is assigned.
  std::int32_t id() const { return id_; }
  // Body bytes accepted by encodeData() and not yet framed: a stalled peer
  // window shows up here (the writable signal).
  std::size_t bufferedBytes() const { return send_.size(); }
  // Body bytes delivered by onData and not yet consumed().
  std::size_t unconsumedBytes() const { return unconsumed_; }
  // Bytes of this stream's frames received (9-byte frame headers included).
  std::uint64_t wireBytesReceived() const { return wire_bytes_; }
  // The peer's message ended (END_STREAM received).
  bool remoteComplete() const { return remote_end_; }

 protected:
  template <class, class>
  friend struct SessionBase;

  void clearState() {
    callbacks_ = nullptr;
    id_ = -1;
    head_.clear();
    trailers_.clear();
    send_.clear();
    unconsumed_ = 0;
    wire_bytes_ = 0;
    block_bytes_ = 0;
    block_fields_ = 0;
    rst_code_ = 0;
    local_end_ = remote_end_ = closed_ = released_ = remote_rst_ = overflow_ = active_ = false;
  }

  Session* session_ = nullptr;
  Callbacks* callbacks_ = nullptr;
  std::int32_t id_ = -1;
  // Open in nghttp2 (between addActive() and removeActive()). A flag, not
  // a place in a list: taking a stream out of a list moved another one
  // and wrote its index, a cache line of a stream not otherwise touched.
  bool active_ = false;
  Head head_;
  HeaderMap trailers_;
  SendBuffer send_;
  std::size_t unconsumed_ = 0;
  std::uint64_t wire_bytes_ = 0;
  std::size_t block_bytes_ = 0;  // header block in progress
  std::uint32_t block_fields_ = 0;
  std::uint32_t rst_code_ = 0;  // of the RST_STREAM received
  bool local_end_ = false;      // our message is fully encoded
  bool remote_end_ = false;
  bool closed_ = false;  // nghttp2 closed it (or it never opened)
  bool released_ = false;
  bool remote_rst_ = false;  // RST_STREAM received
  bool overflow_ = false;    // a header block over the limits
};

}  // namespace turnout::proxy::http2
