#pragma once

// The tunnel after a WebSocket (or other upgrade) over HTTP/2 — an extended
// CONNECT (RFC 8441) — was switched by an HTTP/1.1 upstream (101): the
// client's DATA frames are the bytes to the upstream socket, the upstream's
// bytes go back as DATA frames (docs/life_of_a_request.md "WebSockets over
// HTTP/2").
//
// As ByteRelay does for two sockets: one pump per direction, each holding at
// most one chunk, so a slow reader on one side stops reading on the other
// (upstream writes complete before the stream's next bytes are taken, which
// is when HTTP/2 returns them to the client's window; stream flushes
// complete before the upstream is read again). The client's END_STREAM
// becomes a shutdown(SHUT_WR) (TLS: close_notify first) towards the
// upstream once its bytes are written; the upstream's FIN becomes
// END_STREAM. A reset stream closes the upstream; an upstream reset or read
// error leaves the stream unended (the stream is then reset when it is
// released). The idle timeout (no byte either way) ends both.
//
// Who calls it: the stream's worker thread. run() returns once both
// directions have ended; the tunnel, both ends and the observer must outlive
// that call.

#include <chrono>
#include <cstdint>
#include <string>

#include "proxy/common/asio.h"
#include "proxy/common/deadline_queue.h"
#include "proxy/common/signal.h"
#include "proxy/connection/byte_relay.h"

namespace turnout::proxy {

class DownstreamStream;

class StreamTunnel {
 public:
  // `chunk`: the most one pump reads at once; `idle`: 0 for none.
  StreamTunnel(asio::io_context& io, DownstreamStream& down, RelayEnd& up, size_t chunk,
               std::chrono::milliseconds idle, RelayObserver& observer, uint64_t connection_id);
  StreamTunnel(const StreamTunnel&) = delete;
  StreamTunnel& operator=(const StreamTunnel&) = delete;

  // Sends `to_down` (upstream bytes read behind its 101) to the client first,
  // then relays until both directions have ended. By value (STYLE.md R8c).
  Awaitable<void> run(std::string to_down);

 private:
  // The client's bytes (the stream's request body) to the upstream.
  Awaitable<void> toUpstream();
  // The upstream's bytes to the client.
  Awaitable<void> toDownstream(std::string first);
  // Ends both directions: the stream stops reading, the upstream is closed.
  void close();
  static void onIdle(void* self);
  void touch() { idle_.expiresAfter(idle_ms_); }
  // A flush waits at most the idle timeout (a client that takes nothing).
  std::chrono::milliseconds flushTimeout() const;

  asio::io_context& io_;
  DownstreamStream& down_;
  RelayEnd& up_;
  size_t chunk_;
  std::chrono::milliseconds idle_ms_;
  RelayObserver& observer_;
  uint64_t id_;  // the connection's, for logs

  DeadlineQueue::Deadline idle_;
  WaitingReader<512> reader_;
  bool closed_ = false;
  bool down_running_ = false;  // the co_spawned toDownstream pump
  Signal joined_;              // notified when it ends
};

}  // namespace turnout::proxy
