#pragma once

// The one way into Asio and Beast. Boost 1.74's awaitable.hpp uses
// std::exchange without including <utility>, so <utility> comes first; the
// BOOST_ASIO_* / BOOST_BEAST_* definitions live in the turnout_asio CMake
// target so that every translation unit agrees.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace turnout {
namespace asio = boost::asio;
namespace beast = boost::beast;

// Every coroutine, socket and timer names the io_context's own executor
// type. Asio's default, any_io_executor, is type-erased: each operation
// copied, moved and dispatched it through function pointers, about 2,500
// instructions per proxied h2c request (callgrind). A worker runs one
// io_context, so nothing needs the erasure.
using Executor = asio::io_context::executor_type;
template <typename T = void>
using Awaitable = asio::awaitable<T, Executor>;
constexpr asio::use_awaitable_t<Executor> use_awaitable;
using TcpSocket = asio::basic_stream_socket<asio::ip::tcp, Executor>;
using TcpAcceptor = asio::basic_socket_acceptor<asio::ip::tcp, Executor>;
using TcpResolver = asio::ip::basic_resolver<asio::ip::tcp, Executor>;
using SteadyTimer =
    asio::basic_waitable_timer<std::chrono::steady_clock,
                               asio::wait_traits<std::chrono::steady_clock>, Executor>;
using StreamDescriptor = asio::posix::basic_stream_descriptor<Executor>;
using SignalSet = asio::basic_signal_set<Executor>;
using TcpStream = beast::basic_stream<asio::ip::tcp, Executor>;
}  // namespace turnout
