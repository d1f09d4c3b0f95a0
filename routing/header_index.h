#pragma once

// The sandbox index (DESIGN.md §6). Inside a virtual host, a run of >= 2
// consecutive routes whose RouteMatch is identical except for exactly one
// exact, case-sensitive, non-inverted HeaderMatcher on the same header (name
// compared case-insensitively; the same headers[] position in every route) is
// matched as: the common part once, then one hash lookup of the value that
// header has in the request view (its values joined with ",", as every header
// matcher sees it; the routing-key header is no exception). First-match-wins
// is kept: a duplicated value maps to the earliest route of the run.
//
// Built by RouteTable::create(); immutable afterwards; thread-safe to read.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "routing/route_config.h"

namespace turnout::routing {

// Value -> index of the first route (in the virtual host) carrying it.
class HeaderIndex {
 public:
  // Keeps the earliest route for a duplicated value.
  void insert(std::string value, uint32_t route_index) {
    map_.try_emplace(std::move(value), route_index);
  }
  // The route index, or -1 if no route of the run carries `value`.
  int64_t find(std::string_view value) const {
    auto it = map_.find(absl::string_view(value.data(), value.size()));
    return it == map_.end() ? -1 : static_cast<int64_t>(it->second);
  }
  size_t size() const { return map_.size(); }

 private:
  absl::flat_hash_map<std::string, uint32_t> map_;
};

// One indexable run: routes [begin, end) of a virtual host, keyed by
// headers[header_position].
struct IndexedRun {
  uint32_t begin = 0;
  uint32_t end = 0;
  uint32_t header_position = 0;
};

// The exact value a HeaderMatcher indexes on, or nullopt if it cannot be
// indexed (not an exact match, ignore_case, invert_match, or the deprecated
// exact_match with an empty value, which Envoy treats as "any value").
std::optional<std::string_view> indexableExactValue(const HeaderMatcher& m);

// Finds the maximal runs (greedy, left to right) of at least `min_run` routes.
// Runs never overlap and are returned in route order.
std::vector<IndexedRun> findIndexedRuns(const std::vector<Route>& routes, size_t min_run = 2);

}  // namespace turnout::routing
