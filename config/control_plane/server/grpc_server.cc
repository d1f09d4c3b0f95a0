#include "config/control_plane/server/grpc_server.h"

#include <deque>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proxy/common/log.h"
#include "proxy/common/spawn.h"

namespace turnout::control_plane {
namespace {

constexpr const char* kLog = "grpc";
constexpr std::size_t kReadBufferBytes = 64 * 1024;
constexpr std::size_t kWriteBatch = 256 * 1024;

std::string addressOf(const asio::ip::tcp::endpoint& ep) {
  return ep.address().is_v6() ? absl::StrCat("[", ep.address().to_string(), "]:", ep.port())
                              : absl::StrCat(ep.address().to_string(), ":", ep.port());
}

}  // namespace

// One h2c connection: reader, writer, and its calls.
class GrpcServerConnection final : public proxy::http2::ServerCallbacks,
                                   public std::enable_shared_from_this<GrpcServerConnection> {
 public:
  GrpcServerConnection(GrpcServer& server, TcpSocket socket)
      : server_(&server), socket_(std::move(socket)), codec_(*this) {
    boost::system::error_code ec;
    peer_ = addressOf(socket_.remote_endpoint(ec));
    read_buffer_.resize(kReadBufferBytes);
  }
  ~GrpcServerConnection() override;

  Awaitable<void> run(std::shared_ptr<GrpcServerConnection> self);
  void close();
  // The server is stopping: the socket closes and every call ends now (its
  // handler's onClose runs before stop() returns).
  void abort();
  void kickWriter();

  // http2::ServerCallbacks
  proxy::RequestDecoderCallbacks& newStream(proxy::http2::ServerStreamPtr stream) override;
  void onSettings(const proxy::http2::PeerSettings&) override {}
  void onGoAway(std::int32_t, std::uint32_t) override {}

  GrpcServer* server_;
  const std::string& peer() const { return peer_; }

 private:
  Awaitable<void> writeLoop(std::shared_ptr<GrpcServerConnection> self);
  // Hands over what the last dispatch decoded and drops the calls that ended.
  void deliver();

  TcpSocket socket_;
  proxy::http2::ServerCodec codec_;
  std::string peer_;
  std::vector<char> read_buffer_;
  std::string out_;
  std::list<std::unique_ptr<GrpcServerCall>> calls_;
  bool writing_ = false;
  bool closed_ = false;
};

class GrpcServerCall final : public proxy::RequestDecoderCallbacks, public GrpcCall {
 public:
  GrpcServerCall(GrpcServerConnection& conn, proxy::http2::ServerStreamPtr stream)
      : conn_(conn), stream_(std::move(stream)), decoder_(conn.server_->options_.max_message_bytes) {}

  // RequestDecoderCallbacks
  void onMessageBegin() override {}
  void onHeaders(proxy::RequestHead& head, bool end_stream) override {
    const std::string_view ct = head.headers.get("content-type");
    if (head.method != "POST" ||
        !absl::StartsWith(absl::string_view(ct.data(), ct.size()), "application/grpc")) {
      proxy::ResponseHead h;
      h.status = 415;
      h.headers.set("content-type", "text/plain");
      (void)stream_->encodeHeaders(h, false);
      static constexpr char kBody[] = "turnout-cp serves gRPC here (POST, application/grpc)\n";
      stream_->encodeData(std::span<const char>(kBody, sizeof kBody - 1), true);
      finished_ = true;
      done_ = true;
      return;
    }
    handler_ = conn_.server_->router_(head.path, *this);
    if (!handler_) {
      finish(GrpcStatus::kUnimplemented, absl::StrCat("unknown method ", head.path));
      return;
    }
    if (end_stream) half_closed_ = true;
  }
  void onData(std::span<const char> data, bool end_stream) override {
    unacked_ += data.size();
    if (finished_) return;
    if (absl::Status st = decoder_.feed(data, messages_); !st.ok()) {
      finish(st.code() == absl::StatusCode::kResourceExhausted ? GrpcStatus::kResourceExhausted
                                                               : GrpcStatus::kInternal,
             std::string(st.message()));
    }
    if (end_stream) half_closed_ = true;
  }
  void onTrailers(proxy::HeaderMap&) override { half_closed_ = true; }
  void onMessageComplete() override { half_closed_ = true; }
  void onReset(proxy::StreamResetReason) override {
    finished_ = true;
    done_ = true;
  }

  // GrpcCall
  void send(std::string_view message) override {
    if (finished_) return;
    startResponse();
    const auto prefix = proxy::grpcFramePrefix(message.size());
    stream_->encodeData(std::span<const char>(prefix.data(), prefix.size()), false);
    stream_->encodeData(std::span<const char>(message.data(), message.size()), false);
    conn_.server_->message_bytes_sent_ += prefix.size() + message.size();
    conn_.kickWriter();
  }
  void finish(GrpcStatus status, std::string_view message) override {
    if (finished_) return;
    finished_ = true;
    done_ = true;
    proxy::HeaderMap trailers;
    trailers.set("grpc-status", std::to_string(static_cast<int>(status)));
    if (!message.empty()) trailers.set("grpc-message", proxy::grpcPercentEncode(message));
    if (!headers_sent_) {
      // Trailers-only.
      proxy::ResponseHead h;
      h.status = 200;
      h.headers.set("content-type", "application/grpc");
      trailers.forEach([&](std::string_view n, std::string_view v) { h.headers.set(n, v); });
      (void)stream_->encodeHeaders(h, true);
      headers_sent_ = true;
    } else {
      stream_->encodeTrailers(trailers);
    }
    conn_.kickWriter();
  }
  const std::string& peer() const override { return conn_.peer(); }

  // Runs the handler on what arrived; true once the call is over.
  bool deliver() {
    while (!messages_.empty() && handler_ && !finished_) {
      std::string m = std::move(messages_.front());
      messages_.pop_front();
      handler_->onMessage(m);
    }
    messages_.clear();
    if (half_closed_ && !half_close_delivered_ && handler_ && !finished_) {
      half_close_delivered_ = true;
      handler_->onHalfClose();
    }
    if (stream_ && unacked_ > 0 && !done_) {
      stream_->consumed(unacked_);
      unacked_ = 0;
    }
    return done_;
  }
  void close() {
    if (handler_) {
      auto h = std::move(handler_);
      h->onClose();
    }
    stream_.reset();
  }
  void connectionGone() {
    finished_ = true;
    done_ = true;
  }

 private:
  void startResponse() {
    if (headers_sent_) return;
    proxy::ResponseHead h;
    h.status = 200;
    h.headers.set("content-type", "application/grpc");
    (void)stream_->encodeHeaders(h, false);
    headers_sent_ = true;
  }

  GrpcServerConnection& conn_;
  proxy::http2::ServerStreamPtr stream_;
  proxy::GrpcMessageDecoder decoder_;
  std::deque<std::string> messages_;
  std::unique_ptr<GrpcCallHandler> handler_;
  std::size_t unacked_ = 0;
  bool headers_sent_ = false;
  bool half_closed_ = false;
  bool half_close_delivered_ = false;
  bool finished_ = false;  // no more events for the handler
  bool done_ = false;      // to be dropped
};

GrpcServerConnection::~GrpcServerConnection() {
  for (auto& c : calls_) c->close();
  calls_.clear();
}

proxy::RequestDecoderCallbacks& GrpcServerConnection::newStream(proxy::http2::ServerStreamPtr stream) {
  calls_.push_back(std::make_unique<GrpcServerCall>(*this, std::move(stream)));
  return *calls_.back();
}

void GrpcServerConnection::deliver() {
  for (auto it = calls_.begin(); it != calls_.end();) {
    if ((*it)->deliver()) {
      auto call = std::move(*it);
      it = calls_.erase(it);
      call->close();
    } else {
      ++it;
    }
  }
}

void GrpcServerConnection::abort() {
  close();
  for (auto& c : calls_) c->connectionGone();
  auto calls = std::move(calls_);
  calls_.clear();
  for (auto& c : calls) c->close();
}

void GrpcServerConnection::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  socket_.shutdown(TcpSocket::shutdown_both, ec);
  socket_.close(ec);
}

Awaitable<void> GrpcServerConnection::run(std::shared_ptr<GrpcServerConnection> self) {
  boost::system::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  kickWriter();  // our SETTINGS
  while (!closed_) {
    const std::size_t n = co_await socket_.async_read_some(asio::buffer(read_buffer_),
                                                           asio::redirect_error(use_awaitable, ec));
    if (ec || closed_) break;
    const absl::Status st = codec_.dispatch(std::span<const char>(read_buffer_.data(), n));
    deliver();
    kickWriter();
    if (!st.ok()) {
      TURNOUT_LOG(debug, kLog, "{}: HTTP/2 error: {}", peer_, std::string(st.message()));
      if (!codec_.wantsWrite()) break;  // the writer closes after its GOAWAY otherwise
    }
    if (!codec_.wantsRead() && !codec_.wantsWrite()) break;
  }
  codec_.onEof();
  for (auto& c : calls_) c->connectionGone();
  deliver();
  close();
  (void)self;
}

void GrpcServerConnection::kickWriter() {
  if (writing_ || closed_ || !codec_.wantsWrite()) return;
  writing_ = true;
  asio::co_spawn(socket_.get_executor(), writeLoop(shared_from_this()),
                 proxy::LogEscapedException{kLog, "gRPC server writer"});
}

Awaitable<void> GrpcServerConnection::writeLoop(std::shared_ptr<GrpcServerConnection> self) {
  boost::system::error_code ec;
  while (!closed_) {
    out_.clear();
    (void)codec_.drainOutput(out_, kWriteBatch);
    if (out_.empty()) break;
    co_await asio::async_write(socket_, asio::buffer(out_),
                               asio::redirect_error(use_awaitable, ec));
    if (ec) {
      close();
      break;
    }
  }
  writing_ = false;
  if (!closed_ && !codec_.wantsRead() && !codec_.wantsWrite()) close();
  (void)self;
}

GrpcServer::GrpcServer(asio::io_context& ioc, Options options, Router router)
    : ioc_(ioc), options_(std::move(options)), router_(std::move(router)), acceptor_(ioc) {}

GrpcServer::~GrpcServer() {
  *alive_ = false;
  stop();
}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::create(asio::io_context& ioc,
                                                               Options options, Router router) {
  std::unique_ptr<GrpcServer> s(new GrpcServer(ioc, std::move(options), std::move(router)));
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(s->options_.address, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("--xds-address: '", s->options_.address, "' is not an IP address"));
  }
  const asio::ip::tcp::endpoint ep(addr, s->options_.port);
  s->acceptor_.open(ep.protocol(), ec);
  if (!ec) s->acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s->acceptor_.bind(ep, ec);
  if (!ec) s->acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("--xds-address: cannot listen on ", addressOf(ep), ": ", ec.message()));
  }
  s->port_ = s->acceptor_.local_endpoint(ec).port();
  return s;
}

void GrpcServer::start() {
  asio::co_spawn(ioc_, acceptLoop(), proxy::LogEscapedException{kLog, "gRPC accept loop"});
}

void GrpcServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (auto& w : connections_) {
    if (auto c = w.lock()) c->abort();
  }
  connections_.clear();
}

Awaitable<void> GrpcServer::acceptLoop() {
  const std::shared_ptr<bool> alive = alive_;  // in the frame: outlives the server
  while (!stopped_) {
    boost::system::error_code ec;
    TcpSocket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (!*alive || stopped_) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;  // e.g. EMFILE: keep accepting
    }
    auto conn = std::make_shared<GrpcServerConnection>(*this, std::move(socket));
    connections_.remove_if([](const std::weak_ptr<GrpcServerConnection>& w) { return w.expired(); });
    connections_.push_back(conn);
    asio::co_spawn(ioc_, conn->run(conn), proxy::LogEscapedException{kLog, "gRPC connection"});
  }
}

}  // namespace turnout::control_plane
