#pragma once

#include <optional>

#include "proxy/common/asio.h"

#include "config/snapshot/filter_chain_matcher.h"

namespace turnout::proxy {

// The original_dst listener filter (Envoy's envoy.filters.listener.original_dst):
// the destination an accepted connection had before iptables REDIRECT or
// DNAT rewrote it, read from the socket's conntrack entry with one
// getsockopt (SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for IPv6, by the
// family of `local`). None when the connection was not redirected (ENOENT)
// or conntrack is not there (ENOPROTOOPT): the local address stays. Worker
// thread; no allocation.
std::optional<asio::ip::tcp::endpoint> originalDestination(TcpSocket& socket,
                                                           const asio::ip::tcp::endpoint& local);

// Sets IP_TRANSPARENT (IPv4) or IPV6_TRANSPARENT (IPv6) on a listening socket
// before it binds (a `transparent: true` listener: TPROXY capture; it needs
// CAP_NET_ADMIN). Fails with the setsockopt's error.
boost::system::error_code setTransparent(TcpAcceptor& acceptor, bool v6);

// An IPv4 connection accepted on a dual-stack (ipv4_compat) socket has
// v4-mapped addresses (::ffff:a.b.c.d): those as IPv4, anything else as is.
asio::ip::tcp::endpoint unmappedV4(const asio::ip::tcp::endpoint& e);

// An endpoint as filter_chain_match sees it.
config::MatchAddress toMatchAddress(const asio::ip::tcp::endpoint& e);

}  // namespace turnout::proxy
