#include "proxy/upstream/source_address.h"

#include <netinet/in.h>

namespace turnout::proxy {

boost::system::error_code bindSourceAddress(asio::ip::tcp::socket& socket,
                                            const config::ClusterConfig& cluster,
                                            const asio::ip::tcp::endpoint& destination) {
  boost::system::error_code ec;
  if (!cluster.source_address) return ec;
  const asio::ip::address source = asio::ip::make_address(cluster.source_address->address, ec);
  if (ec) return ec;
  if (source.is_v4() != destination.address().is_v4()) {
    return asio::error::address_family_not_supported;
  }
  if (!socket.is_open()) socket.open(destination.protocol(), ec);
  if (ec) return ec;
  const uint32_t port = cluster.source_address->port;
  if (port == 0) {
#ifdef IP_BIND_ADDRESS_NO_PORT
    socket.set_option(asio::detail::socket_option::boolean<IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT>(true),
                      ec);
    ec.clear();  // an older kernel: the bind picks the port
#endif
  }
  socket.bind({source, static_cast<unsigned short>(port)}, ec);
  return ec;
}

}  // namespace turnout::proxy
