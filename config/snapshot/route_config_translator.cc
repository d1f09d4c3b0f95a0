#include "config/snapshot/route_config_translator.h"

#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "config/bootstrap/field_path.h"
#include "config/bootstrap/field_policy.h"
#include "envoy/extensions/filters/http/cors/v3/cors.pb.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/reflection.h"

// Envoy's deprecated fields (exact_match, append, total_weight, ...) still
// parse and must keep working, so this file reads them on purpose.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace turnout::config {
namespace {

namespace route = envoy::config::route::v3;
namespace core = envoy::config::core::v3;
namespace matcher = envoy::type::matcher::v3;

// Largest file a DataSource `filename` may name (direct_response bodies are
// capped at 4 KiB by default; the cap is checked again by RouteTable).
constexpr size_t kMaxDataSourceFileBytes = 1 << 20;

// Debian's abseil is built with its own string_view, so AlphaNum takes no
// std::string_view: field names travel as std::string (config time only).
std::string join(const std::string& path, const std::string& field) {
  return path.empty() ? field : absl::StrCat(path, ".", field);
}
std::string at(const std::string& path, const std::string& field, int index) {
  return absl::StrCat(join(path, field), "[", index, "]");
}

std::chrono::milliseconds toMs(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(d.seconds() * 1000 + d.nanos() / 1000000);
}

#define TURNOUT_RETURN_IF_ERROR(expr)   \
  do {                                  \
    absl::Status _st = (expr);          \
    if (!_st.ok()) return _st;          \
  } while (0)

// The field policy has checked the fields; the path is kept for symmetry with the
// translators that still report value errors.
absl::StatusOr<routing::RegexMatcher> regexMatcher(const matcher::RegexMatcher& p,
                                                   const std::string& /*path*/) {
  return routing::RegexMatcher{p.regex()};
}

absl::StatusOr<routing::StringMatcher> stringMatcher(const matcher::StringMatcher& p,
                                                     const std::string& path) {
  routing::StringMatcher m;
  m.ignore_case = p.ignore_case();
  switch (p.match_pattern_case()) {
    case matcher::StringMatcher::kExact: m.exact = p.exact(); break;
    case matcher::StringMatcher::kPrefix: m.prefix = p.prefix(); break;
    case matcher::StringMatcher::kSuffix: m.suffix = p.suffix(); break;
    case matcher::StringMatcher::kContains: m.contains = p.contains(); break;
    case matcher::StringMatcher::kSafeRegex: {
      auto r = regexMatcher(p.safe_regex(), join(path, "safe_regex"));
      if (!r.ok()) return r.status();
      m.safe_regex = *std::move(r);
      break;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(path, ": a match pattern is required"));
  }
  return m;
}

absl::StatusOr<routing::HeaderMatcher> headerMatcher(const route::HeaderMatcher& p,
                                                     const std::string& path) {
  routing::HeaderMatcher m;
  m.name = p.name();
  m.invert_match = p.invert_match();
  m.treat_missing_header_as_empty = p.treat_missing_header_as_empty();
  switch (p.header_match_specifier_case()) {
    case route::HeaderMatcher::kExactMatch: m.exact_match = p.exact_match(); break;
    case route::HeaderMatcher::kSafeRegexMatch: {
      auto r = regexMatcher(p.safe_regex_match(), join(path, "safe_regex_match"));
      if (!r.ok()) return r.status();
      m.safe_regex_match = *std::move(r);
      break;
    }
    case route::HeaderMatcher::kRangeMatch:
      m.range_match = routing::Int64Range{p.range_match().start(), p.range_match().end()};
      break;
    case route::HeaderMatcher::kPresentMatch: m.present_match = p.present_match(); break;
    case route::HeaderMatcher::kPrefixMatch: m.prefix_match = p.prefix_match(); break;
    case route::HeaderMatcher::kSuffixMatch: m.suffix_match = p.suffix_match(); break;
    case route::HeaderMatcher::kContainsMatch: m.contains_match = p.contains_match(); break;
    case route::HeaderMatcher::kStringMatch: {
      auto s = stringMatcher(p.string_match(), join(path, "string_match"));
      if (!s.ok()) return s.status();
      m.string_match = *std::move(s);
      break;
    }
    default:
      break;  // no specifier: present_match semantics
  }
  return m;
}

absl::StatusOr<std::vector<routing::HeaderMatcher>> headerMatchers(
    const google::protobuf::RepeatedPtrField<route::HeaderMatcher>& list, const std::string& path,
    const std::string& field) {
  std::vector<routing::HeaderMatcher> out;
  out.reserve(list.size());
  for (int i = 0; i < list.size(); ++i) {
    auto m = headerMatcher(list[i], at(path, field, i));
    if (!m.ok()) return m.status();
    out.push_back(*std::move(m));
  }
  return out;
}

routing::FractionalPercent fractionalPercent(const envoy::type::v3::FractionalPercent& p) {
  routing::FractionalPercent f;
  f.numerator = p.numerator();
  f.denominator = static_cast<routing::FractionalPercent::DenominatorType>(p.denominator());
  return f;
}

absl::StatusOr<routing::RuntimeFractionalPercent> runtimeFraction(
    const core::RuntimeFractionalPercent& p, const std::string& /*path*/) {
  return routing::RuntimeFractionalPercent{fractionalPercent(p.default_value()), p.runtime_key()};
}

// envoy.config.route.v3.CorsPolicy (VirtualHost.cors, RouteAction.cors)
// and envoy.extensions.filters.http.cors.v3.CorsPolicy (typed_per_filter_config):
// the same fields.
template <typename CorsProto>
absl::StatusOr<routing::CorsPolicy> corsPolicy(const CorsProto& p, const std::string& path) {
  routing::CorsPolicy c;
  for (int i = 0; i < p.allow_origin_string_match_size(); ++i) {
    auto m =
        stringMatcher(p.allow_origin_string_match(i), at(path, "allow_origin_string_match", i));
    if (!m.ok()) return m.status();
    c.allow_origin_string_match.push_back(*std::move(m));
  }
  c.allow_methods = p.allow_methods();
  c.allow_headers = p.allow_headers();
  c.expose_headers = p.expose_headers();
  c.max_age = p.max_age();
  if (p.has_allow_credentials()) c.allow_credentials = p.allow_credentials().value();
  if (p.has_filter_enabled()) {
    auto f = runtimeFraction(p.filter_enabled(), join(path, "filter_enabled"));
    if (!f.ok()) return f.status();
    c.filter_enabled = *f;
  }
  if (p.has_shadow_enabled()) {
    auto f = runtimeFraction(p.shadow_enabled(), join(path, "shadow_enabled"));
    if (!f.ok()) return f.status();
    c.shadow_enabled = *f;
  }
  if (p.has_allow_private_network_access()) {
    c.allow_private_network_access = p.allow_private_network_access().value();
  }
  if (p.has_forward_not_matching_preflights()) {
    c.forward_not_matching_preflights = p.forward_not_matching_preflights().value();
  }
  return c;
}

// A virtual host's or route's typed_per_filter_config: the CORS filter's
// policy (the field policy refused every other type) into `out`.
absl::Status typedCors(const google::protobuf::Map<std::string, google::protobuf::Any>& configs,
                       const std::string& path, routing::Boxed<routing::CorsPolicy>& out) {
  for (const auto& [key, any] : configs) {
    envoy::extensions::filters::http::cors::v3::CorsPolicy p;
    if (!any.UnpackTo(&p)) continue;
    auto c = corsPolicy(p, keyPath(join(path, "typed_per_filter_config"), key));
    if (!c.ok()) return c.status();
    out = *std::move(c);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<routing::HeaderValueOption>> headerValueOptions(
    const google::protobuf::RepeatedPtrField<core::HeaderValueOption>& list,
    const std::string& path, const std::string& field) {
  std::vector<routing::HeaderValueOption> out;
  out.reserve(list.size());
  for (int i = 0; i < list.size(); ++i) {
    const auto& p = list[i];
    const std::string here = at(path, field, i);
    routing::HeaderValueOption o;
    o.header.key = p.header().key();
    o.header.value = p.header().value().empty() ? p.header().raw_value() : p.header().value();
    if (p.has_append()) o.append = p.append().value();
    o.append_action =
        static_cast<routing::HeaderValueOption::HeaderAppendAction>(p.append_action());
    o.keep_empty_value = p.keep_empty_value();
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<std::string> strings(const google::protobuf::RepeatedPtrField<std::string>& list) {
  return {list.begin(), list.end()};
}

absl::StatusOr<std::vector<routing::RequestMirrorPolicy>> mirrorPolicies(
    const google::protobuf::RepeatedPtrField<route::RouteAction::RequestMirrorPolicy>& list,
    const std::string& path, const std::string& field) {
  std::vector<routing::RequestMirrorPolicy> out;
  for (int i = 0; i < list.size(); ++i) {
    const auto& p = list[i];
    const std::string here = at(path, field, i);
    routing::RequestMirrorPolicy m;
    m.cluster = p.cluster();
    m.cluster_header = p.cluster_header();
    if (p.has_runtime_fraction()) {
      auto f = runtimeFraction(p.runtime_fraction(), join(here, "runtime_fraction"));
      if (!f.ok()) return f.status();
      m.runtime_fraction = *f;
    }
    if (p.has_trace_sampled()) m.trace_sampled = p.trace_sampled().value();
    m.disable_shadow_host_suffix_append = p.disable_shadow_host_suffix_append();
    out.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<routing::RetryPolicy> retryPolicy(const route::RetryPolicy& p,
                                                 const std::string& path) {
  routing::RetryPolicy r;
  r.retry_on = p.retry_on();
  if (p.has_num_retries()) r.num_retries = p.num_retries().value();
  if (p.has_per_try_timeout()) r.per_try_timeout = toMs(p.per_try_timeout());
  if (p.has_per_try_idle_timeout()) r.per_try_idle_timeout = toMs(p.per_try_idle_timeout());
  if (p.host_selection_retry_max_attempts() != 0) {
    r.host_selection_retry_max_attempts = p.host_selection_retry_max_attempts();
  }
  r.retriable_status_codes.assign(p.retriable_status_codes().begin(),
                                  p.retriable_status_codes().end());
  if (p.has_retry_back_off()) {
    routing::RetryPolicy::RetryBackOff b;
    b.base_interval = toMs(p.retry_back_off().base_interval());
    if (p.retry_back_off().has_max_interval()) {
      b.max_interval = toMs(p.retry_back_off().max_interval());
    }
    r.retry_back_off = b;
  }
  auto rh = headerMatchers(p.retriable_headers(), path, "retriable_headers");
  if (!rh.ok()) return rh.status();
  r.retriable_headers = *std::move(rh);
  auto rrh = headerMatchers(p.retriable_request_headers(), path, "retriable_request_headers");
  if (!rrh.ok()) return rrh.status();
  r.retriable_request_headers = *std::move(rrh);
  // Only the previous_hosts predicate is accepted (its type URL is checked by
  // the bootstrap loader's extension rules); it is how Istio configures retries.
  for (int i = 0; i < p.retry_host_predicate_size(); ++i) {
    const auto& pred = p.retry_host_predicate(i);
    const std::string here = at(path, "retry_host_predicate", i);
    if (pred.typed_config().type_url() !=
        "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate") {
      return absl::InvalidArgumentError(
          absl::StrCat(here, ".typed_config: unsupported retry host predicate '",
                       pred.typed_config().type_url(), "'"));
    }
  }
  return r;
}

absl::StatusOr<routing::DataSource> dataSource(const core::DataSource& p, const std::string& path) {
  routing::DataSource d;
  switch (p.specifier_case()) {
    case core::DataSource::kInlineBytes: d.inline_bytes = p.inline_bytes(); break;
    case core::DataSource::kInlineString: d.inline_string = p.inline_string(); break;
    case core::DataSource::kEnvironmentVariable: {
      const char* v = std::getenv(p.environment_variable().c_str());
      if (v == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(join(path, "environment_variable"), ": environment variable '",
                         p.environment_variable(), "' is not set"));
      }
      d.inline_string = std::string(v);
      break;
    }
    case core::DataSource::kFilename: {
      std::ifstream in(p.filename(), std::ios::binary);
      if (!in) {
        return absl::InvalidArgumentError(absl::StrCat(join(path, "filename"), ": cannot read '",
                                                       p.filename(), "'"));
      }
      std::string body(kMaxDataSourceFileBytes + 1, '\0');
      in.read(body.data(), static_cast<std::streamsize>(body.size()));
      body.resize(static_cast<size_t>(in.gcount()));
      if (body.size() > kMaxDataSourceFileBytes) {
        return absl::InvalidArgumentError(
            absl::StrCat(join(path, "filename"), ": '", p.filename(), "' is larger than ",
                         kMaxDataSourceFileBytes, " bytes"));
      }
      d.inline_bytes = std::move(body);
      break;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(path, ": a data source is required"));
  }
  return d;
}

absl::StatusOr<routing::RouteMatch> routeMatch(const route::RouteMatch& p,
                                               const std::string& path) {
  routing::RouteMatch m;
  switch (p.path_specifier_case()) {
    case route::RouteMatch::kPrefix: m.prefix = p.prefix(); break;
    case route::RouteMatch::kPath: m.path = p.path(); break;
    case route::RouteMatch::kPathSeparatedPrefix:
      m.path_separated_prefix = p.path_separated_prefix();
      break;
    case route::RouteMatch::kSafeRegex: {
      auto r = regexMatcher(p.safe_regex(), join(path, "safe_regex"));
      if (!r.ok()) return r.status();
      m.safe_regex = *std::move(r);
      break;
    }
    case route::RouteMatch::kConnectMatcher:
      m.connect_matcher = true;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path,
                       ": one of prefix, path, safe_regex, path_separated_prefix or "
                       "connect_matcher is required"));
  }
  if (p.has_case_sensitive()) m.case_sensitive = p.case_sensitive().value();
  if (p.has_runtime_fraction()) {
    auto f = runtimeFraction(p.runtime_fraction(), join(path, "runtime_fraction"));
    if (!f.ok()) return f.status();
    m.runtime_fraction = *f;
  }
  auto h = headerMatchers(p.headers(), path, "headers");
  if (!h.ok()) return h.status();
  m.headers = *std::move(h);
  for (int i = 0; i < p.query_parameters_size(); ++i) {
    const auto& q = p.query_parameters(i);
    const std::string here = at(path, "query_parameters", i);
    routing::QueryParameterMatcher qm;
    qm.name = q.name();
    if (q.has_string_match()) {
      auto s = stringMatcher(q.string_match(), join(here, "string_match"));
      if (!s.ok()) return s.status();
      qm.string_match = *std::move(s);
    } else if (q.query_parameter_match_specifier_case() ==
               route::QueryParameterMatcher::kPresentMatch) {
      qm.present_match = q.present_match();
    }
    m.query_parameters.push_back(std::move(qm));
  }
  if (p.has_grpc()) m.grpc = routing::GrpcRouteMatchOptions{};
  return m;
}

absl::StatusOr<routing::RouteAction> routeAction(const route::RouteAction& p,
                                                 const std::string& path) {
  routing::RouteAction a;
  switch (p.cluster_specifier_case()) {
    case route::RouteAction::kCluster: a.cluster = p.cluster(); break;
    case route::RouteAction::kClusterHeader: a.cluster_header = p.cluster_header(); break;
    case route::RouteAction::kWeightedClusters: {
      const auto& wc = p.weighted_clusters();
      const std::string wpath = join(path, "weighted_clusters");
      routing::WeightedCluster w;
      if (wc.has_total_weight()) w.total_weight = wc.total_weight().value();
      w.runtime_key_prefix = wc.runtime_key_prefix();
      w.header_name = wc.header_name();
      for (int i = 0; i < wc.clusters_size(); ++i) {
        const auto& c = wc.clusters(i);
        const std::string here = at(wpath, "clusters", i);
        routing::ClusterWeight cw;
        cw.name = c.name();
        cw.cluster_header = c.cluster_header();
        if (c.has_weight()) cw.weight = c.weight().value();
        auto rq = headerValueOptions(c.request_headers_to_add(), here, "request_headers_to_add");
        if (!rq.ok()) return rq.status();
        cw.request_headers_to_add = *std::move(rq);
        cw.request_headers_to_remove = strings(c.request_headers_to_remove());
        auto rs = headerValueOptions(c.response_headers_to_add(), here, "response_headers_to_add");
        if (!rs.ok()) return rs.status();
        cw.response_headers_to_add = *std::move(rs);
        cw.response_headers_to_remove = strings(c.response_headers_to_remove());
        cw.host_rewrite_literal = c.host_rewrite_literal();
        w.clusters.push_back(std::move(cw));
      }
      a.weighted_clusters = std::move(w);
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": one of cluster, cluster_header or weighted_clusters is required"));
  }
  a.cluster_not_found_response_code =
      static_cast<routing::RouteAction::ClusterNotFoundResponseCode>(
          p.cluster_not_found_response_code());
  a.prefix_rewrite = p.prefix_rewrite();
  if (p.has_regex_rewrite()) {
    const std::string here = join(path, "regex_rewrite");
    auto r = regexMatcher(p.regex_rewrite().pattern(), join(here, "pattern"));
    if (!r.ok()) return r.status();
    a.regex_rewrite = routing::RegexMatchAndSubstitute{
        *std::move(r), p.regex_rewrite().substitution()};
  }
  switch (p.host_rewrite_specifier_case()) {
    case route::RouteAction::kHostRewriteLiteral:
      a.host_rewrite_literal = p.host_rewrite_literal();
      break;
    case route::RouteAction::kAutoHostRewrite:
      a.auto_host_rewrite = p.auto_host_rewrite().value();
      break;
    case route::RouteAction::kHostRewriteHeader:
      a.host_rewrite_header = p.host_rewrite_header();
      break;
    default:
      break;
  }
  a.append_x_forwarded_host = p.append_x_forwarded_host();
  if (p.has_timeout()) a.timeout = toMs(p.timeout());
  if (p.has_idle_timeout()) a.idle_timeout = toMs(p.idle_timeout());
  if (p.has_retry_policy()) {
    auto r = retryPolicy(p.retry_policy(), join(path, "retry_policy"));
    if (!r.ok()) return r.status();
    a.retry_policy = *std::move(r);
  }
  auto mirrors = mirrorPolicies(p.request_mirror_policies(), path, "request_mirror_policies");
  if (!mirrors.ok()) return mirrors.status();
  a.request_mirror_policies = *std::move(mirrors);
  if (p.has_cors()) {
    auto c = corsPolicy(p.cors(), join(path, "cors"));
    if (!c.ok()) return c.status();
    a.cors = *std::move(c);
  }
  for (int i = 0; i < p.hash_policy_size(); ++i) {
    const auto& h = p.hash_policy(i);
    const std::string here = at(path, "hash_policy", i);
    routing::HashPolicy hp;
    hp.terminal = h.terminal();
    switch (h.policy_specifier_case()) {
      case route::RouteAction::HashPolicy::kHeader: {
        routing::HashPolicy::Header hh;
        hh.header_name = h.header().header_name();
        if (h.header().has_regex_rewrite()) {
          auto r = regexMatcher(h.header().regex_rewrite().pattern(),
                                join(here, "header.regex_rewrite.pattern"));
          if (!r.ok()) return r.status();
          hh.regex_rewrite = routing::RegexMatchAndSubstitute{
              *std::move(r), h.header().regex_rewrite().substitution()};
        }
        hp.header = std::move(hh);
        break;
      }
      case route::RouteAction::HashPolicy::kCookie: {
        routing::HashPolicy::Cookie c;
        c.name = h.cookie().name();
        if (h.cookie().has_ttl()) c.ttl = toMs(h.cookie().ttl());
        c.path = h.cookie().path();
        for (const auto& attr : h.cookie().attributes()) {
          c.attributes.push_back({attr.name(), attr.value()});
        }
        hp.cookie = std::move(c);
        break;
      }
      case route::RouteAction::HashPolicy::kConnectionProperties:
        hp.connection_properties =
            routing::HashPolicy::ConnectionProperties{h.connection_properties().source_ip()};
        break;
      case route::RouteAction::HashPolicy::kQueryParameter:
        hp.query_parameter = routing::HashPolicy::QueryParameter{h.query_parameter().name()};
        break;
      case route::RouteAction::HashPolicy::kFilterState:
        hp.filter_state = routing::HashPolicy::FilterState{h.filter_state().key()};
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(here, ": a hash policy is required"));
    }
    a.hash_policy.push_back(std::move(hp));
  }
  if (p.has_max_grpc_timeout()) a.max_grpc_timeout = toMs(p.max_grpc_timeout());
  if (p.has_grpc_timeout_offset()) a.grpc_timeout_offset = toMs(p.grpc_timeout_offset());
  // Istio sets max_stream_duration with zero durations on every route; zero
  // means disabled, so only a non-zero max_stream_duration would need
  // enforcing. The gRPC header fields are honoured (routing/route_table.cc).
  if (p.has_max_stream_duration()) {
    const auto& d = p.max_stream_duration();
    if (d.max_stream_duration().seconds() != 0 || d.max_stream_duration().nanos() != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(join(path, "max_stream_duration"),
                       ": a non-zero max_stream_duration is not supported by turnout"));
    }
    if (d.has_grpc_timeout_header_max()) {
      a.grpc_timeout_header_max = toMs(d.grpc_timeout_header_max());
    }
    if (d.has_grpc_timeout_header_offset()) {
      a.grpc_timeout_header_offset = toMs(d.grpc_timeout_header_offset());
    }
  }
  // Per-route upgrade enable/disable (overrides the connection manager's);
  // a CONNECT one may terminate the CONNECT here (connect_config).
  for (int i = 0; i < p.upgrade_configs_size(); ++i) {
    const auto& u = p.upgrade_configs(i);
    const std::string here = at(path, "upgrade_configs", i);
    const std::string type = absl::AsciiStrToLower(u.upgrade_type());
    if (type != "websocket" && type != "connect") {
      return absl::InvalidArgumentError(
          absl::StrCat(join(here, "upgrade_type"), ": upgrade type '", u.upgrade_type(),
                       "' is not supported by turnout (websocket or CONNECT)"));
    }
    // Envoy: "Non-CONNECT upgrade type ... has ConnectConfig". Its own
    // proxy_protocol_config and allow_post are refused by the field policy.
    if (u.has_connect_config() && type != "connect") {
      return absl::InvalidArgumentError(
          absl::StrCat(join(here, "connect_config"), ": only a CONNECT upgrade can have one"));
    }
    a.upgrade_configs.push_back(
        {type, !u.has_enabled() || u.enabled().value(), u.has_connect_config()});
  }
  return a;
}

absl::StatusOr<routing::RedirectAction> redirectAction(const route::RedirectAction& p,
                                                       const std::string& path) {
  routing::RedirectAction r;
  switch (p.scheme_rewrite_specifier_case()) {
    case route::RedirectAction::kHttpsRedirect: r.https_redirect = p.https_redirect(); break;
    case route::RedirectAction::kSchemeRedirect: r.scheme_redirect = p.scheme_redirect(); break;
    default: break;
  }
  r.host_redirect = p.host_redirect();
  r.port_redirect = p.port_redirect();
  switch (p.path_rewrite_specifier_case()) {
    case route::RedirectAction::kPathRedirect: r.path_redirect = p.path_redirect(); break;
    case route::RedirectAction::kPrefixRewrite: r.prefix_rewrite = p.prefix_rewrite(); break;
    case route::RedirectAction::kRegexRewrite: {
      const std::string here = join(path, "regex_rewrite");
      auto m = regexMatcher(p.regex_rewrite().pattern(), join(here, "pattern"));
      if (!m.ok()) return m.status();
      r.regex_rewrite = routing::RegexMatchAndSubstitute{
          *std::move(m), p.regex_rewrite().substitution()};
      break;
    }
    default: break;
  }
  r.response_code = static_cast<routing::RedirectAction::RedirectResponseCode>(p.response_code());
  r.strip_query = p.strip_query();
  return r;
}

absl::StatusOr<routing::Route> toRoute(const route::Route& p, const std::string& path) {
  routing::Route r;
  r.name = p.name();
  TURNOUT_RETURN_IF_ERROR(typedCors(p.typed_per_filter_config(), path, r.typed_cors));
  auto m = routeMatch(p.match(), join(path, "match"));
  if (!m.ok()) return m.status();
  r.match = *std::move(m);
  switch (p.action_case()) {
    case route::Route::kRoute: {
      auto a = routeAction(p.route(), join(path, "route"));
      if (!a.ok()) return a.status();
      r.route = *std::move(a);
      break;
    }
    case route::Route::kRedirect: {
      auto a = redirectAction(p.redirect(), join(path, "redirect"));
      if (!a.ok()) return a.status();
      r.redirect = *std::move(a);
      break;
    }
    case route::Route::kDirectResponse: {
      const std::string here = join(path, "direct_response");
      routing::DirectResponseAction d;
      d.status = p.direct_response().status();
      if (p.direct_response().has_body()) {
        auto b = dataSource(p.direct_response().body(), join(here, "body"));
        if (!b.ok()) return b.status();
        d.body = *std::move(b);
      }
      r.direct_response = std::move(d);
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": one of route, redirect or direct_response is required"));
  }
  auto rq = headerValueOptions(p.request_headers_to_add(), path, "request_headers_to_add");
  if (!rq.ok()) return rq.status();
  r.request_headers_to_add = *std::move(rq);
  r.request_headers_to_remove = strings(p.request_headers_to_remove());
  auto rs = headerValueOptions(p.response_headers_to_add(), path, "response_headers_to_add");
  if (!rs.ok()) return rs.status();
  r.response_headers_to_add = *std::move(rs);
  r.response_headers_to_remove = strings(p.response_headers_to_remove());
  r.stat_prefix = p.stat_prefix();
  return r;
}

absl::StatusOr<routing::VirtualHost> virtualHost(const route::VirtualHost& p,
                                                 const std::string& path) {
  routing::VirtualHost v;
  v.name = p.name();
  v.domains = strings(p.domains());
  v.routes.reserve(p.routes_size());  // a Route is ~1.5 KiB; no doubling slack
  for (int i = 0; i < p.routes_size(); ++i) {
    auto r = toRoute(p.routes(i), at(path, "routes", i));
    if (!r.ok()) return r.status();
    v.routes.push_back(*std::move(r));
  }
  v.require_tls = static_cast<routing::VirtualHost::TlsRequirementType>(p.require_tls());
  auto rq = headerValueOptions(p.request_headers_to_add(), path, "request_headers_to_add");
  if (!rq.ok()) return rq.status();
  v.request_headers_to_add = *std::move(rq);
  v.request_headers_to_remove = strings(p.request_headers_to_remove());
  auto rs = headerValueOptions(p.response_headers_to_add(), path, "response_headers_to_add");
  if (!rs.ok()) return rs.status();
  v.response_headers_to_add = *std::move(rs);
  v.response_headers_to_remove = strings(p.response_headers_to_remove());
  if (p.has_retry_policy()) {
    auto r = retryPolicy(p.retry_policy(), join(path, "retry_policy"));
    if (!r.ok()) return r.status();
    v.retry_policy = *std::move(r);
  }
  auto mirrors = mirrorPolicies(p.request_mirror_policies(), path, "request_mirror_policies");
  if (!mirrors.ok()) return mirrors.status();
  v.request_mirror_policies = *std::move(mirrors);
  if (p.has_cors()) {
    auto c = corsPolicy(p.cors(), join(path, "cors"));
    if (!c.ok()) return c.status();
    v.cors = *std::move(c);
  }
  TURNOUT_RETURN_IF_ERROR(typedCors(p.typed_per_filter_config(), path, v.typed_cors));
  v.include_request_attempt_count = p.include_request_attempt_count();
  v.include_attempt_count_in_response = p.include_attempt_count_in_response();
  return v;
}

}  // namespace

absl::StatusOr<routing::RouteConfiguration> toRouteConfiguration(
    const route::RouteConfiguration& p, const std::string& path) {
  // Every set field is honoured or rejected (config/bootstrap/field_policy.h).
  TURNOUT_RETURN_IF_ERROR(checkFieldPolicy(p, path));
  if (p.has_vhds()) {
    // RDS over Delta ADS takes vhds off before it gets here
    // (discovery_response.h, checkVhds); anywhere else it cannot be served.
    return absl::InvalidArgumentError(absl::StrCat(
        path, ".vhds: only 'DELTA_GRPC' or 'ADS' (which uses Delta xDS) is supported as a "
        "config source; turnout takes VHDS only for a route configuration delivered by RDS "
        "over ADS with dynamic_resources.ads_config.api_type DELTA_GRPC"));
  }
  routing::RouteConfiguration c;
  c.name = p.name();
  for (int i = 0; i < p.virtual_hosts_size(); ++i) {
    auto v = virtualHost(p.virtual_hosts(i), at(path, "virtual_hosts", i));
    if (!v.ok()) return v.status();
    c.virtual_hosts.push_back(*std::move(v));
  }
  c.internal_only_headers = strings(p.internal_only_headers());
  auto rs = headerValueOptions(p.response_headers_to_add(), path, "response_headers_to_add");
  if (!rs.ok()) return rs.status();
  c.response_headers_to_add = *std::move(rs);
  c.response_headers_to_remove = strings(p.response_headers_to_remove());
  auto rq = headerValueOptions(p.request_headers_to_add(), path, "request_headers_to_add");
  if (!rq.ok()) return rq.status();
  c.request_headers_to_add = *std::move(rq);
  c.request_headers_to_remove = strings(p.request_headers_to_remove());
  c.most_specific_header_mutations_wins = p.most_specific_header_mutations_wins();
  if (p.has_validate_clusters()) c.validate_clusters = p.validate_clusters().value();
  if (p.has_max_direct_response_body_size_bytes()) {
    c.max_direct_response_body_size_bytes = p.max_direct_response_body_size_bytes().value();
  }
  auto mirrors = mirrorPolicies(p.request_mirror_policies(), path, "request_mirror_policies");
  if (!mirrors.ok()) return mirrors.status();
  c.request_mirror_policies = *std::move(mirrors);
  c.ignore_port_in_host_matching = p.ignore_port_in_host_matching();
  return c;
}

absl::StatusOr<routing::HeaderMatcher> toHeaderMatcher(const route::HeaderMatcher& proto,
                                                      const std::string& path) {
  TURNOUT_RETURN_IF_ERROR(checkFieldPolicy(proto, path));
  return headerMatcher(proto, path);
}

absl::StatusOr<std::shared_ptr<const routing::RouteTable>> translateRouteConfiguration(
    const route::RouteConfiguration& proto, const std::string& path,
    std::vector<routing::RouteTable::VirtualHostConstSharedPtr> compiled_hosts) {
  auto config = toRouteConfiguration(proto, path);
  if (!config.ok()) return config.status();
  auto table = routing::RouteTable::create(*std::move(config), std::move(compiled_hosts));
  if (!table.ok()) {
    return absl::Status(table.status().code(),
                        absl::StrCat(path.empty() ? "" : path + ".", table.status().message()));
  }
  return *std::move(table);
}

absl::StatusOr<routing::RouteTable::VirtualHostConstSharedPtr> compileVirtualHost(
    const route::VirtualHost& proto, const std::string& path) {
  auto v = virtualHost(proto, path);
  if (!v.ok()) return v.status();
  return routing::RouteTable::compileVirtualHost(*std::move(v), path);
}

absl::StatusOr<routing::RouteTable::VirtualHostConstSharedPtr> compileVirtualHost(
    const route::VirtualHost& proto, const std::string& path,
    const routing::RouteTable::CompiledVirtualHost& previous, std::span<const int32_t> reuse) {
  auto v = virtualHost(proto, path);
  if (!v.ok()) return v.status();
  return routing::RouteTable::compileVirtualHost(*std::move(v), path, previous, reuse);
}

}  // namespace turnout::config
