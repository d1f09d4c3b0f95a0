#include "proxy/codec/http2_server_codec.h"

#include <charconv>
#include <string_view>
#include <utility>

#include "proxy/codec/http2_nghttp2.h"
#include "proxy/codec/http2_session_base.h"

namespace turnout::proxy::http2 {

// The session state behind a ServerCodec; ServerStreams point back to it.
struct ServerSession : SessionBase<ServerSession, ServerStream> {
  ServerSession(ServerCallbacks& cb, const Http2Settings& s, const CodecStatsSink& sink)
      : SessionBase(s, sink), callbacks(cb) {}

  // nghttp2 callbacks (ServerStream's friend, so they reach its state); the
  // rest are SessionBase's.
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int onField(ServerStream* s, std::string_view n, std::string_view v, bool never_indexed);
  static void onStreamHeaders(ServerStream* s, bool end_stream);
  static int onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static nghttp2_session_callbacks* sessionCallbacks();

  ServerCallbacks& callbacks;
  std::string scratch_status;
  std::string scratch_length;
};

int ServerSession::onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame,
                                  void* user) {
  ServerSession& ss = self(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {  // trailers
    ss.count(ss.stats.ids.trailers);
    if (ServerStream* s = ss.stream(frame->hd.stream_id)) beginBlock(s);
    return 0;
  }
  ServerStream* s = ss.acquire();
  s->id_ = frame->hd.stream_id;
  nghttp2_session_set_stream_user_data(session, s->id_, s);
  ss.addActive(s);
  RequestDecoderCallbacks& cb = ss.callbacks.newStream(ServerStreamPtr(s));
  if (!s->released_) s->callbacks_ = &cb;
  return 0;
}

int ServerSession::onField(ServerStream* s, std::string_view n, std::string_view v,
                           bool never_indexed) {
  if (s->request_headers_) {
    if (n.front() != ':') s->trailers_.addLowercase(n, v, never_indexed);
    return 0;
  }
  RequestHead& h = s->head_;
  if (n.front() != ':') {
    h.headers.addLowercase(n, v, never_indexed);
  } else if (n == ":method") {
    h.method.assign(v);
  } else if (n == ":path") {
    h.path.assign(v);
  } else if (n == ":authority") {
    h.authority.assign(v);
  } else if (n == ":scheme") {
    h.scheme.assign(v);
  } else if (n == ":protocol") {
    // Extended CONNECT (RFC 8441); nghttp2 lets it through only with
    // SETTINGS_ENABLE_CONNECT_PROTOCOL sent, and only on a CONNECT. The
    // upgrade it asks for, as an HTTP/1.1 request would (Envoy's
    // transformUpgradeRequestFromH2toH1); "upgrade" is a connection-specific
    // field nghttp2 refuses from the client, so this is the only source.
    h.headers.addLowercase("upgrade", v);
    h.upgrade = true;
  }
  return 0;
}

void ServerSession::onStreamHeaders(ServerStream* s, bool end_stream) {
  if (s->request_headers_) {  // trailers (nghttp2 checks they end the stream)
    s->callbacks_->onTrailers(s->trailers_);
    if (s->callbacks_ != nullptr) s->callbacks_->onMessageComplete();
    return;
  }
  s->request_headers_ = true;
  RequestHead& h = s->head_;
  if (h.authority.empty()) h.authority.assign(h.headers.get("host"));
  h.version_minor = 1;
  h.keep_alive = true;
  if (h.upgrade) h.method = "GET";  // an extended CONNECT, as an HTTP/1.1 upgrade
  const std::string_view cl = h.headers.get("content-length");
  if (cl.data() != nullptr) {
    std::uint64_t len = 0;
    const auto r = std::from_chars(cl.data(), cl.data() + cl.size(), len);
    if (r.ec == std::errc() && r.ptr == cl.data() + cl.size()) h.content_length = len;
  }
  s->callbacks_->onMessageBegin();
  if (s->callbacks_ != nullptr) s->callbacks_->onHeaders(h, end_stream);
  if (end_stream && s->callbacks_ != nullptr) s->callbacks_->onMessageComplete();
}

int ServerSession::onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  ServerSession& ss = self(user);
  ss.frameSent(frame);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    ss.goAwaySent(frame);
    return 0;
  }
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    if (ServerStream* s = ss.stream(frame->hd.stream_id)) {
      s->local_end_sent_ = true;
      // Released with the request still open: release() left the
      // RST_STREAM(NO_ERROR) for now, after the response.
      if (s->released_ && !s->remote_end_ && !s->closed_) {
        nghttp2_submit_rst_stream(ss.session, NGHTTP2_FLAG_NONE, s->id_, NGHTTP2_NO_ERROR);
      }
    }
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

nghttp2_session_callbacks* ServerSession::sessionCallbacks() {
  static nghttp2_session_callbacks* cbs = newCallbacks();
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
  nv.push_back(literalNameField(":status", ss.scratch_status));
  ss.name_seeds.onBlock();
  appendFields(head.headers, nv, &ss.name_seeds);
  if (!interim && head.content_length && !head.headers.has("content-length")) {
    ss.scratch_length = std::to_string(*head.content_length);
    nv.push_back(literalNameField("content-length", ss.scratch_length));
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
  if (response_started_) ServerSession::queueData(this, data, end_stream);
}

void ServerStream::encodeTrailers(const HeaderMap& trailers) {
  if (response_started_) ServerSession::queueTrailers(this, trailers);
}

void ServerStream::resetStream(StreamResetReason reason) {
  callbacks_ = nullptr;
  if (!closed_ && !session_->eof) ServerSession::submitReset(this, reason);
}

void ServerStream::consumed(std::size_t n) {
  ServerSession::consume(this, n, !session_->eof);
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
  } else if (!remote_end_ && local_end_sent_) {
    // The response is complete: stop the client's upload (RFC 9113 §8.1).
    // Not before its END_STREAM went out (onFrameSend sends it then):
    // nghttp2 drops a stream's queued response HEADERS once a RST_STREAM
    // for it is submitted, and a headers-only reply (a 403, a 404) to a
    // request still sending was lost that way.
    nghttp2_submit_rst_stream(session_->session, NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
  }
}

void ServerStream::clear() {
  clearState();
  request_headers_ = response_started_ = local_end_sent_ = false;
}

// --- ServerCodec --------------------------------------------------------------------

template class Http2Connection<ServerSession>;

ServerCodec::ServerCodec(ServerCallbacks& callbacks, const Http2Settings& settings,
                         const CodecStatsSink& stats)
    : Http2Connection(std::make_unique<ServerSession>(callbacks, settings, stats)) {
  s_->open(/*client=*/false);
}

ServerCodec::~ServerCodec() = default;

void ServerCodec::onEof() {
  s_->onEof([](const ServerStream&, StreamResetReason reason) { return reason; });
}

}  // namespace turnout::proxy::http2
