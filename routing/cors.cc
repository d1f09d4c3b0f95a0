#include "routing/cors.h"

#include "routing/route_matcher.h"

namespace turnout::routing {

absl::StatusOr<std::unique_ptr<CompiledCorsPolicy>> CompiledCorsPolicy::compile(
    const CorsPolicy& config, std::string_view field) {
  auto out = std::make_unique<CompiledCorsPolicy>();
  out->config_ = config;
  for (size_t i = 0; i < config.allow_origin_string_match.size(); ++i) {
    auto m = StringMatch::compile(config.allow_origin_string_match[i],
                                  internal::cat(field, ".allow_origin_string_match[", i, "]"));
    if (!m.ok()) return m.status();
    out->origins_.push_back(*std::move(m));
  }
  return out;
}

namespace {

// The first policy's non-empty string.
template <typename Get>
const std::string& firstSet(std::span<const CompiledCorsPolicy* const> policies, Get get) {
  static const std::string kEmpty;
  for (const CompiledCorsPolicy* p : policies) {
    const std::string& v = get(p->config());
    if (!v.empty()) return v;
  }
  return kEmpty;
}

template <typename Get>
std::optional<bool> firstBool(std::span<const CompiledCorsPolicy* const> policies, Get get) {
  for (const CompiledCorsPolicy* p : policies) {
    if (const std::optional<bool>& v = get(p->config()); v.has_value()) return v;
  }
  return std::nullopt;
}

}  // namespace

CorsResult evaluateCors(std::span<const CompiledCorsPolicy* const> policies,
                        const RequestView& request, uint64_t random) {
  CorsResult r;
  if (policies.empty()) return r;
  // Envoy's enabled() / shadowEnabled(): the first policy's only.
  const CorsPolicy& first = policies[0]->config();
  const bool enabled = !first.filter_enabled ||
                       evaluateFractionalPercent(first.filter_enabled->default_value, random);
  const bool shadow = first.shadow_enabled &&
                      evaluateFractionalPercent(first.shadow_enabled->default_value, random);
  if (!enabled && !shadow) return r;
  const std::string_view origin = request.first("origin");
  if (origin.empty()) return r;

  bool allowed = false;
  for (const CompiledCorsPolicy* p : policies) {
    if (p->origins().empty()) continue;
    for (const StringMatch& m : p->origins()) {
      if (m.match("*") || m.match(origin)) {
        allowed = true;
        break;
      }
    }
    break;  // the first policy with origins decides
  }
  r.origin = allowed ? CorsResult::Origin::Valid : CorsResult::Origin::Invalid;
  if (!enabled) return r;  // shadow mode: counted only

  const bool credentials =
      firstBool(policies, [](const CorsPolicy& c) -> const std::optional<bool>& {
        return c.allow_credentials;
      }).value_or(false);
  const std::string_view request_method = request.first("access-control-request-method");
  if (request.method() == "OPTIONS" && !request_method.empty()) {
    const bool forward = firstBool(policies, [](const CorsPolicy& c) -> const std::optional<bool>& {
                           return c.forward_not_matching_preflights;
                         }).value_or(true);
    if (!allowed && forward) return r;
    r.preflight = true;
    if (allowed) r.headers.emplace_back("access-control-allow-origin", std::string(origin));
    if (credentials) r.headers.emplace_back("access-control-allow-credentials", "true");
    const std::string& methods = firstSet(
        policies, [](const CorsPolicy& c) -> const std::string& { return c.allow_methods; });
    if (!methods.empty()) {
      r.headers.emplace_back("access-control-allow-methods",
                             methods == "*" ? std::string(request_method) : methods);
    }
    const std::string& headers = firstSet(
        policies, [](const CorsPolicy& c) -> const std::string& { return c.allow_headers; });
    if (!headers.empty()) {
      r.headers.emplace_back(
          "access-control-allow-headers",
          headers == "*" ? std::string(request.first("access-control-request-headers")) : headers);
    }
    const std::string& max_age =
        firstSet(policies, [](const CorsPolicy& c) -> const std::string& { return c.max_age; });
    if (!max_age.empty()) r.headers.emplace_back("access-control-max-age", max_age);
    const bool private_network =
        firstBool(policies, [](const CorsPolicy& c) -> const std::optional<bool>& {
          return c.allow_private_network_access;
        }).value_or(false);
    if (private_network && request.first("access-control-request-private-network") == "true") {
      r.headers.emplace_back("access-control-allow-private-network", "true");
    }
    return r;
  }
  if (!allowed) return r;
  r.headers.emplace_back("access-control-allow-origin", std::string(origin));
  if (credentials) r.headers.emplace_back("access-control-allow-credentials", "true");
  const std::string& expose = firstSet(
      policies, [](const CorsPolicy& c) -> const std::string& { return c.expose_headers; });
  if (!expose.empty()) r.headers.emplace_back("access-control-expose-headers", expose);
  return r;
}

}  // namespace turnout::routing
