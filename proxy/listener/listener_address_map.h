#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "proxy/common/asio.h"

#include "absl/container/flat_hash_map.h"

namespace turnout::proxy {

struct DataPlaneConfig;

// One config generation's listeners by address, for use_original_dst: the
// listener a connection whose original destination is `to` is handed to
// (Envoy's ConnectionHandlerImpl::getBalancedHandlerByAddress): the one whose
// address is exactly `to`, else the one on the wildcard address of `to`'s
// family (0.0.0.0 or ::; for IPv4, also "::" with ipv4_compat) and port.
// Listeners with bind_to_port: false count (they exist for this). Two
// listeners on one address never get here (SnapshotBuilder and LDS reject
// them, config/snapshot/listener_address_set.h); if they did, the first in
// config order would win. Built by a worker when it installs a config that has a
// use_original_dst listener; find() is a hash lookup or two, no allocation.
class ListenerAddressMap {
 public:
  ListenerAddressMap() = default;
  // Indexes config.listeners (positions into that vector).
  explicit ListenerAddressMap(const DataPlaneConfig& config);

  std::optional<size_t> find(const asio::ip::tcp::endpoint& to) const;
  bool empty() const { return by_address_.empty(); }

 private:
  struct Key {
    bool v6 = false;
    std::array<uint8_t, 16> bytes{};
    uint16_t port = 0;

    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.v6, k.bytes, k.port);
    }
  };
  static Key keyOf(const asio::ip::address& a, uint16_t port);

  absl::flat_hash_map<Key, size_t> by_address_;
};

}  // namespace turnout::proxy
