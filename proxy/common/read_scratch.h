#pragma once

// A thread's scratch for socket reads (ByteRelay, the HTTP/2 downstream
// connection): a connection waits for input in a small read of its own
// (an async_read_some, which asio performs when epoll reports the socket
// readable; an async_wait would cost an epoll_ctl each time) and reads
// what did not fit into this buffer at once, so that it holds no large
// read buffer of its own while idle.
//
// Rule for users: nothing may point into the scratch across a suspension
// (co_await): another connection of the thread reads into it meanwhile.
// Whatever must survive one is copied out first.

#include <array>
#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "proxy/common/asio.h"

namespace turnout::proxy {

struct ReadScratch {
  static constexpr std::size_t kBytes = 64 * 1024;
  std::unique_ptr<char[]> bytes{new char[kBytes]};
  std::string plain;  // decrypted TLS records
  std::string wire;   // encrypted TLS records
};

// This thread's scratch, made at its first use.
inline ReadScratch& readScratch() {
  thread_local ReadScratch scratch;
  return scratch;
}

// How a connection reads its socket without a large buffer of its own.
// While the socket was found empty (the last read came back short) it waits
// in an async_read_some into `wait_`, which asio performs when epoll reports
// the socket readable: an async_wait would re-arm the descriptor with an
// epoll_ctl every time. Otherwise it reads on at once into the thread's
// scratch. Data that arrives after a short read raises a new edge, which
// the pending read sees (the reactor is edge-triggered, and the read is
// queued before the thread next asks epoll). The socket must be
// non-blocking (socket.non_blocking(true)).
template <std::size_t kWaitBytes>
class WaitingReader {
 public:
  // Sets `*out` to the bytes read (in wait_ or the scratch: valid until the
  // next suspension) and returns no error; or returns EOF, a reset, or
  // operation_aborted (the socket was cancelled or closed).
  Awaitable<boost::system::error_code> read(TcpSocket* socket, std::size_t chunk,
                                            std::span<const char>* out) {
    boost::system::error_code ec;
    for (;;) {
      if (drained_) {
        const std::size_t n = co_await socket->async_read_some(
            asio::buffer(wait_), asio::redirect_error(use_awaitable, ec));
        if (ec) co_return ec;
        drained_ = n < wait_.size();
        *out = std::span<const char>(wait_.data(), n);
        co_return ec;
      }
      char* into = readScratch().bytes.get();
      const std::size_t n = socket->read_some(asio::buffer(into, chunk), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        drained_ = true;
        continue;
      }
      if (ec) co_return ec;
      drained_ = n < chunk;
      *out = std::span<const char>(into, n);
      co_return ec;
    }
  }

 private:
  std::array<char, kWaitBytes> wait_;
  bool drained_ = true;
};

}  // namespace turnout::proxy
