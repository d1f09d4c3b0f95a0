#pragma once

// Compiled forms of Envoy's route matchers (RouteMatch, HeaderMatcher,
// QueryParameterMatcher, StringMatcher), built once by RouteTable::create()
// and evaluated on the worker threads. Immutable after compilation; safe to
// share across threads. Semantics follow Envoy's source (see
// source/common/router/config_impl.cc, source/common/http/header_utility.cc,
// source/common/common/matchers.h); deviations are called out inline.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "re2/re2.h"
#include "routing/request_view.h"
#include "routing/route_config.h"

namespace turnout::routing {

// Bridges to abseil, whose string_view is not std::string_view in Debian's
// build (ABSL_OPTION_USE_STD_STRING_VIEW 0). Internal to routing/.
namespace internal {

inline absl::string_view toAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

inline void appendPiece(std::string& out, std::string_view s) { out.append(s); }
template <typename T>
requires std::is_integral_v<T>
void appendPiece(std::string& out, T v) { out.append(std::to_string(v)); }
// Concatenates string-like pieces and integers.
template <typename... Args>
std::string cat(const Args&... args) {
  std::string out;
  (appendPiece(out, args), ...);
  return out;
}

}  // namespace internal

using RegexConstSharedPtr = std::shared_ptr<const re2::RE2>;

// Compiles an Envoy safe_regex (google_re2). Rejects what Envoy rejects: an
// empty or invalid pattern, and a program bigger than Envoy's default
// `re2.max_program_size.error_level` (100). `field` names the config path.
absl::StatusOr<RegexConstSharedPtr> compileRegex(std::string_view regex, std::string_view field);

// RE2 full match over a string_view (Envoy's Regex::CompiledGoogleReMatcher).
bool regexFullMatch(const re2::RE2& re, std::string_view value);

// The path with query and fragment removed (Envoy's PathUtil::removeQueryAndFragment).
std::string_view pathWithoutQuery(std::string_view path);

// Envoy's HeaderUtility::getPortStart: the index of the ':' before a port, or
// npos (IPv6 literals in [] are handled; the port is not validated).
size_t portStart(std::string_view host);

// A compiled envoy.type.matcher.v3.StringMatcher.
class StringMatch {
 public:
  enum class Kind : uint8_t { Exact, Prefix, Suffix, Contains, Regex, Any };

  static absl::StatusOr<StringMatch> compile(const StringMatcher& config, std::string_view field);
  static StringMatch literal(Kind kind, std::string value, bool ignore_case = false);
  static StringMatch regex(RegexConstSharedPtr re);
  static StringMatch any();

  bool match(std::string_view value) const;
  Kind kind() const { return kind_; }
  bool ignoreCase() const { return ignore_case_; }
  const std::string& value() const { return value_; }

 private:
  Kind kind_ = Kind::Any;
  bool ignore_case_ = false;
  std::string value_;  // lowercased for Contains + ignore_case
  RegexConstSharedPtr regex_;
};

// The per-request inputs every matcher reads. Built once per match() call on
// the caller's stack; every view points into the caller's request storage.
// Headers are read from `view` only, exactly as the request holds them when
// routing runs (the routing-key header included: see RouteTable::match).
struct MatchInput {
  const RequestView* view = nullptr;
  std::string_view path;       // :path as sent (empty for a CONNECT, which has none)
  std::string_view path_only;  // path without query and fragment
  uint64_t random = 0;
  std::string* scratch = nullptr;  // for joining repeated headers
};

// A compiled envoy.config.route.v3.HeaderMatcher.
struct CompiledHeaderMatcher {
  enum class Type : uint8_t { Present, String, Range };

  static absl::StatusOr<CompiledHeaderMatcher> compile(const HeaderMatcher& config,
                                                       std::string_view field);
  bool matches(const MatchInput& in) const;

  std::string name;  // lowercase
  Type type = Type::Present;
  bool present = true;
  StringMatch string;
  Int64Range range;
  bool invert = false;
  bool treat_missing_as_empty = false;
};

// Envoy's lookup of a header for matching (HeaderUtility::getAllOfHeaderAsString):
// every value of the header in arrival order joined with "," (no space).
// Returns false if absent. Allocation-free for a single value; several values
// are joined into *in.scratch.
bool headerValue(const MatchInput& in, std::string_view lower_name, std::string_view& out);
// The first value of a header (cluster_header, host_rewrite_header); null
// string_view if absent.
std::string_view firstHeaderValue(const MatchInput& in, std::string_view lower_name);

// A compiled envoy.config.route.v3.QueryParameterMatcher.
struct CompiledQueryMatcher {
  static absl::StatusOr<CompiledQueryMatcher> compile(const QueryParameterMatcher& config,
                                                      std::string_view field);
  bool matches(const MatchInput& in) const;

  std::string name;
  std::optional<bool> present_match;
  std::optional<StringMatch> string;  // unset = presence check
};

// A compiled envoy.config.route.v3.RouteMatch.
class CompiledRouteMatch {
 public:
  // Connect: connect_matcher (CONNECT requests, whatever their path).
  enum class PathKind : uint8_t { Prefix, Path, Regex, PathSeparatedPrefix, Connect };

  // `skip_header` (>= 0) leaves that headers[] entry out: the sandbox index
  // compiles a run's common part this way.
  static absl::StatusOr<CompiledRouteMatch> compile(const RouteMatch& config,
                                                    std::string_view field, int skip_header = -1);

  bool matches(const MatchInput& in) const;

  // Length of the request path prefix a prefix_rewrite replaces (Envoy's
  // "matched path"). Only meaningful after matches() returned true.
  size_t matchedPathLength(const MatchInput& in) const;

  PathKind pathKind() const { return path_kind_; }

 private:
  bool pathMatches(const MatchInput& in) const;

  PathKind path_kind_ = PathKind::Prefix;
  std::string path_value_;
  bool case_sensitive_ = true;
  RegexConstSharedPtr path_regex_;
  bool has_runtime_ = false;
  uint32_t runtime_numerator_ = 0;
  uint64_t runtime_denominator_ = 100;
  bool grpc_ = false;
  std::vector<CompiledHeaderMatcher> headers_;
  std::vector<CompiledQueryMatcher> query_;
};

// Envoy's ProtobufPercentHelper::evaluateFractionalPercent:
// `random % denominator < numerator`.
bool evaluateFractionalPercent(const FractionalPercent& percent, uint64_t random);
uint64_t denominatorValue(FractionalPercent::DenominatorType d);

}  // namespace turnout::routing
