#pragma once

// Plain data mirror of Envoy v3 route configuration
// (envoy.config.route.v3.RouteConfiguration and the messages it uses).
//
// Contract: config/ translates protobuf messages into these structs field by
// field; routing::RouteTable::create() validates and compiles them. Field
// names are Envoy's snake_case proto names. A protobuf `oneof` is a set of
// std::optional members of which at most one may be set (create() rejects
// more); a wrapper type (BoolValue, UInt32Value, Duration) is std::optional
// or a plain member initialised to Envoy's default, as commented. Fields
// Envoy has but turnout does not model are absent; the translator must reject
// them with their field path rather than drop them.
//
// Stability: members are only ever added, never renamed or removed.
//
// Memory: a sandbox table holds 10,000 routes, so the large members a route
// rarely sets are Boxed (below): one pointer while unset, the value on the
// heap once set. Boxed reads and writes like std::optional. The lists a
// route rarely has (header mutations, mirrors, hash policies, upgrades,
// query parameter matchers) are CompactVectors: one pointer while empty.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace turnout::routing {

// An optional value kept on the heap: std::optional's interface as this
// file's users need it (has_value, bool, *, ->, value, value_or, emplace,
// reset, = nullopt, ==, deep copy), at the size of one pointer while unset.
template <typename T>
class Boxed {
 public:
  using value_type = T;

  Boxed() = default;
  Boxed(std::nullopt_t) {}  // NOLINT(google-explicit-constructor): as std::optional
  Boxed(const T& v) : p_(std::make_unique<T>(v)) {}        // NOLINT
  Boxed(T&& v) : p_(std::make_unique<T>(std::move(v))) {}  // NOLINT
  template <typename U>
  requires(!std::is_same_v<std::remove_cvref_t<U>, Boxed> &&
           !std::is_same_v<std::remove_cvref_t<U>, T> &&
           !std::is_same_v<std::remove_cvref_t<U>, std::nullopt_t> &&
           std::is_constructible_v<T, U&&>) Boxed(U&& v)
      : p_(std::make_unique<T>(std::forward<U>(v))) {}                             // NOLINT
  Boxed(const std::optional<T>& v) : p_(v ? std::make_unique<T>(*v) : nullptr) {}  // NOLINT
  Boxed(const Boxed& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
  Boxed(Boxed&&) noexcept = default;
  Boxed& operator=(const Boxed& o) {
    if (this != &o) p_ = o.p_ ? std::make_unique<T>(*o.p_) : nullptr;
    return *this;
  }
  Boxed& operator=(Boxed&&) noexcept = default;
  Boxed& operator=(std::nullopt_t) {
    p_.reset();
    return *this;
  }
  ~Boxed() = default;

  bool has_value() const { return p_ != nullptr; }
  explicit operator bool() const { return p_ != nullptr; }
  T& operator*() { return *p_; }
  const T& operator*() const { return *p_; }
  T* operator->() { return p_.get(); }
  const T* operator->() const { return p_.get(); }
  T& value() {
    if (!p_) throw std::bad_optional_access();
    return *p_;
  }
  const T& value() const {
    if (!p_) throw std::bad_optional_access();
    return *p_;
  }
  template <typename U>
  T value_or(U&& fallback) const {
    return p_ ? *p_ : static_cast<T>(std::forward<U>(fallback));
  }
  template <typename... Args>
  T& emplace(Args&&... args) {
    p_ = std::make_unique<T>(std::forward<Args>(args)...);
    return *p_;
  }
  void reset() { p_.reset(); }
  std::optional<T> toOptional() const { return p_ ? std::optional<T>(*p_) : std::nullopt; }

  friend bool operator==(const Boxed& a, const Boxed& b) {
    if (!a.p_ || !b.p_) return !a.p_ && !b.p_;
    return *a.p_ == *b.p_;
  }
  friend bool operator==(const Boxed& a, std::nullopt_t) { return !a.p_; }

 private:
  std::unique_ptr<T> p_;
};

// A list that costs one pointer while empty: the std::vector interface as
// this file's users need it, over a boxed std::vector (null when empty).
// Iterators are pointers, so it is a contiguous range (std::span, ranges).
template <typename T>
class CompactVector {
 public:
  using value_type = T;
  using size_type = std::size_t;
  using iterator = T*;
  using const_iterator = const T*;
  using reference = T&;
  using const_reference = const T&;

  CompactVector() = default;
  CompactVector(std::initializer_list<T> init) { assign(std::vector<T>(init)); }
  CompactVector(std::vector<T> v) { assign(std::move(v)); }  // NOLINT: as the vector it replaces
  CompactVector(const CompactVector& o)
      : v_(o.v_ ? std::make_unique<std::vector<T>>(*o.v_) : nullptr) {}
  CompactVector(CompactVector&&) noexcept = default;
  CompactVector& operator=(const CompactVector& o) {
    if (this != &o) v_ = o.v_ ? std::make_unique<std::vector<T>>(*o.v_) : nullptr;
    return *this;
  }
  CompactVector& operator=(CompactVector&&) noexcept = default;
  CompactVector& operator=(std::vector<T> v) {
    assign(std::move(v));
    return *this;
  }
  CompactVector& operator=(std::initializer_list<T> init) {
    assign(std::vector<T>(init));
    return *this;
  }
  ~CompactVector() = default;

  bool empty() const { return !v_ || v_->empty(); }
  size_type size() const { return v_ ? v_->size() : 0; }
  T* data() { return v_ ? v_->data() : nullptr; }
  const T* data() const { return v_ ? v_->data() : nullptr; }
  iterator begin() { return data(); }
  iterator end() { return data() + size(); }
  const_iterator begin() const { return data(); }
  const_iterator end() const { return data() + size(); }
  const_iterator cbegin() const { return begin(); }
  const_iterator cend() const { return end(); }
  T& operator[](size_type i) { return (*v_)[i]; }
  const T& operator[](size_type i) const { return (*v_)[i]; }
  T& front() { return v_->front(); }
  const T& front() const { return v_->front(); }
  T& back() { return v_->back(); }
  const T& back() const { return v_->back(); }

  void reserve(size_type n) {
    if (n > 0) mut().reserve(n);
  }
  void push_back(const T& v) { mut().push_back(v); }
  void push_back(T&& v) { mut().push_back(std::move(v)); }
  template <typename... Args>
  T& emplace_back(Args&&... args) {
    return mut().emplace_back(std::forward<Args>(args)...);
  }
  iterator insert(const_iterator pos, T v) {
    const auto at = pos - begin();
    auto& vec = mut();
    return &*vec.insert(vec.begin() + at, std::move(v));
  }
  iterator erase(const_iterator first, const_iterator last) {
    if (first == last) return begin() + (first - cbegin());
    const auto from = first - cbegin();
    auto& vec = *v_;
    vec.erase(vec.begin() + from, vec.begin() + (last - cbegin()));
    return begin() + from;
  }
  iterator erase(const_iterator pos) { return erase(pos, pos + 1); }
  void clear() { v_.reset(); }
  // The list as a std::vector (a copy).
  std::vector<T> toVector() const { return v_ ? *v_ : std::vector<T>(); }

  friend bool operator==(const CompactVector& a, const CompactVector& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  friend bool operator==(const CompactVector& a, const std::vector<T>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  std::vector<T>& mut() {
    if (!v_) v_ = std::make_unique<std::vector<T>>();
    return *v_;
  }
  void assign(std::vector<T>&& v) {
    if (v.empty()) {
      v_.reset();
    } else {
      v_ = std::make_unique<std::vector<T>>(std::move(v));
    }
  }
  std::unique_ptr<std::vector<T>> v_;
};

// envoy.type.matcher.v3.RegexMatcher. Only google_re2 exists; its
// max_program_size is deprecated and ignored.
struct RegexMatcher {
  std::string regex;  // required, min_len 1
  bool operator==(const RegexMatcher&) const = default;
};

// envoy.type.matcher.v3.RegexMatchAndSubstitute.
struct RegexMatchAndSubstitute {
  RegexMatcher pattern;      // required
  std::string substitution;  // RE2 rewrite string (\1 for groups)
  bool operator==(const RegexMatchAndSubstitute&) const = default;
};

// envoy.type.matcher.v3.StringMatcher. Exactly one of the pattern members.
struct StringMatcher {
  std::optional<std::string> exact;
  Boxed<std::string> prefix;  // min_len 1
  Boxed<std::string> suffix;  // min_len 1
  Boxed<RegexMatcher> safe_regex;
  Boxed<std::string> contains;  // min_len 1
  bool ignore_case = false;     // ignored for safe_regex
  bool operator==(const StringMatcher&) const = default;
};

// envoy.type.v3.Int64Range: [start, end).
struct Int64Range {
  int64_t start = 0;
  int64_t end = 0;
  bool operator==(const Int64Range&) const = default;
};

// envoy.config.route.v3.HeaderMatcher. At most one specifier; none means
// present_match: true.
struct HeaderMatcher {
  std::string name;  // required; matched case-insensitively
  // header_match_specifier oneof:
  Boxed<std::string> exact_match;        // deprecated: string_match.exact
  Boxed<RegexMatcher> safe_regex_match;  // deprecated: string_match.safe_regex
  Boxed<Int64Range> range_match;
  std::optional<bool> present_match;
  Boxed<std::string> prefix_match;    // deprecated; min_len 1
  Boxed<std::string> suffix_match;    // deprecated; min_len 1
  Boxed<std::string> contains_match;  // deprecated; min_len 1
  Boxed<StringMatcher> string_match;
  bool invert_match = false;
  bool treat_missing_header_as_empty = false;
  bool operator==(const HeaderMatcher&) const = default;
};

// envoy.config.route.v3.QueryParameterMatcher. Exactly one specifier.
struct QueryParameterMatcher {
  std::string name;  // required, 1..1024 bytes
  std::optional<StringMatcher> string_match;
  std::optional<bool> present_match;
  bool operator==(const QueryParameterMatcher&) const = default;
};

// envoy.type.v3.FractionalPercent.
struct FractionalPercent {
  enum class DenominatorType { HUNDRED = 0, TEN_THOUSAND = 1, MILLION = 2 };
  uint32_t numerator = 0;
  DenominatorType denominator = DenominatorType::HUNDRED;  // proto default HUNDRED
  bool operator==(const FractionalPercent&) const = default;
};

// envoy.config.core.v3.RuntimeFractionalPercent. turnout has no runtime layer
// (yet): `default_value` always applies and `runtime_key` is carried only.
struct RuntimeFractionalPercent {
  FractionalPercent default_value;  // required
  std::string runtime_key;
  bool operator==(const RuntimeFractionalPercent&) const = default;
};

// envoy.config.route.v3.CorsPolicy: applied by the CORS filter
// (envoy.filters.http.cors) when the connection manager has it; the route's
// policy before the virtual host's, field by field (routing/cors.h).
struct CorsPolicy {
  std::vector<StringMatcher> allow_origin_string_match;
  std::string allow_methods;
  std::string allow_headers;
  std::string expose_headers;
  std::string max_age;
  std::optional<bool> allow_credentials;
  std::optional<RuntimeFractionalPercent> filter_enabled;  // unset: enabled
  std::optional<RuntimeFractionalPercent> shadow_enabled;  // unset: no shadow
  std::optional<bool> allow_private_network_access;
  std::optional<bool> forward_not_matching_preflights;  // unset: true
  bool operator==(const CorsPolicy&) const = default;
};

// envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions (empty message).
struct GrpcRouteMatchOptions {
  bool operator==(const GrpcRouteMatchOptions&) const = default;
};

// envoy.config.route.v3.RouteMatch. Exactly one path specifier.
struct RouteMatch {
  // path_specifier oneof:
  std::optional<std::string> prefix;
  Boxed<std::string> path;
  Boxed<RegexMatcher> safe_regex;
  Boxed<std::string> path_separated_prefix;  // no '?'/'#', must not end in '/'
  // ConnectMatcher: matches CONNECT requests (only), which have no path and
  // are matched by nothing else (Envoy's ConnectRouteEntryImpl).
  bool connect_matcher = false;
  bool case_sensitive = true;                // BoolValue, default true
  Boxed<RuntimeFractionalPercent> runtime_fraction;
  std::vector<HeaderMatcher> headers;
  CompactVector<QueryParameterMatcher> query_parameters;
  std::optional<GrpcRouteMatchOptions> grpc;  // set = only gRPC requests match
  bool operator==(const RouteMatch&) const = default;
};

// envoy.config.core.v3.HeaderValue.
struct HeaderValue {
  std::string key;    // 1..16384 bytes, valid header name
  std::string value;  // may contain %-format operators; "%%" is a literal '%'
  bool operator==(const HeaderValue&) const = default;
};

// envoy.config.core.v3.HeaderValueOption.
struct HeaderValueOption {
  enum class HeaderAppendAction {
    APPEND_IF_EXISTS_OR_ADD = 0,  // proto default
    ADD_IF_ABSENT = 1,
    OVERWRITE_IF_EXISTS_OR_ADD = 2,
    OVERWRITE_IF_EXISTS = 3,
  };
  HeaderValue header;
  // Deprecated BoolValue: true = APPEND_IF_EXISTS_OR_ADD, false =
  // OVERWRITE_IF_EXISTS_OR_ADD. Setting it together with a non-default
  // append_action is an error (Envoy: "Both append and append_action are set").
  std::optional<bool> append;
  HeaderAppendAction append_action = HeaderAppendAction::APPEND_IF_EXISTS_OR_ADD;
  bool keep_empty_value = false;  // false: an empty formatted value adds nothing
  bool operator==(const HeaderValueOption&) const = default;
};

// envoy.config.route.v3.WeightedCluster.ClusterWeight. Exactly one of name /
// cluster_header.
struct ClusterWeight {
  std::string name;
  std::string cluster_header;
  std::optional<uint32_t> weight;                         // UInt32Value; required (unset = error)
  CompactVector<HeaderValueOption> request_headers_to_add;  // max 1000
  CompactVector<std::string> request_headers_to_remove;
  CompactVector<HeaderValueOption> response_headers_to_add;  // max 1000
  CompactVector<std::string> response_headers_to_remove;
  std::string host_rewrite_literal;  // overrides the route's host rewrite
  bool operator==(const ClusterWeight&) const = default;
};

// envoy.config.route.v3.WeightedCluster.
struct WeightedCluster {
  std::vector<ClusterWeight> clusters;   // min 1
  std::optional<uint32_t> total_weight;  // deprecated; ignored (sum is used)
  std::string runtime_key_prefix;        // carried, ignored (no runtime layer)
  // random_value_specifier oneof: a header whose (uint64) value replaces the
  // stream's random value for the pick; absent/unparsable = use the random.
  std::string header_name;
  bool operator==(const WeightedCluster&) const = default;
};

// envoy.config.route.v3.RouteAction.RequestMirrorPolicy. Exactly one of
// cluster / cluster_header.
struct RequestMirrorPolicy {
  std::string cluster;
  std::string cluster_header;
  std::optional<RuntimeFractionalPercent> runtime_fraction;  // unset = always
  std::optional<bool> trace_sampled;                         // BoolValue
  bool disable_shadow_host_suffix_append = false;
  bool operator==(const RequestMirrorPolicy&) const = default;
};

// envoy.config.route.v3.RouteAction.HashPolicy. Exactly one specifier.
struct HashPolicy {
  struct Header {
    std::string header_name;  // required
    std::optional<RegexMatchAndSubstitute> regex_rewrite;
    bool operator==(const Header&) const = default;
  };
  struct CookieAttribute {
    std::string name;
    std::string value;
    bool operator==(const CookieAttribute&) const = default;
  };
  struct Cookie {
    std::string name;  // required
    std::optional<std::chrono::milliseconds> ttl;
    std::string path;
    std::vector<CookieAttribute> attributes;
    bool operator==(const Cookie&) const = default;
  };
  struct ConnectionProperties {
    bool source_ip = false;
    bool operator==(const ConnectionProperties&) const = default;
  };
  struct QueryParameter {
    std::string name;  // required
    bool operator==(const QueryParameter&) const = default;
  };
  struct FilterState {
    std::string key;  // required
    bool operator==(const FilterState&) const = default;
  };
  std::optional<Header> header;
  std::optional<Cookie> cookie;
  std::optional<ConnectionProperties> connection_properties;
  std::optional<QueryParameter> query_parameter;
  std::optional<FilterState> filter_state;
  bool terminal = false;
  bool operator==(const HashPolicy&) const = default;
};

// envoy.config.route.v3.RetryPolicy.
struct RetryPolicy {
  struct RetryBackOff {
    std::chrono::milliseconds base_interval{25};            // required in proto; > 0
    std::optional<std::chrono::milliseconds> max_interval;  // default 10 x base
    bool operator==(const RetryBackOff&) const = default;
  };
  // Comma-separated conditions ("5xx,reset,..."), exactly as in the proto.
  std::string retry_on;
  uint32_t num_retries = 1;  // UInt32Value, default 1
  std::optional<std::chrono::milliseconds> per_try_timeout;
  std::optional<std::chrono::milliseconds> per_try_idle_timeout;
  int64_t host_selection_retry_max_attempts = 1;  // default 1
  std::vector<uint32_t> retriable_status_codes;
  std::optional<RetryBackOff> retry_back_off;
  std::vector<HeaderMatcher> retriable_headers;
  std::vector<HeaderMatcher> retriable_request_headers;
  bool operator==(const RetryPolicy&) const = default;
};

// envoy.config.route.v3.RouteAction.
struct RouteAction {
  enum class ClusterNotFoundResponseCode {
    SERVICE_UNAVAILABLE = 0,    // 503, proto default
    NOT_FOUND = 1,              // 404
    INTERNAL_SERVER_ERROR = 2,  // 500
  };
  // cluster_specifier oneof:
  std::optional<std::string> cluster;  // min_len 1
  Boxed<std::string> cluster_header;   // min_len 1; first value used
  Boxed<WeightedCluster> weighted_clusters;
  ClusterNotFoundResponseCode cluster_not_found_response_code =
      ClusterNotFoundResponseCode::SERVICE_UNAVAILABLE;
  std::string prefix_rewrite;  // empty = none; exclusive with regex_rewrite
  Boxed<RegexMatchAndSubstitute> regex_rewrite;
  // host_rewrite_specifier oneof:
  Boxed<std::string> host_rewrite_literal;
  std::optional<bool> auto_host_rewrite;  // BoolValue
  Boxed<std::string> host_rewrite_header;
  bool append_x_forwarded_host = false;
  // Duration; unset = 15 s; 0 = disabled (no route timeout).
  std::optional<std::chrono::milliseconds> timeout;
  // Duration; unset = none per route (the HCM stream_idle_timeout applies);
  // 0 = disabled.
  std::optional<std::chrono::milliseconds> idle_timeout;
  Boxed<RetryPolicy> retry_policy;  // replaces the vhost's whole
  CompactVector<RequestMirrorPolicy> request_mirror_policies;
  CompactVector<HashPolicy> hash_policy;
  // RouteAction.UpgradeConfig: per-route override of the HCM's upgrade
  // settings (upgrade_type lowercase; enabled defaults to true).
  struct UpgradeConfig {
    std::string upgrade_type;  // lowercase: "websocket", "connect"
    bool enabled = true;
    // ConnectConfig (CONNECT only): terminate the CONNECT here, a TCP
    // connection to the cluster's host carrying the request's payload,
    // instead of forwarding the CONNECT request upstream.
    bool connect_config = false;
    bool operator==(const UpgradeConfig&) const = default;
  };
  CompactVector<UpgradeConfig> upgrade_configs;
  Boxed<CorsPolicy> cors;
  Boxed<std::chrono::milliseconds> max_grpc_timeout;
  Boxed<std::chrono::milliseconds> grpc_timeout_offset;
  // MaxStreamDuration.grpc_timeout_header_max / _offset: set (0 included) =
  // a request's grpc-timeout header becomes its max stream duration (Envoy's
  // ConnectionManagerImpl::ActiveStream::refreshDurationTimeout), capped by a
  // non-zero max, minus the offset; RouteDecision::max_stream_duration.
  Boxed<std::chrono::milliseconds> grpc_timeout_header_max;
  Boxed<std::chrono::milliseconds> grpc_timeout_header_offset;
  bool operator==(const RouteAction&) const = default;
};

// envoy.config.route.v3.RedirectAction.
struct RedirectAction {
  enum class RedirectResponseCode {
    MOVED_PERMANENTLY = 0,   // 301, proto default
    FOUND = 1,               // 302
    SEE_OTHER = 2,           // 303
    TEMPORARY_REDIRECT = 3,  // 307
    PERMANENT_REDIRECT = 4,  // 308
  };
  // scheme_rewrite_specifier oneof:
  std::optional<bool> https_redirect;
  std::optional<std::string> scheme_redirect;
  std::string host_redirect;   // empty = keep
  uint32_t port_redirect = 0;  // 0 = keep
  // path_rewrite_specifier oneof:
  std::optional<std::string> path_redirect;  // may carry its own query
  std::optional<std::string> prefix_rewrite;
  std::optional<RegexMatchAndSubstitute> regex_rewrite;
  RedirectResponseCode response_code = RedirectResponseCode::MOVED_PERMANENTLY;
  bool strip_query = false;
  bool operator==(const RedirectAction&) const = default;
};

// envoy.config.core.v3.DataSource, inline forms only (the loader resolves
// `filename` / `environment_variable` into inline_string before this point).
struct DataSource {
  std::optional<std::string> inline_bytes;
  std::optional<std::string> inline_string;
  bool operator==(const DataSource&) const = default;
};

// envoy.config.route.v3.DirectResponseAction.
struct DirectResponseAction {
  uint32_t status = 0;             // required, [200, 600)
  std::optional<DataSource> body;  // at most max_direct_response_body_size_bytes
  bool operator==(const DirectResponseAction&) const = default;
};

// envoy.config.route.v3.Route. Exactly one action.
struct Route {
  std::string name;
  RouteMatch match;  // required
  // action oneof:
  Boxed<RouteAction> route;
  Boxed<RedirectAction> redirect;
  Boxed<DirectResponseAction> direct_response;
  CompactVector<HeaderValueOption> request_headers_to_add;  // max 1000
  CompactVector<std::string> request_headers_to_remove;
  CompactVector<HeaderValueOption> response_headers_to_add;  // max 1000
  CompactVector<std::string> response_headers_to_remove;
  std::string stat_prefix;
  // typed_per_filter_config's CORS policy (envoy.extensions.filters.http.cors.v3.CorsPolicy).
  Boxed<CorsPolicy> typed_cors;
  bool operator==(const Route&) const = default;
};

// envoy.config.route.v3.VirtualHost.
struct VirtualHost {
  enum class TlsRequirementType { NONE = 0, EXTERNAL_ONLY = 1, ALL = 2 };
  std::string name;                  // required
  std::vector<std::string> domains;  // min 1; "*" = default vhost
  std::vector<Route> routes;
  TlsRequirementType require_tls = TlsRequirementType::NONE;
  CompactVector<HeaderValueOption> request_headers_to_add;
  CompactVector<std::string> request_headers_to_remove;
  CompactVector<HeaderValueOption> response_headers_to_add;
  CompactVector<std::string> response_headers_to_remove;
  std::optional<RetryPolicy> retry_policy;  // used by routes that set none
  CompactVector<RequestMirrorPolicy> request_mirror_policies;
  Boxed<CorsPolicy> cors;
  Boxed<CorsPolicy> typed_cors;  // typed_per_filter_config's, as Route's
  bool include_request_attempt_count = false;
  bool include_attempt_count_in_response = false;
  bool operator==(const VirtualHost&) const = default;
};

// envoy.config.route.v3.RouteConfiguration.
struct RouteConfiguration {
  std::string name;
  std::vector<VirtualHost> virtual_hosts;
  std::vector<std::string> internal_only_headers;
  CompactVector<HeaderValueOption> response_headers_to_add;
  CompactVector<std::string> response_headers_to_remove;
  CompactVector<HeaderValueOption> request_headers_to_add;
  CompactVector<std::string> request_headers_to_remove;
  bool most_specific_header_mutations_wins = false;
  // BoolValue: unset = true for an inline route_config, false under RDS
  // (the loader decides; RouteTable never looks clusters up).
  std::optional<bool> validate_clusters;
  // UInt32Value; unset = 4096.
  std::optional<uint32_t> max_direct_response_body_size_bytes;
  CompactVector<RequestMirrorPolicy> request_mirror_policies;
  bool ignore_port_in_host_matching = false;
  bool operator==(const RouteConfiguration&) const = default;
};

}  // namespace turnout::routing
