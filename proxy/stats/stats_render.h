#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/stats/store.h"

namespace re2 {
class RE2;
}

namespace turnout::proxy::stats {

// What /stats shows: ?usedonly and ?filter=<RE2, partial match on the full name>.
class StatsFilter {
 public:
  StatsFilter() = default;
  // Fails with InvalidArgument naming the regex error.
  static absl::StatusOr<StatsFilter> create(bool used_only, std::string regex);
  bool matches(std::string_view name, bool used) const;
  bool usedOnly() const { return used_only_; }
  // The regex alone, for the store to skip names before merging their
  // values; unset when there is none.
  Store::NameFilter nameFilter() const;

 private:
  bool used_only_ = false;
  std::shared_ptr<const re2::RE2> regex_;
};

// A stat name with Envoy's default tags (well_known_names.cc) pulled out.
struct TaggedName {
  std::string extracted;  // e.g. cluster.upstream_rq_xx
  std::vector<std::pair<std::string, std::string>> tags;  // (envoy.cluster_name, x), ...
};
// Applies the response-code, response-code-class, cluster-name,
// http-conn-manager-prefix and listener-address extractors in Envoy's order.
TaggedName extractTags(std::string_view name);

// Envoy's /stats text: counters and gauges merged and sorted (`name: value`),
// then histograms sorted (`name: P0(interval,cumulative) ... P100(...)`, or
// `name: No recorded values`).
std::string renderText(const Store& store, const StatsFilter& filter);
// /stats?format=json
std::string renderJson(const Store& store, const StatsFilter& filter);
// /stats/prometheus: exposition format 0.0.4.
std::string renderPrometheus(const Store& store, const StatsFilter& filter);

// Shortest round-trip rendering of a double ("nan" for NaN), as fmt's "{}".
std::string formatDouble(double v);
// A JSON string literal with quotes.
std::string jsonQuote(std::string_view s);

}  // namespace turnout::proxy::stats
