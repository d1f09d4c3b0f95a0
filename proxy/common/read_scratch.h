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

#include <cstddef>
#include <memory>
#include <string>

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

}  // namespace turnout::proxy
