#include "proxy/codec/http2_client_codec.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>
#include <utility>

#include "proxy/codec/http2_nghttp2.h"
#include "proxy/codec/http2_session_base.h"

namespace turnout::proxy::http2 {

// The session state behind a ClientCodec; ClientStreams point back to it.
struct ClientSession : SessionBase<ClientSession, ClientStream> {
  ClientSession(ConnectionCallbacks& cb, const Http2Settings& s, const CodecStatsSink& sink)
      : SessionBase(s, sink), callbacks(cb) {}

  // nghttp2 callbacks (ClientStream's friend, so they reach its state); the
  // rest are SessionBase's.
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int onField(ClientStream* s, std::string_view n, std::string_view v, bool never_indexed);
  static void onStreamHeaders(ClientStream* s, bool end_stream);
  static int onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int onFrameNotSend(nghttp2_session*, const nghttp2_frame* frame, int, void* user);
  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static nghttp2_session_callbacks* sessionCallbacks();

  ConnectionCallbacks& callbacks;
  std::string content_length;
};

int ClientSession::onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  if (ClientStream* s = self(user).stream(frame->hd.stream_id)) beginBlock(s);
  return 0;
}

int ClientSession::onField(ClientStream* s, std::string_view n, std::string_view v,
                           bool never_indexed) {
  if (s->final_headers_) {
    if (n.front() != ':') s->trailers_.addLowercase(n, v, never_indexed);
  } else if (n == ":status") {
    s->head_.headers.clear();  // a new head (after 1xx) starts here
    std::uint16_t status = 0;
    std::from_chars(v.data(), v.data() + v.size(), status);
    // nghttp2 checks for three digits only: "003" would pass as a final head.
    if (status < 100) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    s->head_.status = status;
  } else if (n.front() != ':') {
    s->head_.headers.addLowercase(n, v, never_indexed);
  }
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
  if (s->extended_connect_ && h.status >= 200 && h.status < 300) {
    // The tunnel is open: as the HTTP/1.1 upgrade it stands for, a 101
    // naming the protocol (Envoy's transformUpgradeResponseFromH2toH1).
    h.status = 101;
    h.headers.set("upgrade", s->upgrade_protocol_);
  }
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

int ClientSession::onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  ClientSession& cs = self(user);
  cs.frameSent(frame);
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (ClientStream* s = cs.stream(frame->hd.stream_id)) s->request_sent_ = true;
  } else if (frame->hd.type == NGHTTP2_GOAWAY) {
    cs.goAwaySent(frame);
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

nghttp2_session_callbacks* ClientSession::sessionCallbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c = newCallbacks();
    nghttp2_session_callbacks_set_on_frame_not_send_callback(c, onFrameNotSend);
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
  cs.name_seeds.onBlock();
  const std::string_view authority =
      head.authority.empty() ? head.headers.get("host") : std::string_view(head.authority);
  const bool connect = head.method == "CONNECT";
  // An HTTP/1.1 upgrade becomes an extended CONNECT (RFC 8441 §4; Envoy's
  // transformUpgradeRequestFromH1toH2): the Upgrade field's protocol as
  // :protocol, the original method dropped (Envoy's documented GET-only
  // flaw); the payload follows as DATA.
  extended_connect_ = !connect && head.upgrade && !head.upgradeProtocol().empty();
  if (extended_connect_) upgrade_protocol_.assign(head.upgradeProtocol());
  nv.push_back(literalNameField(":method", connect || extended_connect_
                                               ? std::string_view("CONNECT")
                                               : std::string_view(head.method)));
  if (connect) {
    nv.push_back(literalNameField(":authority", authority));
  } else {
    if (extended_connect_) nv.push_back(literalNameField(":protocol", upgrade_protocol_));
    nv.push_back(
        literalNameField(":scheme", head.scheme.empty() ? std::string_view("http") : head.scheme));
    if (!authority.empty()) nv.push_back(literalNameField(":authority", authority));
    nv.push_back(literalNameField(":path", head.path.empty() ? std::string_view("/") : head.path));
  }
  if (connect || extended_connect_) {
    // A tunnel's length is unknown: a content-length (an HTTP/1.1 upgrade's
    // "0") would end it at once (Envoy removes it too).
    head.headers.forEachMarked([&](std::string_view name, std::string_view value, bool marked) {
      if (!connectionSpecific(name, value) && name != "content-length") {
        nv.push_back(headerField(name, value, &cs.name_seeds, marked));
      }
    });
  } else {
    appendFields(head.headers, nv, &cs.name_seeds);
  }
  if (head.content_length && !head.headers.has("content-length") && !connect &&
      !extended_connect_) {
    cs.content_length = std::to_string(*head.content_length);
    nv.push_back(literalNameField("content-length", cs.content_length));
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
  if (headers_sent_) ClientSession::queueData(this, data, end_stream);
}

void ClientStream::encodeTrailers(const HeaderMap& trailers) {
  if (headers_sent_) ClientSession::queueTrailers(this, trailers);
}

void ClientStream::resetStream(StreamResetReason reason) {
  callbacks_ = nullptr;
  if (id_ >= 0 && !closed_) ClientSession::submitReset(this, reason);
}

void ClientStream::consumed(std::size_t n) {
  ClientSession::consume(this, n, session_->session != nullptr);
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
  clearState();
  headers_sent_ = final_headers_ = not_sent_ = request_sent_ = extended_connect_ = false;
}

// --- ClientCodec --------------------------------------------------------------------

template class Http2Connection<ClientSession>;

ClientCodec::ClientCodec(ConnectionCallbacks& callbacks, const Http2Settings& settings,
                         const CodecStatsSink& stats)
    : Http2Connection(std::make_unique<ClientSession>(callbacks, settings, stats)) {
  s_->open(/*client=*/true);
}

ClientCodec::~ClientCodec() = default;

void ClientCodec::onEof() {
  // A stream whose HEADERS never went out was refused by us, not cut off.
  s_->onEof([](const ClientStream& s, StreamResetReason reason) {
    return s.request_sent_ ? reason : StreamResetReason::kLocalRefusedStreamReset;
  });
}

ClientStreamPtr ClientCodec::newStream(ResponseDecoderCallbacks& callbacks) {
  if (!acceptsStreams()) return nullptr;
  ClientStream* s = s_->acquire();
  s->callbacks_ = &callbacks;
  return ClientStreamPtr(s);
}

bool ClientCodec::acceptsStreams() const {
  return s_->session != nullptr && !s_->eof && !s_->goaway_received && !s_->goaway_sent &&
         s_->status.ok();
}

}  // namespace turnout::proxy::http2
