#pragma once

#include "config/snapshot/snapshot.h"
#include "proxy/common/asio.h"

namespace turnout::proxy {

// Cluster.upstream_bind_config: the source address an upstream connection to
// `destination` binds: of the cluster's source_address and extra source
// address, the one of the destination's IP family, else source_address
// (Envoy's DefaultUpstreamLocalAddressSelector). Null without a bind config.
const config::ClusterConfig::SourceAddress* selectSourceAddress(
    const config::ClusterConfig& cluster, const asio::ip::tcp::endpoint& destination);

// Opens `socket` for `destination`'s family and binds it to the source
// address selectSourceAddress() picks (IP_BIND_ADDRESS_NO_PORT when the
// port is 0, as Envoy does, so that the kernel picks the port at connect and
// source ports are not exhausted by the bind). Nothing without a bind
// config. An error (no source address of the destination's family, an
// address not on this host) fails the connect like a refused one. Called by
// the HTTP/1 and HTTP/2 pools and the TCP proxy on their worker.
boost::system::error_code bindSourceAddress(TcpSocket& socket, const config::ClusterConfig& cluster,
                                            const asio::ip::tcp::endpoint& destination);

}  // namespace turnout::proxy
