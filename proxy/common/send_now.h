#pragma once

// A write that does not wait: what asio's async_write would try first
// (one send() on the non-blocking socket), without its completion going
// through the scheduler to a suspended coroutine. A response or request
// that fits the socket's buffer, nearly all of them, is written with no
// coroutine made or resumed (UpstreamConnection::trySend, the HTTP/1
// DownstreamConnection::tryFlush).

#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "proxy/common/asio.h"

namespace turnout::proxy {

enum class SendNow {
  kAll,     // everything went; `out` is empty
  kSome,    // the socket's buffer is full: the rest, left in `out`, needs an awaited write
  kFailed,  // the connection failed (reset, shut down); `out` is unchanged
};

// Sends from the front of `out` and erases what went. The socket must be
// open (asio made it non-blocking at its connect or accept; MSG_DONTWAIT
// makes sure). No SIGPIPE.
inline SendNow sendNow(TcpSocket& socket, std::string& out) {
  if (out.empty()) return SendNow::kAll;
  const ssize_t n =
      ::send(socket.native_handle(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n == static_cast<ssize_t>(out.size())) {
    out.clear();
    return SendNow::kAll;
  }
  if (n >= 0) {
    out.erase(0, static_cast<std::size_t>(n));
    return SendNow::kSome;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return SendNow::kSome;
  return SendNow::kFailed;
}

}  // namespace turnout::proxy
