#include "proxy/connection/stream_tunnel.h"

#include <exception>

#include "proxy/common/log.h"
#include "proxy/common/spawn.h"
#include "proxy/connection/downstream_stream.h"

namespace turnout::proxy {
namespace {

// No timeout for a flush when the idle timeout is off.
constexpr std::chrono::milliseconds kForever{std::chrono::hours(24 * 365)};

}  // namespace

StreamTunnel::StreamTunnel(asio::io_context& io, DownstreamStream& down, RelayEnd& up, size_t chunk,
                           std::chrono::milliseconds idle, RelayObserver& observer,
                           uint64_t connection_id)
    : io_(io),
      down_(down),
      up_(up),
      chunk_(chunk),
      idle_ms_(idle),
      observer_(observer),
      id_(connection_id),
      idle_(DeadlineQueue::of(io), &StreamTunnel::onIdle, this),
      joined_(io.get_executor()) {}

std::chrono::milliseconds StreamTunnel::flushTimeout() const {
  return idle_ms_.count() > 0 ? idle_ms_ : kForever;
}

void StreamTunnel::onIdle(void* self) {
  auto& t = *static_cast<StreamTunnel*>(self);
  TURNOUT_CONN_LOG(debug, "conn", t.id_, "stream tunnel: idle timeout");
  t.observer_.onIdleTimeout();
  t.close();
}

void StreamTunnel::close() {
  if (closed_) return;
  closed_ = true;
  down_.stopReading();
  boost::system::error_code ec;
  up_.socket->shutdown(TcpSocket::shutdown_both, ec);
  up_.socket->close(ec);
}

Awaitable<void> StreamTunnel::run(std::string to_down) {
  boost::system::error_code ec;
  up_.socket->non_blocking(true, ec);  // sendTo() writes at once, then waits
  touch();
  down_running_ = true;
  asio::co_spawn(io_, toDownstream(std::move(to_down)), [this](std::exception_ptr e) {
    LogEscapedException{"conn", "stream tunnel"}(e);
    down_running_ = false;
    joined_.notify();
  });
  co_await toUpstream();
  while (down_running_) {
    co_await joined_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  idle_.clear();
}

Awaitable<void> StreamTunnel::toUpstream() {
  for (;;) {
    std::string& body = down_.pendingBody();
    if (!body.empty()) {
      const uint64_t n = body.size();
      observer_.onRead(kToUpstream, n);
      touch();
      bool waited = false;
      const boost::system::error_code ec =
          co_await sendTo(up_, std::span<const char>(body.data(), body.size()), waited);
      observer_.onWritten(kToUpstream, n, !ec, waited);
      if (ec) {
        // The upstream cannot take more: the client's side ends here.
        close();
        co_return;
      }
      touch();
      body.clear();
    }
    if (down_.requestComplete()) {
      // END_STREAM: FIN for FIN, once its bytes are written.
      observer_.onSourceEnded(kToUpstream, false);
      if (!closed_) co_await shutdownWrite(up_);
      co_return;
    }
    if (closed_) co_return;
    const bool more = co_await down_.readBody(kForever);
    if (!more && !down_.requestComplete()) {
      // A reset stream (or close()): the upstream goes too.
      if (!closed_) observer_.onSourceEnded(kToUpstream, true);
      close();
      co_return;
    }
  }
}

Awaitable<void> StreamTunnel::toDownstream(std::string first) {
  if (!first.empty()) {
    observer_.onRead(kToDownstream, first.size());
    down_.encodeData(std::span<const char>(first.data(), first.size()), false);
    const bool flushed = co_await down_.flush(flushTimeout());
    observer_.onWritten(kToDownstream, first.size(), flushed, false);
    if (!flushed) {
      close();
      co_return;
    }
    touch();
  }
  for (;;) {
    std::span<const char> data;
    const boost::system::error_code ec = co_await receiveFrom(up_, reader_, chunk_, data);
    if (ec == asio::error::eof) {
      observer_.onSourceEnded(kToDownstream, false);
      down_.encodeData({}, true);
      const bool flushed = co_await down_.flush(flushTimeout());
      if (!flushed) close();
      co_return;
    }
    if (ec) {
      // A reset or a TLS failure (or close()): the stream is reset when
      // it is released unended.
      if (!closed_) observer_.onSourceEnded(kToDownstream, true);
      close();
      co_return;
    }
    const uint64_t n = data.size();
    observer_.onRead(kToDownstream, n);
    touch();
    down_.encodeData(data, false);
    const bool flushed = co_await down_.flush(flushTimeout());
    observer_.onWritten(kToDownstream, n, flushed, false);
    if (!flushed) {
      close();
      co_return;
    }
    touch();
  }
}

}  // namespace turnout::proxy
