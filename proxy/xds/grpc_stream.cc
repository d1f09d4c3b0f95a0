#include "proxy/xds/grpc_stream.h"

#include "proxy/upstream/upstream_tls.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "proxy/common/log.h"
#include "proxy/common/spawn.h"

namespace turnout::proxy {
namespace {

constexpr const char* kLog = "xds";
constexpr std::size_t kReadBufferBytes = 64 * 1024;
constexpr std::size_t kWriteBatch = 256 * 1024;

}  // namespace

GrpcStream::GrpcStream(Executor ex, Options options, Callbacks& callbacks)
    : options_(std::move(options)),
      callbacks_(&callbacks),
      socket_(ex),
      decoder_(options_.max_message_bytes) {
  read_buffer_.resize(kReadBufferBytes);
}

GrpcStream::~GrpcStream() {
  stream_.reset();  // before the codec
}

std::shared_ptr<GrpcStream> GrpcStream::start(Executor ex, Options options, Callbacks& callbacks) {
  std::shared_ptr<GrpcStream> s(new GrpcStream(ex, std::move(options), callbacks));
  asio::co_spawn(ex, s->run(s), LogEscapedException{kLog, "gRPC stream"});
  return s;
}

void GrpcStream::close() {
  callbacks_ = nullptr;
  if (closed_) return;
  closed_ = true;
  if (stream_) stream_->resetStream();
  closeSocket();
}

void GrpcStream::closeSocket() {
  boost::system::error_code ec;
  socket_.socket().shutdown(TcpSocket::shutdown_both, ec);
  socket_.socket().close(ec);
}

Awaitable<void> GrpcStream::run(std::shared_ptr<GrpcStream> self) {
  boost::system::error_code ec;
  socket_.expires_after(options_.connect_timeout);
  co_await socket_.async_connect(options_.endpoint, asio::redirect_error(use_awaitable, ec));
  socket_.expires_never();
  if (closed_) co_return;
  if (ec) {
    finish(GrpcStatus::kUnavailable,
           absl::StrCat("cannot connect to ", options_.endpoint.address().to_string(), ":",
                        options_.endpoint.port(), ": ",
                        ec == beast::error::timeout ? std::string("connect timeout") : ec.message()));
    deliver();
    co_return;
  }
  socket_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  // A management server that vanishes without a FIN (a partition, a node
  // gone) must not leave the stream open forever: TCP keepalive ends it
  // after about a minute of silence (30 s idle, then 3 probes 10 s apart).
  socket_.socket().set_option(asio::socket_base::keep_alive(true), ec);
  const int fd = socket_.socket().native_handle();
  const int idle = 30, interval = 10, count = 3;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  if (options_.tls) {
    socket_.expires_after(options_.connect_timeout);
    const boost::system::error_code hec =
        co_await runTlsHandshake(socket_, *options_.tls, options_.ssl_stats, *options_.tls_shard);
    socket_.expires_never();
    if (closed_) co_return;
    std::string why;
    if (hec) {
      why = hec == beast::error::timeout ? std::string("timed out") : hec.message();
    } else if (options_.tls->alpn() != "h2") {
      why = "the server did not select ALPN h2 (gRPC needs HTTP/2)";
    }
    if (!why.empty()) {
      finish(GrpcStatus::kUnavailable,
             absl::StrCat("TLS handshake with ", options_.endpoint.address().to_string(), ":",
                          options_.endpoint.port(), " failed: ", why));
      deliver();
      co_return;
    }
  }
  codec_.emplace(*this);
  stream_ = codec_->newStream(*this);
  RequestHead head;
  head.method = "POST";
  head.scheme = "http";
  head.authority = options_.authority;
  head.path = options_.path;
  head.headers.set("content-type", "application/grpc");
  head.headers.set("te", "trailers");
  head.headers.set("user-agent", "turnout");
  if (auto st = stream_ ? stream_->encodeHeaders(head, false) : absl::InternalError("no stream");
      !st.ok()) {
    finish(GrpcStatus::kInternal, std::string(st.message()));
    deliver();
    co_return;
  }
  ready_ = true;
  kickWriter();
  if (callbacks_ != nullptr) callbacks_->onGrpcReady();

  std::string plaintext;
  while (!closed_) {
    std::span<const char> data;
    if (options_.tls) {
      plaintext.clear();
      ec = co_await readTls(socket_, *options_.tls, plaintext);
      data = std::span<const char>(plaintext.data(), plaintext.size());
    } else {
      const std::size_t n = co_await socket_.async_read_some(
          asio::buffer(read_buffer_), asio::redirect_error(use_awaitable, ec));
      data = std::span<const char>(read_buffer_.data(), n);
    }
    if (closed_) break;
    if (ec) {
      codec_->onEof();  // resets the stream: onReset records the end
      finish(GrpcStatus::kUnavailable, absl::StrCat("connection closed: ", ec.message()));
      break;
    }
    const absl::Status st = codec_->dispatch(data);
    if (!st.ok()) finish(GrpcStatus::kInternal, absl::StrCat("HTTP/2: ", st.message()));
    deliver();
    // Everything read is handed over or part of the one message being
    // assembled (at most max_message_bytes): acknowledge it, so that a
    // message larger than the stream window can still complete.
    if (stream_ && unacked_ > 0 && !end_) {
      stream_->consumed(unacked_);
      unacked_ = 0;
    }
    kickWriter();
  }
  deliver();
  closeSocket();
  (void)self;
}

void GrpcStream::kickWriter() {
  if (writing_ || closed_ || !codec_ || !codec_->wantsWrite()) return;
  writing_ = true;
  asio::co_spawn(socket_.get_executor(), writeLoop(shared_from_this()),
                 LogEscapedException{kLog, "gRPC writer"});
}

Awaitable<void> GrpcStream::writeLoop(std::shared_ptr<GrpcStream> self) {
  boost::system::error_code ec;
  while (!closed_) {
    out_.clear();
    (void)codec_->drainOutput(out_, kWriteBatch);
    if (out_.empty()) break;
    if (options_.tls) {
      ec = co_await writeTls(socket_, *options_.tls, std::span<const char>(out_.data(), out_.size()));
    } else {
      co_await asio::async_write(socket_, asio::buffer(out_),
                                 asio::redirect_error(use_awaitable, ec));
    }
    if (ec) {
      closeSocket();  // the reader sees it and ends the call
      break;
    }
  }
  writing_ = false;
  (void)self;
}

void GrpcStream::send(std::string_view message) {
  if (!ready_ || closed_ || end_ || !stream_) return;
  const auto prefix = grpcFramePrefix(message.size());
  stream_->encodeData(std::span<const char>(prefix.data(), prefix.size()), false);
  stream_->encodeData(std::span<const char>(message.data(), message.size()), false);
  kickWriter();
}

void GrpcStream::onSettings(const http2::PeerSettings&) {}

void GrpcStream::onGoAway(std::int32_t, std::uint32_t error_code) {
  // Our one stream completes if it is at or below last_stream_id; else onReset follows.
  TURNOUT_LOG(debug, kLog, "{}: GOAWAY (error {})", options_.authority, error_code);
}

void GrpcStream::onHeaders(ResponseHead& head, bool end_stream) {
  if (head.status != 200) {
    finish(httpToGrpcStatus(head.status), absl::StrCat("HTTP status ", head.status));
    return;
  }
  const std::string_view ct_view = head.headers.get("content-type");
  const absl::string_view ct(ct_view.data(), ct_view.size());
  if (!absl::StartsWith(ct, "application/grpc")) {
    finish(GrpcStatus::kUnknown, absl::StrCat("content-type '", ct, "' is not application/grpc"));
    return;
  }
  headers_ok_ = true;
  if (end_stream) statusFrom(head.headers);  // trailers-only
}

void GrpcStream::statusFrom(const HeaderMap& fields) {
  const std::string_view code = fields.get("grpc-status");
  int value = 0;
  if (code.data() == nullptr || !absl::SimpleAtoi(absl::string_view(code.data(), code.size()), &value)) {
    finish(GrpcStatus::kUnknown, "the call ended without grpc-status");
    return;
  }
  finish(static_cast<GrpcStatus>(value), grpcPercentDecode(fields.get("grpc-message")));
}

void GrpcStream::onData(std::span<const char> data, bool) {
  unacked_ += data.size();
  if (end_ || !headers_ok_) return;
  if (absl::Status st = decoder_.feed(data, messages_); !st.ok()) {
    finish(st.code() == absl::StatusCode::kResourceExhausted ? GrpcStatus::kResourceExhausted
                                                             : GrpcStatus::kInternal,
           std::string(st.message()));
  }
}

void GrpcStream::onTrailers(HeaderMap& trailers) { statusFrom(trailers); }

void GrpcStream::onMessageComplete() {
  if (!end_) finish(GrpcStatus::kUnknown, "the call ended without grpc-status");
}

void GrpcStream::onReset(StreamResetReason reason) {
  finish(GrpcStatus::kUnavailable,
         absl::StrCat("stream reset: ", std::string(streamResetReasonName(reason))));
}

void GrpcStream::finish(GrpcStatus status, std::string message) {
  if (end_) return;
  end_.emplace(status, std::move(message));
}

void GrpcStream::deliver() {
  while (!messages_.empty() && callbacks_ != nullptr && !closed_) {
    std::string m = std::move(messages_.front());
    messages_.pop_front();
    callbacks_->onGrpcMessage(m);
  }
  if (end_ && !closed_) {
    closed_ = true;
    messages_.clear();
    stream_.reset();
    closeSocket();
    Callbacks* cb = callbacks_;
    callbacks_ = nullptr;
    if (cb != nullptr) cb->onGrpcClose(end_->first, end_->second);
  }
}

}  // namespace turnout::proxy
