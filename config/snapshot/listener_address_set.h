#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "config/snapshot/snapshot.h"

namespace turnout::config {

// The addresses a set of listeners claims, for Envoy's duplicate-address rule
// (ListenerManagerImpl: "error adding listener '<name>': has duplicate address
// '<address>' as existing listener"). Two listeners claim one address when
// both are socket addresses of one protocol, IP and port. "::" with
// ipv4_compat also claims "0.0.0.0" on its port (it takes IPv4 connections);
// without it "::" and "0.0.0.0" are two addresses. bind_to_port does not
// matter: two bound listeners would split one port's connections between
// them, and a listener that does not bind is a use_original_dst hand-off
// target whose address must say which listener a connection goes to. The one
// exception is port 0 with bind_to_port: each such listener binds a port of
// its own.
//
// Used by SnapshotBuilder (one config's listeners) and by LDS (the update's
// listeners against the bootstrap's). Not thread-safe; a value type.
class ListenerAddressSet {
 public:
  // Claims `l`'s address for it. If another listener of the set already holds
  // it, claims nothing and returns that listener's name.
  std::optional<std::string> insert(const ListenerConfig& l);

 private:
  struct Key {
    Address::Protocol protocol = Address::Protocol::Tcp;
    bool v6 = false;
    std::array<uint8_t, 16> bytes{};
    uint32_t port = 0;
    std::string other;  // an address that is not an IP literal, as written

    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.protocol, k.v6, k.bytes, k.port, k.other);
    }
  };

  absl::flat_hash_map<Key, std::string> names_;
};

}  // namespace turnout::config
