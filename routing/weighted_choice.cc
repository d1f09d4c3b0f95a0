#include "routing/weighted_choice.h"

#include <algorithm>

namespace turnout::routing {

WeightedChoice::WeightedChoice(const std::vector<uint32_t>& weights) {
  cumulative_.reserve(weights.size());
  uint64_t sum = 0;
  for (uint32_t w : weights) {
    sum += w;
    cumulative_.push_back(sum);
  }
}

size_t WeightedChoice::pick(uint64_t value) const {
  const uint64_t selected = value % total();
  // First i with selected < cumulative_[i], i.e. begin_i <= selected < end_i.
  return static_cast<size_t>(std::upper_bound(cumulative_.begin(), cumulative_.end(), selected) -
                             cumulative_.begin());
}

}  // namespace turnout::routing
