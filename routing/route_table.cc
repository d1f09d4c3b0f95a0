#include "routing/route_table.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "routing/cors.h"

namespace turnout::routing {
namespace {

using internal::cat;
using internal::toAbsl;

constexpr uint32_t kDefaultMaxDirectResponseBodyBytes = 4096;
constexpr std::chrono::milliseconds kDefaultRouteTimeout{15000};
constexpr size_t kMaxHeadersToAdd = 1000;

absl::Status invalid(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(cat(field, ": ", what));
}

// Envoy's HeaderUtility::isModifiableHeader / isRemovableHeader.
bool isModifiableHeader(std::string_view name) {
  return (name.empty() || name.front() != ':') &&
         !absl::EqualsIgnoreCase(toAbsl(name), toAbsl("host"));
}

bool hasUpper(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// Checks the %-operator syntax of a header value (Envoy rejects an unterminated
// operator when it builds the formatter).
absl::Status validateHeaderFormat(std::string_view value, std::string_view field) {
  size_t i = 0;
  while (i < value.size()) {
    if (value[i] != '%') {
      ++i;
      continue;
    }
    if (i + 1 < value.size() && value[i + 1] == '%') {
      i += 2;
      continue;
    }
    const size_t close = value.find('%', i + 1);
    if (close == std::string_view::npos) {
      return invalid(field, cat("Invalid header configuration. Un-terminated variable "
                                "expression '",
                                value.substr(i), "'"));
    }
    if (close == i + 1) {
      return invalid(field, "Invalid header configuration. Empty variable expression '%%'");
    }
    i = close + 1;
  }
  return absl::OkStatus();
}

absl::Status normaliseHeadersToAdd(CompactVector<HeaderValueOption>& options,
                                   std::string_view field) {
  if (options.size() > kMaxHeadersToAdd) {
    return invalid(field, cat("at most ", kMaxHeadersToAdd, " entries are allowed"));
  }
  for (size_t i = 0; i < options.size(); ++i) {
    HeaderValueOption& o = options[i];
    const std::string f = cat(field, "[", i, "]");
    if (o.header.key.empty() || o.header.key.size() > 16384) {
      return invalid(cat(f, ".header.key"), "must be 1 to 16384 bytes long");
    }
    if (!isModifiableHeader(o.header.key)) {
      return invalid(cat(f, ".header.key"), ":-prefixed or host headers may not be modified");
    }
    if (o.append.has_value()) {
      if (o.append_action != HeaderValueOption::HeaderAppendAction::APPEND_IF_EXISTS_OR_ADD) {
        return invalid(f, "Both append and append_action are set, it's not allowed");
      }
      o.append_action = *o.append
                            ? HeaderValueOption::HeaderAppendAction::APPEND_IF_EXISTS_OR_ADD
                            : HeaderValueOption::HeaderAppendAction::OVERWRITE_IF_EXISTS_OR_ADD;
      o.append.reset();
    }
    if (auto st = validateHeaderFormat(o.header.value, cat(f, ".header.value")); !st.ok()) {
      return st;
    }
    absl::AsciiStrToLower(&o.header.key);
  }
  return absl::OkStatus();
}

absl::Status normaliseHeadersToRemove(CompactVector<std::string>& names, std::string_view field) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty() || !isModifiableHeader(names[i])) {
      return invalid(cat(field, "[", i, "]"), ":-prefixed or host headers may not be removed");
    }
    absl::AsciiStrToLower(&names[i]);
  }
  return absl::OkStatus();
}

absl::Status validateMirrorPolicies(const CompactVector<RequestMirrorPolicy>& policies,
                                    std::string_view field) {
  for (size_t i = 0; i < policies.size(); ++i) {
    const RequestMirrorPolicy& p = policies[i];
    const std::string f = cat(field, "[", i, "]");
    if (!p.cluster.empty() && !p.cluster_header.empty()) {
      return invalid(f, cat("Only one of cluster '", p.cluster, "' or cluster_header '",
                            p.cluster_header, "' in request mirror policy can be specified"));
    }
    if (p.cluster.empty() && p.cluster_header.empty()) {
      return invalid(f,
                     "Exactly one of cluster or cluster_header in request mirror policy need to "
                     "be specified");
    }
  }
  return absl::OkStatus();
}

absl::Status validateRetryPolicy(const RetryPolicy& p, std::string_view field) {
  if (p.retry_back_off) {
    const auto& b = *p.retry_back_off;
    if (b.base_interval.count() <= 0) {
      return invalid(cat(field, ".retry_back_off.base_interval"), "must be greater than 0");
    }
    if (b.max_interval) {
      if (b.max_interval->count() <= 0) {
        return invalid(cat(field, ".retry_back_off.max_interval"), "must be greater than 0");
      }
      if (*b.max_interval < b.base_interval) {
        return invalid(field,
                       "retry_policy.max_interval must greater than or equal to the "
                       "base_interval");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status validateHashPolicies(const CompactVector<HashPolicy>& policies,
                                  std::string_view field) {
  for (size_t i = 0; i < policies.size(); ++i) {
    const HashPolicy& h = policies[i];
    const std::string f = cat(field, "[", i, "]");
    const int set = h.header.has_value() + h.cookie.has_value() +
                    h.connection_properties.has_value() + h.query_parameter.has_value() +
                    h.filter_state.has_value();
    if (set != 1) {
      return invalid(f,
                     "exactly one of header, cookie, connection_properties, query_parameter, "
                     "filter_state must be set");
    }
    if (h.header) {
      if (h.header->header_name.empty()) {
        return invalid(cat(f, ".header.header_name"), "must be non-empty");
      }
      if (h.header->regex_rewrite) {
        auto re = compileRegex(h.header->regex_rewrite->pattern.regex,
                               cat(f, ".header.regex_rewrite.pattern"));
        if (!re.ok()) return re.status();
      }
    }
    if (h.cookie && h.cookie->name.empty()) {
      return invalid(cat(f, ".cookie.name"), "must be non-empty");
    }
    if (h.query_parameter && h.query_parameter->name.empty()) {
      return invalid(cat(f, ".query_parameter.name"), "must be non-empty");
    }
    if (h.filter_state && h.filter_state->key.empty()) {
      return invalid(cat(f, ".filter_state.key"), "must be non-empty");
    }
  }
  return absl::OkStatus();
}

uint32_t redirectStatus(RedirectAction::RedirectResponseCode c) {
  switch (c) {
    case RedirectAction::RedirectResponseCode::MOVED_PERMANENTLY:
      return 301;
    case RedirectAction::RedirectResponseCode::FOUND:
      return 302;
    case RedirectAction::RedirectResponseCode::SEE_OTHER:
      return 303;
    case RedirectAction::RedirectResponseCode::TEMPORARY_REDIRECT:
      return 307;
    case RedirectAction::RedirectResponseCode::PERMANENT_REDIRECT:
      return 308;
  }
  return 301;
}

uint32_t clusterNotFoundStatus(RouteAction::ClusterNotFoundResponseCode c) {
  switch (c) {
    case RouteAction::ClusterNotFoundResponseCode::SERVICE_UNAVAILABLE:
      return 503;
    case RouteAction::ClusterNotFoundResponseCode::NOT_FOUND:
      return 404;
    case RouteAction::ClusterNotFoundResponseCode::INTERNAL_SERVER_ERROR:
      return 500;
  }
  return 503;
}

std::string regexReplaceAll(const re2::RE2& re, std::string_view input,
                            std::string_view substitution) {
  std::string out(input);
  re2::RE2::GlobalReplace(&out, re, re2::StringPiece(substitution.data(), substitution.size()));
  return out;
}

// The scheme Envoy calls "forwarded proto": x-forwarded-proto, which Envoy's
// connection manager always sets; turnout falls back to :scheme.
std::string_view forwardedProto(const RequestView& view) {
  std::string_view xfp = view.first("x-forwarded-proto");
  return xfp.data() != nullptr ? xfp : view.scheme();
}

}  // namespace

// ------------------------------------------------------------ compiled state

// One route, compiled: its config and what its action needs, nothing about
// where it stands (its match, compiled or indexed, belongs to the virtual
// host's slot) or about the virtual host around it (an inherited retry or
// mirror policy is looked up when the route is chosen). So a new version of
// a virtual host shares every route it kept instead of compiling it again.
// Reference-counted (thread-safe: a table can be released on any thread).
struct RouteTable::CompiledRoute {
  // What few routes need (a sandbox route needs none of it): one pointer
  // while unused, so a table of 10,000 sandbox routes stays small.
  struct Extras {
    // RouteAction
    std::string cluster_header;  // lowercase
    WeightedChoice weights;
    std::vector<std::string> weighted_cluster_headers;  // lowercase, per entry
    std::string random_value_header;                    // weighted_clusters.header_name, lowercase
    RegexConstSharedPtr regex_rewrite;
    std::string host_rewrite_header;  // lowercase
    std::unique_ptr<CompiledRetryPolicy> retry;  // RouteAction.retry_policy compiled
    // RedirectAction
    RegexConstSharedPtr redirect_regex;
    // DirectResponse (a view into config)
    std::string_view body;
    // RouteAction.cors; Route.typed_per_filter_config's CORS policy
    std::unique_ptr<CompiledCorsPolicy> cors, typed_cors;
  };

  const Extras& x() const {
    static const Extras kNone;
    return extras ? *extras : kNone;
  }
  Extras& mut() {
    if (!extras) extras = std::make_unique<Extras>();
    return *extras;
  }

  Route config;
  std::unique_ptr<Extras> extras;
  // RouteAction
  std::chrono::milliseconds timeout{kDefaultRouteTimeout};
  mutable std::atomic<uint32_t> refs{0};
  uint32_t cluster_not_found_status = 503;
  // Redirect / DirectResponse
  uint32_t status = 0;
};

// An owning pointer to a shared CompiledRoute.
class RouteTable::RoutePtr {
 public:
  RoutePtr() = default;
  explicit RoutePtr(std::unique_ptr<CompiledRoute> r) : p_(r.release()) {
    if (p_ != nullptr) p_->refs.store(1, std::memory_order_relaxed);
  }
  RoutePtr(const RoutePtr& o) : p_(o.p_) {
    if (p_ != nullptr) p_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  RoutePtr(RoutePtr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  RoutePtr& operator=(RoutePtr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~RoutePtr() {
    if (p_ != nullptr && p_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete p_;
  }
  const CompiledRoute& operator*() const { return *p_; }
  const CompiledRoute* operator->() const { return p_; }
  const CompiledRoute* get() const { return p_; }

 private:
  const CompiledRoute* p_ = nullptr;
};

struct RouteTable::CompiledRun {
  CompiledRouteMatch common;  // the run's RouteMatch without the indexed header
  std::string header;         // lowercase
  uint32_t header_position = 0;  // in each member route's match.headers
  bool treat_missing_as_empty = false;
  HeaderIndex index;  // views into the member routes' configs
  uint32_t begin = 0;
  uint32_t end = 0;
};

struct RouteTable::Segment {
  uint32_t route = 0;  // single route (run < 0)
  int32_t run = -1;
};

// A route where it stands in its virtual host.
struct RouteTable::RouteSlot {
  RoutePtr route;
  // A route in an indexed run (run >= 0) keeps no match of its own: its
  // match is the run's common part plus its exact header value (the index),
  // which saves ~160 bytes per sandbox route. Otherwise `match` indexes the
  // virtual host's `matches`.
  int32_t run = -1;
  uint32_t match = 0;
};

// A virtual host and everything compiled from it. It owns its config (less
// the routes, which its slots hold), so that every pointer a RouteDecision
// holds into it stays valid as long as any RouteTable holding it does;
// nothing in it depends on the route configuration around it (the body-size
// limit and the domain map are checked by the table), so a VHDS update
// shares the unchanged ones.
struct RouteTable::CompiledVirtualHost {
  VirtualHost config;  // routes moved into `routes`
  std::vector<RouteSlot> routes;
  std::vector<CompiledRouteMatch> matches;  // of the routes outside runs
  std::vector<CompiledRun> runs;
  std::vector<Segment> segments;
  size_t indexed_routes = 0;
  std::unique_ptr<CompiledRetryPolicy> retry;  // config.retry_policy compiled
  // (route index, body size) of each direct_response with a body, in route
  // order: checked against the table's max_direct_response_body_size_bytes.
  std::vector<std::pair<uint32_t, size_t>> direct_bodies;
  std::unique_ptr<CompiledCorsPolicy> cors;        // VirtualHost.cors
  std::unique_ptr<CompiledCorsPolicy> typed_cors;  // its typed_per_filter_config's
};

RouteTable::RouteTable() = default;

absl::StatusOr<RouteTableConstSharedPtr> RouteTable::create(
    RouteConfiguration config, std::vector<VirtualHostConstSharedPtr> compiled_hosts) {
  std::shared_ptr<RouteTable> table(new RouteTable());
  table->config_ = std::move(config);
  if (auto st = table->compile(std::move(compiled_hosts)); !st.ok()) return st;
  return RouteTableConstSharedPtr(std::move(table));
}

namespace {

absl::StatusOr<std::unique_ptr<CompiledRetryPolicy>> compileRetry(const RetryPolicy& p,
                                                                  std::string_view field) {
  if (auto st = validateRetryPolicy(p, field); !st.ok()) return st;
  auto compiled = CompiledRetryPolicy::compile(p, field);
  if (!compiled.ok()) return compiled.status();
  return std::make_unique<CompiledRetryPolicy>(*std::move(compiled));
}

}  // namespace

absl::Status RouteTable::compile(std::vector<VirtualHostConstSharedPtr> compiled_hosts) {
  RouteConfiguration& c = config_;
  const uint32_t max_body =
      c.max_direct_response_body_size_bytes.value_or(kDefaultMaxDirectResponseBodyBytes);

  if (auto st = normaliseHeadersToAdd(c.request_headers_to_add, "request_headers_to_add");
      !st.ok()) {
    return st;
  }
  if (auto st = normaliseHeadersToAdd(c.response_headers_to_add, "response_headers_to_add");
      !st.ok()) {
    return st;
  }
  if (auto st = normaliseHeadersToRemove(c.request_headers_to_remove, "request_headers_to_remove");
      !st.ok()) {
    return st;
  }
  if (auto st =
          normaliseHeadersToRemove(c.response_headers_to_remove, "response_headers_to_remove");
      !st.ok()) {
    return st;
  }
  if (auto st = validateMirrorPolicies(c.request_mirror_policies, "request_mirror_policies");
      !st.ok()) {
    return st;
  }

  vhosts_.reserve(c.virtual_hosts.size() + compiled_hosts.size());
  for (size_t v = 0; v < c.virtual_hosts.size(); ++v) {
    auto cvh = compileVirtualHost(std::move(c.virtual_hosts[v]), cat("virtual_hosts[", v, "]"));
    if (!cvh.ok()) return cvh.status();
    vhosts_.push_back(*std::move(cvh));
  }
  c.virtual_hosts.clear();  // moved into vhosts_
  for (auto& h : compiled_hosts) vhosts_.push_back(std::move(h));

  std::map<size_t, absl::flat_hash_map<std::string, uint32_t>, std::greater<>> suffixes;
  std::map<size_t, absl::flat_hash_map<std::string, uint32_t>, std::greater<>> prefixes;
  for (size_t v = 0; v < vhosts_.size(); ++v) {
    const VirtualHost& vh = vhosts_[v]->config;
    const std::string vf = cat("virtual_hosts[", v, "]");
    for (const auto& [r, size] : vhosts_[v]->direct_bodies) {
      if (size > max_body) {
        return invalid(cat(vf, ".routes[", r, "].direct_response.body"),
                       cat("response body size is ", size, " bytes; maximum is ", max_body));
      }
    }
    for (size_t d = 0; d < vh.domains.size(); ++d) {
      const std::string df = cat(vf, ".domains[", d, "]");
      const std::string domain = absl::AsciiStrToLower(vh.domains[d]);
      bool inserted = true;
      if (domain == "*") {
        if (default_vhost_ >= 0) {
          return invalid(df, cat("only one virtual host may use the \"*\" domain "
                                 "(virtual_hosts[",
                                 default_vhost_, "] already does)"));
        }
        default_vhost_ = static_cast<int64_t>(v);
      } else if (!domain.empty() && domain.front() == '*') {
        inserted = suffixes[domain.size() - 1].try_emplace(domain.substr(1), v).second;
      } else if (!domain.empty() && domain.back() == '*') {
        inserted =
            prefixes[domain.size() - 1].try_emplace(domain.substr(0, domain.size() - 1), v).second;
      } else {
        inserted = exact_domains_.try_emplace(domain, v).second;
      }
      if (!inserted) return invalid(df, cat("duplicate domain \"", domain, "\""));
    }
  }
  for (auto& [len, map] : suffixes) suffix_domains_.emplace_back(len, std::move(map));
  for (auto& [len, map] : prefixes) prefix_domains_.emplace_back(len, std::move(map));
  return absl::OkStatus();
}

absl::StatusOr<RouteTable::RoutePtr> RouteTable::compileRoute(Route config, std::string_view field,
                                                              CompiledRouteMatch& match) {
  auto cr = std::make_unique<CompiledRoute>();
  cr->config = std::move(config);
  Route& route = cr->config;
  const std::string rf(field);
  auto m = CompiledRouteMatch::compile(route.match, cat(rf, ".match"));
  if (!m.ok()) return m.status();
  match = *std::move(m);

  const int actions =
      route.route.has_value() + route.redirect.has_value() + route.direct_response.has_value();
  if (actions != 1) {
    return invalid(rf, "exactly one of route, redirect, direct_response must be set");
  }
  for (auto [list, name] : {std::pair{&route.request_headers_to_add, "request_headers_to_add"},
                            std::pair{&route.response_headers_to_add, "response_headers_to_add"}}) {
    if (auto st = normaliseHeadersToAdd(*list, cat(rf, ".", name)); !st.ok()) {
      return st;
    }
  }
  for (auto [list, name] :
       {std::pair{&route.request_headers_to_remove, "request_headers_to_remove"},
        std::pair{&route.response_headers_to_remove, "response_headers_to_remove"}}) {
    if (auto st = normaliseHeadersToRemove(*list, cat(rf, ".", name)); !st.ok()) {
      return st;
    }
  }

  if (route.typed_cors) {
    auto cors = CompiledCorsPolicy::compile(*route.typed_cors, cat(rf, ".typed_per_filter_config"));
    if (!cors.ok()) return cors.status();
    cr->mut().typed_cors = *std::move(cors);
  }
  if (route.route) {
    RouteAction& a = *route.route;
    const std::string af = cat(rf, ".route");
    if (a.cors) {
      auto cors = CompiledCorsPolicy::compile(*a.cors, cat(af, ".cors"));
      if (!cors.ok()) return cors.status();
      cr->mut().cors = *std::move(cors);
    }
    const int specifiers =
        a.cluster.has_value() + a.cluster_header.has_value() + a.weighted_clusters.has_value();
    if (specifiers != 1) {
      return invalid(af, "exactly one of cluster, cluster_header, weighted_clusters must be set");
    }
    if (a.cluster && a.cluster->empty()) {
      return invalid(cat(af, ".cluster"), "must be non-empty");
    }
    if (a.cluster_header) {
      if (a.cluster_header->empty()) {
        return invalid(cat(af, ".cluster_header"), "must be non-empty");
      }
      cr->mut().cluster_header = absl::AsciiStrToLower(*a.cluster_header);
    }
    if (a.weighted_clusters) {
      const WeightedCluster& wc = *a.weighted_clusters;
      const std::string wf = cat(af, ".weighted_clusters");
      if (wc.clusters.empty()) {
        return invalid(cat(wf, ".clusters"), "must have at least one entry");
      }
      std::vector<uint32_t> weights;
      uint64_t sum = 0;
      for (size_t i = 0; i < wc.clusters.size(); ++i) {
        ClusterWeight& cw = a.weighted_clusters->clusters[i];
        const std::string cf = cat(wf, ".clusters[", i, "]");
        if (cw.name.empty() == cw.cluster_header.empty()) {
          return invalid(cf, cw.name.empty()
                                 ? "At least one of name or cluster_header need to be "
                                   "specified"
                                 : "Only one of name or cluster_header can be specified");
        }
        if (!cw.weight) return invalid(cat(cf, ".weight"), "is required");
        sum += *cw.weight;
        if (sum > std::numeric_limits<uint32_t>::max()) {
          return invalid(wf,
                         cat("the sum of weights exceeds ", std::numeric_limits<uint32_t>::max()));
        }
        weights.push_back(*cw.weight);
        std::string h = absl::AsciiStrToLower(cw.cluster_header);
        cr->mut().weighted_cluster_headers.push_back(std::move(h));
        for (auto [list, name] :
             {std::pair{&cw.request_headers_to_add, "request_headers_to_add"},
              std::pair{&cw.response_headers_to_add, "response_headers_to_add"}}) {
          if (auto st = normaliseHeadersToAdd(*list, cat(cf, ".", name)); !st.ok()) {
            return st;
          }
        }
        for (auto [list, name] :
             {std::pair{&cw.request_headers_to_remove, "request_headers_to_remove"},
              std::pair{&cw.response_headers_to_remove, "response_headers_to_remove"}}) {
          if (auto st = normaliseHeadersToRemove(*list, cat(cf, ".", name)); !st.ok()) {
            return st;
          }
        }
      }
      if (sum == 0) {
        return invalid(wf, "Sum of weights in the weighted_cluster must be greater than 0.");
      }
      cr->mut().weights = WeightedChoice(weights);
      cr->mut().random_value_header = absl::AsciiStrToLower(wc.header_name);
    }
    if (!a.prefix_rewrite.empty() && a.regex_rewrite) {
      return invalid(af,
                     "Specify only one of prefix_rewrite, regex_rewrite or "
                     "path_rewrite_policy");
    }
    if (a.regex_rewrite) {
      auto re = compileRegex(a.regex_rewrite->pattern.regex, cat(af, ".regex_rewrite.pattern"));
      if (!re.ok()) return re.status();
      cr->mut().regex_rewrite = *std::move(re);
    }
    if (a.host_rewrite_literal.has_value() + a.auto_host_rewrite.has_value() +
            a.host_rewrite_header.has_value() >
        1) {
      return invalid(af,
                     "at most one of host_rewrite_literal, auto_host_rewrite, "
                     "host_rewrite_header may be set");
    }
    if (a.host_rewrite_header) {
      cr->mut().host_rewrite_header = absl::AsciiStrToLower(*a.host_rewrite_header);
    }
    cr->timeout = a.timeout.value_or(kDefaultRouteTimeout);
    if (a.retry_policy) {
      auto rp = compileRetry(*a.retry_policy, cat(af, ".retry_policy"));
      if (!rp.ok()) return rp.status();
      cr->mut().retry = *std::move(rp);
    }
    if (auto st =
            validateMirrorPolicies(a.request_mirror_policies, cat(af, ".request_mirror_policies"));
        !st.ok()) {
      return st;
    }
    if (auto st = validateHashPolicies(a.hash_policy, cat(af, ".hash_policy")); !st.ok()) {
      return st;
    }
    cr->cluster_not_found_status = clusterNotFoundStatus(a.cluster_not_found_response_code);
  } else if (route.redirect) {
    const RedirectAction& rd = *route.redirect;
    const std::string df = cat(rf, ".redirect");
    if (rd.https_redirect.has_value() && rd.scheme_redirect.has_value()) {
      return invalid(df, "at most one of https_redirect, scheme_redirect may be set");
    }
    if (rd.path_redirect.has_value() + rd.prefix_rewrite.has_value() +
            rd.regex_rewrite.has_value() >
        1) {
      return invalid(df, "at most one of path_redirect, prefix_rewrite, regex_rewrite may be set");
    }
    if (rd.regex_rewrite) {
      auto re = compileRegex(rd.regex_rewrite->pattern.regex, cat(df, ".regex_rewrite.pattern"));
      if (!re.ok()) return re.status();
      cr->mut().redirect_regex = *std::move(re);
    }
    cr->status = redirectStatus(rd.response_code);
  } else {
    const DirectResponseAction& dr = *route.direct_response;
    const std::string df = cat(rf, ".direct_response");
    if (dr.status < 200 || dr.status >= 600) {
      return invalid(cat(df, ".status"), cat("must be in [200, 600), got ", dr.status));
    }
    if (dr.body) {
      if (dr.body->inline_bytes.has_value() && dr.body->inline_string.has_value()) {
        return invalid(cat(df, ".body"), "at most one of inline_bytes, inline_string may be set");
      }
      const std::optional<std::string>& b =
          dr.body->inline_bytes ? dr.body->inline_bytes : dr.body->inline_string;
      if (b) {
        cr->mut().body = *b;
      }
    }
    cr->status = dr.status;
  }
  return RoutePtr(std::move(cr));
}

absl::StatusOr<RouteTable::VirtualHostConstSharedPtr> RouteTable::compileVirtualHost(
    VirtualHost config, std::string_view field) {
  return compileHost(std::move(config), field, nullptr, {});
}

absl::StatusOr<RouteTable::VirtualHostConstSharedPtr> RouteTable::compileVirtualHost(
    VirtualHost config, std::string_view field, const CompiledVirtualHost& previous,
    std::span<const int32_t> reuse) {
  return compileHost(std::move(config), field, &previous, reuse);
}

size_t RouteTable::routeCount(const CompiledVirtualHost& vh) { return vh.routes.size(); }

std::string_view RouteTable::virtualHostName(const CompiledVirtualHost& vh) {
  return vh.config.name;
}

const Route& RouteTable::route(const CompiledVirtualHost& vh, size_t i) {
  return vh.routes[i].route->config;
}

absl::StatusOr<RouteTable::VirtualHostConstSharedPtr> RouteTable::compileHost(
    VirtualHost config, std::string_view field, const CompiledVirtualHost* previous,
    std::span<const int32_t> reuse) {
  auto cvh = std::make_shared<CompiledVirtualHost>();
  cvh->config = std::move(config);
  VirtualHost& vh = cvh->config;
  const std::string vf(field);
  if (vh.name.empty()) return invalid(cat(vf, ".name"), "must be non-empty");
  if (vh.domains.empty()) {
    return invalid(cat(vf, ".domains"), "must have at least one domain");
  }
  if (auto st =
          normaliseHeadersToAdd(vh.request_headers_to_add, cat(vf, ".request_headers_to_add"));
      !st.ok()) {
    return st;
  }
  if (auto st =
          normaliseHeadersToAdd(vh.response_headers_to_add, cat(vf, ".response_headers_to_add"));
      !st.ok()) {
    return st;
  }
  if (auto st = normaliseHeadersToRemove(vh.request_headers_to_remove,
                                         cat(vf, ".request_headers_to_remove"));
      !st.ok()) {
    return st;
  }
  if (auto st = normaliseHeadersToRemove(vh.response_headers_to_remove,
                                         cat(vf, ".response_headers_to_remove"));
      !st.ok()) {
    return st;
  }
  if (vh.retry_policy) {
    auto rp = compileRetry(*vh.retry_policy, cat(vf, ".retry_policy"));
    if (!rp.ok()) return rp.status();
    cvh->retry = *std::move(rp);
  }
  if (auto st =
          validateMirrorPolicies(vh.request_mirror_policies, cat(vf, ".request_mirror_policies"));
      !st.ok()) {
    return st;
  }
  if (vh.cors) {
    auto cors = CompiledCorsPolicy::compile(*vh.cors, cat(vf, ".cors"));
    if (!cors.ok()) return cors.status();
    cvh->cors = *std::move(cors);
  }
  if (vh.typed_cors) {
    auto cors = CompiledCorsPolicy::compile(*vh.typed_cors, cat(vf, ".typed_per_filter_config"));
    if (!cors.ok()) return cors.status();
    cvh->typed_cors = *std::move(cors);
  }

  // The routes: compiled, or kept from `previous`. A compiled route's whole
  // match is kept until the runs are known (a route in a run drops it).
  std::vector<Route> fresh = std::move(vh.routes);
  vh.routes.clear();
  const size_t count = previous != nullptr ? reuse.size() : fresh.size();
  if (previous != nullptr) {
    size_t kept = 0;
    for (const int32_t i : reuse) {
      if (i >= 0 && static_cast<size_t>(i) >= previous->routes.size()) {
        return absl::InvalidArgumentError(
            cat(vf, ": route ", i, " of the previous version does not exist"));
      }
      kept += i >= 0;
    }
    if (count - kept != fresh.size()) {
      return absl::InvalidArgumentError(
          cat(vf, ": ", fresh.size(), " new routes for ", count - kept, " places"));
    }
  }
  cvh->routes.resize(count);
  std::vector<std::optional<CompiledRouteMatch>> own(count);
  size_t next_fresh = 0;
  for (size_t r = 0; r < count; ++r) {
    RouteSlot& slot = cvh->routes[r];
    if (previous != nullptr && reuse[r] >= 0) {
      const RouteSlot& was = previous->routes[static_cast<size_t>(reuse[r])];
      slot.route = was.route;
      if (was.run < 0) own[r] = previous->matches[was.match];
      continue;
    }
    CompiledRouteMatch m;
    auto cr = compileRoute(std::move(fresh[next_fresh++]), cat(vf, ".routes[", r, "]"), m);
    if (!cr.ok()) return cr.status();
    slot.route = *std::move(cr);
    own[r] = std::move(m);
  }
  fresh.clear();
  for (size_t r = 0; r < count; ++r) {
    const CompiledRoute& cr = *cvh->routes[r].route;
    if (cr.extras && cr.config.direct_response) {
      cvh->direct_bodies.emplace_back(static_cast<uint32_t>(r), cr.extras->body.size());
    }
  }

  // Sandbox index: runs of routes differing only by one exact header value.
  auto match_at = [&](size_t r) -> const RouteMatch& { return cvh->routes[r].route->config.match; };
  const std::vector<IndexedRun> runs = findIndexedRuns(count, match_at);
  auto single = [&](uint32_t r) -> absl::Status {
    RouteSlot& slot = cvh->routes[r];
    if (!own[r]) {
      // Kept from a run of the previous version: its whole match again.
      auto m =
          CompiledRouteMatch::compile(slot.route->config.match, cat(vf, ".routes[", r, "].match"));
      if (!m.ok()) return m.status();
      own[r] = *std::move(m);
    }
    slot.run = -1;
    slot.match = static_cast<uint32_t>(cvh->matches.size());
    cvh->matches.push_back(*std::move(own[r]));
    cvh->segments.push_back(Segment{r, -1});
    return absl::OkStatus();
  };
  uint32_t next = 0;
  for (const IndexedRun& run : runs) {
    for (; next < run.begin; ++next) {
      if (auto st = single(next); !st.ok()) return st;
    }
    CompiledRun cr;
    const RouteMatch& first = match_at(run.begin);
    auto common = CompiledRouteMatch::compile(first, "", run.header_position);
    if (!common.ok()) return common.status();
    cr.common = *std::move(common);
    const HeaderMatcher& hm = first.headers[run.header_position];
    cr.header = absl::AsciiStrToLower(hm.name);
    cr.treat_missing_as_empty = hm.treat_missing_header_as_empty;
    cr.begin = run.begin;
    cr.end = run.end;
    cr.header_position = run.header_position;
    cr.index.reserve(run.end - run.begin);
    for (uint32_t r = run.begin; r < run.end; ++r) {
      const auto value = indexableExactValue(match_at(r).headers[run.header_position]);
      cr.index.insert(*value, r);
      cvh->routes[r].run = static_cast<int32_t>(cvh->runs.size());
    }
    cvh->indexed_routes += run.end - run.begin;
    cvh->segments.push_back(Segment{run.begin, static_cast<int32_t>(cvh->runs.size())});
    cvh->runs.push_back(std::move(cr));
    next = run.end;
  }
  for (; next < count; ++next) {
    if (auto st = single(next); !st.ok()) return st;
  }
  cvh->matches.shrink_to_fit();
  return VirtualHostConstSharedPtr(std::move(cvh));
}

size_t RouteTable::indexedRouteCount(size_t vh) const {
  return vh < vhosts_.size() ? vhosts_[vh]->indexed_routes : 0;
}

// ------------------------------------------------------------------ matching

int64_t RouteTable::findVirtualHost(std::string_view authority) const {
  if (exact_domains_.empty() && suffix_domains_.empty() && prefix_domains_.empty()) {
    return default_vhost_;
  }
  if (authority.data() == nullptr) return -1;
  if (config_.ignore_port_in_host_matching) {
    if (const size_t p = portStart(authority); p != std::string_view::npos) {
      authority = authority.substr(0, p);
    }
  }
  std::string_view host = authority;
  if (hasUpper(authority)) {
    thread_local std::string lower;
    lower.assign(authority.data(), authority.size());
    absl::AsciiStrToLower(&lower);
    host = lower;
  }
  if (auto it = exact_domains_.find(toAbsl(host)); it != exact_domains_.end()) return it->second;
  for (const auto& [len, map] : suffix_domains_) {
    if (len >= host.size()) continue;  // "*.foo.com" must not match ".foo.com"
    if (auto it = map.find(toAbsl(host.substr(host.size() - len))); it != map.end())
      return it->second;
  }
  for (const auto& [len, map] : prefix_domains_) {
    if (len >= host.size()) continue;
    if (auto it = map.find(toAbsl(host.substr(0, len))); it != map.end()) return it->second;
  }
  return default_vhost_;
}

RouteDecision RouteTable::match(const RequestView& view, uint64_t random) const {
  return matchImpl(view, random, true);
}

RouteDecision RouteTable::matchLinear(const RequestView& view, uint64_t random) const {
  return matchImpl(view, random, false);
}

RouteDecision RouteTable::matchImpl(const RequestView& view, uint64_t random,
                                    bool use_index) const {
  RouteDecision d;
  const int64_t vh_index = findVirtualHost(view.authority());
  if (vh_index < 0) return d;
  const CompiledVirtualHost& vh = *vhosts_[static_cast<size_t>(vh_index)];
  d.virtual_host = &vh.config;
  d.virtual_host_index = static_cast<uint32_t>(vh_index);

  // Envoy's VirtualHostImpl::getRouteFromEntries: no scheme -> no route; then
  // require_tls; then the routes (a request without :path, a CONNECT, is
  // matched by connect_matcher routes only: CompiledRouteMatch).
  const std::string_view proto = forwardedProto(view);
  if (proto.empty()) return d;
  using Tls = VirtualHost::TlsRequirementType;
  if (proto != "https" &&
      (vh.config.require_tls == Tls::ALL || (vh.config.require_tls == Tls::EXTERNAL_ONLY &&
                                              view.first("x-envoy-internal") != "true"))) {
    d.kind = RouteDecision::Kind::Redirect;
    d.status = 301;
    return d;
  }
  if (view.path().empty() && view.method() != "CONNECT") return d;

  thread_local std::string scratch;
  MatchInput in;
  in.view = &view;
  in.path = view.path();
  in.path_only = pathWithoutQuery(in.path);
  in.random = random;
  in.scratch = &scratch;

  if (!use_index) {
    // Route by route, as Envoy does: the reference the index is tested
    // against (tests, fuzzing; not the request path). An indexed route kept
    // no match of its own, so its whole match is compiled again here.
    auto route_matches = [&](uint32_t r) {
      const RouteSlot& slot = vh.routes[r];
      if (slot.run < 0) return vh.matches[slot.match].matches(in);
      auto full = CompiledRouteMatch::compile(slot.route->config.match, "");
      return full.ok() && full->matches(in);
    };
    for (uint32_t r = 0; r < vh.routes.size(); ++r) {
      if (route_matches(r)) return decide(vh, d.virtual_host_index, r, in);
    }
    return d;
  }
  for (const Segment& seg : vh.segments) {
    if (seg.run < 0) {
      if (vh.matches[vh.routes[seg.route].match].matches(in)) {
        return decide(vh, d.virtual_host_index, seg.route, in);
      }
      continue;
    }
    const CompiledRun& run = vh.runs[static_cast<size_t>(seg.run)];
    if (!run.common.matches(in)) continue;
    std::string_view value;
    if (!headerValue(in, run.header, value)) {
      if (!run.treat_missing_as_empty) continue;
      value = std::string_view("", 0);
    }
    if (const int64_t r = run.index.find(value); r >= 0) {
      return decide(vh, d.virtual_host_index, static_cast<uint32_t>(r), in);
    }
  }
  return d;
}

std::optional<std::chrono::milliseconds> parseGrpcTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  uint64_t n = 0;
  for (const char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  using std::chrono::milliseconds;
  const auto ms = static_cast<int64_t>(n);
  switch (value.back()) {
    case 'H': return milliseconds(ms * 3600000);
    case 'M': return milliseconds(ms * 60000);
    case 'S': return milliseconds(ms * 1000);
    case 'm': return milliseconds(ms);
    case 'u': return milliseconds((ms + 999) / 1000);
    case 'n': return milliseconds((ms + 999999) / 1000000);
    default: return std::nullopt;
  }
}

namespace {

// Envoy's ConnectionManagerImpl::ActiveStream::refreshDurationTimeout for a
// request with a grpc-timeout header on a route with grpc_timeout_header_max:
// the header, capped by a non-zero max, minus the offset (0 when the offset
// is as long: the stream is over at once).
std::optional<std::chrono::milliseconds> grpcStreamDuration(const RouteAction& a,
                                                            const RequestView& view) {
  using std::chrono::milliseconds;
  std::optional<milliseconds> header = parseGrpcTimeout(view.first("grpc-timeout"));
  if (!header) return std::nullopt;
  milliseconds timeout = *header;
  const milliseconds max = *a.grpc_timeout_header_max;
  if (max != milliseconds(0) && timeout > max) timeout = max;
  if (timeout != milliseconds(0) && a.grpc_timeout_header_offset) {
    const milliseconds offset = *a.grpc_timeout_header_offset;
    timeout = offset < timeout ? timeout - offset : milliseconds(0);
  }
  return timeout;
}

}  // namespace

RouteDecision RouteTable::decide(const CompiledVirtualHost& vh, uint32_t vh_index,
                                 uint32_t route_index, const MatchInput& in) const {
  const RouteSlot& slot = vh.routes[route_index];
  const CompiledRoute& cr = *slot.route;
  const Route& route = cr.config;
  // What a prefix_rewrite replaces: the path part of the route's match (an
  // indexed route's is its run's).
  const CompiledRouteMatch& path_match =
      slot.run < 0 ? vh.matches[slot.match] : vh.runs[static_cast<size_t>(slot.run)].common;
  RouteDecision d;
  d.virtual_host = &vh.config;
  d.virtual_host_index = vh_index;
  d.route = &route;
  d.route_index = route_index;
  // Envoy's CORS filter: the per-filter policies when there is any, else
  // the route's and virtual host's (deprecated) cors fields.
  if (cr.x().typed_cors || vh.typed_cors) {
    d.route_cors = cr.x().typed_cors.get();
    d.vhost_cors = vh.typed_cors.get();
  } else {
    d.route_cors = cr.x().cors.get();
    d.vhost_cors = vh.cors.get();
  }

  if (route.direct_response) {
    d.kind = RouteDecision::Kind::DirectResponse;
    d.status = cr.status;
    d.body = cr.x().body;
    return d;
  }
  if (route.redirect) {
    const RedirectAction& rd = *route.redirect;
    d.kind = RouteDecision::Kind::Redirect;
    d.status = cr.status;
    if (cr.x().redirect_regex) {
      std::string replaced =
          regexReplaceAll(*cr.x().redirect_regex, in.path_only, rd.regex_rewrite->substitution);
      if (!replaced.empty()) {
        d.rewritten_path = cat(replaced, in.path.substr(in.path_only.size()));
      }
    } else if (rd.prefix_rewrite && !rd.prefix_rewrite->empty()) {
      d.rewritten_path = cat(*rd.prefix_rewrite, in.path.substr(path_match.matchedPathLength(in)));
    }
    return d;
  }

  const RouteAction& a = *route.route;
  d.kind = RouteDecision::Kind::Route;
  d.cluster_not_found_status = cr.cluster_not_found_status;
  if (a.cluster) {
    d.cluster = *a.cluster;
  } else if (a.cluster_header) {
    d.cluster = firstHeaderValue(in, cr.x().cluster_header);
  } else {
    uint64_t value = in.random;
    if (!cr.x().random_value_header.empty()) {
      // Envoy: exactly one value that parses as uint64, else the random value.
      int count = 0;
      std::string_view single;
      in.view->forEachValue(cr.x().random_value_header, [&](std::string_view v) {
        ++count;
        single = v;
      });
      uint64_t parsed = 0;
      if (count == 1 && absl::SimpleAtoi(toAbsl(single), &parsed)) value = parsed;
    }
    const size_t i = cr.x().weights.pick(value);
    const ClusterWeight& cw = a.weighted_clusters->clusters[i];
    d.weighted_cluster = &cw;
    d.cluster = !cw.name.empty() ? std::string_view(cw.name)
                                 : firstHeaderValue(in, cr.x().weighted_cluster_headers[i]);
  }
  if (d.cluster.empty()) d.kind = RouteDecision::Kind::ClusterHeaderMissing;
  d.status = d.kind == RouteDecision::Kind::ClusterHeaderMissing ? cr.cluster_not_found_status : 0;

  if (!a.prefix_rewrite.empty()) {
    d.rewritten_path = cat(a.prefix_rewrite, in.path.substr(path_match.matchedPathLength(in)));
  } else if (cr.x().regex_rewrite) {
    d.rewritten_path =
        cat(regexReplaceAll(*cr.x().regex_rewrite, in.path_only, a.regex_rewrite->substitution),
            in.path.substr(in.path_only.size()));
  }

  if (a.host_rewrite_literal && !a.host_rewrite_literal->empty()) {
    d.host_rewrite = *a.host_rewrite_literal;
  } else if (!cr.x().host_rewrite_header.empty()) {
    const std::string_view h = firstHeaderValue(in, cr.x().host_rewrite_header);
    if (!h.empty()) d.host_rewrite = h;
  }
  if (d.host_rewrite.empty() && d.weighted_cluster != nullptr &&
      !d.weighted_cluster->host_rewrite_literal.empty()) {
    d.host_rewrite = d.weighted_cluster->host_rewrite_literal;
  }
  d.auto_host_rewrite = a.auto_host_rewrite.value_or(false);
  d.timeout = cr.timeout;
  if (a.grpc_timeout_header_max && in.view != nullptr) {
    d.max_stream_duration = grpcStreamDuration(a, *in.view);
  }
  d.idle_timeout = a.idle_timeout;
  // Retry and mirror policies: the route's, else the virtual host's (else,
  // for mirrors, the route configuration's).
  if (a.retry_policy) {
    d.retry_policy = &*a.retry_policy;
    d.retry = cr.x().retry.get();
  } else if (vh.config.retry_policy) {
    d.retry_policy = &*vh.config.retry_policy;
    d.retry = vh.retry.get();
  }
  d.mirror_policies = !a.request_mirror_policies.empty() ? std::span(a.request_mirror_policies)
                      : !vh.config.request_mirror_policies.empty()
                          ? std::span(vh.config.request_mirror_policies)
                          : std::span(config_.request_mirror_policies);
  d.hash_policy = a.hash_policy;
  return d;
}

// ---------------------------------------------------------- header mutations

namespace {

HeaderMutationLevels mutationLevels(const RouteConfiguration& c, const RouteDecision& d,
                                    bool request) {
  HeaderMutationLevels levels;
  if (d.route == nullptr || d.virtual_host == nullptr) return levels;
  auto push = [&levels](const CompactVector<HeaderValueOption>& add,
                        const CompactVector<std::string>& remove) {
    if (!add.empty() || !remove.empty()) levels.push_back(HeaderMutationLevel{&add, &remove});
  };
  if (d.weighted_cluster != nullptr) {
    const ClusterWeight& w = *d.weighted_cluster;
    request ? push(w.request_headers_to_add, w.request_headers_to_remove)
            : push(w.response_headers_to_add, w.response_headers_to_remove);
  }
  const Route& r = *d.route;
  const VirtualHost& v = *d.virtual_host;
  auto route_level = [&] {
    request ? push(r.request_headers_to_add, r.request_headers_to_remove)
            : push(r.response_headers_to_add, r.response_headers_to_remove);
  };
  auto vhost_level = [&] {
    request ? push(v.request_headers_to_add, v.request_headers_to_remove)
            : push(v.response_headers_to_add, v.response_headers_to_remove);
  };
  auto config_level = [&] {
    request ? push(c.request_headers_to_add, c.request_headers_to_remove)
            : push(c.response_headers_to_add, c.response_headers_to_remove);
  };
  if (c.most_specific_header_mutations_wins) {
    config_level();
    vhost_level();
    route_level();
  } else {
    route_level();
    vhost_level();
    config_level();
  }
  return levels;
}

}  // namespace

HeaderMutationLevels RouteTable::requestHeaderMutations(const RouteDecision& decision) const {
  return mutationLevels(config_, decision, true);
}

HeaderMutationLevels RouteTable::responseHeaderMutations(const RouteDecision& decision) const {
  return mutationLevels(config_, decision, false);
}

std::string formatHeaderValue(std::string_view value, const HeaderFormatHook& hook) {
  std::string out;
  out.reserve(value.size());
  size_t i = 0;
  while (i < value.size()) {
    const char ch = value[i];
    if (ch != '%') {
      out.push_back(ch);
      ++i;
      continue;
    }
    if (i + 1 < value.size() && value[i + 1] == '%') {
      out.push_back('%');
      i += 2;
      continue;
    }
    const size_t close = value.find('%', i + 1);
    if (close == std::string_view::npos) {  // create() rejects this; keep it literal
      out.append(value.substr(i));
      break;
    }
    if (hook) hook(value.substr(i + 1, close - i - 1), out);
    i = close + 1;
  }
  return out;
}

void applyHeaderMutations(const HeaderMutationLevels& levels, HeaderMutationTarget& headers,
                          const HeaderFormatHook& hook) {
  using Action = HeaderValueOption::HeaderAppendAction;
  std::vector<std::pair<std::string_view, std::string>> overwrites;
  std::vector<std::pair<std::string_view, std::string>> adds;
  for (const HeaderMutationLevel& level : levels) {
    if (level.to_remove != nullptr) {
      for (const std::string& name : *level.to_remove) {
        if (isModifiableHeader(name)) headers.remove(name);
      }
    }
    if (level.to_add == nullptr) continue;
    overwrites.clear();
    adds.clear();
    for (const HeaderValueOption& o : *level.to_add) {
      const std::string_view key = o.header.key;
      if (!isModifiableHeader(key)) continue;
      std::string value = formatHeaderValue(o.header.value, hook);
      if (value.empty() && !o.keep_empty_value) continue;
      Action action = o.append_action;
      if (o.append.has_value()) {
        action = *o.append ? Action::APPEND_IF_EXISTS_OR_ADD : Action::OVERWRITE_IF_EXISTS_OR_ADD;
      }
      switch (action) {
        case Action::APPEND_IF_EXISTS_OR_ADD:
          adds.emplace_back(key, std::move(value));
          break;
        case Action::ADD_IF_ABSENT:
          if (!headers.has(key)) adds.emplace_back(key, std::move(value));
          break;
        case Action::OVERWRITE_IF_EXISTS:
          if (!headers.has(key)) break;
          [[fallthrough]];
        case Action::OVERWRITE_IF_EXISTS_OR_ADD:
          overwrites.emplace_back(key, std::move(value));
          break;
      }
    }
    for (const auto& [k, v] : overwrites) headers.set(k, v);
    for (const auto& [k, v] : adds) headers.add(k, v);
  }
}

// ----------------------------------------------------------------- redirects

namespace {

bool schemeIs(std::string_view scheme, std::string_view want) {
  return absl::EqualsIgnoreCase(toAbsl(scheme), toAbsl(want));
}

// Envoy's processRequestHost: drop the request's port when a port_redirect is
// given, or when the scheme changes away from the port's default scheme.
std::string_view processRequestHost(const RequestView& view, std::string_view new_scheme,
                                    std::string_view new_port) {
  std::string_view host = view.authority();
  if (host.empty()) return host;
  size_t host_end;
  if (host.front() == '[') {
    host_end = host.rfind("]:");
    if (host_end != std::string_view::npos) host_end += 1;
  } else {
    host_end = host.rfind(':');
  }
  if (host_end != std::string_view::npos) {
    const std::string_view port = host.substr(host_end);
    const std::string_view proto = forwardedProto(view);
    bool remove_port = !new_port.empty();
    if (new_scheme != proto) {
      remove_port |= schemeIs(proto, "https") && port == ":443";
      remove_port |= schemeIs(proto, "http") && port == ":80";
    }
    if (remove_port) return host.substr(0, host_end);
  }
  return host;
}

}  // namespace

std::string redirectLocation(const RequestView& view, const RouteDecision& d) {
  const bool is_redirect = d.kind == RouteDecision::Kind::Redirect;
  const bool direct_with_location = d.kind == RouteDecision::Kind::DirectResponse &&
                                    (d.status == 201 || (d.status >= 300 && d.status < 400));
  if (!is_redirect && !direct_with_location) return "";
  if (view.path().data() == nullptr) return "";
  if (is_redirect && d.route == nullptr) {
    // require_tls: Envoy's Http::Utility::createSslRedirectPath.
    return cat("https://", view.authority(), view.path());
  }
  const RedirectAction* rd = is_redirect ? &*d.route->redirect : nullptr;

  std::string_view scheme = view.scheme();
  if (rd != nullptr && rd->scheme_redirect && !rd->scheme_redirect->empty()) {
    scheme = *rd->scheme_redirect;
  } else if (rd != nullptr && rd->https_redirect.value_or(false)) {
    scheme = "https";
  }
  const std::string port =
      rd != nullptr && rd->port_redirect != 0 ? cat(":", rd->port_redirect) : "";
  const std::string_view host = rd != nullptr && !rd->host_redirect.empty()
                                    ? std::string_view(rd->host_redirect)
                                    : processRequestHost(view, scheme, port);

  const bool path_redirect = rd != nullptr && rd->path_redirect && !rd->path_redirect->empty();
  const bool path_redirect_has_query =
      path_redirect && rd->path_redirect->find('?') != std::string::npos;
  std::string path;
  if (path_redirect) {
    path = *rd->path_redirect;
    if (!path_redirect_has_query) {
      const std::string_view current = view.path();
      if (const size_t q = current.find('?'); q != std::string_view::npos) {
        path.append(current.substr(q));
      }
    }
  } else {
    path = d.rewritten_path ? *d.rewritten_path : std::string(view.path());
  }
  if (!path.starts_with("/")) path.insert(0, "/");
  if (rd != nullptr && !path_redirect_has_query && rd->strip_query) {
    if (const size_t q = path.find('?'); q != std::string::npos) path.resize(q);
  }
  return cat(scheme, "://", host, port, path);
}

}  // namespace turnout::routing
