#include "proxy/upstream/http1_conn_pool.h"

#include <utility>

#include "proxy/common/inq_read.h"
#include "proxy/common/resume.h"
#include "proxy/common/send_now.h"
#include "proxy/upstream/upstream_tls.h"

namespace turnout::proxy {
namespace {

// The worker thread's shared output buffer (UpstreamConnection::outBuffer())
// and the connection whose bytes it holds.
constexpr size_t kMaxSharedOut = 256 * 1024;  // capacity kept past a leaveSharedOut()
struct SharedOut {
  UpstreamConnection* owner = nullptr;
  std::string bytes;
};
thread_local SharedOut t_shared_out;

}  // namespace

std::string& UpstreamConnection::outBuffer() {
  SharedOut& shared = t_shared_out;
  if (shared.owner == this) return shared.bytes;
  // TLS encrypts from `out` in send(); bytes already in `out` go first.
  if (tls || !out.empty()) return out;
  // Sent already (the usual case): taken over without touching the owner.
  if (shared.owner != nullptr && !shared.bytes.empty()) shared.owner->leaveSharedOut(true);
  shared.owner = this;
  return shared.bytes;
}

void UpstreamConnection::leaveSharedOut(bool keep) {
  SharedOut& shared = t_shared_out;
  if (shared.owner != this) return;
  if (keep) out.append(shared.bytes);
  shared.bytes.clear();
  // A large body replayed for a retry may have grown it.
  if (shared.bytes.capacity() > kMaxSharedOut) std::string().swap(shared.bytes);
  shared.owner = nullptr;
}

UpstreamStreamPtr Http1ConnPool::attach(UpstreamConnectionPtr conn) {
  UpstreamConnection* c = conn.release();
  c->stream_owner = &cluster_;
  c->stream_host = &host_;
  c->stream_reset = false;
  c->write_failed = false;
  c->leaveSharedOut(false);
  c->out.clear();
  ++c->requests;
  return UpstreamStreamPtr(c);
}

UpstreamStreamPtr Http1ConnPool::tryNewStream() {
  UpstreamConnectionPtr c = cluster_.takeIdle(host_);
  if (!c) return {};
  return attach(std::move(c));
}

Awaitable<ConnPool::NewStreamResult> Http1ConnPool::newStream(
    PendingRequest* pending, std::chrono::steady_clock::time_point deadline) {
  using From = WorkerCluster::AcquireResult::Status;
  using To = NewStreamResult::Status;
  WorkerCluster::AcquireResult a = co_await cluster_.acquire(&host_, pending, deadline);
  NewStreamResult r;
  switch (a.status) {
    case From::Ready: r.status = To::Ready; break;
    case From::Overflow: r.status = To::Overflow; break;
    case From::ConnectFailure: r.status = To::ConnectFailure; break;
    case From::Timeout: r.status = To::Timeout; break;
    case From::Cancelled: r.status = To::Cancelled; break;
  }
  r.connect_timed_out = a.connect_timed_out;
  if (a.conn) r.stream = attach(std::move(a.conn));
  co_return r;
}

// UpstreamConnection's UpstreamStream side: the HTTP/1 one-stream case.

void UpstreamConnection::encodeHeaders(const RequestHead& head, bool end_stream) {
  codec.encodeHeaders(head, end_stream, outBuffer());
}

void UpstreamConnection::encodeData(std::span<const char> data, bool end_stream) {
  codec.encodeData(data, end_stream, outBuffer());
}

void UpstreamConnection::encodeTrailers(const HeaderMap& trailers) {
  codec.encodeTrailers(trailers, outBuffer());
}

Awaitable<bool> UpstreamConnection::send() {
  // The write may wait: other connections use the shared buffer meanwhile.
  leaveSharedOut(true);
  if (stream_reset || write_failed) co_return false;
  if (out.empty()) co_return true;
  boost::system::error_code ec;
  if (tls) {
    stream.expires_never();  // writeTls goes through the Beast stream
    ec = co_await writeTls(stream, *tls, out);
  } else {
    // The socket itself: no timeout applies here (the router's watchdog
    // resets the stream), so Beast's per-operation layer has nothing to do.
    co_await writeAll(stream.socket(), asio::buffer(out), &ec);
  }
  out.clear();
  if (stream_reset) co_return false;
  if (ec) {
    // The response may still be readable (an upstream that answered early
    // and closed): receive() goes on; the connection is not reused.
    write_failed = true;
    co_return false;
  }
  co_return true;
}

std::optional<bool> UpstreamConnection::trySend() {
  if (stream_reset || write_failed) return false;
  if (tls) return out.empty() ? std::optional<bool>(true) : std::nullopt;  // send() encrypts
  // Bytes are either all in `out` or all in the shared buffer (outBuffer()).
  std::string& pending = t_shared_out.owner == this ? t_shared_out.bytes : out;
  switch (sendNow(stream.socket(), pending)) {
    case SendNow::kAll:
      return true;
    case SendNow::kSome:
      return std::nullopt;  // send() takes the rest to `out`
    case SendNow::kFailed:
      break;
  }
  // As send()'s failed write: the response may still be readable.
  write_failed = true;
  return false;
}

Awaitable<UpstreamStream::ReceiveResult> UpstreamConnection::receive() {
  for (;;) {
    if (std::optional<ReceiveResult> r = tryReceive()) co_return *r;
    boost::system::error_code ec;
    size_t n = 0;
    if (tls) {
      stream.expires_never();  // readTls goes through the Beast stream
      if (tls_deferred_error) {
        ec = std::exchange(tls_deferred_error, {});
      } else {
        tls_plaintext.clear();
        ec = co_await readTls(stream, *tls, tls_plaintext);
        if (!tls_plaintext.empty()) {
          // What was decrypted before a close_notify (or an error) goes to
          // the codec first; the error is the next read's.
          tls_deferred_error = std::exchange(ec, {});
          n = tls_plaintext.size();
          asio::buffer_copy(read_buffer.prepare(n), asio::buffer(tls_plaintext));
        }
      }
    } else {
      co_await readInq(stream.socket(), read_buffer.prepare(16 * 1024), &ec, &n);
    }
    // tryReceive() takes the read's outcome, as after a receiveWait().
    wait_done = true;
    wait_ec = ec;
    wait_n = n;
  }
}

std::optional<UpstreamStream::ReceiveResult> UpstreamConnection::tryReceive() {
  ReceiveResult r;
  if (std::exchange(wait_done, false) && !stream_reset) {
    // The read that receive() or receiveWait() made: an error ends the
    // stream (a clean EOF tells the codec, which may complete a
    // close-delimited body); bytes go to the codec below.
    if (wait_ec) {
      stream_reset = true;
      reset_reason = StreamResetReason::kConnectionTermination;
      r.reset = true;
      r.reason = reset_reason;
      if (wait_ec == asio::error::eof) {
        r.eof = true;
        (void)codec.onEof();
      }
      return r;
    }
    read_buffer.commit(wait_n);
  }
  for (;;) {
    if (stream_reset) {
      r.reset = true;
      r.reason = reset_reason;
      return r;
    }
    auto data = read_buffer.data();
    if (data.size() == 0) return std::nullopt;
    auto consumed =
        codec.decode(std::span<const char>(static_cast<const char*>(data.data()), data.size()));
    if (!consumed.ok()) {
      stream_reset = true;
      reset_reason = StreamResetReason::kProtocolError;
      continue;
    }
    read_buffer.consume(*consumed);
    if (*consumed > 0) return r;  // progress: the caller looks at its events
    return std::nullopt;          // a partial message: more bytes needed
  }
}

void UpstreamConnection::startReceiveWait(resume_detail::Frame* frame) {
  const asio::mutable_buffer buffer = read_buffer.prepare(16 * 1024);  // before the thread is taken
  wait_done = true;
  wait_ec = {};
  wait_n = 0;
  inq_detail::startRead(
      stream.socket(), buffer,
      resume_detail::Handler<boost::system::error_code, std::size_t>(
          frame->detach_thread(),
          std::tuple<boost::system::error_code*, std::size_t*>(&wait_ec, &wait_n)));
}

void UpstreamConnection::resetStream(StreamResetReason reason) {
  if (!stream_reset) {
    stream_reset = true;
    reset_reason = reason;
  }
  boost::system::error_code ignored;
  stream.socket().cancel(ignored);
}

void UpstreamConnection::release(bool reusable) {
  forwarder.target = nullptr;
  WorkerCluster* owner = std::exchange(stream_owner, nullptr);
  HostState* host = std::exchange(stream_host, nullptr);
  const bool reuse = reusable && canReuse();
  owner->release(*host, UpstreamConnectionPtr(this), reuse);
}

}  // namespace turnout::proxy
