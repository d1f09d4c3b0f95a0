#include "proxy/codec/http2_client_codec.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>
#include <utility>

#include "proxy/codec/http2_nghttp2.h"

namespace turnout::proxy::http2 {

// The session state behind a ClientCodec; ClientStreams point back to it.
struct ClientSession {
  ClientSession(ConnectionCallbacks& cb, const Http2Settings& s) : callbacks(cb), settings(s) {}
  ~ClientSession() {
    if (session != nullptr) nghttp2_session_del(session);
  }

  ClientStream* stream(std::int32_t id) const {
    return static_cast<ClientStream*>(nghttp2_session_get_stream_user_data(session, id));
  }
  void fail(std::string_view details) {
    if (status.ok())
      status = absl::InvalidArgumentError(absl::string_view(details.data(), details.size()));
  }
  void addActive(ClientStream* s) {
    s->active_index_ = active.size();
    active.push_back(s);
  }
  void removeActive(ClientStream* s) {
    ClientStream* last = active.back();
    active[s->active_index_] = last;
    last->active_index_ = s->active_index_;
    active.pop_back();
  }
  void recycle(ClientStream* s) {
    s->clear();
    free.push_back(s);
  }
  // The stream ended in nghttp2 (or with the connection): reports a reset if
  // its response had not completed, recycles it if the caller let it go.
  void closeStream(ClientStream* s, StreamResetReason reason) {
    s->closed_ = true;
    if (s->released_) {
      recycle(s);
      return;
    }
    ResponseDecoderCallbacks* cb = std::exchange(s->callbacks_, nullptr);
    if (cb != nullptr && !s->remote_end_) cb->onReset(reason);  // may release s
  }

  // nghttp2 callbacks (ClientStream's friend, so they reach its state).
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user);
  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user);
  static void onStreamHeaders(ClientStream* s, bool end_stream);
  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user);
  static int onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int onFrameNotSend(nghttp2_session*, const nghttp2_frame* frame, int, void* user);
  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static ssize_t readBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void*);
  static nghttp2_session_callbacks* sessionCallbacks();

  ConnectionCallbacks& callbacks;
  Http2Settings settings;
  nghttp2_session* session = nullptr;
  PeerSettings peer;
  absl::Status status;
  bool goaway_received = false;
  bool goaway_sent = false;
  bool goaway_requested = false;  // by goAway()
  bool eof = false;
  std::int32_t goaway_last_stream_id = 0;
  std::vector<std::unique_ptr<ClientStream>> pool;
  std::vector<ClientStream*> free;
  std::vector<ClientStream*> active;
  std::vector<nghttp2_nv> nv;
  std::string content_length;
};

namespace {

ClientSession& self(void* user) { return *static_cast<ClientSession*>(user); }

}  // namespace

int ClientSession::onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  ClientStream* s = self(user).stream(frame->hd.stream_id);
  if (s == nullptr) return 0;
  s->block_bytes_ = 0;
  s->block_fields_ = 0;
  return 0;
}

int ClientSession::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                            size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                            void* user) {
  ClientSession& cs = self(user);
  ClientStream* s = cs.stream(frame->hd.stream_id);
  if (s == nullptr || s->callbacks_ == nullptr) return 0;
  s->block_bytes_ += namelen + valuelen;
  if (++s->block_fields_ > cs.settings.max_headers_count ||
      s->block_bytes_ > static_cast<size_t>(cs.settings.max_headers_kb) * 1024) {
    s->overflow_ = true;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // nghttp2 resets the stream
  }
  const std::string_view n = view(name, namelen);
  const std::string_view v = view(value, valuelen);
  if (n.empty()) return 0;  // nghttp2 rejects empty names before this; stay safe
  if (s->final_headers_) {
    if (n.front() != ':') s->trailers_.addLowercase(n, v);
  } else if (n == ":status") {
    s->head_.headers.clear();  // a new head (after 1xx) starts here
    std::uint16_t status = 0;
    std::from_chars(v.data(), v.data() + v.size(), status);
    // nghttp2 checks for three digits only: "003" would pass as a final head.
    if (status < 100) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    s->head_.status = status;
  } else if (n.front() != ':') {
    s->head_.headers.addLowercase(n, v);
  }
  return 0;
}

int ClientSession::onDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                               const uint8_t* data, size_t len, void* user) {
  ClientStream* s = self(user).stream(stream_id);
  if (s == nullptr) return 0;
  if (s->callbacks_ == nullptr) {  // reset or released: nobody will consume it
    nghttp2_session_consume(session, stream_id, len);
    return 0;
  }
  s->unconsumed_ += len;
  s->callbacks_->onData(std::span<const char>(reinterpret_cast<const char*>(data), len), false);
  return 0;
}

void ClientSession::onStreamHeaders(ClientStream* s, bool end_stream) {
  ResponseDecoderCallbacks* cb = s->callbacks_;
  if (s->final_headers_) {  // trailers (nghttp2 checks they end the stream)
    cb->onTrailers(s->trailers_);
    if (s->callbacks_ != nullptr) s->callbacks_->onMessageComplete();
    return;
  }
  ResponseHead& h = s->head_;
  if (h.status >= 100 && h.status < 200) {
    cb->onInformational(h);
    return;
  }
  s->final_headers_ = true;
  h.version_minor = 1;
  h.keep_alive = true;
  h.chunked = false;
  h.content_length.reset();
  const std::string_view cl = h.headers.get("content-length");
  if (cl.data() != nullptr) {
    std::uint64_t n = 0;
    const auto r = std::from_chars(cl.data(), cl.data() + cl.size(), n);
    if (r.ec == std::errc() && r.ptr == cl.data() + cl.size()) h.content_length = n;
  }
  cb->onMessageBegin();
  if (s->callbacks_ != nullptr) s->callbacks_->onHeaders(h, end_stream);
  if (end_stream && s->callbacks_ != nullptr) s->callbacks_->onMessageComplete();
}

int ClientSession::onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  ClientSession& cs = self(user);
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
        cs.peer.max_concurrent_streams =
            nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        cs.peer.initial_window_size =
            nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
        cs.peer.max_frame_size =
            nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_FRAME_SIZE);
        cs.peer.max_header_list_size =
            nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE);
        cs.callbacks.onSettings(cs.peer);
      }
      return 0;
    case NGHTTP2_GOAWAY:
      cs.goaway_received = true;
      cs.goaway_last_stream_id = frame->goaway.last_stream_id;
      cs.callbacks.onGoAway(frame->goaway.last_stream_id, frame->goaway.error_code);
      return 0;
    default:
      break;
  }
  if (frame->hd.stream_id == 0) return 0;
  ClientStream* s = cs.stream(frame->hd.stream_id);
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
    onStreamHeaders(s, end_stream);
  } else if (frame->hd.type == NGHTTP2_DATA && end_stream) {
    s->callbacks_->onData({}, true);
    if (s->callbacks_ != nullptr) s->callbacks_->onMessageComplete();
  }
  return 0;
}

int ClientSession::onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  ClientSession& cs = self(user);
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (ClientStream* s = cs.stream(frame->hd.stream_id)) s->request_sent_ = true;
  } else if (frame->hd.type == NGHTTP2_GOAWAY) {
    cs.goaway_sent = true;
    // A GOAWAY with an error that the caller did not ask for is nghttp2
    // ending the session because the peer broke the protocol.
    if (!cs.goaway_requested && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
      cs.fail("http2.codec_error");
    }
  }
  return 0;
}

int ClientSession::onFrameNotSend(nghttp2_session*, const nghttp2_frame* frame, int, void* user) {
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (ClientStream* s = self(user).stream(frame->hd.stream_id)) s->not_sent_ = true;
  }
  return 0;
}

int ClientSession::onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                                 void* user) {
  ClientSession& cs = self(user);
  ClientStream* s = cs.stream(stream_id);
  if (s == nullptr) return 0;
  cs.removeActive(s);
  StreamResetReason reason = StreamResetReason::kProtocolError;
  if (s->not_sent_) {
    reason = cs.goaway_received ? StreamResetReason::kRemoteRefusedStreamReset
                                : StreamResetReason::kLocalRefusedStreamReset;
  } else if (error_code == NGHTTP2_REFUSED_STREAM && (s->remote_rst_ || cs.goaway_received)) {
    reason = StreamResetReason::kRemoteRefusedStreamReset;
  } else if (s->remote_rst_) {
    reason = StreamResetReason::kRemoteReset;
  }
  cs.closeStream(s, reason);
  return 0;
}

ssize_t ClientSession::readBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                                size_t length, uint32_t* flags, nghttp2_data_source* source,
                                void*) {
  auto* s = static_cast<ClientStream*>(source->ptr);
  return SendBuffer::read(session, stream_id, buf, length, flags, &s->send_);
}

nghttp2_session_callbacks* ClientSession::sessionCallbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c = nullptr;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(c, onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, onDataChunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, onFrameRecv);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, onFrameSend);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(c, onFrameNotSend);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, onStreamClose);
    return c;
  }();
  return cbs;
}

// --- ClientStream -------------------------------------------------------------------

absl::Status ClientStream::encodeHeaders(const RequestHead& head, bool end_stream) {
  ClientSession& cs = *session_;
  if (headers_sent_ || released_)
    return absl::FailedPreconditionError("http2.headers_already_sent");
  if (cs.session == nullptr || cs.eof || cs.goaway_received || cs.goaway_sent || !cs.status.ok()) {
    return absl::UnavailableError("http2.connection_closing");
  }
  std::vector<nghttp2_nv>& nv = cs.nv;
  nv.clear();
  nv.push_back(field(":method", head.method));
  const std::string_view authority =
      head.authority.empty() ? head.headers.get("host") : std::string_view(head.authority);
  if (head.method == "CONNECT") {
    nv.push_back(field(":authority", authority));
  } else {
    nv.push_back(field(":scheme", head.scheme.empty() ? std::string_view("http") : head.scheme));
    if (!authority.empty()) nv.push_back(field(":authority", authority));
    nv.push_back(field(":path", head.path.empty() ? std::string_view("/") : head.path));
  }
  appendFields(head.headers, nv);
  if (head.content_length && !head.headers.has("content-length")) {
    cs.content_length = std::to_string(*head.content_length);
    nv.push_back(field("content-length", cs.content_length));
  }
  nghttp2_data_provider body{};
  body.source.ptr = this;
  body.read_callback = ClientSession::readBody;
  const std::int32_t id = nghttp2_submit_request(cs.session, nullptr, nv.data(), nv.size(),
                                                 end_stream ? nullptr : &body, this);
  if (id < 0) return absl::UnavailableError(nghttp2_strerror(id));
  id_ = id;
  headers_sent_ = true;
  local_end_ = end_stream;
  closed_ = false;
  cs.addActive(this);
  return absl::OkStatus();
}

void ClientStream::encodeData(std::span<const char> data, bool end_stream) {
  if (!headers_sent_ || local_end_ || closed_ || released_) return;
  local_end_ = end_stream;
  if (send_.append(data, end_stream)) nghttp2_session_resume_data(session_->session, id_);
}

void ClientStream::encodeTrailers(const HeaderMap& trailers) {
  if (!headers_sent_ || local_end_ || closed_ || released_) return;
  local_end_ = true;
  if (send_.end(trailers)) nghttp2_session_resume_data(session_->session, id_);
}

void ClientStream::resetStream(StreamResetReason reason) {
  callbacks_ = nullptr;
  if (id_ < 0 || closed_) return;
  std::uint32_t code = NGHTTP2_CANCEL;
  if (reason == StreamResetReason::kLocalRefusedStreamReset) code = NGHTTP2_REFUSED_STREAM;
  if (reason == StreamResetReason::kProtocolError) code = NGHTTP2_PROTOCOL_ERROR;
  nghttp2_submit_rst_stream(session_->session, NGHTTP2_FLAG_NONE, id_, code);
}

void ClientStream::consumed(std::size_t n) {
  n = std::min(n, unconsumed_);
  if (n == 0) return;
  unconsumed_ -= n;
  if (session_->session != nullptr) nghttp2_session_consume(session_->session, id_, n);
}

void ClientStream::release() {
  if (released_) return;
  consumed(unconsumed_);
  released_ = true;
  callbacks_ = nullptr;
  if (id_ < 0 || closed_) {
    session_->recycle(this);
    return;
  }
  // Open in nghttp2: cancel what is left; on_stream_close recycles it.
  if (!remote_end_ || !local_end_ || bufferedBytes() > 0) {
    nghttp2_submit_rst_stream(session_->session, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
  }
}

void ClientStream::clear() {
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
  headers_sent_ = local_end_ = false;
  final_headers_ = remote_end_ = closed_ = released_ = false;
  remote_rst_ = not_sent_ = overflow_ = request_sent_ = false;
}

// --- ClientCodec --------------------------------------------------------------------

ClientCodec::ClientCodec(ConnectionCallbacks& callbacks, const Http2Settings& settings)
    : s_(std::make_unique<ClientSession>(callbacks, settings)) {
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // Flow control is the caller's: see consumed().
  nghttp2_option_set_no_auto_window_update(option, 1);
  const int rv = nghttp2_session_client_new2(&s_->session, ClientSession::sessionCallbacks(),
                                             s_.get(), option);
  nghttp2_option_del(option);
  if (rv != 0) {
    s_->session = nullptr;
    s_->fail(nghttp2Details(rv));
    return;
  }
  submitSettings(s_->session, settings, /*client=*/true);
}

ClientCodec::~ClientCodec() = default;

absl::Status ClientCodec::dispatch(std::span<const char> bytes) {
  if (!s_->status.ok()) return s_->status;
  if (s_->eof) return absl::FailedPreconditionError("http2.closed");
  const ssize_t rv = nghttp2_session_mem_recv(
      s_->session, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (rv < 0) s_->fail(nghttp2Details(rv));
  return s_->status;
}

absl::Status ClientCodec::drainOutput(std::string& out, std::size_t limit) {
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

bool ClientCodec::wantsWrite() const {
  return s_->session != nullptr && !s_->eof && nghttp2_session_want_write(s_->session) != 0;
}

bool ClientCodec::wantsRead() const {
  return s_->session != nullptr && !s_->eof && nghttp2_session_want_read(s_->session) != 0;
}

void ClientCodec::onEof() {
  if (s_->eof) return;
  s_->eof = true;
  const StreamResetReason reason = s_->status.ok() ? StreamResetReason::kConnectionTermination
                                                   : StreamResetReason::kProtocolError;
  // Callbacks may release streams (which recycles them) but cannot start
  // new ones, so the active list only shrinks.
  while (!s_->active.empty()) {
    ClientStream* s = s_->active.back();
    s_->active.pop_back();
    s_->closeStream(s, s->request_sent_ ? reason : StreamResetReason::kLocalRefusedStreamReset);
  }
}

ClientStreamPtr ClientCodec::newStream(ResponseDecoderCallbacks& callbacks) {
  if (!acceptsStreams()) return nullptr;
  if (s_->free.empty()) {
    s_->pool.push_back(std::make_unique<ClientStream>());
    s_->free.push_back(s_->pool.back().get());
  }
  ClientStream* s = s_->free.back();
  s_->free.pop_back();
  s->session_ = s_.get();
  s->callbacks_ = &callbacks;
  return ClientStreamPtr(s);
}

bool ClientCodec::acceptsStreams() const {
  return s_->session != nullptr && !s_->eof && !s_->goaway_received && !s_->goaway_sent &&
         s_->status.ok();
}

void ClientCodec::goAway(std::uint32_t error_code) {
  if (s_->session == nullptr || s_->eof) return;
  s_->goaway_sent = true;
  s_->goaway_requested = true;
  nghttp2_submit_goaway(s_->session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(s_->session), error_code, nullptr,
                        0);
}

std::size_t ClientCodec::activeStreams() const { return s_->active.size(); }

const PeerSettings& ClientCodec::peerSettings() const { return s_->peer; }

absl::Status ClientCodec::status() const { return s_->status; }

}  // namespace turnout::proxy::http2
