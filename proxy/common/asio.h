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
}  // namespace turnout
