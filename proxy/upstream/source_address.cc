#include "proxy/upstream/source_address.h"

#include <netinet/in.h>

namespace turnout::proxy {
namespace {

// True when `address` is an IPv4 literal (the snapshot holds only literals).
bool isV4(const std::string& address) {
  boost::system::error_code ec;
  const asio::ip::address a = asio::ip::make_address(address, ec);
  return !ec && a.is_v4();
}

}  // namespace

const config::ClusterConfig::SourceAddress* selectSourceAddress(
    const config::ClusterConfig& cluster, const asio::ip::tcp::endpoint& destination) {
  if (!cluster.upstream_bind) return nullptr;
  const auto& bind = *cluster.upstream_bind;
  const bool v4 = destination.address().is_v4();
  if (isV4(bind.source_address.address) == v4) return &bind.source_address;
  if (bind.extra_source_address && isV4(bind.extra_source_address->address) == v4) {
    return &*bind.extra_source_address;
  }
  return &bind.source_address;
}

boost::system::error_code bindSourceAddress(TcpSocket& socket, const config::ClusterConfig& cluster,
                                            const asio::ip::tcp::endpoint& destination) {
  boost::system::error_code ec;
  const config::ClusterConfig::SourceAddress* chosen = selectSourceAddress(cluster, destination);
  if (chosen == nullptr) return ec;
  const asio::ip::address source = asio::ip::make_address(chosen->address, ec);
  if (ec) return ec;
  if (source.is_v4() != destination.address().is_v4()) {
    return asio::error::address_family_not_supported;
  }
  if (!socket.is_open()) socket.open(destination.protocol(), ec);
  if (ec) return ec;
  if (chosen->port == 0) {
#ifdef IP_BIND_ADDRESS_NO_PORT
    socket.set_option(asio::detail::socket_option::boolean<IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT>(true),
                      ec);
    ec.clear();  // an older kernel: the bind picks the port
#endif
  }
  socket.bind({source, static_cast<unsigned short>(chosen->port)}, ec);
  return ec;
}

}  // namespace turnout::proxy
