#include "routing/route_matcher.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace turnout::routing {
namespace {

using internal::cat;
using internal::toAbsl;

// Envoy's default for runtime key `re2.max_program_size.error_level`.
constexpr int kMaxRegexProgramSize = 100;

bool containsIgnoreCase(std::string_view haystack, std::string_view lower_needle) {
  if (lower_needle.empty()) return true;
  if (haystack.size() < lower_needle.size()) return false;
  const size_t last = haystack.size() - lower_needle.size();
  for (size_t i = 0; i <= last; ++i) {
    size_t j = 0;
    while (j < lower_needle.size() &&
           absl::ascii_tolower(static_cast<unsigned char>(haystack[i + j])) == lower_needle[j]) {
      ++j;
    }
    if (j == lower_needle.size()) return true;
  }
  return false;
}

absl::Status invalid(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(cat(field, ": ", what));
}

}  // namespace

absl::StatusOr<RegexConstSharedPtr> compileRegex(std::string_view regex, std::string_view field) {
  if (regex.empty()) return invalid(field, "regex must be non-empty");
  auto re = std::make_shared<const re2::RE2>(re2::StringPiece(regex.data(), regex.size()),
                                             re2::RE2::Quiet);
  if (!re->ok()) {
    return invalid(field, cat("invalid regex \"", regex, "\": ", re->error()));
  }
  if (re->ProgramSize() > kMaxRegexProgramSize) {
    return invalid(field, cat("regex \"", regex, "\" RE2 program size of ", re->ProgramSize(),
                              " > max program size of ", kMaxRegexProgramSize));
  }
  return re;
}

bool regexFullMatch(const re2::RE2& re, std::string_view value) {
  return re2::RE2::FullMatch(re2::StringPiece(value.data(), value.size()), re);
}

std::string_view pathWithoutQuery(std::string_view path) {
  const size_t end = path.find_first_of("?#");
  return end == std::string_view::npos ? path : path.substr(0, end);
}

size_t portStart(std::string_view host) {
  const size_t port_start = host.rfind(':');
  if (port_start == std::string_view::npos) return std::string_view::npos;
  const size_t v6_end = host.rfind(']');
  if (v6_end == std::string_view::npos || v6_end < port_start) return port_start;
  return std::string_view::npos;
}

uint64_t denominatorValue(FractionalPercent::DenominatorType d) {
  switch (d) {
    case FractionalPercent::DenominatorType::HUNDRED:
      return 100;
    case FractionalPercent::DenominatorType::TEN_THOUSAND:
      return 10000;
    case FractionalPercent::DenominatorType::MILLION:
      return 1000000;
  }
  return 100;
}

bool evaluateFractionalPercent(const FractionalPercent& percent, uint64_t random) {
  return random % denominatorValue(percent.denominator) < percent.numerator;
}

// ---------------------------------------------------------------- StringMatch

absl::StatusOr<StringMatch> StringMatch::compile(const StringMatcher& config,
                                                 std::string_view field) {
  const int set = config.exact.has_value() + config.prefix.has_value() + config.suffix.has_value() +
                  config.safe_regex.has_value() + config.contains.has_value();
  if (set != 1) {
    return invalid(field, "exactly one of exact, prefix, suffix, safe_regex, contains must be set");
  }
  if (config.exact) return literal(Kind::Exact, *config.exact, config.ignore_case);
  if (config.prefix) {
    if (config.prefix->empty()) return invalid(cat(field, ".prefix"), "must be non-empty");
    return literal(Kind::Prefix, *config.prefix, config.ignore_case);
  }
  if (config.suffix) {
    if (config.suffix->empty()) return invalid(cat(field, ".suffix"), "must be non-empty");
    return literal(Kind::Suffix, *config.suffix, config.ignore_case);
  }
  if (config.contains) {
    if (config.contains->empty()) {
      return invalid(cat(field, ".contains"), "must be non-empty");
    }
    return literal(Kind::Contains, *config.contains, config.ignore_case);
  }
  if (config.ignore_case) {
    return invalid(field, "ignore_case has no effect for safe_regex.");
  }
  auto re = compileRegex(config.safe_regex->regex, cat(field, ".safe_regex"));
  if (!re.ok()) return re.status();
  return regex(*std::move(re));
}

StringMatch StringMatch::literal(Kind kind, std::string value, bool ignore_case) {
  StringMatch m;
  m.kind_ = kind;
  m.ignore_case_ = ignore_case;
  m.value_ = std::move(value);
  if (kind == Kind::Contains && ignore_case) absl::AsciiStrToLower(&m.value_);
  return m;
}

StringMatch StringMatch::regex(RegexConstSharedPtr re) {
  StringMatch m;
  m.kind_ = Kind::Regex;
  m.regex_ = std::move(re);
  return m;
}

StringMatch StringMatch::any() { return StringMatch{}; }

bool StringMatch::match(std::string_view v) const {
  switch (kind_) {
    case Kind::Exact:
      return ignore_case_ ? absl::EqualsIgnoreCase(toAbsl(v), toAbsl(value_)) : v == value_;
    case Kind::Prefix:
      return ignore_case_ ? absl::StartsWithIgnoreCase(toAbsl(v), toAbsl(value_))
                          : v.starts_with(value_);
    case Kind::Suffix:
      return ignore_case_ ? absl::EndsWithIgnoreCase(toAbsl(v), toAbsl(value_))
                          : v.ends_with(value_);
    case Kind::Contains:
      return ignore_case_ ? containsIgnoreCase(v, value_)
                          : (v.find(value_) != std::string_view::npos);
    case Kind::Regex:
      return regexFullMatch(*regex_, v);
    case Kind::Any:
      return true;
  }
  return false;
}

// ------------------------------------------------------------- header lookup

bool headerValue(const MatchInput& in, std::string_view lower_name, std::string_view& out) {
  return in.view->joined(lower_name, *in.scratch, out);
}

std::string_view firstHeaderValue(const MatchInput& in, std::string_view lower_name) {
  return in.view->first(lower_name);
}

// ------------------------------------------------------- CompiledHeaderMatcher

absl::StatusOr<CompiledHeaderMatcher> CompiledHeaderMatcher::compile(const HeaderMatcher& config,
                                                                     std::string_view field) {
  if (config.name.empty()) return invalid(cat(field, ".name"), "must be non-empty");
  const int set = config.exact_match.has_value() + config.safe_regex_match.has_value() +
                  config.range_match.has_value() + config.present_match.has_value() +
                  config.prefix_match.has_value() + config.suffix_match.has_value() +
                  config.contains_match.has_value() + config.string_match.has_value();
  if (set > 1) {
    return invalid(field,
                   "at most one of exact_match, safe_regex_match, range_match, present_match, "
                   "prefix_match, suffix_match, contains_match, string_match may be set");
  }
  CompiledHeaderMatcher m;
  m.name = absl::AsciiStrToLower(config.name);
  m.invert = config.invert_match;
  m.treat_missing_as_empty = config.treat_missing_header_as_empty;
  using Kind = StringMatch::Kind;
  if (config.exact_match) {
    // Envoy's deprecated exact_match: an empty value matches any present value.
    m.type = Type::String;
    m.string = config.exact_match->empty() ? StringMatch::any()
                                           : StringMatch::literal(Kind::Exact, *config.exact_match);
  } else if (config.safe_regex_match) {
    auto re = compileRegex(config.safe_regex_match->regex, cat(field, ".safe_regex_match"));
    if (!re.ok()) return re.status();
    m.type = Type::String;
    m.string = StringMatch::regex(*std::move(re));
  } else if (config.range_match) {
    m.type = Type::Range;
    m.range = *config.range_match;
  } else if (config.present_match) {
    m.type = Type::Present;
    m.present = *config.present_match;
  } else if (config.prefix_match || config.suffix_match || config.contains_match) {
    const std::string& v = config.prefix_match   ? *config.prefix_match
                           : config.suffix_match ? *config.suffix_match
                                                 : *config.contains_match;
    const char* fname = config.prefix_match   ? ".prefix_match"
                        : config.suffix_match ? ".suffix_match"
                                              : ".contains_match";
    if (v.empty()) return invalid(cat(field, fname), "must be non-empty");
    m.type = Type::String;
    m.string = StringMatch::literal(config.prefix_match   ? Kind::Prefix
                                    : config.suffix_match ? Kind::Suffix
                                                          : Kind::Contains,
                                    v);
  } else if (config.string_match) {
    auto s = StringMatch::compile(*config.string_match, cat(field, ".string_match"));
    if (!s.ok()) return s.status();
    m.type = Type::String;
    m.string = *std::move(s);
  } else {
    m.type = Type::Present;
    m.present = true;
  }
  return m;
}

bool CompiledHeaderMatcher::matches(const MatchInput& in) const {
  std::string_view value;
  const bool found = headerValue(in, name, value);
  if (!found) {
    if (!treat_missing_as_empty) {
      // Envoy: only a presence matcher can match an absent header.
      return type == Type::Present && (invert ? present : !present);
    }
    value = std::string_view("", 0);
  }
  bool match = false;
  switch (type) {
    case Type::Present:
      match = present;
      break;
    case Type::String:
      match = string.match(value);
      break;
    case Type::Range: {
      int64_t v = 0;
      match = absl::SimpleAtoi(toAbsl(value), &v) && v >= range.start && v < range.end;
      break;
    }
  }
  return match != invert;
}

// -------------------------------------------------------- CompiledQueryMatcher

absl::StatusOr<CompiledQueryMatcher> CompiledQueryMatcher::compile(
    const QueryParameterMatcher& config, std::string_view field) {
  if (config.name.empty() || config.name.size() > 1024) {
    return invalid(cat(field, ".name"), "must be 1 to 1024 bytes long");
  }
  if (config.string_match && config.present_match) {
    return invalid(field, "at most one of string_match, present_match may be set");
  }
  CompiledQueryMatcher m;
  m.name = config.name;
  m.present_match = config.present_match;
  if (config.string_match) {
    auto s = StringMatch::compile(*config.string_match, cat(field, ".string_match"));
    if (!s.ok()) return s.status();
    m.string = *std::move(s);
  }
  return m;
}

bool CompiledQueryMatcher::matches(const MatchInput& in) const {
  // Envoy: QueryParamsMulti::parseQueryString (no percent-decoding; the query
  // runs to the end of :path, fragment included) and getFirstValue().
  std::string_view value;
  bool found = false;
  const std::string_view path = in.path;
  size_t start = path.find('?');
  if (start != std::string_view::npos) {
    ++start;
    while (start < path.size()) {
      size_t end = path.find('&', start);
      if (end == std::string_view::npos) end = path.size();
      const std::string_view param = path.substr(start, end - start);
      const size_t eq = param.find('=');
      const std::string_view pname = eq == std::string_view::npos ? param : param.substr(0, eq);
      if (pname == name) {
        value = eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
        found = true;
        break;
      }
      start = end + 1;
    }
  }
  // envoy.reloadable_features.enable_new_query_param_present_match_behavior
  // (default true): present_match compares presence both ways.
  if (present_match) return found == *present_match;
  if (!found) return false;
  if (!string) return true;
  return string->match(value);
}

// ---------------------------------------------------------- CompiledRouteMatch

absl::StatusOr<CompiledRouteMatch> CompiledRouteMatch::compile(const RouteMatch& config,
                                                               std::string_view field,
                                                               int skip_header) {
  const int set = config.prefix.has_value() + config.path.has_value() +
                  config.safe_regex.has_value() + config.path_separated_prefix.has_value() +
                  config.connect_matcher;
  if (set != 1) {
    return invalid(field,
                   "exactly one of prefix, path, safe_regex, path_separated_prefix, "
                   "connect_matcher must be set");
  }
  CompiledRouteMatch m;
  m.case_sensitive_ = config.case_sensitive;
  if (config.connect_matcher) {
    m.path_kind_ = PathKind::Connect;
  } else if (config.prefix) {
    m.path_kind_ = PathKind::Prefix;
    m.path_value_ = *config.prefix;
  } else if (config.path) {
    m.path_kind_ = PathKind::Path;
    m.path_value_ = *config.path;
  } else if (config.safe_regex) {
    m.path_kind_ = PathKind::Regex;
    auto re = compileRegex(config.safe_regex->regex, cat(field, ".safe_regex"));
    if (!re.ok()) return re.status();
    m.path_regex_ = *std::move(re);
  } else {
    const std::string& p = *config.path_separated_prefix;
    // PGV: pattern "^[^?#]+[^?#/]$".
    if (p.size() < 2 || p.find_first_of("?#") != std::string::npos || p.back() == '/') {
      return invalid(cat(field, ".path_separated_prefix"),
                     cat("\"", p,
                         "\" must be at least 2 characters, contain no '?' or '#', and "
                         "not end in '/'"));
    }
    m.path_kind_ = PathKind::PathSeparatedPrefix;
    m.path_value_ = p;
  }
  if (config.runtime_fraction) {
    m.has_runtime_ = true;
    m.runtime_numerator_ = config.runtime_fraction->default_value.numerator;
    m.runtime_denominator_ = denominatorValue(config.runtime_fraction->default_value.denominator);
  }
  m.grpc_ = config.grpc.has_value();
  for (size_t i = 0; i < config.headers.size(); ++i) {
    if (static_cast<int>(i) == skip_header) continue;
    auto h = CompiledHeaderMatcher::compile(config.headers[i], cat(field, ".headers[", i, "]"));
    if (!h.ok()) return h.status();
    m.headers_.push_back(*std::move(h));
  }
  for (size_t i = 0; i < config.query_parameters.size(); ++i) {
    auto q = CompiledQueryMatcher::compile(config.query_parameters[i],
                                           cat(field, ".query_parameters[", i, "]"));
    if (!q.ok()) return q.status();
    m.query_.push_back(*std::move(q));
  }
  return m;
}

bool CompiledRouteMatch::pathMatches(const MatchInput& in) const {
  // Envoy (VirtualHostImpl::getRouteFromEntries, ConnectRouteEntryImpl): a
  // request without a path (a CONNECT) is matched only by connect_matcher,
  // and connect_matcher matches CONNECT requests only.
  if (path_kind_ == PathKind::Connect) return in.view->method() == "CONNECT";
  if (in.path.empty()) return false;
  const std::string_view p = in.path_only;
  switch (path_kind_) {
    case PathKind::Connect:
      return false;  // handled above
    case PathKind::Prefix:
      return case_sensitive_ ? p.starts_with(path_value_)
                             : absl::StartsWithIgnoreCase(toAbsl(p), toAbsl(path_value_));
    case PathKind::Path:
      return case_sensitive_ ? p == path_value_
                             : absl::EqualsIgnoreCase(toAbsl(p), toAbsl(path_value_));
    case PathKind::Regex:
      return regexFullMatch(*path_regex_, p);
    case PathKind::PathSeparatedPrefix: {
      const size_t n = path_value_.size();
      if (p.size() < n) return false;
      const std::string_view head = p.substr(0, n);
      const bool prefix_ok = case_sensitive_
                                 ? head == path_value_
                                 : absl::EqualsIgnoreCase(toAbsl(head), toAbsl(path_value_));
      return prefix_ok && (p.size() == n || p[n] == '/');
    }
  }
  return false;
}

bool CompiledRouteMatch::matches(const MatchInput& in) const {
  // Every check is pure, so the order (cheapest first) cannot change the result.
  if (has_runtime_ && !(in.random % runtime_denominator_ < runtime_numerator_)) return false;
  if (!pathMatches(in)) return false;
  if (grpc_) {
    // Envoy: Grpc::Common::isGrpcRequestHeaders (path present, content-type
    // "application/grpc" or "application/grpc+...").
    const std::string_view ct = in.view->first("content-type");
    constexpr std::string_view kGrpc = "application/grpc";
    if (!ct.starts_with(kGrpc) || (ct.size() != kGrpc.size() && ct[kGrpc.size()] != '+')) {
      return false;
    }
  }
  for (const CompiledHeaderMatcher& h : headers_) {
    if (!h.matches(in)) return false;
  }
  for (const CompiledQueryMatcher& q : query_) {
    if (!q.matches(in)) return false;
  }
  return true;
}

size_t CompiledRouteMatch::matchedPathLength(const MatchInput& in) const {
  return path_kind_ == PathKind::Regex ? in.path_only.size() : path_value_.size();  // Connect: 0
}

}  // namespace turnout::routing
