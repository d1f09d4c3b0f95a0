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

// Value -> index of the first route (in the virtual host) carrying it. The
// values are views: they must outlive the index (RouteTable keeps them in
// the routes the index serves, which the same virtual host holds).
class HeaderIndex {
 public:
  // Keeps the earliest route for a duplicated value.
  void insert(std::string_view value, uint32_t route_index) {
    map_.try_emplace(absl::string_view(value.data(), value.size()), route_index);
  }
  void reserve(size_t n) { map_.reserve(n); }
  // The route index, or -1 if no route of the run carries `value`.
  int64_t find(std::string_view value) const {
    auto it = map_.find(absl::string_view(value.data(), value.size()));
    return it == map_.end() ? -1 : static_cast<int64_t>(it->second);
  }
  size_t size() const { return map_.size(); }

 private:
  absl::flat_hash_map<absl::string_view, uint32_t> map_;
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

// Finds the maximal runs (greedy, left to right) of at least `min_run` routes
// among `count` routes whose RouteMatch `match_at(i)` returns. Runs never
// overlap and are returned in route order.
template <class MatchAt>
std::vector<IndexedRun> findIndexedRuns(size_t count, const MatchAt& match_at, size_t min_run = 2);
std::vector<IndexedRun> findIndexedRuns(const std::vector<Route>& routes, size_t min_run = 2);

namespace internal {
// True if `a` and `b` match the same requests except for headers[pos], which
// must be an indexable exact matcher on the same header in both.
bool sameExceptHeader(const RouteMatch& a, const RouteMatch& b, size_t pos);
}  // namespace internal

template <class MatchAt>
std::vector<IndexedRun> findIndexedRuns(size_t count, const MatchAt& match_at, size_t min_run) {
  std::vector<IndexedRun> runs;
  if (min_run < 2) min_run = 2;
  size_t i = 0;
  while (i < count) {
    const RouteMatch& first = match_at(i);
    size_t best_end = i + 1;
    size_t best_pos = 0;
    for (size_t pos = 0; pos < first.headers.size(); ++pos) {
      if (!indexableExactValue(first.headers[pos])) continue;
      size_t j = i + 1;
      while (j < count && internal::sameExceptHeader(first, match_at(j), pos)) ++j;
      if (j > best_end) {
        best_end = j;
        best_pos = pos;
      }
    }
    if (best_end - i >= min_run) {
      runs.push_back(IndexedRun{static_cast<uint32_t>(i), static_cast<uint32_t>(best_end),
                                static_cast<uint32_t>(best_pos)});
      i = best_end;
    } else {
      ++i;
    }
  }
  return runs;
}

}  // namespace turnout::routing
