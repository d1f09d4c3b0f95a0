#include "bench/turnout_bench/key_mix.h"

#include <charconv>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "routing/routing_key.h"

namespace turnout::bench {

KeyMix::KeyMix() : shares_{KeyShare{std::string(kBaselineKey), 1}} {}

absl::StatusOr<KeyMix> KeyMix::parse(std::string_view spec) {
  if (spec.empty()) return absl::InvalidArgumentError("empty key mix");
  KeyMix mix;
  mix.shares_.clear();
  uint64_t total = 0;
  for (absl::string_view item : absl::StrSplit(absl::string_view(spec.data(), spec.size()), ',')) {
    const std::string_view entry(item.data(), item.size());
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", item, "' is not name=weight (e.g. baseline=90,feat-a=10)"));
    }
    const std::string_view name = entry.substr(0, eq);
    const std::string_view w = entry.substr(eq + 1);
    if (name != kBaselineKey && !routing::isValidRoutingKey(name, routing::kMaxRoutingKeyLength)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", absl::string_view(name.data(), name.size()),
          "' is not a valid routing key (1 to 1024 characters from [A-Za-z0-9._-])"));
    }
    uint32_t weight = 0;
    const auto [end, ec] = std::from_chars(w.data(), w.data() + w.size(), weight);
    if (w.empty() || ec != std::errc() || end != w.data() + w.size() || weight > 1000000) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight of '", absl::string_view(name.data(), name.size()), "' must be an integer from 0 to 1000000, got '",
          absl::string_view(w.data(), w.size()), "'"));
    }
    for (const KeyShare& s : mix.shares_) {
      if (s.key == name) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", absl::string_view(name.data(), name.size()), "' appears twice"));
      }
    }
    mix.shares_.push_back(KeyShare{std::string(name), weight});
    total += weight;
  }
  if (total == 0) return absl::InvalidArgumentError("every weight is 0");
  return mix;
}

std::vector<uint32_t> KeyMix::weights() const {
  std::vector<uint32_t> w;
  w.reserve(shares_.size());
  for (const KeyShare& s : shares_) w.push_back(s.weight);
  return w;
}

uint64_t KeyMix::totalWeight() const {
  uint64_t t = 0;
  for (const KeyShare& s : shares_) t += s.weight;
  return t;
}

WeightedSequence::WeightedSequence(std::vector<uint32_t> weights)
    : weights_(weights.begin(), weights.end()), current_(weights.size(), 0) {
  for (int64_t w : weights_) total_ += w;
}

size_t WeightedSequence::next() {
  size_t best = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    current_[i] += weights_[i];
    if (current_[i] > current_[best]) best = i;
  }
  current_[best] -= total_;
  return best;
}

}  // namespace turnout::bench
