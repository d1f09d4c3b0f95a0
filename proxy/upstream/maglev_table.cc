#include "proxy/upstream/maglev_table.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "proxy/common/xx_hash.h"

namespace turnout::proxy {
namespace {

constexpr uint32_t kFree = std::numeric_limits<uint32_t>::max();

// One host while the table is filled (Envoy's TableBuildEntry).
struct BuildEntry {
  uint32_t host;  // index into the constructor's hosts
  uint64_t offset;
  uint64_t skip;
  double weight;  // normalized: the host's share of the total weight
  double target_weight = 0;
  uint64_t next = 0;
};

}  // namespace

MaglevTable::MaglevTable(std::span<const Host> hosts, uint64_t table_size)
    : slots_(hosts.size(), 0) {
  if (hosts.empty() || table_size == 0) return;
  uint64_t total = 0;
  for (const Host& h : hosts) total += std::max<uint32_t>(h.weight, 1);
  std::vector<uint32_t> order(hosts.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return hosts[a].key != hosts[b].key ? hosts[a].key < hosts[b].key : a < b;
  });
  std::vector<BuildEntry> entries;
  entries.reserve(hosts.size());
  double max_weight = 0;
  for (uint32_t i : order) {
    const double w = static_cast<double>(std::max<uint32_t>(hosts[i].weight, 1)) /
                     static_cast<double>(total);
    max_weight = std::max(max_weight, w);
    const uint64_t skip = table_size > 1 ? xxHash64(hosts[i].key, 1) % (table_size - 1) + 1 : 1;
    entries.push_back(BuildEntry{i, xxHash64(hosts[i].key, 0) % table_size, skip, w});
  }
  table_.assign(table_size, kFree);
  uint64_t filled = 0;
  for (uint32_t iteration = 1; filled < table_size; ++iteration) {
    for (size_t i = 0; i < entries.size() && filled < table_size; ++i) {
      BuildEntry& e = entries[i];
      // A host of the largest weight claims a slot every turn; one of a third
      // of it, every third turn.
      if (iteration * e.weight < e.target_weight) continue;
      e.target_weight += max_weight;
      uint64_t c = (e.offset + e.skip * e.next) % table_size;
      while (table_[c] != kFree) {
        ++e.next;
        c = (e.offset + e.skip * e.next) % table_size;
      }
      table_[c] = e.host;
      ++e.next;
      ++slots_[e.host];
      ++filled;
    }
  }
}

uint32_t MaglevTable::pick(uint64_t hash, uint32_t attempt) const {
  if (attempt > 0) hash ^= ~0ULL - attempt + 1;
  return table_[hash % table_.size()];
}

}  // namespace turnout::proxy
