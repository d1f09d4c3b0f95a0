#include "proxy/codec/http2_send_buffer.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "proxy/codec/http2_nghttp2.h"

namespace turnout::proxy::http2 {

void SendBuffer::clear() {
  buf.clear();
  off = 0;
  trailers.clear();
  ended = trailers_pending = deferred = false;
}

bool SendBuffer::append(std::span<const char> data, bool end_stream) {
  buf.append(data.data(), data.size());
  ended = end_stream;
  if (deferred && (!data.empty() || end_stream)) {
    deferred = false;
    return true;
  }
  return false;
}

bool SendBuffer::end(const HeaderMap& t) {
  trailers = t;
  trailers_pending = !t.empty();
  ended = true;
  const bool resume = deferred;
  deferred = false;
  return resume;
}

long SendBuffer::read(nghttp2_session* session, std::int32_t stream_id, std::uint8_t* out,
                      std::size_t length, std::uint32_t* flags, void* source) {
  auto* b = static_cast<SendBuffer*>(source);
  const std::size_t avail = b->size();
  const std::size_t n = std::min(length, avail);
  if (n > 0) std::memcpy(out, b->buf.data() + b->off, n);
  b->off += n;
  if (b->off == b->buf.size()) {
    b->buf.clear();
    b->off = 0;
  } else if (b->off >= 64 * 1024 && b->off * 2 >= b->buf.size()) {
    b->buf.erase(0, b->off);
    b->off = 0;
  }
  if (n == avail) {
    if (b->ended) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (b->trailers_pending) {
        b->trailers_pending = false;
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        std::vector<nghttp2_nv> nv;
        nv.reserve(b->trailers.size());
        appendFields(b->trailers, nv, nullptr);
        if (nghttp2_submit_trailer(session, stream_id, nv.data(), nv.size()) != 0) {
          return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
      }
    } else if (n == 0) {
      b->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return static_cast<long>(n);
}

}  // namespace turnout::proxy::http2
