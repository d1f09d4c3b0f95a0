#include "routing/header_index.h"

#include "absl/strings/match.h"

namespace turnout::routing {
namespace {

bool sameHeaderName(const HeaderMatcher& a, const HeaderMatcher& b) {
  return absl::EqualsIgnoreCase(absl::string_view(a.name.data(), a.name.size()),
                                absl::string_view(b.name.data(), b.name.size()));
}

}  // namespace

namespace internal {

bool sameExceptHeader(const RouteMatch& a, const RouteMatch& b, size_t pos) {
  if (a.prefix != b.prefix || a.path != b.path || a.safe_regex != b.safe_regex ||
      a.path_separated_prefix != b.path_separated_prefix ||
      a.connect_matcher != b.connect_matcher || a.case_sensitive != b.case_sensitive ||
      a.runtime_fraction != b.runtime_fraction || a.query_parameters != b.query_parameters ||
      a.grpc.has_value() != b.grpc.has_value() || a.headers.size() != b.headers.size() ||
      pos >= b.headers.size()) {
    return false;
  }
  for (size_t i = 0; i < a.headers.size(); ++i) {
    if (i == pos) continue;
    if (!(a.headers[i] == b.headers[i])) return false;
  }
  const HeaderMatcher& ha = a.headers[pos];
  const HeaderMatcher& hb = b.headers[pos];
  return indexableExactValue(hb).has_value() && sameHeaderName(ha, hb) &&
         ha.treat_missing_header_as_empty == hb.treat_missing_header_as_empty;
}

}  // namespace internal

std::optional<std::string_view> indexableExactValue(const HeaderMatcher& m) {
  if (m.invert_match || m.name.empty()) return std::nullopt;
  const int set = m.exact_match.has_value() + m.safe_regex_match.has_value() +
                  m.range_match.has_value() + m.present_match.has_value() +
                  m.prefix_match.has_value() + m.suffix_match.has_value() +
                  m.contains_match.has_value() + m.string_match.has_value();
  if (set != 1) return std::nullopt;
  if (m.exact_match) {
    if (m.exact_match->empty()) return std::nullopt;  // Envoy: empty = any value
    return std::string_view(*m.exact_match);
  }
  if (m.string_match) {
    const StringMatcher& s = *m.string_match;
    if (!s.exact || s.ignore_case || s.prefix || s.suffix || s.safe_regex || s.contains) {
      return std::nullopt;
    }
    return std::string_view(*s.exact);
  }
  return std::nullopt;
}

std::vector<IndexedRun> findIndexedRuns(const std::vector<Route>& routes, size_t min_run) {
  return findIndexedRuns(
      routes.size(), [&](size_t i) -> const RouteMatch& { return routes[i].match; }, min_run);
}

}  // namespace turnout::routing
