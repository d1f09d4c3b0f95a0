#pragma once

// The outgoing body of one HTTP/2 stream, shared by the client and server
// codecs: bytes accepted by encodeData() wait here until the peer's windows
// let nghttp2 frame them, then the trailers (if any) end the stream.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "proxy/codec/header_map.h"

struct nghttp2_session;

namespace turnout::proxy::http2 {

struct SendBuffer {
  // Bytes not yet framed.
  std::size_t size() const { return buf.size() - off; }
  void clear();
  // Appends `data` and, with end_stream, ends the body. Returns true when
  // nghttp2 must be told to resume the stream (it was waiting for data).
  bool append(std::span<const char> data, bool end_stream);
  // Ends the body with `trailers` (none: just ends it). Same return.
  bool end(const HeaderMap& trailers);

  // An nghttp2_data_source_read_callback over a SendBuffer (source->ptr).
  static long read(nghttp2_session* session, std::int32_t stream_id, std::uint8_t* out,
                   std::size_t length, std::uint32_t* flags, void* source);

  std::string buf;
  std::size_t off = 0;
  HeaderMap trailers;
  bool ended = false;             // no more body will be appended
  bool trailers_pending = false;  // submit `trailers` when the bytes are out
  bool deferred = false;          // nghttp2 waits for nghttp2_session_resume_data
};

}  // namespace turnout::proxy::http2
