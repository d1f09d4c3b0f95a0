#pragma once

// Routing-key mixes (`--key-mix baseline=90,feat-a=5,feat-b=5`): which share
// of requests carries which routing key, and the deterministic sequence that
// picks the key of each request.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace turnout::bench {

// The mix entry name that means "no routing key".
inline constexpr std::string_view kBaselineKey = "baseline";

struct KeyShare {
  std::string key;  // kBaselineKey, or a routing key ([A-Za-z0-9._-], <= 1024 chars)
  uint32_t weight = 0;
  bool baseline() const { return key == kBaselineKey; }
};

class KeyMix {
 public:
  // The mix without keys: every request is a baseline request.
  KeyMix();
  // Parses "name=weight[,name=weight...]". Weights are integers in
  // [0, 1000000], at least one is non-zero, names are unique; `baseline`
  // stands for requests without a key. Errors say what is wrong with which
  // entry (the caller prefixes the flag).
  static absl::StatusOr<KeyMix> parse(std::string_view spec);

  const std::vector<KeyShare>& shares() const { return shares_; }
  std::vector<uint32_t> weights() const;
  uint64_t totalWeight() const;

 private:
  std::vector<KeyShare> shares_;
};

// Smooth weighted round robin (nginx's upstream algorithm): every
// sum(weights) consecutive picks contain entry i exactly weights[i] times, and
// the picks of each entry are spread evenly through the cycle. Deterministic;
// one per worker thread, not thread-safe.
class WeightedSequence {
 public:
  // Caller guarantees at least one non-zero weight.
  explicit WeightedSequence(std::vector<uint32_t> weights);
  // The index of the next pick.
  size_t next();

 private:
  std::vector<int64_t> weights_;
  std::vector<int64_t> current_;
  int64_t total_ = 0;
};

}  // namespace turnout::bench
