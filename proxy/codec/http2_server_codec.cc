#include "proxy/codec/http2_server_codec.h"

#include <charconv>
#include <string_view>
#include <utility>

#include "proxy/codec/http2_nghttp2.h"

namespace turnout::proxy::http2 {

// The session state behind a ServerCodec; ServerStreams point back to it.
struct ServerSession {
  ServerSession(ServerCallbacks& cb, const Http2Settings& s) : callbacks(cb), settings(s) {}
  ~ServerSession() {
    if (session != nullptr) nghttp2_session_del(session);
  }

  ServerStream* stream(std::int32_t id) const {
    return static_cast<ServerStream*>(nghttp2_session_get_stream_user_data(session, id));
  }
  void fail(std::string_view details) {
    if (status.ok()) {
      status = absl::InvalidArgumentError(absl::string_view(details.data(), details.size()));
    }
  }
  void removeActive(ServerStream* s) {
    ServerStream* last = active.back();
    active[s->active_index_] = last;
    last->active_index_ = s->active_index_;
    active.pop_back();
  }
  void recycle(ServerStream* s) {
    s->clear();
    free.push_back(s);
  }
  void closeStream(ServerStream* s, StreamResetReason reason) {
    s->closed_ = true;
    if (s->released_) {
      recycle(s);
      return;
    }
    RequestDecoderCallbacks* cb = std::exchange(s->callbacks_, nullptr);
    if (cb != nullptr && (!s->remote_end_ || !s->local_end_sent_)) cb->onReset(reason);
  }

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user);
  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user);
  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user);
  static int onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static ssize_t readBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void*);
  static nghttp2_session_callbacks* sessionCallbacks();

  ServerCallbacks& callbacks;
  Http2Settings settings;
  nghttp2_session* session = nullptr;
  PeerSettings peer;
  absl::Status status;
  bool goaway_requested = false;
  bool eof = false;
  std::vector<std::unique_ptr<ServerStream>> pool;
  std::vector<ServerStream*> free;
  std::vector<ServerStream*> active;
  std::vector<nghttp2_nv> nv;
  std::string scratch_status;
  std::string scratch_length;
};

namespace {

ServerSession& self(void* user) { return *static_cast<ServerSession*>(user); }

}  // namespace

int ServerSession::onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame,
                                  void* user) {
  ServerSession& ss = self(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    if (ServerStream* s = ss.stream(frame->hd.stream_id)) {
      s->block_bytes_ = 0;
      s->block_fields_ = 0;
    }
    return 0;
  }
  if (ss.free.empty()) {
    ss.pool.push_back(std::make_unique<ServerStream>());
    ss.free.push_back(ss.pool.back().get());
  }
  ServerStream* s = ss.free.back();
  ss.free.pop_back();
  s->session_ = &ss;
  s->id_ = frame->hd.stream_id;
  nghttp2_session_set_stream_user_data(session, s->id_, s);
  s->active_index_ = ss.active.size();
  ss.active.push_back(s);
  RequestDecoderCallbacks& cb = ss.callbacks.newStream(ServerStreamPtr(s));
  if (!s->released_) s->callbacks_ = &cb;
  return 0;
}

int ServerSession::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                            size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                            void* user) {
  ServerSession& ss = self(user);
  ServerStream* s = ss.stream(frame->hd.stream_id);
  if (s == nullptr || s->callbacks_ == nullptr) return 0;
  s->block_bytes_ += namelen + valuelen;
  if (++s->block_fields_ > ss.settings.max_headers_count ||
      s->block_bytes_ > static_cast<size_t>(ss.settings.max_headers_kb) * 1024) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // nghttp2 resets the stream
  }
  const std::string_view n = view(name, namelen);
  const std::string_view v = view(value, valuelen);
  if (n.empty()) return 0;  // nghttp2 rejects empty names before this; stay safe
  if (s->request_headers_) {
    if (n.front() != ':') s->trailers_.addLowercase(n, v);
    return 0;
  }
  RequestHead& h = s->head_;
  if (n.front() != ':') {
    h.headers.addLowercase(n, v);
  } else if (n == ":method") {
    h.method.assign(v);
  } else if (n == ":path") {
    h.path.assign(v);
  } else if (n == ":authority") {
    h.authority.assign(v);
  } else if (n == ":scheme") {
    h.scheme.assign(v);
  }
  return 0;
}

int ServerSession::onDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                               const uint8_t* data, size_t len, void* user) {
  ServerStream* s = self(user).stream(stream_id);
  if (s == nullptr) return 0;
  if (s->callbacks_ == nullptr) {
    nghttp2_session_consume(session, stream_id, len);
    return 0;
  }
  s->unconsumed_ += len;
  s->callbacks_->onData(std::span<const char>(reinterpret_cast<const char*>(data), len), false);
  return 0;
}

int ServerSession::onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  ServerSession& ss = self(user);
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
        ss.peer.max_concurrent_streams =
            nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        ss.peer.initial_window_size =
            nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
        ss.peer.max_frame_size =
            nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_FRAME_SIZE);
        ss.peer.max_header_list_size =
            nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE);
        ss.callbacks.onSettings(ss.peer);
      }
      return 0;
    case NGHTTP2_GOAWAY:
      ss.callbacks.onGoAway(frame->goaway.last_stream_id, frame->goaway.error_code);
      return 0;
    default:
      break;
  }
  if (frame->hd.stream_id == 0) return 0;
  ServerStream* s = ss.stream(frame->hd.stream_id);
  if (s == nullptr) return 0;
  s->wire_bytes_ += frame->hd.length + 9;
  const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
                          (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS);
  if (end_stream) s->remote_end_ = true;
  if (frame->hd.type == NGHTTP2_RST_STREAM) {
    s->remote_rst_ = true;
    return 0;
  }
  if (s->callbacks_ == nullptr) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS) {
    if (s->request_headers_) {  // trailers (nghttp2 checks they end the stream)
      s->callbacks_->onTrailers(s->trailers_);
      if (s->callbacks_ != nullptr) s->callbacks_->onMessageComplete();
      return 0;
    }
    s->request_headers_ = true;
    RequestHead& h = s->head_;
    if (h.authority.empty()) h.authority.assign(h.headers.get("host"));
    h.version_minor = 1;
    h.keep_alive = true;
    const std::string_view cl = h.headers.get("content-length");
    if (cl.data() != nullptr) {
      std::uint64_t len = 0;
      const auto r = std::from_chars(cl.data(), cl.data() + cl.size(), len);
      if (r.ec == std::errc() && r.ptr == cl.data() + cl.size()) h.content_length = len;
    }
    s->callbacks_->onMessageBegin();
    if (s->callbacks_ != nullptr) s->callbacks_->onHeaders(h, end_stream);
    if (end_stream && s->callbacks_ != nullptr) s->callbacks_->onMessageComplete();
  } else if (frame->hd.type == NGHTTP2_DATA && end_stream) {
    s->callbacks_->onData({}, true);
    if (s->callbacks_ != nullptr) s->callbacks_->onMessageComplete();
  }
  return 0;
}

int ServerSession::onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  ServerSession& ss = self(user);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    if (!ss.goaway_requested && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
      ss.fail("http2.codec_error");
    }
    return 0;
  }
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    if (ServerStream* s = ss.stream(frame->hd.stream_id)) s->local_end_sent_ = true;
  }
  return 0;
}

int ServerSession::onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user) {
  ServerSession& ss = self(user);
  ServerStream* s = ss.stream(stream_id);
  if (s == nullptr) return 0;
  ss.removeActive(s);
  ss.closeStream(
      s, s->remote_rst_ ? StreamResetReason::kRemoteReset : StreamResetReason::kProtocolError);
  return 0;
}

ssize_t ServerSession::readBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                                size_t length, uint32_t* flags, nghttp2_data_source* source,
                                void*) {
  auto* s = static_cast<ServerStream*>(source->ptr);
  return SendBuffer::read(session, stream_id, buf, length, flags, &s->send_);
}

nghttp2_session_callbacks* ServerSession::sessionCallbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c = nullptr;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(c, onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, onDataChunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, onFrameRecv);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, onFrameSend);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, onStreamClose);
    return c;
  }();
  return cbs;
}

// --- ServerStream -------------------------------------------------------------------

void ServerStreamReleaser::operator()(ServerStream* stream) const { stream->release(); }

absl::Status ServerStream::encodeHeaders(const ResponseHead& head, bool end_stream) {
  ServerSession& ss = *session_;
  if (response_started_ || released_ || closed_ || ss.eof) {
    return absl::FailedPreconditionError("http2.stream_closed");
  }
  const bool interim = head.status >= 100 && head.status < 200 && head.status != 101;
  ss.scratch_status = std::to_string(head.status);
  std::vector<nghttp2_nv>& nv = ss.nv;
  nv.clear();
  nv.push_back(field(":status", ss.scratch_status));
  appendFields(head.headers, nv);
  if (!interim && head.content_length && !head.headers.has("content-length")) {
    ss.scratch_length = std::to_string(*head.content_length);
    nv.push_back(field("content-length", ss.scratch_length));
  }
  int rv = 0;
  if (interim) {
    rv = nghttp2_submit_headers(ss.session, NGHTTP2_FLAG_NONE, id_, nullptr, nv.data(), nv.size(),
                                nullptr);
  } else {
    nghttp2_data_provider body{};
    body.source.ptr = this;
    body.read_callback = ServerSession::readBody;
    rv = nghttp2_submit_response(ss.session, id_, nv.data(), nv.size(),
                                 end_stream ? nullptr : &body);
    if (rv == 0) {
      response_started_ = true;
      local_end_ = end_stream;
    }
  }
  return rv == 0 ? absl::OkStatus() : absl::UnavailableError(nghttp2_strerror(rv));
}

void ServerStream::encodeData(std::span<const char> data, bool end_stream) {
  if (!response_started_ || local_end_ || closed_ || released_) return;
  local_end_ = end_stream;
  if (send_.append(data, end_stream)) nghttp2_session_resume_data(session_->session, id_);
}

void ServerStream::encodeTrailers(const HeaderMap& trailers) {
  if (!response_started_ || local_end_ || closed_ || released_) return;
  local_end_ = true;
  if (send_.end(trailers)) nghttp2_session_resume_data(session_->session, id_);
}

void ServerStream::resetStream(StreamResetReason reason) {
  callbacks_ = nullptr;
  if (closed_ || session_->eof) return;
  std::uint32_t code = NGHTTP2_CANCEL;
  if (reason == StreamResetReason::kLocalRefusedStreamReset) code = NGHTTP2_REFUSED_STREAM;
  if (reason == StreamResetReason::kProtocolError) code = NGHTTP2_PROTOCOL_ERROR;
  nghttp2_submit_rst_stream(session_->session, NGHTTP2_FLAG_NONE, id_, code);
}

void ServerStream::consumed(std::size_t n) {
  n = std::min(n, unconsumed_);
  if (n == 0) return;
  unconsumed_ -= n;
  if (!session_->eof) nghttp2_session_consume(session_->session, id_, n);
}

void ServerStream::release() {
  if (released_) return;
  consumed(unconsumed_);
  released_ = true;
  callbacks_ = nullptr;
  if (closed_) {
    session_->recycle(this);
    return;
  }
  if (session_->eof) return;  // onEof() recycles it
  if (!local_end_) {
    nghttp2_submit_rst_stream(session_->session, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
  } else if (!remote_end_) {
    // The response is complete: stop the client's upload (RFC 9113 §8.1).
    nghttp2_submit_rst_stream(session_->session, NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
  }
}

void ServerStream::clear() {
  callbacks_ = nullptr;
  id_ = -1;
  head_.clear();
  trailers_.clear();
  send_.clear();
  unconsumed_ = 0;
  wire_bytes_ = 0;
  block_bytes_ = 0;
  block_fields_ = 0;
  request_headers_ = response_started_ = local_end_ = local_end_sent_ = false;
  remote_end_ = closed_ = released_ = remote_rst_ = false;
}

// --- ServerCodec --------------------------------------------------------------------

ServerCodec::ServerCodec(ServerCallbacks& callbacks, const Http2Settings& settings)
    : s_(std::make_unique<ServerSession>(callbacks, settings)) {
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);
  const int rv = nghttp2_session_server_new2(&s_->session, ServerSession::sessionCallbacks(),
                                             s_.get(), option);
  nghttp2_option_del(option);
  if (rv != 0) {
    s_->session = nullptr;
    s_->fail(nghttp2Details(rv));
    return;
  }
  submitSettings(s_->session, settings, /*client=*/false);
}

ServerCodec::~ServerCodec() = default;

absl::Status ServerCodec::dispatch(std::span<const char> bytes) {
  if (!s_->status.ok()) return s_->status;
  if (s_->eof) return absl::FailedPreconditionError("http2.closed");
  const ssize_t rv = nghttp2_session_mem_recv(
      s_->session, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (rv < 0) s_->fail(nghttp2Details(rv));
  return s_->status;
}

absl::Status ServerCodec::drainOutput(std::string& out, std::size_t limit) {
  while (s_->session != nullptr && !s_->eof && out.size() < limit) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(s_->session, &data);
    if (n < 0) {
      s_->fail(nghttp2Details(n));
      break;
    }
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
  }
  return s_->status;
}

bool ServerCodec::wantsWrite() const {
  return s_->session != nullptr && !s_->eof && nghttp2_session_want_write(s_->session) != 0;
}

bool ServerCodec::wantsRead() const {
  return s_->session != nullptr && !s_->eof && nghttp2_session_want_read(s_->session) != 0;
}

void ServerCodec::onEof() {
  if (s_->eof) return;
  s_->eof = true;
  const StreamResetReason reason = s_->status.ok() ? StreamResetReason::kConnectionTermination
                                                   : StreamResetReason::kProtocolError;
  while (!s_->active.empty()) {
    ServerStream* s = s_->active.back();
    s_->active.pop_back();
    s_->closeStream(s, reason);
  }
}

void ServerCodec::goAway(std::uint32_t error_code) {
  if (s_->session == nullptr || s_->eof) return;
  s_->goaway_requested = true;
  nghttp2_submit_goaway(s_->session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(s_->session), error_code, nullptr,
                        0);
}

std::size_t ServerCodec::activeStreams() const { return s_->active.size(); }

const PeerSettings& ServerCodec::peerSettings() const { return s_->peer; }

absl::Status ServerCodec::status() const { return s_->status; }

}  // namespace turnout::proxy::http2
