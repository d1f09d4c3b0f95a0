#pragma once

// A thread's scratch for socket reads (ByteRelay, the HTTP/2 downstream
// connection): a connection waits for input in a small read of its own
// (a readInq, which the reactor performs when epoll reports the socket
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
#include "proxy/common/inq_read.h"

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
// in a readInq into `wait_` (proxy/common/inq_read.h): when the read before
// drained the socket, the reactor queues it without trying a recv first and
// performs it when epoll reports the socket readable; an async_wait would
// re-arm the descriptor with an epoll_ctl every time. Otherwise it reads on
// at once into the thread's scratch. Data that arrives after a short read
// raises a new edge, which the pending read sees (the reactor is
// edge-triggered, and the read is queued before the thread next asks
// epoll). The socket must be non-blocking (socket.non_blocking(true)).
template <std::size_t kWaitBytes>
class WaitingReader {
 public:
  // Reads what the socket holds at once, unless the last read found it
  // empty. True when that settled this read: `*out` holds the bytes (in the
  // thread's scratch, valid until the next suspension) or `*ec` the error
  // (EOF, a reset). False: co_await wait(), then waited() has the bytes.
  bool readNow(TcpSocket* socket, std::size_t chunk, std::span<const char>* out,
               boost::system::error_code* ec) {
    if (drained_) return false;
    char* into = readScratch().bytes.get();
    const std::size_t n = socket->read_some(asio::buffer(into, chunk), *ec);
    if (*ec == asio::error::would_block || *ec == asio::error::try_again) {
      *ec = {};
      drained_ = true;
      return false;
    }
    if (*ec) return true;
    drained_ = n < chunk;
    *out = std::span<const char>(into, n);
    return true;
  }
  // Waits for input in the reader's own buffer: `*ec` is EOF, a reset or
  // operation_aborted (the socket was cancelled or closed), else waited()
  // has what came.
  auto wait(TcpSocket* socket, boost::system::error_code* ec) {
    return readInq(*socket, asio::buffer(wait_), ec, &waited_);
  }
  std::span<const char> waited() {
    drained_ = waited_ < wait_.size();
    return std::span<const char>(wait_.data(), waited_);
  }

  // Both steps: `*out` as readNow() or waited() set it, or the error.
  Awaitable<boost::system::error_code> read(TcpSocket* socket, std::size_t chunk,
                                            std::span<const char>* out) {
    boost::system::error_code ec;
    if (readNow(socket, chunk, out, &ec)) co_return ec;
    co_await wait(socket, &ec);
    if (!ec) *out = waited();
    co_return ec;
  }

 private:
  std::array<char, kWaitBytes> wait_;
  std::size_t waited_ = 0;
  bool drained_ = true;
};

}  // namespace turnout::proxy
