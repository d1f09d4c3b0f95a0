#pragma once

#include "config/snapshot/snapshot.h"
#include "proxy/common/asio.h"

namespace turnout::proxy {

// Cluster.upstream_bind_config.source_address: opens `socket` for
// `destination`'s family and binds it to the cluster's source address
// (IP_BIND_ADDRESS_NO_PORT when the port is 0, as Envoy does, so that the
// kernel picks the port at connect and source ports are not exhausted by
// the bind). Nothing without a source address. An error (a family other
// than the destination's, an address not on this host) fails the connect
// like a refused one.
boost::system::error_code bindSourceAddress(asio::ip::tcp::socket& socket,
                                            const config::ClusterConfig& cluster,
                                            const asio::ip::tcp::endpoint& destination);

}  // namespace turnout::proxy
