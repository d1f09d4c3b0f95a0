#pragma once

// Envoy's weighted_clusters pick (source/common/router/weighted_cluster_specifier.cc):
// `value % total`, then the first entry whose cumulative range [begin, end)
// holds it; zero-weight entries are never picked. Immutable; thread-safe.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace turnout::routing {

class WeightedChoice {
 public:
  WeightedChoice() = default;
  explicit WeightedChoice(const std::vector<uint32_t>& weights);

  // Sum of the weights (the caller guarantees it is > 0 before pick()).
  uint64_t total() const { return cumulative_.empty() ? 0 : cumulative_.back(); }
  // Index of the chosen entry. Caller guarantees total() > 0.
  size_t pick(uint64_t value) const;

 private:
  std::vector<uint64_t> cumulative_;  // cumulative_[i] = w0 + ... + wi
};

}  // namespace turnout::routing
