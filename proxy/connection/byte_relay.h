#pragma once

// Relays bytes both ways between two sockets, either of which may carry TLS:
// the TCP proxy's connection (docs/tcp_proxy.md) and the tunnel after an
// HTTP/1.1 upgrade or CONNECT (docs/life_of_a_request.md) share it.
//
// Two pumps, one per direction, each reading at most one chunk and writing
// it whole before reading again: what turnout holds per direction is
// bounded, and a slow reader on one side stops reading on the other
// (RelayObserver::onWritten's `waited`). A pump waits for input in a
// 512-byte read of its own and reads on into its thread's scratch, writing
// at once; only the part a peer could not take at once is copied (the
// end's `pending`, freed once written). An idle relay holds 1 KiB of read
// buffers. A FIN on one side becomes a
// shutdown(SHUT_WR) (TLS: close_notify first) towards the other once its
// bytes are written; a reset read from one side resets the other; a side
// that can no longer be written ends its direction, and the other side's
// bytes in flight are still written (the upstream flush). The idle timeout
// (no byte either way) closes both.
//
// Who calls it: the owning connection's worker thread. run() returns once
// both directions have ended (or close() ended them); the relay, both ends
// and the observer must outlive that call.

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "proxy/common/asio.h"
#include "proxy/common/read_scratch.h"
#include "proxy/common/signal.h"
#include "proxy/tls/tls_transport.h"

namespace turnout::proxy {

// One end of a relay: its socket and, for TLS, its transport (its handshake
// done), and the bytes for it that it could not take at once (written by
// the pump that writes this end, empty otherwise).
struct RelayEnd {
  TcpSocket* socket = nullptr;
  tls::TlsTransport* tls = nullptr;
  std::string pending;
};

// kToUpstream reads the downstream end and writes the upstream one;
// kToDownstream the reverse.
enum RelayDirection : uint8_t { kToUpstream = 0, kToDownstream = 1 };

// What the owner counts. Every call is on the worker thread, from inside run().
class RelayObserver {
 public:
  virtual ~RelayObserver() = default;
  // `n` bytes were read for `dir` (or handed to run() to start it with) and
  // are being written.
  virtual void onRead(RelayDirection dir, uint64_t n) = 0;
  // ... and their write ended: `delivered` false when the destination
  // failed; `waited`: not all at once, so that direction stopped reading
  // meanwhile.
  virtual void onWritten(RelayDirection dir, uint64_t n, bool delivered, bool waited) = 0;
  // The source of `dir` ended: a FIN (`reset` false) or a reset or TLS
  // failure (`reset` true; both ends are then reset).
  virtual void onSourceEnded(RelayDirection dir, bool reset) = 0;
  // The upstream write still in flight after the downstream went away
  // began (true) or ended (false).
  virtual void onFlush(bool active) = 0;
  // No byte either way for the idle timeout: both ends are closed.
  virtual void onIdleTimeout() = 0;
};

// One end's I/O, shared by ByteRelay's pumps and StreamTunnel (the socket
// must be non-blocking).
// Reads (and decrypts) what `from` has, at most `chunk` bytes; `out` views
// them until the next suspension.
Awaitable<boost::system::error_code> receiveFrom(RelayEnd& from, WaitingReader<512>& reader,
                                                 size_t chunk, std::span<const char>& out);
// Writes all of `data` to `to` (encrypted for TLS). `waited`: it could not
// all go at once.
Awaitable<boost::system::error_code> sendTo(RelayEnd& to, std::span<const char> data, bool& waited);
// No more bytes for `to`: close_notify (TLS), then shutdown(SHUT_WR).
Awaitable<void> shutdownWrite(RelayEnd& to);

class ByteRelay {
 public:
  // `chunk`: the most one pump reads at once; `idle`: 0 for none.
  ByteRelay(asio::io_context& io, RelayEnd& down, RelayEnd& up, size_t chunk,
            std::chrono::milliseconds idle, RelayObserver& observer, uint64_t connection_id);
  ByteRelay(const ByteRelay&) = delete;
  ByteRelay& operator=(const ByteRelay&) = delete;

  // Writes `to_up` to the upstream and `to_down` to the downstream first
  // (bytes read past an HTTP head, or to choose the filter chain), then
  // relays until both directions have ended. Parameters by value (STYLE.md
  // R8c).
  Awaitable<void> run(std::string to_up, std::string to_down);
  // Ends the relay from outside (worker shutdown): both sockets are shut
  // down and closed; run() returns soon after.
  void close();
  bool closed() const { return closed_; }

 private:
  Awaitable<void> pump(RelayDirection dir, std::string first);
  Awaitable<void> idleWatch();
  // One chunk read for `dir`: counted, written, counted. False when the
  // direction ends (its destination failed).
  Awaitable<bool> forward(RelayDirection dir, std::span<const char> data);
  // Both ends reset (SO_LINGER 0) and closed.
  void resetBoth();
  void touch() { last_activity_ = std::chrono::steady_clock::now(); }
  struct SpawnedDone;

  asio::io_context& io_;
  RelayEnd& down_;
  RelayEnd& up_;
  size_t chunk_;
  std::chrono::milliseconds idle_;
  RelayObserver& observer_;
  uint64_t id_;  // the connection's, for logs

  bool closed_ = false;                 // close(), an idle timeout or a reset closed the sockets
  bool done_ = false;                   // both pumps ended
  std::array<bool, 2> writing_{};       // a pump's write is in flight
  std::array<bool, 2> stop_reading_{};  // its destination is gone: no more reads
  bool flushing_ = false;               // onFlush(true) was reported
  bool pump_running_ = false;           // the co_spawned kToDownstream pump
  bool idle_running_ = false;           // the co_spawned idle watch
  // Each pump's reader: it waits in 512 bytes, as a WebSocket message or a
  // database query usually is, and reads more on at once.
  std::array<WaitingReader<512>, 2> readers_;
  Signal joined_;  // notified when one of them ends
  SteadyTimer idle_timer_;
  std::chrono::steady_clock::time_point last_activity_;
};

}  // namespace turnout::proxy
