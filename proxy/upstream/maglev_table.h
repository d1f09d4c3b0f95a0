#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace turnout::proxy {

// Envoy's Maglev lookup table (OriginalMaglevTable in
// source/extensions/load_balancing_policies/maglev/maglev_lb.cc, after
// "Maglev: A Fast and Reliable Software Network Load Balancer", §3.4), built
// the same way so that the same hosts and the same hash pick the same host:
//
// - Hosts are sorted by key (the address, or the hostname with
//   use_hostname_for_hashing), so their order in the input does not matter.
// - Each host's permutation of the table is offset = xxHash64(key, 0) % M,
//   skip = xxHash64(key, 1) % (M - 1) + 1, for a prime table size M.
// - Hosts take turns claiming their next free slot; a host of normalized
//   weight w claims on the turns where turn * w reaches its target, which
//   grows by the largest normalized weight each claim, so slots end up in
//   proportion to the weights.
// - A key hashes to slot hash % M; a retry's attempt n > 0 first mixes the
//   hash with ~0 - n + 1, as Envoy does to move retries to another host.
//
// Removing a host moves mostly the slots it held. Immutable once built; built
// on the main thread and shared by every worker.
class MaglevTable {
 public:
  static constexpr uint64_t kDefaultTableSize = 65537;  // Envoy's default

  struct Host {
    std::string_view key;  // only read while the table is built
    uint32_t weight = 1;   // 0 acts as 1
  };

  // Caller guarantees `table_size` is prime (the config layer checks it).
  // No hosts: an empty table.
  MaglevTable(std::span<const Host> hosts, uint64_t table_size);

  bool empty() const { return table_.empty(); }
  uint64_t size() const { return table_.size(); }
  // The index (into the hosts given to the constructor) for `hash`.
  // Caller guarantees !empty().
  uint32_t pick(uint64_t hash, uint32_t attempt = 0) const;
  // How many slots each host got, indexed like the constructor's hosts.
  const std::vector<uint64_t>& slotsPerHost() const { return slots_; }

 private:
  std::vector<uint32_t> table_;
  std::vector<uint64_t> slots_;
};

}  // namespace turnout::proxy
