#include "config/control_plane/generator.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "config/control_plane/sidecar.h"
#include "config/snapshot/discovery_response.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "re2/re2.h"

namespace turnout::control_plane {
namespace {

namespace cluster_v3 = envoy::config::cluster::v3;
namespace core_v3 = envoy::config::core::v3;
namespace endpoint_v3 = envoy::config::endpoint::v3;
namespace route_v3 = envoy::config::route::v3;
namespace listener_v3 = envoy::config::listener::v3;
namespace hcm_v3 = envoy::extensions::filters::network::http_connection_manager::v3;

std::string str(std::string_view s) { return std::string(s); }

std::string quote(std::string_view s) { return RE2::QuoteMeta(re2::StringPiece(s.data(), s.size())); }

constexpr char kHttpProtocolOptionsName[] = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

// Optional whitespace (OWS of RFC 9110: spaces and tabs).
constexpr char kOws[] = "[ \\t]*";

// Any routing key: turnout's key alphabet (routing::isValidRoutingKey).
constexpr char kAnyKey[] = "[A-Za-z0-9._-]+";

// The member regexes with the value as a regex (baggageMemberRegex() and
// tracestateMemberRegex() below say why they are exact).
std::string baggageRegex(std::string_view member_key, std::string_view value_regex) {
  return absl::StrCat("(?:.*,)?", kOws, quote(member_key), kOws, "=", kOws, str(value_regex), kOws,
                      "(?:[;,].*)?");
}

std::string tracestateRegex(std::string_view member_key, std::string_view value_regex) {
  return absl::StrCat("(?:.*,)?", kOws, quote(member_key), "=", str(value_regex), kOws,
                      "(?:,.*)?");
}

void addEndpoints(endpoint_v3::ClusterLoadAssignment& cla, const Endpoints& endpoints) {
  if (endpoints.empty()) return;
  auto* locality = cla.add_endpoints();
  // gRPC refuses a locality without `locality` and ignores one without a weight.
  locality->mutable_locality();
  locality->mutable_load_balancing_weight()->set_value(1);
  for (const Endpoint& ep : endpoints) {
    auto* sa = locality->add_lb_endpoints()->mutable_endpoint()->mutable_address()
                   ->mutable_socket_address();
    sa->set_address(ep.host);
    sa->set_port_value(ep.port);
  }
}

// One generated cluster; EDS clusters also get their ClusterLoadAssignment.
void addCluster(Resources& out, const std::string& name, const Endpoints& endpoints,
                bool http2) {
  cluster_v3::Cluster c;
  c.set_name(name);
  if (http2) {
    // HTTP/2 upstream (h2c with prior knowledge), Envoy's v3 way.
    envoy::extensions::upstreams::http::v3::HttpProtocolOptions options;
    options.mutable_explicit_http_config()->mutable_http2_protocol_options();
    (*c.mutable_typed_extension_protocol_options())[kHttpProtocolOptionsName].PackFrom(options);
  }
  c.mutable_connect_timeout()->set_seconds(kConnectTimeoutSeconds);
  c.set_lb_policy(cluster_v3::Cluster::ROUND_ROBIN);
  bool all_ip = true;
  for (const Endpoint& ep : endpoints) all_ip = all_ip && ep.isIp();
  if (all_ip) {
    c.set_type(cluster_v3::Cluster::EDS);
    auto* eds = c.mutable_eds_cluster_config()->mutable_eds_config();
    eds->mutable_ads();
    eds->set_resource_api_version(core_v3::V3);
    endpoint_v3::ClusterLoadAssignment cla;
    cla.set_cluster_name(name);
    addEndpoints(cla, endpoints);
    out.load_assignments.push_back(std::move(cla));
  } else {
    // gRPC's xDS client takes LOGICAL_DNS but not STRICT_DNS; Envoy and turnout
    // take both. LOGICAL_DNS has exactly one endpoint.
    c.set_type(endpoints.size() == 1 ? cluster_v3::Cluster::LOGICAL_DNS
                                     : cluster_v3::Cluster::STRICT_DNS);
    auto* cla = c.mutable_load_assignment();
    cla->set_cluster_name(name);
    addEndpoints(*cla, endpoints);
  }
  out.clusters.push_back(std::move(c));
}

route_v3::Route* addRoute(route_v3::VirtualHost& vh, std::string name) {
  auto* r = vh.add_routes();
  r->set_name(std::move(name));
  r->mutable_match()->set_prefix("/");
  return r;
}

void routeTo(route_v3::Route& r, const std::string& cluster) {
  auto* action = r.mutable_route();
  action->set_cluster(cluster);
  // No route timeout: a sidecar adds no deadline the application did not ask
  // for (streams, long polls), as Istio does.
  action->mutable_timeout()->set_seconds(0);
}

route_v3::HeaderMatcher* addHeader(route_v3::Route& r, std::string_view name) {
  auto* h = r.mutable_match()->add_headers();
  h->set_name(str(name));
  return h;
}

std::string_view formKindName(KeyForm::Kind kind) {
  switch (kind) {
    case KeyForm::Kind::kBaggage: return "baggage";
    case KeyForm::Kind::kTracestate: return "tracestate";
    case KeyForm::Kind::kHeader: return "header";
  }
  return "";
}

void addReleaseRoutes(route_v3::VirtualHost& vh, const Release& release,
                      const route_v3::HeaderMatcher* guard, const std::string& prefix);

// What a request that no sandbox route took gets: the release's matches and
// weights, then the baseline; each route also carries `guard` if given.
void addUnforkedRoutes(route_v3::VirtualHost& vh, const Service& service, const Release* release,
                       const route_v3::HeaderMatcher* guard, const std::string& prefix) {
  if (release != nullptr) addReleaseRoutes(vh, *release, guard, prefix);
  auto* r = addRoute(vh, prefix + "baseline");
  if (guard != nullptr) *r->mutable_match()->add_headers() = *guard;
  routeTo(*r, clusterName(service.name));
}

// A matcher true when `form` carries a routing key, whatever it is: a value
// of turnout's key alphabet where the form puts the key.
route_v3::HeaderMatcher carriesAKey(const KeyForm& form) {
  route_v3::HeaderMatcher h;
  auto* regex = h.mutable_string_match()->mutable_safe_regex();
  switch (form.kind) {
    case KeyForm::Kind::kBaggage:
      h.set_name("baggage");
      regex->set_regex(baggageRegex(form.name, kAnyKey));
      break;
    case KeyForm::Kind::kTracestate:
      h.set_name("tracestate");
      regex->set_regex(tracestateRegex(form.name, kAnyKey));
      break;
    case KeyForm::Kind::kHeader:
      h.set_name(str(form.name));
      regex->set_regex(kAnyKey);
      break;
  }
  return h;
}

// `forks`: the sandboxes that fork `service`, by key.
void addSandboxRoutes(route_v3::VirtualHost& vh, const std::vector<const Sandbox*>& forks,
                      const Service& service, const Release* release, Dialect dialect) {
  if (dialect == Dialect::kTurnout) {
    for (const Sandbox* sb : forks) {
      auto* r = addRoute(vh, absl::StrCat("sandbox/", sb->key));
      addHeader(*r, kRoutingKeyHeader)->mutable_string_match()->set_exact(sb->key);
      routeTo(*r, clusterName(service.name, sb->key));
    }
    return;
  }
  // One pass per form, so that the form order is the precedence when a request
  // carries keys in several forms, as it is for turnout's RoutingKey filter.
  // After a form's sandbox routes, a request whose key is in that form but
  // names no fork of this service must not fall through to a lower form's key
  // (turnout takes the first form that carries a key): `keyed/<form>/...`
  // routes send it where an unkeyed request goes, guarded by "the form carries
  // a key". The last form needs none: what follows it is the same.
  if (forks.empty()) return;
  const auto& forms = envoyKeyForms();
  for (size_t f = 0; f < forms.size(); ++f) {
    const KeyForm& form = forms[f];
    for (const Sandbox* sb : forks) {
      auto* r = addRoute(vh, absl::StrCat("sandbox/", sb->key, "/", str(formKindName(form.kind)),
                                          "/", str(form.name)));
      switch (form.kind) {
        case KeyForm::Kind::kBaggage:
          addHeader(*r, "baggage")->mutable_string_match()->mutable_safe_regex()->set_regex(
              baggageMemberRegex(form.name, sb->key));
          break;
        case KeyForm::Kind::kTracestate:
          addHeader(*r, "tracestate")->mutable_string_match()->mutable_safe_regex()->set_regex(
              tracestateMemberRegex(form.name, sb->key));
          break;
        case KeyForm::Kind::kHeader:
          addHeader(*r, form.name)->mutable_string_match()->set_exact(sb->key);
          break;
      }
      routeTo(*r, clusterName(service.name, sb->key));
    }
    if (f + 1 < forms.size()) {
      const route_v3::HeaderMatcher guard = carriesAKey(form);
      addUnforkedRoutes(vh, service, release,  &guard,
                        absl::StrCat("keyed/", str(formKindName(form.kind)), "/", str(form.name), "/"));
    }
  }
}

// `guard`: a matcher every route also carries (null: none); `prefix` goes
// before each route's name.
void addReleaseRoutes(route_v3::VirtualHost& vh, const Release& release,
                      const route_v3::HeaderMatcher* guard, const std::string& prefix) {
  auto guarded = [&](std::string name) {
    auto* r = addRoute(vh, prefix + name);
    if (guard != nullptr) *r->mutable_match()->add_headers() = *guard;
    return r;
  };
  for (size_t i = 0; i < release.matches.size(); ++i) {
    const ReleaseMatch& m = release.matches[i];
    auto* r = guarded(absl::StrCat("release/match/", i));
    for (const HeaderMatch& h : m.headers) {
      auto* hm = addHeader(*r, h.name);
      switch (h.kind) {
        case HeaderMatch::Kind::kExact: hm->mutable_string_match()->set_exact(h.value); break;
        case HeaderMatch::Kind::kPrefix: hm->mutable_string_match()->set_prefix(h.value); break;
        case HeaderMatch::Kind::kRegex:
          hm->mutable_string_match()->mutable_safe_regex()->set_regex(h.value);
          break;
        case HeaderMatch::Kind::kPresent: hm->set_present_match(true); break;
      }
    }
    routeTo(*r, clusterName(release.service, m.version));
  }
  // Zero weights are left out (every client agrees on what a missing cluster
  // means; not all accept weight 0); one version left is a plain route.
  std::vector<std::pair<std::string, uint32_t>> live;
  for (const auto& [version, weight] : release.weights) {
    if (weight > 0) live.emplace_back(version, weight);
  }
  if (live.empty()) return;
  auto* r = guarded("release/weights");
  if (live.size() == 1) {
    routeTo(*r, clusterName(release.service, live.front().first));
    return;
  }
  auto* action = r->mutable_route();
  for (const auto& [version, weight] : live) {
    auto* cw = action->mutable_weighted_clusters()->add_clusters();
    cw->set_name(clusterName(release.service, version));
    cw->mutable_weight()->set_value(weight);
  }
  action->mutable_timeout()->set_seconds(0);
}

// What a gRPC channel to `xds:///<domain>` asks LDS for: an API listener whose
// HttpConnectionManager takes the outbound routes over ADS and ends its filters
// with the router, as gRPC requires (gRFC A39).
listener_v3::Listener apiListener(const std::string& domain) {
  hcm_v3::HttpConnectionManager hcm;
  hcm.set_stat_prefix("outbound");
  auto* rds = hcm.mutable_rds();
  rds->set_route_config_name(kRouteConfigurationName);
  rds->mutable_config_source()->mutable_ads();
  rds->mutable_config_source()->set_resource_api_version(core_v3::V3);
  auto* router = hcm.add_http_filters();
  router->set_name("envoy.filters.http.router");
  router->mutable_typed_config()->PackFrom(envoy::extensions::filters::http::router::v3::Router());
  listener_v3::Listener l;
  l.set_name(domain);
  l.mutable_api_listener()->mutable_api_listener()->PackFrom(hcm);
  return l;
}

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string deterministicBytes(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

void addVersioned(ResourceMap& map, const std::string& name,
                  const google::protobuf::Message& message) {
  VersionedResource v;
  v.resource.PackFrom(message);
  v.version = contentVersion(message);
  map.emplace(name, std::move(v));
}

}  // namespace

Dialect dialectFor(const core_v3::Node& node) {
  const std::string& agent = node.user_agent_name();
  if (agent == kTurnoutUserAgentName) return Dialect::kTurnout;
  if (agent.starts_with("gRPC ")) return Dialect::kGrpc;
  return Dialect::kEnvoy;
}

std::string_view dialectName(Dialect dialect) {
  switch (dialect) {
    case Dialect::kTurnout: return "turnout";
    case Dialect::kEnvoy: return "envoy";
    case Dialect::kGrpc: return "grpc";
  }
  return "";
}

const std::vector<KeyForm>& envoyKeyForms() {
  static const auto* forms = new std::vector<KeyForm>{
      {KeyForm::Kind::kBaggage, "turnout-routing-key"},
      {KeyForm::Kind::kBaggage, "sd-routing-key"},
      {KeyForm::Kind::kTracestate, "turnout"},
      {KeyForm::Kind::kTracestate, "sd-routing-key"},
      {KeyForm::Kind::kHeader, "x-turnout-routing-key"},
      {KeyForm::Kind::kHeader, "sd-routing-key"},
      {KeyForm::Kind::kHeader, "ot-baggage-sd-routing-key"},
      {KeyForm::Kind::kHeader, "uberctx-sd-routing-key"},
  };
  return *forms;
}

turnout::extensions::filters::http::routing_key::v3::RoutingKey routingKeyFilterConfig() {
  turnout::extensions::filters::http::routing_key::v3::RoutingKey out;
  for (const KeyForm& form : envoyKeyForms()) {
    auto* source = out.add_sources();
    switch (form.kind) {
      case KeyForm::Kind::kBaggage: source->set_baggage_member(str(form.name)); break;
      case KeyForm::Kind::kTracestate: source->set_tracestate_key(str(form.name)); break;
      case KeyForm::Kind::kHeader: source->set_header(str(form.name)); break;
    }
  }
  out.set_output_header(kRoutingKeyHeader);
  return out;
}

// W3C Baggage: list-member = key OWS "=" OWS value *( OWS ";" OWS property ),
// members separated by OWS "," OWS. A value has no whitespace, "," or ";", so
// the value is exactly `value` when it is followed by OWS and then ";", "," or
// the end; what follows a ";" or "," may be anything.
std::string baggageMemberRegex(std::string_view member_key, std::string_view value) {
  return baggageRegex(member_key, quote(value));
}

// W3C Trace Context tracestate: list-member = key "=" value, members separated
// by OWS "," OWS; no whitespace around "=". A value may hold inner spaces but
// ends in a non-space, so `value` followed by OWS and then "," or the end is the
// whole value.
std::string tracestateMemberRegex(std::string_view member_key, std::string_view value) {
  return tracestateRegex(member_key, quote(value));
}

std::vector<std::string> domainsFor(const Service& service) {
  const std::string port = absl::StrCat(":", service.port);
  std::vector<std::string> out;
  for (const std::string& host :
       {service.name, absl::StrCat(service.name, ".", service.ns),
        absl::StrCat(service.name, ".", service.ns, ".svc"),
        absl::StrCat(service.name, ".", service.ns, ".svc.cluster.local")}) {
    out.push_back(host);
    out.push_back(host + port);
  }
  return out;
}

Profile profileFor(const core_v3::Node& node) {
  return Profile(dialectFor(node), sidecarFor(node));
}

std::string profileName(Profile profile) {
  std::string out(dialectName(profile.dialect));
  if (profile.sidecar) out += "/sidecar";
  return out;
}

std::string profileKey(Profile profile) {
  std::string out = profileName(profile);
  if (profile.vhds) out += "/vhds";
  return out;
}

std::string virtualHostResourceName(std::string_view service) {
  return absl::StrCat(kRouteConfigurationName, "/", str(service));
}

Resources generate(const Model& model, Profile profile) {
  const Dialect dialect = profile.dialect;
  Resources out;
  // Clusters by name: collect first, then emit in name order. Forks and
  // versions speak their service's protocol.
  auto http2 = [&](const std::string& service) {
    auto it = model.services.find(service);
    return it != model.services.end() && it->second.isHttp2();
  };
  std::map<std::string, std::pair<const Endpoints*, bool>> clusters;
  for (const auto& [name, service] : model.services) {
    clusters.emplace(clusterName(name), std::make_pair(&service.endpoints, service.isHttp2()));
  }
  for (const auto& [key, sandbox] : model.sandboxes) {
    for (const auto& [service, endpoints] : sandbox.forks) {
      clusters.emplace(clusterName(service, key), std::make_pair(&endpoints, http2(service)));
    }
  }
  for (const auto& [service, release] : model.releases) {
    for (const auto& [version, endpoints] : release.versions) {
      clusters.emplace(clusterName(service, version), std::make_pair(&endpoints, http2(service)));
    }
  }
  for (const auto& [name, c] : clusters) addCluster(out, name, *c.first, c.second);
  if (profile.sidecar) {
    // Service names are DNS labels (lowercase): these never collide.
    for (auto& c : sidecarClusters()) out.clusters.push_back(std::move(c));
  }

  // service -> the sandboxes forking it, by key (one pass over the sandboxes).
  std::map<std::string_view, std::vector<const Sandbox*>> forks_of;
  for (const auto& [key, sandbox] : model.sandboxes) {
    for (const auto& [service, endpoints] : sandbox.forks) forks_of[service].push_back(&sandbox);
  }
  static const std::vector<const Sandbox*> kNone;

  route_v3::RouteConfiguration& rc = out.route_configuration;
  rc.set_name(kRouteConfigurationName);
  if (profile.vhds) {
    auto* cs = rc.mutable_vhds()->mutable_config_source();
    cs->mutable_ads();
    cs->set_resource_api_version(core_v3::V3);
  }
  for (const auto& [name, service] : model.services) {
    route_v3::VirtualHost* vh;
    if (profile.vhds) {
      vh = &out.virtual_hosts.emplace_back();
      vh->set_name(virtualHostResourceName(name));
    } else {
      vh = rc.add_virtual_hosts();
      vh->set_name(name);
    }
    for (auto& d : domainsFor(service)) vh->add_domains(std::move(d));
    auto forks = forks_of.find(name);
    auto release = model.releases.find(name);
    addSandboxRoutes(*vh, forks == forks_of.end() ? kNone : forks->second, service,
                     release == model.releases.end() ? nullptr : &release->second, dialect);
    addUnforkedRoutes(*vh, service, release == model.releases.end() ? nullptr : &release->second,
                      nullptr, "");
  }
  if (dialect == Dialect::kGrpc) {
    // Domains are unique across services (Envoy refuses a route table where
    // two virtual hosts share one), so one listener per domain, by name.
    std::set<std::string> domains;
    for (const auto& [name, service] : model.services) {
      for (auto& d : domainsFor(service)) domains.insert(std::move(d));
    }
    for (const auto& d : domains) out.listeners.push_back(apiListener(d));
  }
  if (profile.sidecar) {
    *rc.add_virtual_hosts() = allowAnyVirtualHost();
    out.listeners = sidecarListeners(model, dialect == Dialect::kTurnout);
  }
  return out;
}

std::string contentVersion(const google::protobuf::Message& message) {
  return absl::StrFormat("%016x", fnv1a64(deterministicBytes(message)));
}

ResourcesByType generateByType(const Model& model, Profile profile) {
  Resources r = generate(model, profile);
  ResourcesByType out;
  ResourceMap& clusters = out[config::kClusterTypeUrl];
  for (const auto& c : r.clusters) addVersioned(clusters, c.name(), c);
  ResourceMap& endpoints = out[config::kClusterLoadAssignmentTypeUrl];
  for (const auto& cla : r.load_assignments) addVersioned(endpoints, cla.cluster_name(), cla);
  addVersioned(out[config::kRouteConfigurationTypeUrl], r.route_configuration.name(),
               r.route_configuration);
  if (profile.vhds) {
    ResourceMap& vhosts = out[kVirtualHostTypeUrl];
    for (const auto& vh : r.virtual_hosts) addVersioned(vhosts, vh.name(), vh);
  }
  if (profile.dialect == Dialect::kGrpc || profile.sidecar) {
    ResourceMap& listeners = out[config::kListenerTypeUrl];
    for (const auto& l : r.listeners) addVersioned(listeners, l.name(), l);
  }
  return out;
}

}  // namespace turnout::control_plane
