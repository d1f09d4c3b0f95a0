// libFuzzer target: RouteTable::match (sandbox index) must equal matchLinear
// and never crash, for any request against a fixed multi-vhost table; the
// routing-key header comes either as the client sent it (no RoutingKey
// filter) or rewritten by applyRoutingKey from field 2 (the filter's key).
// The same table built as VHDS builds a new version (most routes kept from
// a previous version in another order, the rest compiled) must decide the
// same.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "routing/route_table.h"
#include "routing/routing_key.h"

namespace {

using namespace turnout::routing;  // NOLINT: fuzz target, not a header

HeaderMatcher exact(std::string name, std::string value) {
  HeaderMatcher h;
  h.name = std::move(name);
  h.string_match.emplace();
  h.string_match->exact = std::move(value);
  return h;
}

Route prefixRoute(std::string prefix, std::string cluster) {
  Route r;
  r.match.prefix = std::move(prefix);
  r.route.emplace();
  r.route->cluster = std::move(cluster);
  return r;
}

RouteConfiguration buildConfig() {
  RouteConfiguration c;
  VirtualHost api;
  api.name = "api";
  api.domains = {"api.example.com", "*.api.example.com", "api.*"};
  for (int i = 0; i < 64; ++i) {
    Route r = prefixRoute("/", "sb" + std::to_string(i));
    r.match.headers = {exact("x-turnout-routing-key", "k" + std::to_string(i % 48))};
    api.routes.push_back(r);
  }
  Route tenant = prefixRoute("/t", "tenant-a");
  tenant.match.headers = {exact("x-tenant", "a"), exact("x-turnout-routing-key", "k1")};
  api.routes.push_back(tenant);
  tenant.route->cluster = "tenant-b";
  tenant.match.headers = {exact("x-tenant", "b"), exact("x-turnout-routing-key", "k1")};
  api.routes.push_back(tenant);
  Route rx;
  rx.match.safe_regex = RegexMatcher{"/v[0-9]+/.*"};
  rx.route.emplace();
  rx.route->regex_rewrite = RegexMatchAndSubstitute{RegexMatcher{"/v([0-9]+)/"}, "/version-\\1/"};
  rx.route->weighted_clusters.emplace();
  rx.route->weighted_clusters->clusters = {ClusterWeight{"w1", "", 1, {}, {}, {}, {}, ""},
                                           ClusterWeight{"", "x-cluster", 2, {}, {}, {}, {}, ""}};
  api.routes.push_back(rx);
  Route sep;
  sep.match.path_separated_prefix = "/sep";
  sep.match.case_sensitive = false;
  sep.redirect.emplace();
  sep.redirect->prefix_rewrite = "/moved";
  sep.redirect->https_redirect = true;
  api.routes.push_back(sep);
  Route q = prefixRoute("/q", "query");
  QueryParameterMatcher qm;
  qm.name = "k";
  qm.string_match.emplace();
  qm.string_match->prefix = "v";
  q.match.query_parameters = {qm};
  q.match.runtime_fraction = RuntimeFractionalPercent{
      FractionalPercent{30, FractionalPercent::DenominatorType::HUNDRED}, ""};
  api.routes.push_back(q);
  // CONNECT tunnels per key: a run of connect_matcher routes of their own.
  for (int i = 0; i < 8; ++i) {
    Route t;
    t.match.connect_matcher = true;
    t.match.headers = {exact("x-turnout-routing-key", "k" + std::to_string(i))};
    t.route.emplace();
    t.route->cluster = "tunnel" + std::to_string(i);
    api.routes.push_back(t);
  }
  api.routes.push_back(prefixRoute("/", "baseline"));
  c.virtual_hosts.push_back(api);

  VirtualHost other;
  other.name = "default";
  other.domains = {"*"};
  Route hdr = prefixRoute("/", "");
  hdr.route->cluster.reset();
  hdr.route->cluster_header = "x-cluster";
  HeaderMatcher range;
  range.name = "x-n";
  range.range_match = Int64Range{0, 100};
  hdr.match.headers = {range};
  other.routes.push_back(hdr);
  Route dr;
  dr.match.prefix = "/";
  dr.direct_response = DirectResponseAction{302, std::nullopt};
  other.routes.push_back(dr);
  c.virtual_hosts.push_back(other);
  c.ignore_port_in_host_matching = true;
  return c;
}

RouteTableConstSharedPtr buildTable() {
  auto t = RouteTable::create(buildConfig());
  if (!t.ok()) std::abort();
  return *t;
}

// buildTable()'s table, its first virtual host a new version of one that
// had its routes in reverse order after an extra one: every third route is
// compiled, the others are kept from there.
RouteTableConstSharedPtr buildReusedTable() {
  RouteConfiguration c = buildConfig();
  const VirtualHost api = c.virtual_hosts[0];
  VirtualHost previous = api;
  std::reverse(previous.routes.begin(), previous.routes.end());
  previous.routes.insert(previous.routes.begin(), prefixRoute("/old", "old"));
  auto p = RouteTable::compileVirtualHost(previous, "previous");
  if (!p.ok()) std::abort();
  const size_t n = api.routes.size();
  VirtualHost fresh = api;
  fresh.routes.clear();
  std::vector<int32_t> reuse(n);
  for (size_t i = 0; i < n; ++i) {
    if (i % 3 == 0) {
      reuse[i] = -1;
      fresh.routes.push_back(api.routes[i]);
    } else {
      reuse[i] = static_cast<int32_t>(n - i);  // its place in `previous`
    }
  }
  auto v = RouteTable::compileVirtualHost(fresh, "api", **p, reuse);
  auto other = RouteTable::compileVirtualHost(c.virtual_hosts[1], "default");
  if (!v.ok() || !other.ok()) std::abort();
  c.virtual_hosts.clear();
  auto t = RouteTable::create(std::move(c), {*v, *other});
  if (!t.ok()) std::abort();
  return *t;
}

// Splits the input into NUL-separated fields.
std::vector<std::string> fields(const uint8_t* data, size_t size) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      out.emplace_back();
    } else {
      out.back().push_back(static_cast<char>(data[i]));
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const RouteTableConstSharedPtr table = buildTable();
  static const RouteTableConstSharedPtr reused = buildReusedTable();
  if (size < 8) return 0;
  uint64_t random = 0;
  for (int i = 0; i < 8; ++i) random = (random << 8) | data[i];
  std::vector<std::string> f = fields(data + 8, size - 8);
  f.resize(std::max<size_t>(f.size(), 3));
  const std::string& authority = f[0];
  const std::string& path = f[1];
  const std::string& key = f[2];
  static const char* kNames[] = {"x-turnout-routing-key", "x-tenant", "x-cluster", "x-n",
                                 "content-type"};
  std::vector<HeaderEntry> headers;
  for (size_t i = 3; i < f.size(); ++i) {
    if (f[i].empty()) continue;
    headers.push_back(
        HeaderEntry{kNames[static_cast<uint8_t>(f[i][0]) % 5], std::string_view(f[i]).substr(1)});
  }
  if (random & 8) {
    // As the RoutingKey filter leaves the request: an empty key is "none found".
    static const KeySource kSource{KeySourceKind::kHeader, "x-turnout-routing-key"};
    KeyExtraction k;
    if (!key.empty()) {
      k.source = &kSource;
      k.key = key;
    }
    applyRoutingKey(headers, "x-turnout-routing-key", k);
  }
  const bool has_authority = (random & 1) == 0;
  const bool has_path = (random & 2) == 0;
  const RequestView view((random & 16) ? "CONNECT" : "GET",
                         has_authority ? std::string_view(authority) : std::string_view(),
                         has_path ? std::string_view(path) : std::string_view(), headers,
                         (random & 4) ? "https" : "http");
  const RouteDecision a = table->match(view, random);
  const RouteDecision b = table->matchLinear(view, random);
  // The former signature ignores its key argument.
  const RouteDecision c = table->match(view, key, random);
  if (a.kind != b.kind || a.route != b.route || a.cluster != b.cluster ||
      a.rewritten_path != b.rewritten_path || c.route != a.route || c.cluster != a.cluster) {
    std::abort();
  }
  const RouteDecision d = reused->match(view, random);
  if (d.kind != a.kind || d.route_index != a.route_index ||
      d.virtual_host_index != a.virtual_host_index || d.cluster != a.cluster ||
      d.rewritten_path != a.rewritten_path || d.status != a.status ||
      (a.route != nullptr && !(*d.route == *a.route))) {
    std::abort();
  }
  // connect_matcher routes take nothing but a CONNECT, and a CONNECT without
  // a path nothing else (one with a path may match path routes, as in
  // Envoy). By the route's match, not its cluster: x-cluster names any.
  const bool tunnel = a.route != nullptr && a.route->match.connect_matcher;
  const bool connect = (random & 16) != 0;
  const bool pathless = view.path().empty();
  if ((tunnel && !connect) || (connect && pathless && a.route != nullptr && !tunnel)) {
    std::abort();
  }
  // With the filter applied the routing-key header holds exactly the key.
  if ((random & 8) && !key.empty()) {
    std::string scratch;
    std::string_view joined;
    if (!view.joined("x-turnout-routing-key", scratch, joined) || joined != key) std::abort();
  }
  (void)redirectLocation(view, a);
  (void)table->requestHeaderMutations(a);
  return 0;
}
