#include "config/control_plane/generator.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "config/control_plane/sidecar.h"
#include "config/snapshot/discovery_response.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "google/protobuf/arena.h"
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

// One service's resources: its clusters (baseline, forks, versions), the
// assignments of those that are EDS, and its virtual host.
struct ServiceResources {
  std::vector<cluster_v3::Cluster> clusters;
  std::vector<endpoint_v3::ClusterLoadAssignment> load_assignments;
  route_v3::VirtualHost virtual_host;
};

// Endpoints that are all IP addresses make an EDS cluster (with a
// ClusterLoadAssignment of its name); a DNS name makes a DNS cluster.
bool allIp(const Endpoints& endpoints) {
  for (const Endpoint& ep : endpoints) {
    if (!ep.isIp()) return false;
  }
  return true;
}

// One generated cluster; EDS clusters also get their ClusterLoadAssignment.
void addCluster(ServiceResources& out, const std::string& name, const Endpoints& endpoints,
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
  if (allIp(endpoints)) {
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

// Appends protobuf wire-format fields to a string.
class WireWriter {
 public:
  explicit WireWriter(std::string& out) : out_(out) {}
  static size_t varintSize(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
      v >>= 7;
      ++n;
    }
    return n;
  }
  // The size of a length-delimited field of `size` bytes (field numbers
  // under 16: a one-byte tag).
  static size_t fieldSize(size_t size) { return 1 + varintSize(size) + size; }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  // A length-delimited field's tag and length; its `size` bytes follow.
  void head(uint32_t number, size_t size) {
    varint((uint64_t{number} << 3) | 2);
    varint(size);
  }
  // A length-delimited field (string, bytes or message).
  void field(uint32_t number, std::string_view bytes) {
    head(number, bytes.size());
    out_.append(bytes);
  }

 private:
  std::string& out_;
};

// The wire form of what addSandboxRoutes(kTurnout) adds for one sandbox:
// VirtualHost field 3 holding the Route {match {prefix "/", headers
// [{name kRoutingKeyHeader, string_match {exact key}}]}, route {cluster
// "<service>--<key>", timeout {}}, name "sandbox/<key>"}, as a deterministic
// serialization writes it (fields in number order). A service forked by
// 10,000 sandboxes made and serialized 10,000 Route messages per change;
// this writes their bytes, each message's length worked out from its
// fields' (no intermediate strings). The generator test checks it against
// the message, byte for byte.
void appendTurnoutSandboxRoute(std::string& out, std::string_view key, std::string_view service) {
  using W = WireWriter;
  constexpr std::string_view kNamePrefix = "sandbox/";
  constexpr std::string_view header_name = kRoutingKeyHeader;
  const size_t string_match = W::fieldSize(key.size());  // StringMatcher.exact
  const size_t header = W::fieldSize(header_name.size()) +  // HeaderMatcher.name
                        W::fieldSize(string_match);         // HeaderMatcher.string_match (13)
  const size_t match = W::fieldSize(1) +                    // RouteMatch.prefix "/"
                       W::fieldSize(header);                // RouteMatch.headers (6)
  const size_t cluster = service.size() + 2 + key.size();   // appendClusterName's
  const size_t action = W::fieldSize(cluster) +  // RouteAction.cluster
                        W::fieldSize(0);         // RouteAction.timeout (8): an empty Duration
  const size_t name = kNamePrefix.size() + key.size();
  const size_t route = W::fieldSize(match) + W::fieldSize(action) + W::fieldSize(name);
  W w(out);
  w.head(3, route);  // VirtualHost.routes
  w.head(1, match);  // Route.match
  w.field(1, "/");
  w.head(6, header);
  w.field(1, header_name);
  w.head(13, string_match);
  w.field(1, key);
  w.head(2, action);  // Route.route
  w.head(1, cluster);
  appendClusterName(out, service, key);
  w.field(8, "");
  w.head(14, name);  // Route.name
  out.append(kNamePrefix).append(key);
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

// service -> the sandboxes forking it, by key (one pass over the sandboxes).
// Filled again in place: the vectors keep their capacity across updates, so
// a pass at 10,000 sandboxes allocates nothing (it was most of what an
// update of one sandbox cost turnout-cp besides its own resources).
using ForksByService = absl::flat_hash_map<std::string, std::vector<const Sandbox*>>;
void fillForksByService(const Model& model, ForksByService& out) {
  for (auto& [service, forks] : out) forks.clear();
  for (const auto& [key, sandbox] : model.sandboxes) {
    for (const auto& [service, endpoints] : sandbox.forks) {
      auto it = out.find(service);
      if (it == out.end()) it = out.try_emplace(service).first;
      it->second.push_back(&sandbox);
    }
  }
}
const std::vector<const Sandbox*>& forksOf(const ForksByService& forks, const std::string& service) {
  static const std::vector<const Sandbox*> kNone;
  auto it = forks.find(service);
  return it == forks.end() ? kNone : it->second;
}
const Release* releaseOf(const Model& model, const std::string& service) {
  auto it = model.releases.find(service);
  return it == model.releases.end() ? nullptr : &it->second;
}

// Everything generated from one service, the sandboxes that fork it
// (`forks`, by key) and its release: a unit IncrementalGenerator reuses
// while those inputs stay the same. Forks and versions speak their
// service's protocol.
// The service's virtual host: its domains, the sandbox routes of `forks`,
// then the release's and the baseline's.
void fillServiceVirtualHost(route_v3::VirtualHost& vh, const Service& service,
                            const std::vector<const Sandbox*>& forks, const Release* release,
                            Profile profile) {
  vh.set_name(profile.vhds ? virtualHostResourceName(service.name) : service.name);
  for (auto& d : domainsFor(service)) vh.add_domains(std::move(d));
  addSandboxRoutes(vh, forks, service, release, profile.dialect);
  addUnforkedRoutes(vh, service, release, nullptr, "");
}

// fillServiceVirtualHost()'s message serialized deterministically, for the
// turnout dialect: the sandbox routes are written directly.
std::string turnoutVirtualHostBytes(const Service& service,
                                    const std::vector<const Sandbox*>& forks,
                                    const Release* release, Profile profile) {
  route_v3::VirtualHost head;  // name and domains: fields 1 and 2
  head.set_name(profile.vhds ? virtualHostResourceName(service.name) : service.name);
  for (auto& d : domainsFor(service)) head.add_domains(std::move(d));
  route_v3::VirtualHost tail;  // the routes after the sandbox ones
  addUnforkedRoutes(tail, service, release, nullptr, "");
  std::string out = deterministicBytes(head);
  for (const Sandbox* sb : forks) appendTurnoutSandboxRoute(out, sb->key, service.name);
  out += deterministicBytes(tail);
  return out;
}

// The service's virtual host, serialized deterministically: the turnout
// dialect's written directly, the others' made as a message on an arena,
// whose blocks go in one step (freeing a 10,000-route message field by
// field cost as much as making it), and serialized once.
std::string virtualHostBytes(const Service& service, const std::vector<const Sandbox*>& forks,
                             const Release* release, Profile profile) {
  if (profile.dialect == Dialect::kTurnout) {
    return turnoutVirtualHostBytes(service, forks, release, profile);
  }
  google::protobuf::Arena arena;
  auto* vh = google::protobuf::Arena::CreateMessage<route_v3::VirtualHost>(&arena);
  fillServiceVirtualHost(*vh, service, forks, release, profile);
  return deterministicBytes(*vh);
}

route_v3::VirtualHost serviceVirtualHost(const Service& service,
                                         const std::vector<const Sandbox*>& forks,
                                         const Release* release, Profile profile) {
  route_v3::VirtualHost vh;
  fillServiceVirtualHost(vh, service, forks, release, profile);
  return vh;
}

// The clusters (and assignments) of the baseline and the release versions,
// the ones every change to a service makes again (a few).
void addServiceClusters(ServiceResources& out, const Service& service, const Release* release) {
  addCluster(out, clusterName(service.name), service.endpoints, service.isHttp2());
  if (release != nullptr) {
    for (const auto& [version, endpoints] : release->versions) {
      addCluster(out, clusterName(service.name, version), endpoints, service.isHttp2());
    }
  }
}

ServiceResources serviceResources(const Model& model, const Service& service,
                                  const std::vector<const Sandbox*>& forks, Profile profile) {
  ServiceResources out;
  const Release* release = releaseOf(model, service.name);
  addServiceClusters(out, service, release);
  for (const Sandbox* sb : forks) {
    addCluster(out, clusterName(service.name, sb->key), sb->forks.at(service.name), service.isHttp2());
  }
  out.virtual_host = serviceVirtualHost(service, forks, release, profile);
  return out;
}

// The `outbound` RouteConfiguration without its services' virtual hosts:
// VHDS profiles name VHDS over ADS.
route_v3::RouteConfiguration routeConfigurationHead(Profile profile) {
  route_v3::RouteConfiguration rc;
  rc.set_name(kRouteConfigurationName);
  if (profile.vhds) {
    auto* cs = rc.mutable_vhds()->mutable_config_source();
    cs->mutable_ads();
    cs->set_resource_api_version(core_v3::V3);
  }
  return rc;
}

// kGrpc: the API listeners; sidecars: the capture listeners; else none.
std::vector<listener_v3::Listener> listenersFor(const Model& model, Profile profile) {
  std::vector<listener_v3::Listener> out;
  if (profile.dialect == Dialect::kGrpc) {
    // Domains are unique across services (Envoy refuses a route table where
    // two virtual hosts share one), so one listener per domain, by name.
    std::set<std::string> domains;
    for (const auto& [name, service] : model.services) {
      for (auto& d : domainsFor(service)) domains.insert(std::move(d));
    }
    for (const auto& d : domains) out.push_back(apiListener(d));
  }
  if (profile.sidecar) {
    out = sidecarListeners(model, profile.dialect == Dialect::kTurnout, profile.ip_families);
  }
  return out;
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

Profile profileFor(const core_v3::Node& node, std::string* unknown_ip_families) {
  const bool sidecar = sidecarFor(node);
  const IpFamilies families =
      sidecar ? ipFamiliesFor(node, unknown_ip_families) : IpFamilies::kIpv4;
  return Profile(dialectFor(node), sidecar, false, families);
}

std::string profileName(Profile profile) {
  std::string out(dialectName(profile.dialect));
  if (profile.sidecar) out += "/sidecar";
  if (profile.ip_families != IpFamilies::kIpv4) {
    absl::StrAppend(&out, "/", std::string(ipFamiliesName(profile.ip_families)));
  }
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
  Resources out;
  ForksByService forks;
  fillForksByService(model, forks);
  // Clusters and assignments by name; virtual hosts in service order.
  std::map<std::string, cluster_v3::Cluster> clusters;
  std::map<std::string, endpoint_v3::ClusterLoadAssignment> load_assignments;
  std::vector<route_v3::VirtualHost> virtual_hosts;
  for (const auto& [name, service] : model.services) {
    ServiceResources r = serviceResources(model, service, forksOf(forks, name), profile);
    for (auto& c : r.clusters) clusters.emplace(c.name(), std::move(c));
    for (auto& cla : r.load_assignments) load_assignments.emplace(cla.cluster_name(), std::move(cla));
    virtual_hosts.push_back(std::move(r.virtual_host));
  }
  for (auto& [name, c] : clusters) out.clusters.push_back(std::move(c));
  for (auto& [name, cla] : load_assignments) out.load_assignments.push_back(std::move(cla));
  if (profile.sidecar) {
    // Service names are DNS labels (lowercase): these never collide.
    for (auto& c : sidecarClusters(profile.ip_families)) out.clusters.push_back(std::move(c));
  }
  out.route_configuration = routeConfigurationHead(profile);
  if (profile.vhds) {
    out.virtual_hosts = std::move(virtual_hosts);
  } else {
    for (auto& vh : virtual_hosts) *out.route_configuration.add_virtual_hosts() = std::move(vh);
  }
  if (profile.sidecar) *out.route_configuration.add_virtual_hosts() = allowAnyVirtualHost();
  out.listeners = listenersFor(model, profile);
  return out;
}

namespace {

// A resource's content version: FNV-1a 64 of its deterministic bytes, in hex.
std::string bytesVersion(std::string_view bytes) {
  return absl::StrFormat("%016x", fnv1a64(bytes));
}

}  // namespace

std::string contentVersion(const google::protobuf::Message& message) {
  return bytesVersion(deterministicBytes(message));
}

ResourcesByType generateByType(const Model& model, Profile profile) {
  IncrementalGenerator g(profile);
  g.update(model);
  return g.resources();
}

// The forks of each service at the last update, kept for their capacity.
struct IncrementalGenerator::Forks : ForksByService {};

// What a service's resources were made from, and their names.
struct IncrementalGenerator::Unit {
  Service service;
  // One sandbox's fork of the service, in key order: its endpoints, the
  // cluster made from them and whether that has an assignment (EDS).
  struct Fork {
    std::string key;
    Endpoints endpoints;
    std::string cluster;
    bool eds = false;
  };
  std::vector<Fork> forks;
  std::optional<Release> release;
  // Non-VHDS profiles: the virtual host's deterministic serialization, a
  // field 2 of the RouteConfiguration as it is.
  std::string virtual_host_bytes;
  // The service's own clusters (its baseline, its release's versions) and
  // assignments, sorted: a handful, made again at every change.
  std::vector<std::string> own_clusters, own_load_assignments;

  bool sameInputs(const Service& s, const std::vector<const Sandbox*>& f, const Release* r) const {
    if (!(service == s) || forks.size() != f.size() || release.has_value() != (r != nullptr)) {
      return false;
    }
    if (r != nullptr && !(*release == *r)) return false;
    for (size_t i = 0; i < f.size(); ++i) {
      if (forks[i].key != f[i]->key || forks[i].endpoints != f[i]->forks.at(s.name)) return false;
    }
    return true;
  }
};

IncrementalGenerator::IncrementalGenerator(Profile profile) : profile_(profile) {
  for (const char* type : {config::kClusterTypeUrl, config::kClusterLoadAssignmentTypeUrl,
                           config::kRouteConfigurationTypeUrl}) {
    resources_[type];
  }
  if (profile.vhds) resources_[kVirtualHostTypeUrl];
  if (profile.dialect == Dialect::kGrpc || profile.sidecar) resources_[config::kListenerTypeUrl];
}

IncrementalGenerator::~IncrementalGenerator() = default;
IncrementalGenerator::IncrementalGenerator(IncrementalGenerator&&) noexcept = default;
IncrementalGenerator& IncrementalGenerator::operator=(IncrementalGenerator&&) noexcept = default;

void IncrementalGenerator::put(const std::string& type, const std::string& name,
                               const google::protobuf::Message& message) {
  // One deterministic serialization: its hash is the version, and it is
  // the resource's bytes (what PackFrom would have serialized again).
  putBytes(type, name, message.GetDescriptor()->full_name(), deterministicBytes(message));
}

void IncrementalGenerator::putBytes(const std::string& type, const std::string& name,
                                    std::string_view message_type, std::string bytes) {
  std::string version = bytesVersion(bytes);
  ResourceMap& map = resources_[type];
  auto it = map.find(name);
  if (it != map.end() && it->second.version == version) return;
  VersionedResource& v = map[name];
  v.resource.set_type_url(absl::StrCat("type.googleapis.com/", str(message_type)));
  v.resource.set_value(std::move(bytes));
  v.version = std::move(version);
  changed_[type].insert(name);
  removed_[type].erase(name);
}

void IncrementalGenerator::erase(const std::string& type, const std::string& name) {
  ResourceMap& map = resources_[type];
  auto it = map.find(name);
  if (it == map.end()) return;
  changed_[type].insert(name);
  removed_[type][name] = std::move(it->second);
  map.erase(it);
}

void IncrementalGenerator::forgetChanges() {
  changed_.clear();
  removed_.clear();
}

bool IncrementalGenerator::updateUnit(const std::string& name, const Service& service,
                                      const std::vector<const Sandbox*>& f,
                                      const Release* release) {
  bool routes_changed = false;
  ++last_services_;
  std::unique_ptr<Unit>& unit = units_[name];
  if (unit != nullptr && unit->sameInputs(service, f, release)) return false;
  if (unit == nullptr) unit = std::make_unique<Unit>();
  // A fork's cluster (and assignment) comes from the service's name and
  // protocol and the fork's endpoints only: one the unit made before from
  // the same is still what it would make, and stays as it is, name and
  // all. A new sandbox then costs its own clusters and the virtual host,
  // not every fork's cluster again, nor a name made or sorted per fork
  // (at 10,000 forks those were most of turnout-cp's time for the change).
  const bool same_protocol =
      unit->service.name == service.name && unit->service.isHttp2() == service.isHttp2();
  std::vector<Unit::Fork> old_forks = std::move(unit->forks);
  unit->forks.clear();
  unit->forks.reserve(f.size());
  unit->service = service;
  unit->release = release == nullptr ? std::nullopt : std::optional<Release>(*release);
  ServiceResources r;
  addServiceClusters(r, service, release);
  std::vector<std::string> own_clusters, own_load_assignments;
  for (const auto& c : r.clusters) own_clusters.push_back(c.name());
  for (const auto& cla : r.load_assignments) own_load_assignments.push_back(cla.cluster_name());
  for (auto* names : {&own_clusters, &own_load_assignments}) {
    std::sort(names->begin(), names->end());
    names->erase(std::unique(names->begin(), names->end()), names->end());
  }
  // The names the unit no longer has, erased below unless made again in
  // this update: a name may move between the service's own and a fork's (a
  // release version dropped and a sandbox of that name added in one
  // coalesced update), and then counts as changed only if its bytes did.
  std::vector<std::string> gone_clusters, gone_load_assignments;
  auto has = [](const std::vector<std::string>& sorted, const std::string& n) {
    return std::binary_search(sorted.begin(), sorted.end(), n);
  };
  for (auto& n : unit->own_clusters) {
    if (!has(own_clusters, n)) gone_clusters.push_back(std::move(n));
  }
  for (auto& n : unit->own_load_assignments) {
    if (!has(own_load_assignments, n)) gone_load_assignments.push_back(std::move(n));
  }
  unit->own_clusters = std::move(own_clusters);
  unit->own_load_assignments = std::move(own_load_assignments);
  auto drop = [&](Unit::Fork& fork) {
    if (fork.eds) gone_load_assignments.push_back(fork.cluster);
    gone_clusters.push_back(std::move(fork.cluster));
  };
  // Both lists are in key order (model.sandboxes is a map): one merge.
  auto old = old_forks.begin();
  for (const Sandbox* sb : f) {
    const Endpoints& endpoints = sb->forks.at(name);
    while (old != old_forks.end() && old->key < sb->key) drop(*old++);
    Unit::Fork fork;
    if (old != old_forks.end() && old->key == sb->key) {
      if (same_protocol && old->endpoints == endpoints) {
        unit->forks.push_back(std::move(*old++));
        continue;
      }
      // The same name, made again; an assignment it no longer has goes.
      fork = std::move(*old++);
      fork.endpoints = endpoints;
      const bool eds = allIp(endpoints);
      if (fork.eds && !eds) gone_load_assignments.push_back(fork.cluster);
      fork.eds = eds;
    } else {
      fork.key = sb->key;
      fork.endpoints = endpoints;
      fork.cluster = clusterName(name, sb->key);
      fork.eds = allIp(endpoints);
    }
    addCluster(r, fork.cluster, endpoints, service.isHttp2());
    unit->forks.push_back(std::move(fork));
  }
  while (old != old_forks.end()) drop(*old++);
  if (!gone_clusters.empty() || !gone_load_assignments.empty()) {
    std::vector<std::string_view> made, made_las;
    for (const auto& c : r.clusters) made.push_back(c.name());
    for (const auto& cla : r.load_assignments) made_las.push_back(cla.cluster_name());
    std::sort(made.begin(), made.end());
    std::sort(made_las.begin(), made_las.end());
    for (const auto& n : gone_clusters) {
      if (!std::binary_search(made.begin(), made.end(), n)) erase(config::kClusterTypeUrl, n);
    }
    for (const auto& n : gone_load_assignments) {
      if (!std::binary_search(made_las.begin(), made_las.end(), n)) {
        erase(config::kClusterLoadAssignmentTypeUrl, n);
      }
    }
  }
  for (const auto& c : r.clusters) put(config::kClusterTypeUrl, c.name(), c);
  for (const auto& cla : r.load_assignments) {
    put(config::kClusterLoadAssignmentTypeUrl, cla.cluster_name(), cla);
  }
  std::string vh = virtualHostBytes(service, f, release, profile_);
  if (profile_.vhds) {
    putBytes(kVirtualHostTypeUrl, virtualHostResourceName(name),
             route_v3::VirtualHost::descriptor()->full_name(), std::move(vh));
  } else {
    unit->virtual_host_bytes = std::move(vh);
    routes_changed = true;
  }
  return routes_changed;
}

void IncrementalGenerator::update(const Model& model) {
  changed_.clear();
  removed_.clear();
  for (const auto& [type, map] : resources_) changed_[type];
  bool routes_changed = first_;
  // With the journal of the model this generator saw last, complete since
  // then: only the services it lists are made again. Otherwise (the first
  // update, a model without a journal, a journal restarted or cut short)
  // every service is looked at.
  const ModelJournal& journal = model.journal;
  bool incremental = !first_ && journal.epoch != 0 && journal.epoch == journal_epoch_ &&
                     journal_revision_ <= journal.revision &&
                     journal_revision_ >= journal.complete_since;
  std::set<std::string> dirty;
  if (incremental) {
    auto it = std::upper_bound(journal.services.begin(), journal.services.end(), journal_revision_,
                               [](uint64_t r, const auto& entry) { return r < entry.first; });
    for (; it != journal.services.end(); ++it) dirty.insert(it->second);
  }
  journal_epoch_ = journal.epoch;
  journal_revision_ = journal.revision;
  last_services_ = 0;
  // Services that went away.
  for (auto it = units_.begin(); it != units_.end();) {
    if (model.services.contains(it->first)) {
      ++it;
      continue;
    }
    const Unit& gone = *it->second;
    for (const auto& n : gone.own_clusters) erase(config::kClusterTypeUrl, n);
    for (const auto& n : gone.own_load_assignments) erase(config::kClusterLoadAssignmentTypeUrl, n);
    for (const auto& fork : gone.forks) {
      erase(config::kClusterTypeUrl, fork.cluster);
      if (fork.eds) erase(config::kClusterLoadAssignmentTypeUrl, fork.cluster);
    }
    if (profile_.vhds) erase(kVirtualHostTypeUrl, virtualHostResourceName(it->first));
    routes_changed = true;
    it = units_.erase(it);
  }
  if (incremental) {
    // Only the services a change since the last update listed: their
    // forks from the journal's index, in key order as the full walk gives.
    forks_.reset();  // the full walk's, not needed while changes are listed
    std::vector<const Sandbox*> f;
    for (const std::string& name : dirty) {
      auto service = model.services.find(name);
      if (service == model.services.end()) continue;  // gone: handled above
      f.clear();
      if (auto keys = journal.forks.find(name); keys != journal.forks.end()) {
        // Both in key order: a lookup per fork, or, for a service that most
        // sandboxes fork, one walk along the sandboxes (cheaper than 10,000
        // lookups of log2(10,000) string compares each).
        const bool walk = keys->second.size() > model.sandboxes.size() / 16;
        auto sb = model.sandboxes.begin();
        for (const std::string& key : keys->second) {
          if (walk) {
            while (sb != model.sandboxes.end() && sb->first < key) ++sb;
            if (sb != model.sandboxes.end() && sb->first != key) sb = model.sandboxes.end();
          } else {
            sb = model.sandboxes.find(key);
          }
          if (sb == model.sandboxes.end() || !sb->second.forks.contains(name)) {
            incremental = false;  // an index that disagrees: look at everything
            break;
          }
          f.push_back(&sb->second);
        }
      }
      if (!incremental) break;
      routes_changed |= updateUnit(name, service->second, f, releaseOf(model, name));
    }
  }
  if (!incremental) {
    // Services no sandbox forks any more keep an empty list until they go.
    if (!forks_) forks_ = std::make_unique<Forks>();
    for (auto it = forks_->begin(); it != forks_->end();) {
      if (model.services.contains(it->first)) {
        ++it;
      } else {
        forks_->erase(it++);
      }
    }
    fillForksByService(model, *forks_);
    const ForksByService& forks = *forks_;
    for (const auto& [name, service] : model.services) {
      routes_changed |= updateUnit(name, service, forksOf(forks, name), releaseOf(model, name));
    }
  }
  last_incremental_ = incremental;
  if (first_ && profile_.sidecar) {
    for (const auto& c : sidecarClusters(profile_.ip_families)) {
      put(config::kClusterTypeUrl, c.name(), c);
    }
  }
  if (routes_changed) {
    route_v3::RouteConfiguration rc = routeConfigurationHead(profile_);
    if (profile_.vhds) {
      if (profile_.sidecar) *rc.add_virtual_hosts() = allowAnyVirtualHost();
      put(config::kRouteConfigurationTypeUrl, rc.name(), rc);
    } else {
      // The head is only its name (field 1), and virtual_hosts (field 2)
      // follow it: the RouteConfiguration's deterministic serialization is
      // the head's bytes, then each unit's kept virtual host bytes as a
      // field 2, then the sidecar's allow-any host. A change to one service
      // copied and serialized every service's virtual host again (170 ms
      // per change at 100 services x 10,000 sandboxes, envoy dialect).
      std::string bytes = deterministicBytes(rc);
      size_t size = bytes.size();
      for (const auto& [name, unit] : units_) {
        size += WireWriter::fieldSize(unit->virtual_host_bytes.size());
      }
      std::string allow_any;
      if (profile_.sidecar) {
        allow_any = deterministicBytes(allowAnyVirtualHost());
        size += WireWriter::fieldSize(allow_any.size());
      }
      bytes.reserve(size);
      WireWriter w(bytes);
      for (const auto& [name, unit] : units_) w.field(2, unit->virtual_host_bytes);
      if (profile_.sidecar) w.field(2, allow_any);
      putBytes(config::kRouteConfigurationTypeUrl, rc.name(),
               route_v3::RouteConfiguration::descriptor()->full_name(), std::move(bytes));
    }
  }
  if (resources_.contains(config::kListenerTypeUrl)) {
    std::set<std::string> names;
    for (const auto& l : listenersFor(model, profile_)) {
      names.insert(l.name());
      put(config::kListenerTypeUrl, l.name(), l);
    }
    std::vector<std::string> gone;
    for (const auto& [n, v] : resources_[config::kListenerTypeUrl]) {
      if (!names.contains(n)) gone.push_back(n);
    }
    for (const auto& n : gone) erase(config::kListenerTypeUrl, n);
  }
  first_ = false;
}

}  // namespace turnout::control_plane
