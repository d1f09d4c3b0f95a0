#include "proxy/connection/byte_relay.h"

#include <algorithm>
#include <exception>
#include <memory>

#include "proxy/common/log.h"
#include "proxy/common/read_scratch.h"
#include "proxy/common/resume.h"
#include "proxy/common/spawn.h"

namespace turnout::proxy {
namespace {

bool closedLocally(const boost::system::error_code& ec) {
  return ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor;
}

const char* sideName(RelayDirection source) {
  return source == kToUpstream ? "downstream" : "upstream";
}

// A pump reads into and writes from the thread's scratch between two
// suspensions and never holds it across a co_await (the part of a write
// that must wait is copied to its end's `pending`).
using Scratch = ReadScratch;
ReadScratch& scratch() { return readScratch(); }

bool wouldBlock(const boost::system::error_code& ec) {
  return ec == asio::error::would_block || ec == asio::error::try_again;
}

}  // namespace

// Completion of run()'s co_spawned coroutines: logs an escaped exception
// (LogEscapedException's job), clears the coroutine's running flag and wakes
// run(), which waits for it.
struct ByteRelay::SpawnedDone {
  ByteRelay* relay;
  bool* running;
  void operator()(std::exception_ptr e) const {
    LogEscapedException{"conn", "byte relay"}(e);
    *running = false;
    relay->joined_.notify();
  }
};

ByteRelay::ByteRelay(asio::io_context& io, RelayEnd& down, RelayEnd& up, size_t chunk,
                     std::chrono::milliseconds idle, RelayObserver& observer,
                     uint64_t connection_id)
    : io_(io),
      down_(down),
      up_(up),
      chunk_(chunk),
      idle_(idle),
      observer_(observer),
      id_(connection_id),
      joined_(io.get_executor()),
      idle_timer_(io) {}

void ByteRelay::close() {
  closed_ = true;
  boost::system::error_code ec;
  for (RelayEnd* end : {&down_, &up_}) {
    end->socket->shutdown(TcpSocket::shutdown_both, ec);
    end->socket->close(ec);
  }
}

void ByteRelay::resetBoth() {
  closed_ = true;
  boost::system::error_code ec;
  // SO_LINGER {on, 0}: close() sends a reset instead of a FIN.
  const asio::socket_base::linger abort(true, 0);
  for (RelayEnd* end : {&down_, &up_}) {
    end->socket->set_option(abort, ec);
    end->socket->close(ec);
  }
}

Awaitable<void> ByteRelay::run(std::string to_up, std::string to_down) {
  // sendTo() tries each write at once and only then waits (to tell a paused
  // reader); async operations are unaffected by this flag.
  boost::system::error_code ec;
  down_.socket->non_blocking(true, ec);
  up_.socket->non_blocking(true, ec);
  touch();
  pump_running_ = true;
  asio::co_spawn(io_, pump(kToDownstream, std::move(to_down)), SpawnedDone{this, &pump_running_});
  if (idle_.count() > 0) {
    idle_running_ = true;
    asio::co_spawn(io_, idleWatch(), SpawnedDone{this, &idle_running_});
  }
  co_await pump(kToUpstream, std::move(to_up));
  // The other direction, then the idle watch (stopped once both are done).
  while (pump_running_) {
    co_await waitOn(joined_, &ec);
  }
  done_ = true;
  idle_timer_.cancel();
  while (idle_running_) {
    co_await waitOn(joined_, &ec);
  }
  if (flushing_) {
    flushing_ = false;
    observer_.onFlush(false);
  }
}

Awaitable<void> ByteRelay::idleWatch() {
  boost::system::error_code ec;
  for (;;) {
    idle_timer_.expires_at(last_activity_ + idle_);
    co_await waitOn(idle_timer_, &ec);
    if (done_ || closed_) co_return;
    if (std::chrono::steady_clock::now() - last_activity_ >= idle_) {
      TURNOUT_CONN_LOG(debug, "conn", id_, "relay: idle timeout");
      observer_.onIdleTimeout();
      close();
      co_return;
    }
  }
}

Awaitable<boost::system::error_code> receiveFrom(RelayEnd& from, WaitingReader<512>& reader,
                                                 size_t chunk, std::span<const char>& out) {
  boost::system::error_code ec;
  const size_t size = std::min(chunk, Scratch::kBytes);
  for (;;) {
    if (from.tls != nullptr) {
      // Plaintext the transport holds already (records that came with the
      // handshake or behind an HTTP head, or a read of several records)
      // first. What the transport must send back (a key update) waits for
      // this end's writer: a reader never writes.
      Scratch& s = scratch();
      s.plain.clear();
      const tls::TlsTransport::Result r = from.tls->read(s.plain);
      if (!s.plain.empty()) {
        out = std::span<const char>(s.plain.data(), s.plain.size());
        co_return ec;
      }
      if (r == tls::TlsTransport::Result::kClosed) co_return asio::error::eof;
      if (r == tls::TlsTransport::Result::kError) co_return asio::error::connection_reset;
    }
    std::span<const char> read;
    ec = co_await reader.read(from.socket, size, &read);
    if (ec) co_return ec;
    if (from.tls == nullptr) {
      out = read;
      co_return ec;
    }
    from.tls->feed(read);
  }
}

Awaitable<boost::system::error_code> sendTo(RelayEnd& to, std::span<const char> data,
                                            bool& waited) {
  std::span<const char> bytes = data;
  if (to.tls != nullptr) {
    std::string& wire = scratch().wire;
    wire.clear();
    if (!to.tls->write(data)) co_return asio::error::connection_reset;
    to.tls->takeOutput(wire);
    bytes = std::span<const char>(wire.data(), wire.size());
  }
  boost::system::error_code ec;
  size_t n = to.socket->write_some(asio::buffer(bytes.data(), bytes.size()), ec);
  if (wouldBlock(ec)) {
    ec = {};
    n = 0;
  }
  if (ec || n == bytes.size()) co_return ec;
  // The peer takes no more for now: the rest waits in the end's own buffer
  // (the scratch is the thread's), freed once written.
  waited = true;
  to.pending.assign(bytes.data() + n, bytes.size() - n);
  co_await writeAll(*to.socket, asio::buffer(to.pending), &ec);
  std::string().swap(to.pending);
  co_return ec;
}

Awaitable<void> shutdownWrite(RelayEnd& to) {
  boost::system::error_code ec;
  if (to.tls != nullptr) {
    to.tls->shutdown();
    to.tls->takeOutput(to.pending);
    if (!to.pending.empty()) {
      co_await writeAll(*to.socket, asio::buffer(to.pending), &ec);
      std::string().swap(to.pending);
    }
  }
  to.socket->shutdown(TcpSocket::shutdown_send, ec);
}

Awaitable<bool> ByteRelay::forward(RelayDirection dir, std::span<const char> data) {
  const bool to_upstream = dir == kToUpstream;
  RelayEnd& to = to_upstream ? up_ : down_;
  const uint64_t n = data.size();
  observer_.onRead(dir, n);
  touch();
  bool waited = false;
  writing_[dir] = true;
  const boost::system::error_code ec = co_await sendTo(to, data, waited);
  writing_[dir] = false;
  if (to_upstream && flushing_) {
    flushing_ = false;
    observer_.onFlush(false);
  }
  observer_.onWritten(dir, n, !ec, waited);
  if (!ec) {
    touch();
    co_return true;
  }
  if (closed_ || closedLocally(ec)) co_return false;
  // `to` cannot take bytes any more. Bytes read from it may still come and
  // go to the source (its pump ends at its EOF or reset); this direction ends
  // here. When the client went away while bytes to the upstream were being
  // written, that write finishes first (Envoy's upstream flush).
  TURNOUT_CONN_LOG(debug, "conn", id_, "relay: write to {} failed ({})",
                   to_upstream ? "upstream" : "downstream", ec.message());
  stop_reading_[to_upstream ? kToDownstream : kToUpstream] = true;
  if (!to_upstream && writing_[kToUpstream] && !flushing_) {
    flushing_ = true;
    observer_.onFlush(true);
  }
  co_return false;
}

Awaitable<void> ByteRelay::pump(RelayDirection dir, std::string first) {
  RelayEnd& to = dir == kToUpstream ? up_ : down_;
  if (!first.empty() && !co_await forward(dir, first)) co_return;
  std::string().swap(first);
  for (;;) {
    if (closed_) co_return;
    if (stop_reading_[dir]) {
      // The source is gone (its other direction could not be written): end
      // this direction cleanly after what was in flight.
      co_await shutdownWrite(to);
      co_return;
    }
    std::span<const char> data;
    const boost::system::error_code ec =
        co_await receiveFrom(dir == kToUpstream ? down_ : up_, readers_[dir], chunk_, data);
    if (ec == asio::error::eof) {
      observer_.onSourceEnded(dir, false);
      if (!closed_) co_await shutdownWrite(to);  // half-close: FIN for FIN
      co_return;
    }
    if (ec) {
      if (closed_) co_return;
      if (closedLocally(ec)) {
        // Its owner closed the socket under us (worker shutdown): the other
        // end goes too, so the other pump ends.
        close();
        co_return;
      }
      // A reset (or a TLS failure) from `from`: the other end is reset too.
      TURNOUT_CONN_LOG(debug, "conn", id_, "relay: {} reset ({})", sideName(dir), ec.message());
      observer_.onSourceEnded(dir, true);
      resetBoth();
      co_return;
    }
    if (!co_await forward(dir, data)) co_return;
  }
}

}  // namespace turnout::proxy
