// RouteTable::create() rejects what Envoy rejects, naming the field path.

#include <catch2/catch.hpp>

#include "tests/unit/routing/route_test_support.h"

namespace turnout::routing::test {
namespace {

struct Reject {
  std::string name;
  std::function<void(RouteConfiguration&)> mutate;
  std::string error;  // expected substring
};

Route& route0(RouteConfiguration& c) { return c.virtual_hosts[0].routes[0]; }

TEST_CASE("invalid route configurations are rejected with their field path", "[routing]") {
  auto c = GENERATE_COPY(values<Reject>({
      {"duplicate domain across virtual hosts",
       [](auto& c) { c.virtual_hosts.push_back(vhost("b", {"A.com"}, {prefixRoute("/", "x")})); },
       "virtual_hosts[1].domains[0]: duplicate domain \"a.com\""},
      {"duplicate suffix wildcard",
       [](auto& c) {
         c.virtual_hosts[0].domains.push_back("*.w.com");
         c.virtual_hosts.push_back(vhost("b", {"*.W.com"}, {}));
       },
       "virtual_hosts[1].domains[0]: duplicate domain \"*.w.com\""},
      {"second default virtual host",
       [](auto& c) {
         c.virtual_hosts[0].domains.push_back("*");
         c.virtual_hosts.push_back(vhost("b", {"*"}, {}));
       },
       "virtual_hosts[1].domains[0]: only one virtual host may use the \"*\" domain"},
      {"virtual host without domains", [](auto& c) { c.virtual_hosts[0].domains.clear(); },
       "virtual_hosts[0].domains: must have at least one domain"},
      {"virtual host without name", [](auto& c) { c.virtual_hosts[0].name.clear(); },
       "virtual_hosts[0].name: must be non-empty"},
      {"no path specifier", [](auto& c) { route0(c).match.prefix.reset(); },
       "virtual_hosts[0].routes[0].match: exactly one of prefix, path, safe_regex, "
       "path_separated_prefix, connect_matcher must be set"},
      {"two path specifiers", [](auto& c) { route0(c).match.path = "/x"; },
       "virtual_hosts[0].routes[0].match: exactly one of"},
      {"invalid path regex",
       [](auto& c) {
         route0(c).match.prefix.reset();
         route0(c).match.safe_regex = RegexMatcher{"(unclosed"};
       },
       "virtual_hosts[0].routes[0].match.safe_regex: invalid regex \"(unclosed\""},
      {"regex program too large",
       [](auto& c) {
         route0(c).match.prefix.reset();
         route0(c).match.safe_regex = RegexMatcher{"(a{1,30}b{1,30}){1,5}"};
       },
       "RE2 program size of"},
      {"path_separated_prefix ending in '/'",
       [](auto& c) {
         route0(c).match.prefix.reset();
         route0(c).match.path_separated_prefix = "/api/";
       },
       "virtual_hosts[0].routes[0].match.path_separated_prefix: \"/api/\" must"},
      {"path_separated_prefix with '?'",
       [](auto& c) {
         route0(c).match.prefix.reset();
         route0(c).match.path_separated_prefix = "/a?b";
       },
       "match.path_separated_prefix"},
      {"path_separated_prefix with '#'",
       [](auto& c) {
         route0(c).match.prefix.reset();
         route0(c).match.path_separated_prefix = "/a#b";
       },
       "match.path_separated_prefix"},
      {"empty string_match prefix",
       [](auto& c) {
         HeaderMatcher h;
         h.name = "x";
         h.string_match.emplace();
         h.string_match->prefix = "";
         route0(c).match.headers = {h};
       },
       "virtual_hosts[0].routes[0].match.headers[0].string_match.prefix: must be non-empty"},
      {"empty string_match suffix",
       [](auto& c) {
         HeaderMatcher h;
         h.name = "x";
         h.string_match.emplace();
         h.string_match->suffix = "";
         route0(c).match.headers = {h};
       },
       "string_match.suffix: must be non-empty"},
      {"empty string_match contains",
       [](auto& c) {
         QueryParameterMatcher q;
         q.name = "k";
         q.string_match.emplace();
         q.string_match->contains = "";
         route0(c).match.query_parameters = {q};
       },
       "virtual_hosts[0].routes[0].match.query_parameters[0].string_match.contains: must be "
       "non-empty"},
      {"empty deprecated prefix_match",
       [](auto& c) {
         HeaderMatcher h;
         h.name = "x";
         h.prefix_match = "";
         route0(c).match.headers = {h};
       },
       "headers[0].prefix_match: must be non-empty"},
      {"string matcher with no pattern",
       [](auto& c) {
         HeaderMatcher h;
         h.name = "x";
         h.string_match.emplace();
         route0(c).match.headers = {h};
       },
       "headers[0].string_match: exactly one of exact, prefix, suffix, safe_regex, contains"},
      {"ignore_case with safe_regex",
       [](auto& c) {
         HeaderMatcher h;
         h.name = "x";
         h.string_match.emplace();
         h.string_match->safe_regex = RegexMatcher{"a"};
         h.string_match->ignore_case = true;
         route0(c).match.headers = {h};
       },
       "ignore_case has no effect for safe_regex."},
      {"two header specifiers",
       [](auto& c) {
         HeaderMatcher h;
         h.name = "x";
         h.exact_match = "a";
         h.present_match = true;
         route0(c).match.headers = {h};
       },
       "headers[0]: at most one of"},
      {"header matcher without name", [](auto& c) { route0(c).match.headers = {HeaderMatcher{}}; },
       "headers[0].name: must be non-empty"},
      {"invalid header regex",
       [](auto& c) {
         HeaderMatcher h;
         h.name = "x";
         h.safe_regex_match = RegexMatcher{"[z-a]"};
         route0(c).match.headers = {h};
       },
       "headers[0].safe_regex_match: invalid regex"},
      {"query parameter name too long",
       [](auto& c) {
         QueryParameterMatcher q;
         q.name = std::string(1025, 'k');
         route0(c).match.query_parameters = {q};
       },
       "query_parameters[0].name: must be 1 to 1024 bytes long"},
      {"no action", [](auto& c) { route0(c).route.reset(); },
       "virtual_hosts[0].routes[0]: exactly one of route, redirect, direct_response"},
      {"no cluster specifier", [](auto& c) { route0(c).route->cluster.reset(); },
       "virtual_hosts[0].routes[0].route: exactly one of cluster, cluster_header, "
       "weighted_clusters"},
      {"weighted cluster sum 0",
       [](auto& c) {
         route0(c).route->cluster.reset();
         route0(c).route->weighted_clusters.emplace();
         route0(c).route->weighted_clusters->clusters = {
             ClusterWeight{"a", "", 0, {}, {}, {}, {}, ""}};
       },
       "virtual_hosts[0].routes[0].route.weighted_clusters: Sum of weights in the "
       "weighted_cluster must be greater than 0."},
      {"weighted cluster sum over 2^32-1",
       [](auto& c) {
         route0(c).route->cluster.reset();
         route0(c).route->weighted_clusters.emplace();
         ClusterWeight a{"a", "", 4294967295u, {}, {}, {}, {}, ""};
         ClusterWeight b{"b", "", 1, {}, {}, {}, {}, ""};
         route0(c).route->weighted_clusters->clusters = {a, b};
       },
       "route.weighted_clusters: the sum of weights exceeds 4294967295"},
      {"weighted cluster with name and cluster_header",
       [](auto& c) {
         route0(c).route->cluster.reset();
         route0(c).route->weighted_clusters.emplace();
         route0(c).route->weighted_clusters->clusters = {
             ClusterWeight{"a", "x-c", 1, {}, {}, {}, {}, ""}};
       },
       "weighted_clusters.clusters[0]: Only one of name or cluster_header can be specified"},
      {"weighted cluster without weight",
       [](auto& c) {
         route0(c).route->cluster.reset();
         route0(c).route->weighted_clusters.emplace();
         route0(c).route->weighted_clusters->clusters = {
             ClusterWeight{"a", "", std::nullopt, {}, {}, {}, {}, ""}};
       },
       "weighted_clusters.clusters[0].weight: is required"},
      {"prefix_rewrite with regex_rewrite",
       [](auto& c) {
         route0(c).route->prefix_rewrite = "/x";
         route0(c).route->regex_rewrite = RegexMatchAndSubstitute{RegexMatcher{"a"}, "b"};
       },
       "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy"},
      {"two host rewrites",
       [](auto& c) {
         route0(c).route->host_rewrite_literal = "a";
         route0(c).route->auto_host_rewrite = true;
       },
       "route: at most one of host_rewrite_literal, auto_host_rewrite, host_rewrite_header"},
      {"direct_response status below 200",
       [](auto& c) {
         route0(c).route.reset();
         route0(c).direct_response = DirectResponseAction{199, std::nullopt};
       },
       "virtual_hosts[0].routes[0].direct_response.status: must be in [200, 600)"},
      {"direct_response status 600",
       [](auto& c) {
         route0(c).route.reset();
         route0(c).direct_response = DirectResponseAction{600, std::nullopt};
       },
       "direct_response.status: must be in [200, 600)"},
      {"direct_response body over 4096 bytes",
       [](auto& c) {
         route0(c).route.reset();
         route0(c).direct_response =
             DirectResponseAction{200, DataSource{std::nullopt, std::string(4097, 'x')}};
       },
       "direct_response.body: response body size is 4097 bytes; maximum is 4096"},
      {"direct_response body over a configured maximum",
       [](auto& c) {
         c.max_direct_response_body_size_bytes = 3;
         route0(c).route.reset();
         route0(c).direct_response = DirectResponseAction{200, DataSource{"abcd", std::nullopt}};
       },
       "maximum is 3"},
      {"redirect with two path rewrites",
       [](auto& c) {
         route0(c).route.reset();
         route0(c).redirect.emplace();
         route0(c).redirect->path_redirect = "/a";
         route0(c).redirect->prefix_rewrite = "/b";
       },
       "redirect: at most one of path_redirect, prefix_rewrite, regex_rewrite"},
      {"redirect with https_redirect and scheme_redirect",
       [](auto& c) {
         route0(c).route.reset();
         route0(c).redirect.emplace();
         route0(c).redirect->https_redirect = true;
         route0(c).redirect->scheme_redirect = "https";
       },
       "redirect: at most one of https_redirect, scheme_redirect"},
      {"adding a pseudo-header",
       [](auto& c) {
         route0(c).request_headers_to_add = {HeaderValueOption{{":path", "/x"}, {}, {}, false}};
       },
       "virtual_hosts[0].routes[0].request_headers_to_add[0].header.key: :-prefixed or host "
       "headers may not be modified"},
      {"adding Host",
       [](auto& c) {
         c.virtual_hosts[0].response_headers_to_add = {
             HeaderValueOption{{"Host", "x"}, {}, {}, false}};
       },
       "virtual_hosts[0].response_headers_to_add[0].header.key: :-prefixed or host headers"},
      {"removing host", [](auto& c) { c.request_headers_to_remove = {"host"}; },
       "request_headers_to_remove[0]: :-prefixed or host headers may not be removed"},
      {"append together with append_action",
       [](auto& c) {
         HeaderValueOption o{
             {"x", "y"}, true, HeaderValueOption::HeaderAppendAction::ADD_IF_ABSENT, false};
         route0(c).response_headers_to_add = {o};
       },
       "response_headers_to_add[0]: Both append and append_action are set"},
      {"unterminated % operator",
       [](auto& c) {
         route0(c).request_headers_to_add = {HeaderValueOption{{"x", "a%REQ(b)"}, {}, {}, false}};
       },
       "request_headers_to_add[0].header.value: Invalid header configuration. Un-terminated"},
      {"mirror policy with both cluster and cluster_header",
       [](auto& c) {
         route0(c).route->request_mirror_policies = {
             RequestMirrorPolicy{"a", "x-b", std::nullopt, std::nullopt, false}};
       },
       "route.request_mirror_policies[0]: Only one of cluster 'a' or cluster_header 'x-b'"},
      {"mirror policy with neither",
       [](auto& c) { c.request_mirror_policies = {RequestMirrorPolicy{}}; },
       "request_mirror_policies[0]: Exactly one of cluster or cluster_header"},
      {"retry max_interval below base_interval",
       [](auto& c) {
         RetryPolicy p;
         p.retry_back_off = RetryPolicy::RetryBackOff{std::chrono::milliseconds(100),
                                                      std::chrono::milliseconds(10)};
         c.virtual_hosts[0].retry_policy = p;
       },
       "virtual_hosts[0].retry_policy: retry_policy.max_interval must greater than or equal to "
       "the base_interval"},
      {"hash policy without specifier",
       [](auto& c) { route0(c).route->hash_policy = {HashPolicy{}}; },
       "route.hash_policy[0]: exactly one of header, cookie"},
  }));
  RouteConfiguration config;
  config.virtual_hosts = {vhost("a", {"a.com"}, {prefixRoute("/", "c")})};
  c.mutate(config);
  CAPTURE(c.name);
  const std::string err = createError(config);
  CAPTURE(err);
  CHECK(err.find(c.error) != std::string::npos);
}

TEST_CASE("a valid configuration is accepted", "[routing]") {
  RouteConfiguration c;
  c.virtual_hosts = {vhost("a", {"a.com", "*.a.com", "a.*", "*"}, {prefixRoute("/", "c")})};
  CHECK(createError(c) == "<ok>");
}

}  // namespace
}  // namespace turnout::routing::test
