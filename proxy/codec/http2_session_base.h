#pragma once

// The connection half that ClientSession and ServerSession share
// (docs/http2_codec.md): the nghttp2 session and its options, dispatch()
// and drainOutput(), the peer's SETTINGS, GOAWAY, the sticky error, EOF, the
// stream pool and active list, and the nghttp2 callbacks that do not depend
// on the side. Not a public interface: include it only from
// proxy/codec/http2_*.cc.
//
// SessionBase<Derived, Stream> is a CRTP base. Derived supplies:
//   `callbacks` (a ConnectionCallbacks or a class derived from it);
//   static sessionCallbacks() (newCallbacks() plus anything side-specific);
//   static onBeginHeaders, onFrameSend, onStreamClose (nghttp2 signatures);
//   static int onField(Stream*, name, value): one header field of a block,
//     within the limits, name not empty;
//   static void onStreamHeaders(Stream*, bool end_stream): a header block
//     completed on a stream whose callbacks are set.
// Stream has the state StreamState (http2_stream_state.h) declares and
// `bool exchangeComplete() const` (nothing left to reset on close), and
// befriends SessionBase.

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "proxy/codec/codec.h"
#include "proxy/codec/http2_codec.h"
#include "proxy/codec/http2_connection.h"
#include "proxy/codec/http2_nghttp2.h"
#include "proxy/codec/http2_send_buffer.h"

namespace turnout::proxy::http2 {

template <class Derived, class Stream>
struct SessionBase {
  SessionBase(const Http2Settings& s, const CodecStatsSink& sink) : settings(s), stats(sink) {
    // Envoy creates the http2.* stats with the first codec: writing the
    // group's first one lists them all (stats::StatSchema's lazy anchor).
    if (stats.shard != nullptr) stats.shard->inc(stats.ids.goaway_sent, 0);
  }
  ~SessionBase() {
    detachStats();
    if (session != nullptr) nghttp2_session_del(session);
  }
  SessionBase(const SessionBase&) = delete;
  SessionBase& operator=(const SessionBase&) = delete;

  static Derived& self(void* user) { return *static_cast<Derived*>(user); }

  // Creates the nghttp2 session for our side and queues our SETTINGS. Flow
  // control is the caller's (the streams' consumed()), so nghttp2 sends no
  // WINDOW_UPDATE of its own. A failure is the sticky error.
  void open(bool client) {
    nghttp2_option* option = nullptr;
    nghttp2_option_new(&option);
    nghttp2_option_set_no_auto_window_update(option, 1);
    nghttp2_option_set_max_outbound_ack(option, settings.max_outbound_control_frames);
    // nghttp2 otherwise keeps closed streams for the RFC 7540 priority tree,
    // up to max_concurrent_streams of them (2^31 - 1 by Envoy's default): a
    // long-lived connection's memory then grows with every stream it ever
    // carried. Envoy sets it too; turnout ignores priorities.
    nghttp2_option_set_no_closed_streams(option, 1);
    Derived* user = static_cast<Derived*>(this);
    const int rv = client ? nghttp2_session_client_new3(&session, Derived::sessionCallbacks(), user,
                                                        option, sessionMem())
                          : nghttp2_session_server_new3(&session, Derived::sessionCallbacks(), user,
                                                        option, sessionMem());
    nghttp2_option_del(option);
    if (rv != 0) {
      session = nullptr;
      fail(nghttp2Details(rv));
      return;
    }
    submitSettings(session, settings, client);
  }

  // The stream of `id`, through a one-entry cache: a header block calls
  // back once per field and a DATA frame twice, each a lookup in nghttp2's
  // stream map (about seven per proxied request, and their cache misses).
  // Ids are never reused in a session and a stream's user data is set once,
  // at its start; the entry goes when its stream closes or is recycled.
  Stream* stream(std::int32_t id) const {
    if (id == cached_id_ && id != 0) return cached_stream_;
    Stream* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
    if (s != nullptr) {
      cached_id_ = id;
      cached_stream_ = s;
    }
    return s;
  }
  void forgetCached(const Stream* s) {
    if (cached_stream_ == s) {
      cached_id_ = 0;
      cached_stream_ = nullptr;
    }
  }
  void fail(std::string_view details) {
    if (status.ok()) {
      status = absl::InvalidArgumentError(absl::string_view(details.data(), details.size()));
    }
  }

  // --- stats (CodecStatsSink) --------------------------------------------------------

  void count(stats::StatId id) {
    if (stats.shard != nullptr) stats.shard->inc(id);
  }
  void gauge(stats::StatId id, std::int64_t delta) {
    if (stats.shard != nullptr && delta != 0) stats.shard->add(id, delta);
  }
  // Takes back this codec's gauge contributions and stops counting.
  void detachStats() {
    gauge(stats.ids.streams_active, -static_cast<std::int64_t>(active_count));
    gauge(stats.ids.pending_send_bytes, -static_cast<std::int64_t>(pending_send_bytes));
    stats.shard = nullptr;
  }
  void pendingSend(std::int64_t delta) {
    pending_send_bytes = static_cast<std::uint64_t>(static_cast<std::int64_t>(pending_send_bytes) + delta);
    gauge(stats.ids.pending_send_bytes, delta);
  }
  // A flood from the peer: counted, GOAWAY(ENHANCE_YOUR_CALM) queued (the
  // session ends once it is sent), and the sticky error. Returns what an
  // nghttp2 callback returns to stop processing input.
  int flood(stats::StatId id, std::string_view details) {
    count(id);
    fail(details);
    nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  // A frame we sent (both sides' onFrameSend).
  void frameSent(const nghttp2_frame* frame) {
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
      count(stats.ids.tx_reset);
    } else if (frame->hd.type == NGHTTP2_DATA) {
      ++outbound_data_frames;
    }
  }

  // --- streams -----------------------------------------------------------------------

  // A stream from the pool, bound to this session, otherwise clear.
  Stream* acquire() {
    if (free.empty()) {
      pool.push_back(std::make_unique<Stream>());
      free.push_back(pool.back().get());
    }
    Stream* s = free.back();
    free.pop_back();
    s->session_ = static_cast<Derived*>(this);
    return s;
  }
  void addActive(Stream* s) {
    s->active_ = true;
    ++active_count;
    ++opened_streams;
    gauge(stats.ids.streams_active, 1);
  }
  void removeActive(Stream* s) {
    s->active_ = false;
    --active_count;
    gauge(stats.ids.streams_active, -1);
  }
  void recycle(Stream* s) {
    forgetCached(s);
    pendingSend(-static_cast<std::int64_t>(s->send_.size()));
    s->clear();
    free.push_back(s);
  }
  // The stream ended in nghttp2 (or with the connection): reports a reset if
  // its exchange had not completed, recycles it if the caller let it go.
  void closeStream(Stream* s, StreamResetReason reason) {
    forgetCached(s);
    s->closed_ = true;
    if (s->released_) {
      recycle(s);
      return;
    }
    auto* cb = std::exchange(s->callbacks_, nullptr);
    if (cb != nullptr && !s->exchangeComplete()) cb->onReset(reason);  // may release s
  }

  // What the streams' encoders share. Body bytes (copied) and trailers are
  // queued only once the stream's head went out (the caller checks) and
  // until its message ended.
  static void queueData(Stream* s, std::span<const char> data, bool end_stream) {
    if (s->local_end_ || s->closed_ || s->released_) return;
    s->local_end_ = end_stream;
    s->session_->pendingSend(static_cast<std::int64_t>(data.size()));
    if (s->send_.append(data, end_stream)) {
      nghttp2_session_resume_data(s->session_->session, s->id_);
    }
  }
  static void queueTrailers(Stream* s, const HeaderMap& trailers) {
    if (s->local_end_ || s->closed_ || s->released_) return;
    s->local_end_ = true;
    if (s->send_.end(trailers)) nghttp2_session_resume_data(s->session_->session, s->id_);
  }
  // RST_STREAM: CANCEL for kLocalReset, REFUSED_STREAM for
  // kLocalRefusedStreamReset, PROTOCOL_ERROR for kProtocolError.
  static void submitReset(Stream* s, StreamResetReason reason) {
    std::uint32_t code = NGHTTP2_CANCEL;
    if (reason == StreamResetReason::kLocalRefusedStreamReset) code = NGHTTP2_REFUSED_STREAM;
    if (reason == StreamResetReason::kProtocolError) code = NGHTTP2_PROTOCOL_ERROR;
    nghttp2_submit_rst_stream(s->session_->session, NGHTTP2_FLAG_NONE, s->id_, code);
  }
  // Up to `n` more delivered bytes were consumed; they are acknowledged to
  // the peer when `acknowledge` (the session can still send).
  static void consume(Stream* s, std::size_t n, bool acknowledge) {
    n = std::min(n, s->unconsumed_);
    if (n == 0) return;
    s->unconsumed_ -= n;
    if (acknowledge) nghttp2_session_consume(s->session_->session, s->id_, n);
  }

  // --- the connection (what the codecs' public methods do) ---------------------------

  absl::Status dispatch(std::span<const char> bytes) {
    if (!status.ok()) return status;
    if (eof) return absl::FailedPreconditionError("http2.closed");
    const ssize_t rv = nghttp2_session_mem_recv(
        session, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    if (rv == NGHTTP2_ERR_FLOODED) count(stats.ids.outbound_control_flood);
    if (rv < 0) {
      fail(nghttp2Details(rv));
    } else if (nghttp2_session_get_outbound_queue_size(session) > settings.max_outbound_frames) {
      // The peer makes us queue frames faster than it reads them.
      count(stats.ids.outbound_flood);
      fail("http2.outbound_flood");
      nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
    }
    return status;
  }

  absl::Status drainOutput(std::string& out, std::size_t limit) {
    while (session != nullptr && !eof && out.size() < limit) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session, &data);
      if (n < 0) {
        fail(nghttp2Details(n));
        break;
      }
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    return status;
  }

  bool wantsWrite() const {
    return session != nullptr && !eof && nghttp2_session_want_write(session) != 0;
  }
  bool wantsRead() const {
    return session != nullptr && !eof && nghttp2_session_want_read(session) != 0;
  }

  // Resets every stream still open: `reason_for(stream, reason)` picks its
  // reason from the connection's (kConnectionTermination, or kProtocolError
  // after a codec error). Callbacks may release streams (which recycles
  // them) but cannot start new ones, so the active list only shrinks.
  template <class ReasonFor>
  void onEof(ReasonFor reason_for) {
    if (eof) return;
    eof = true;
    const StreamResetReason reason = status.ok() ? StreamResetReason::kConnectionTermination
                                                 : StreamResetReason::kProtocolError;
    // The pool holds every stream this session made; none is added here.
    for (size_t i = 0; i < pool.size() && active_count > 0; ++i) {
      Stream* s = pool[i].get();
      if (!s->active_) continue;
      removeActive(s);
      closeStream(s, reason_for(*s, reason));
    }
  }

  // GOAWAY with the last stream id nghttp2 processed.
  void goAway(std::uint32_t error_code) {
    if (session == nullptr || eof) return;
    goaway_sent = true;
    goaway_requested = true;
    nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(session), error_code, nullptr,
                          0);
  }

  // --- nghttp2 callbacks -------------------------------------------------------------

  // The callbacks both sides install; Derived adds its own to the result.
  static nghttp2_session_callbacks* newCallbacks() {
    nghttp2_session_callbacks* c = nullptr;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_frame_callback(c, onBeginFrame);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(c, onInvalidFrameRecv);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, Derived::onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(c, onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, onDataChunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, onFrameRecv);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, Derived::onFrameSend);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, Derived::onStreamClose);
    return c;
  }

  // Envoy's inbound flood limits (ProtocolConstraints), checked on every
  // frame header before its payload is read.
  static int onBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
    Derived& d = self(user);
    const Http2Settings& l = d.settings;
    switch (hd->type) {
      case NGHTTP2_DATA:
      case NGHTTP2_HEADERS:
      case NGHTTP2_CONTINUATION:
        if (hd->length == 0 && (hd->flags & NGHTTP2_FLAG_END_STREAM) == 0) {
          if (++d.empty_frames_in_a_row > l.max_consecutive_inbound_frames_with_empty_payload) {
            return d.flood(d.stats.ids.inbound_empty_frames_flood,
                           "http2.inbound_empty_frames_flood");
          }
        } else {
          d.empty_frames_in_a_row = 0;
        }
        break;
      case NGHTTP2_PRIORITY:
        if (++d.inbound_priority_frames >
            std::uint64_t{l.max_inbound_priority_frames_per_stream} * (1 + d.opened_streams)) {
          return d.flood(d.stats.ids.inbound_priority_frames_flood,
                         "http2.inbound_priority_frames_flood");
        }
        break;
      case NGHTTP2_WINDOW_UPDATE:
        if (++d.inbound_window_update_frames >
            5 + 2 * (d.opened_streams +
                     std::uint64_t{l.max_inbound_window_update_frames_per_data_frame_sent} *
                         d.outbound_data_frames)) {
          return d.flood(d.stats.ids.inbound_window_update_frames_flood,
                         "http2.inbound_window_update_frames_flood");
        }
        break;
      default:
        break;
    }
    return 0;
  }

  // A frame nghttp2 rejected (it resets the stream or ends the session).
  static int onInvalidFrameRecv(nghttp2_session*, const nghttp2_frame*, int lib_error_code,
                                void* user) {
    Derived& d = self(user);
    if (lib_error_code == NGHTTP2_ERR_HTTP_HEADER || lib_error_code == NGHTTP2_ERR_HTTP_MESSAGING) {
      d.count(d.stats.ids.rx_messaging_error);
    } else if (lib_error_code == NGHTTP2_ERR_REFUSED_STREAM) {
      d.count(d.stats.ids.stream_refused_errors);
    }
    return 0;
  }

  // A new header block on a stream we know starts its limits afresh.
  static void beginBlock(Stream* s) {
    s->block_bytes_ = 0;
    s->block_fields_ = 0;
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user) {
    Derived& d = self(user);
    Stream* s = d.stream(frame->hd.stream_id);
    if (s == nullptr) {
      d.count(d.stats.ids.headers_cb_no_stream);
      return 0;
    }
    if (s->callbacks_ == nullptr) return 0;
    s->block_bytes_ += namelen + valuelen;
    if (++s->block_fields_ > d.settings.max_headers_count ||
        s->block_bytes_ > static_cast<size_t>(d.settings.max_headers_kb) * 1024) {
      if (!s->overflow_) d.count(d.stats.ids.header_overflow);
      s->overflow_ = true;
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // nghttp2 resets the stream
    }
    const std::string_view n = view(name, namelen);
    if (n.empty()) return 0;  // nghttp2 rejects empty names before this; stay safe
    return Derived::onField(s, n, view(value, valuelen), (flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0);
  }

  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                         const uint8_t* data, size_t len, void* user) {
    Stream* s = self(user).stream(stream_id);
    if (s == nullptr) return 0;
    if (s->callbacks_ == nullptr) {  // reset or released: nobody will consume it
      nghttp2_session_consume(session, stream_id, len);
      return 0;
    }
    s->unconsumed_ += len;
    s->callbacks_->onData(std::span<const char>(reinterpret_cast<const char*>(data), len), false);
    return 0;
  }

  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    Derived& d = self(user);
    switch (frame->hd.type) {
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
          d.peer.max_concurrent_streams =
              nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
          d.peer.initial_window_size =
              nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
          d.peer.max_frame_size =
              nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_FRAME_SIZE);
          d.peer.max_header_list_size =
              nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE);
          d.callbacks.onSettings(d.peer);
        }
        return 0;
      case NGHTTP2_RST_STREAM:
        d.count(d.stats.ids.rx_reset);
        break;
      case NGHTTP2_GOAWAY:
        d.goaway_received = true;
        d.goaway_last_stream_id = frame->goaway.last_stream_id;
        d.callbacks.onGoAway(frame->goaway.last_stream_id, frame->goaway.error_code);
        return 0;
      default:
        break;
    }
    if (frame->hd.stream_id == 0) return 0;
    Stream* s = d.stream(frame->hd.stream_id);
    if (s == nullptr) return 0;
    s->wire_bytes_ += frame->hd.length + 9;
    const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
                            (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS);
    if (end_stream) s->remote_end_ = true;
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
      s->remote_rst_ = true;
      s->rst_code_ = frame->rst_stream.error_code;
      return 0;
    }
    if (s->callbacks_ == nullptr) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      Derived::onStreamHeaders(s, end_stream);
    } else if (frame->hd.type == NGHTTP2_DATA && end_stream) {
      s->callbacks_->onData({}, true);
      if (s->callbacks_ != nullptr) s->callbacks_->onMessageComplete();
    }
    return 0;
  }

  // Our GOAWAY went out. One with an error that the caller did not ask for
  // is nghttp2 ending the session because the peer broke the protocol.
  void goAwaySent(const nghttp2_frame* frame) {
    goaway_sent = true;
    count(stats.ids.goaway_sent);
    if (!goaway_requested && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
      fail("http2.codec_error");
    }
  }

  static ssize_t readBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                          size_t length, uint32_t* flags, nghttp2_data_source* source,
                          void* user) {
    auto* s = static_cast<Stream*>(source->ptr);
    const std::size_t before = s->send_.size();
    const ssize_t n = SendBuffer::read(session, stream_id, buf, length, flags, &s->send_);
    // What left the buffer, also when the read then failed (a trailer that
    // could not be submitted): the gauge follows the buffer, not `n`.
    const std::size_t taken = before - s->send_.size();
    if (taken > 0) self(user).pendingSend(-static_cast<std::int64_t>(taken));
    return n;
  }

  Http2Settings settings;
  CodecStatsSink stats;
  nghttp2_session* session = nullptr;
  PeerSettings peer;
  absl::Status status;
  bool goaway_received = false;
  bool goaway_sent = false;
  bool goaway_requested = false;  // by goAway()
  bool eof = false;
  std::int32_t goaway_last_stream_id = 0;
  // Flood accounting (onBeginFrame) and the pending_send_bytes contribution.
  std::uint64_t opened_streams = 0;
  std::uint64_t outbound_data_frames = 0;
  std::uint64_t inbound_priority_frames = 0;
  std::uint64_t inbound_window_update_frames = 0;
  std::uint32_t empty_frames_in_a_row = 0;
  std::uint64_t pending_send_bytes = 0;
  std::vector<std::unique_ptr<Stream>> pool;
  std::vector<Stream*> free;
  std::size_t active_count = 0;  // streams open in nghttp2 (Stream::active_)
  std::vector<nghttp2_nv> nv;  // the header block being submitted
  NameSeeds name_seeds;        // of this session's HPACK encoder
  mutable std::int32_t cached_id_ = 0;  // stream(): the last id found, and its stream
  mutable Stream* cached_stream_ = nullptr;
};

}  // namespace turnout::proxy::http2

// --- Http2Connection (http2_connection.h), instantiated by each codec's .cc ----------

namespace turnout::proxy::http2 {

template <class Session>
Http2Connection<Session>::Http2Connection(std::unique_ptr<Session> session)
    : s_(std::move(session)) {}

template <class Session>
Http2Connection<Session>::~Http2Connection() = default;

template <class Session>
absl::Status Http2Connection<Session>::dispatch(std::span<const char> bytes) {
  return s_->dispatch(bytes);
}

template <class Session>
absl::Status Http2Connection<Session>::drainOutput(std::string& out, std::size_t limit) {
  return s_->drainOutput(out, limit);
}

template <class Session>
bool Http2Connection<Session>::wantsWrite() const {
  return s_->wantsWrite();
}

template <class Session>
bool Http2Connection<Session>::wantsRead() const {
  return s_->wantsRead();
}

template <class Session>
void Http2Connection<Session>::goAway(std::uint32_t error_code) {
  s_->goAway(error_code);
}

template <class Session>
std::size_t Http2Connection<Session>::activeStreams() const {
  return s_->active_count;
}

template <class Session>
const PeerSettings& Http2Connection<Session>::peerSettings() const {
  return s_->peer;
}

template <class Session>
absl::Status Http2Connection<Session>::status() const {
  return s_->status;
}

template <class Session>
void Http2Connection<Session>::detachStats() {
  s_->detachStats();
}

}  // namespace turnout::proxy::http2
