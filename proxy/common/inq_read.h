#pragma once

// A socket read that tells Asio's reactor when it drained the socket.
//
// Asio 1.18's reactor tries every read at once before it waits for epoll
// (a "speculative" recv), and only EOF tells it that a socket is empty: a
// read that came back short does not. So each read a connection starts
// after one that completed begins with a recv() that fails EAGAIN when
// nothing came yet: the next request on a kept-alive client connection,
// the response right after the request went upstream. That was 1.74 of
// 6.01 syscalls per proxied HTTP/1.1 request (strace), which haproxy does
// not make (4.77).
//
// With TCP_INQ (Linux 4.18) each recvmsg() also says how many bytes are
// left in the socket, and 1 when none are but a FIN is (so that EOF is
// never missed). A read that left nothing reports done_and_exhausted, the
// status the reactor already keeps for this: it clears the descriptor's
// speculative flag, and the next read waits for epoll without trying. The
// reactor is edge-triggered and its registration persistent, so whatever
// arrives after that recvmsg raises a new edge, which sets the flag again
// and performs the waiting read. Without TCP_INQ (setsockopt failed) no
// count comes back and every read is plain "done": Asio's behaviour.
//
//   enableInq(socket);              // once per connection
//   co_await readInq(socket, buffer, &ec, &n);
//
// Uses Asio 1.18's reactor internals (reactor_op, epoll_reactor::start_op,
// the socket's descriptor data); resume.h stops the build on another
// version.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <type_traits>
#include <utility>

#include "proxy/common/asio.h"
#include "proxy/common/resume.h"

namespace turnout {
namespace inq_detail {

using asio::detail::reactor_op;

// The socket's implementation (descriptor, reactor data): protected in
// basic_socket, reached through a member pointer named in a derived class.
struct SocketAccess : TcpSocket {
  static auto& implOf(TcpSocket& s) { return (s.*(&SocketAccess::impl_)).get_implementation(); }
};

// The reactor the socket is registered with, read from its descriptor
// data (inq_read.cc). Not cached per thread: an io_context made where an
// earlier one was destroyed would have found the old reactor.
asio::detail::epoll_reactor& reactorOf(TcpSocket& socket);

template <typename Handler>
class RecvOp : public reactor_op {
 public:
  RecvOp(int fd, asio::mutable_buffer buffer, Handler&& handler)
      : reactor_op(boost::system::error_code(), &perform, &complete),
        fd_(fd),
        buffer_(buffer),
        handler_(std::move(handler)) {}

 private:
  static status perform(reactor_op* base) {
    auto* o = static_cast<RecvOp*>(base);
    iovec iov{o->buffer_.data(), o->buffer_.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n;
    do {
      n = ::recvmsg(o->fd_, &msg, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
      o->ec_ = boost::system::error_code(errno, asio::error::get_system_category());
      return done;
    }
    if (n == 0 && o->buffer_.size() > 0) {
      o->ec_ = asio::error::eof;
      return done;  // a later read tries at once and sees EOF again
    }
    o->bytes_transferred_ = static_cast<std::size_t>(n);
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ) {
        int inq = -1;
        std::memcpy(&inq, CMSG_DATA(c), sizeof(inq));
        if (inq == 0) return done_and_exhausted;
      }
    }
    return done;
  }

  static void complete(void* owner, asio::detail::scheduler_operation* base,
                       const boost::system::error_code&, std::size_t) {
    auto* o = static_cast<RecvOp*>(base);
    Handler handler(std::move(o->handler_));
    const boost::system::error_code ec = o->ec_;
    const std::size_t n = o->bytes_transferred_;
    delete o;  // before the upcall: the handler may start the next read
    if (owner != nullptr) std::move(handler)(ec, n);
  }

  int fd_;
  asio::mutable_buffer buffer_;
  Handler handler_;
};

template <typename Handler>
void startRead(TcpSocket& socket, asio::mutable_buffer buffer, Handler&& handler) {
  auto& impl = SocketAccess::implOf(socket);
  auto* op = new RecvOp<Handler>(impl.socket_, buffer, std::move(handler));
  reactorOf(socket).start_op(asio::detail::epoll_reactor::read_op, impl.socket_, impl.reactor_data_,
                             op, false, true);
}

}  // namespace inq_detail

// Asks the kernel for the bytes left after each read (TCP_INQ). Harmless
// where it fails: reads then behave as Asio's.
inline void enableInq(TcpSocket& socket) {
  const int on = 1;
  (void)::setsockopt(socket.native_handle(), SOL_TCP, TCP_INQ, &on, sizeof(on));
}

// async_read_some that marks the socket drained: `*n` bytes, or `*ec`
// (EOF, a reset, operation_aborted after cancel() or close()).
inline auto readInq(TcpSocket& socket, asio::mutable_buffer buffer, boost::system::error_code* ec,
                    std::size_t* n) {
  return resumeAfter(
      [&socket, buffer](auto handler) {
        inq_detail::startRead(socket, buffer, std::move(handler));
      },
      ec, n);
}

}  // namespace turnout
