#include "proxy/listener/listener_address_map.h"

#include <algorithm>

#include "proxy/server/data_plane_config.h"

namespace turnout::proxy {

ListenerAddressMap::Key ListenerAddressMap::keyOf(const asio::ip::address& a, uint16_t port) {
  Key k;
  k.port = port;
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), k.bytes.begin());
  } else {
    k.v6 = true;
    k.bytes = a.to_v6().to_bytes();
  }
  return k;
}

ListenerAddressMap::ListenerAddressMap(const DataPlaneConfig& config) {
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const config::ListenerConfig& l = *config.listeners[i]->config;
    if (l.address.kind != config::Address::Kind::Socket ||
        l.address.protocol != config::Address::Protocol::Tcp) {
      continue;
    }
    boost::system::error_code ec;
    const asio::ip::address a = asio::ip::make_address(l.address.address, ec);
    if (ec) continue;  // SnapshotBuilder accepts IP literals only
    by_address_.try_emplace(keyOf(a, static_cast<uint16_t>(l.address.port)), i);
    // "::" with ipv4_compat takes IPv4 too: it is the IPv4 wildcard as well
    // (unless a 0.0.0.0 listener, which LDS and SnapshotBuilder reject).
    if (l.address.ipv4_compat && a.is_v6() && a.is_unspecified()) {
      by_address_.try_emplace(keyOf(asio::ip::address_v4::any(), static_cast<uint16_t>(l.address.port)), i);
    }
  }
}

std::optional<size_t> ListenerAddressMap::find(const asio::ip::tcp::endpoint& to) const {
  if (by_address_.empty()) return std::nullopt;
  if (auto it = by_address_.find(keyOf(to.address(), to.port())); it != by_address_.end()) {
    return it->second;
  }
  const asio::ip::address any = to.address().is_v4() ? asio::ip::address(asio::ip::address_v4::any())
                                                     : asio::ip::address(asio::ip::address_v6::any());
  if (auto it = by_address_.find(keyOf(any, to.port())); it != by_address_.end()) {
    return it->second;
  }
  return std::nullopt;
}

}  // namespace turnout::proxy
