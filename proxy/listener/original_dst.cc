#include "proxy/listener/original_dst.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace turnout::proxy {
namespace {

// <linux/netfilter_ipv4.h> SO_ORIGINAL_DST and <linux/netfilter_ipv6/ip6_tables.h>
// IP6T_SO_ORIGINAL_DST (those headers clash with <netinet/in.h>).
constexpr int kSoOriginalDst = 80;
constexpr int kIp6tSoOriginalDst = 80;

}  // namespace

std::optional<asio::ip::tcp::endpoint> originalDestination(TcpSocket& socket,
                                                           const asio::ip::tcp::endpoint& local) {
  const int fd = socket.native_handle();
  if (local.address().is_v4()) {
    sockaddr_in sin{};
    socklen_t len = sizeof(sin);
    if (::getsockopt(fd, SOL_IP, kSoOriginalDst, &sin, &len) != 0 || sin.sin_family != AF_INET) {
      return std::nullopt;
    }
    asio::ip::address_v4::bytes_type b;
    static_assert(sizeof(b) == sizeof(sin.sin_addr));
    std::memcpy(b.data(), &sin.sin_addr, b.size());
    return asio::ip::tcp::endpoint(asio::ip::address_v4(b), ntohs(sin.sin_port));
  }
  sockaddr_in6 sin6{};
  socklen_t len = sizeof(sin6);
  if (::getsockopt(fd, SOL_IPV6, kIp6tSoOriginalDst, &sin6, &len) != 0 ||
      sin6.sin6_family != AF_INET6) {
    return std::nullopt;
  }
  asio::ip::address_v6::bytes_type b;
  static_assert(sizeof(b) == sizeof(sin6.sin6_addr));
  std::memcpy(b.data(), &sin6.sin6_addr, b.size());
  return asio::ip::tcp::endpoint(asio::ip::address_v6(b), ntohs(sin6.sin6_port));
}

boost::system::error_code setTransparent(TcpAcceptor& acceptor, bool v6) {
  const int one = 1;
  const int rc = v6 ? ::setsockopt(acceptor.native_handle(), SOL_IPV6, IPV6_TRANSPARENT, &one,
                                   sizeof(one))
                    : ::setsockopt(acceptor.native_handle(), SOL_IP, IP_TRANSPARENT, &one,
                                   sizeof(one));
  if (rc != 0) return boost::system::error_code(errno, boost::system::system_category());
  return {};
}

asio::ip::tcp::endpoint unmappedV4(const asio::ip::tcp::endpoint& e) {
  if (!e.address().is_v6() || !e.address().to_v6().is_v4_mapped()) return e;
  return asio::ip::tcp::endpoint(asio::ip::make_address_v4(asio::ip::v4_mapped, e.address().to_v6()),
                                 e.port());
}

config::MatchAddress toMatchAddress(const asio::ip::tcp::endpoint& e) {
  if (e.address().is_v4()) return config::MatchAddress::v4(e.address().to_v4().to_bytes(), e.port());
  return config::MatchAddress::v6(e.address().to_v6().to_bytes(), e.port());
}

}  // namespace turnout::proxy
