#include "config/snapshot/listener_address_set.h"

#include <arpa/inet.h>

#include <vector>

namespace turnout::config {

std::optional<std::string> ListenerAddressSet::insert(const ListenerConfig& l) {
  const Address& a = l.address;
  if (a.kind != Address::Kind::Socket) return std::nullopt;
  if (a.port == 0 && l.bind_to_port) return std::nullopt;
  std::vector<Key> keys(1);
  Key& k = keys[0];
  k.protocol = a.protocol;
  k.port = a.port;
  if (inet_pton(AF_INET, a.address.c_str(), k.bytes.data()) != 1) {
    if (inet_pton(AF_INET6, a.address.c_str(), k.bytes.data()) == 1) {
      k.v6 = true;
    } else {
      k.other = a.address;
    }
  }
  static constexpr std::array<uint8_t, 16> kZero{};
  if (k.v6 && a.ipv4_compat && k.bytes == kZero) {
    Key v4 = k;
    v4.v6 = false;  // 0.0.0.0: the first four bytes, zero
    keys.push_back(v4);
  }
  for (const Key& key : keys) {
    if (auto it = names_.find(key); it != names_.end()) return it->second;
  }
  for (Key& key : keys) names_.emplace(std::move(key), l.name);
  return std::nullopt;
}

}  // namespace turnout::config
