// Header mutation levels and their application (Envoy's HeaderParser).

#include <map>

#include <catch2/catch.hpp>

#include "tests/unit/routing/route_test_support.h"

namespace turnout::routing::test {
namespace {

// A multimap-backed HeaderMutationTarget.
class FakeHeaders : public HeaderMutationTarget {
 public:
  bool has(std::string_view n) const override { return map_.count(std::string(n)) > 0; }
  void add(std::string_view n, std::string_view v) override {
    map_.emplace(std::string(n), std::string(v));
  }
  void set(std::string_view n, std::string_view v) override {
    remove(n);
    add(n, v);
  }
  void remove(std::string_view n) override { map_.erase(std::string(n)); }
  std::string get(const std::string& n) const {
    std::string out;
    auto [b, e] = map_.equal_range(n);
    for (auto it = b; it != e; ++it) out += (out.empty() ? "" : ",") + it->second;
    return out;
  }

 private:
  std::multimap<std::string, std::string> map_;
};

HeaderValueOption opt(std::string k, std::string v,
                      HeaderValueOption::HeaderAppendAction a =
                          HeaderValueOption::HeaderAppendAction::APPEND_IF_EXISTS_OR_ADD,
                      bool keep_empty = false) {
  return HeaderValueOption{{std::move(k), std::move(v)}, std::nullopt, a, keep_empty};
}

TEST_CASE("append actions follow Envoy's HeaderParser", "[routing]") {
  using A = HeaderValueOption::HeaderAppendAction;
  auto [action, existing, want] = GENERATE(table<A, std::string, std::string>({
      {A::APPEND_IF_EXISTS_OR_ADD, "old", "old,new"},
      {A::APPEND_IF_EXISTS_OR_ADD, "", "new"},
      {A::ADD_IF_ABSENT, "old", "old"},
      {A::ADD_IF_ABSENT, "", "new"},
      {A::OVERWRITE_IF_EXISTS_OR_ADD, "old", "new"},
      {A::OVERWRITE_IF_EXISTS_OR_ADD, "", "new"},
      {A::OVERWRITE_IF_EXISTS, "old", "new"},
      {A::OVERWRITE_IF_EXISTS, "", ""},
  }));
  CompactVector<HeaderValueOption> add{opt("x-h", "new", action)};
  CompactVector<std::string> remove;
  FakeHeaders h;
  if (!existing.empty()) h.add("x-h", existing);
  applyHeaderMutations({HeaderMutationLevel{&add, &remove}}, h);
  CHECK(h.get("x-h") == want);
}

TEST_CASE("removals run before additions and empty values need keep_empty_value", "[routing]") {
  CompactVector<HeaderValueOption> add{
      opt("a", "1"), opt("empty", ""),
      opt("kept", "", HeaderValueOption::HeaderAppendAction::APPEND_IF_EXISTS_OR_ADD, true)};
  CompactVector<std::string> remove{"a", "gone"};
  FakeHeaders h;
  h.add("a", "0");
  h.add("gone", "x");
  applyHeaderMutations({HeaderMutationLevel{&add, &remove}}, h);
  CHECK(h.get("a") == "1");
  CHECK_FALSE(h.has("gone"));
  CHECK_FALSE(h.has("empty"));
  CHECK(h.has("kept"));
}

TEST_CASE("%% is a literal percent and operators go to the hook", "[routing]") {
  auto [value, want] = GENERATE(table<std::string, std::string>({
      {"100%%", "100%"},
      {"a%HOSTNAME%b", "a<HOSTNAME>b"},
      {"%REQ(x-a)%-%%", "<REQ(x-a)>-%"},
      {"plain", "plain"},
  }));
  CHECK(formatHeaderValue(value, [](std::string_view cmd, std::string& out) {
          out.append("<").append(cmd).append(">");
        }) == want);
}

TEST_CASE("operators expand to nothing without a hook", "[routing]") {
  CHECK(formatHeaderValue("a%X%b", {}) == "ab");
}

RouteConfiguration levelsConfig(bool most_specific_wins) {
  Route r;
  r.match.prefix = "/";
  r.route.emplace();
  r.route->weighted_clusters.emplace();
  ClusterWeight cw;
  cw.name = "c";
  cw.weight = 1;
  cw.request_headers_to_add = {
      opt("x-level", "wc", HeaderValueOption::HeaderAppendAction::OVERWRITE_IF_EXISTS_OR_ADD)};
  cw.response_headers_to_add = {opt("x-resp", "wc")};
  r.route->weighted_clusters->clusters = {cw};
  r.request_headers_to_add = {
      opt("X-Level", "route", HeaderValueOption::HeaderAppendAction::OVERWRITE_IF_EXISTS_OR_ADD)};
  RouteConfiguration c = singleVhost({r});
  c.virtual_hosts[0].request_headers_to_add = {
      opt("x-level", "vhost", HeaderValueOption::HeaderAppendAction::OVERWRITE_IF_EXISTS_OR_ADD)};
  c.request_headers_to_add = {
      opt("x-level", "config", HeaderValueOption::HeaderAppendAction::OVERWRITE_IF_EXISTS_OR_ADD)};
  c.most_specific_header_mutations_wins = most_specific_wins;
  return c;
}

TEST_CASE("less specific levels win unless most_specific_header_mutations_wins", "[routing]") {
  auto [flag, want] = GENERATE(table<bool, std::string>({{false, "config"}, {true, "route"}}));
  auto t = mustCreate(levelsConfig(flag));
  TestRequest req;
  const RequestView v = req.view();
  const RouteDecision d = t->match(v, 0);
  const HeaderMutationLevels levels = t->requestHeaderMutations(d);
  REQUIRE(levels.size() == 4);
  // Envoy evaluates the weighted cluster's level first either way.
  CHECK((*levels[0].to_add)[0].header.value == "wc");
  FakeHeaders h;
  applyHeaderMutations(levels, h);
  CHECK(h.get("x-level") == want);
  CHECK(t->responseHeaderMutations(d).size() == 1);
}

TEST_CASE("header keys are lowercased and the deprecated append maps to an action", "[routing]") {
  Route r = prefixRoute("/", "c");
  HeaderValueOption o{{"X-Over", "v"}, false, {}, false};
  r.request_headers_to_add = {o};
  auto t = mustCreate(singleVhost({r}));
  TestRequest req;
  const RequestView v = req.view();
  FakeHeaders h;
  h.add("x-over", "old");
  h.add("x-over", "older");
  applyHeaderMutations(t->requestHeaderMutations(t->match(v, 0)), h);
  CHECK(h.get("x-over") == "v");
}

TEST_CASE("a decision without a route has no header mutations", "[routing]") {
  auto t = mustCreate(levelsConfig(false));
  TestRequest req;
  req.has_path = false;
  const RequestView v = req.view();
  CHECK(t->requestHeaderMutations(t->match(v, 0)).empty());
}

}  // namespace
}  // namespace turnout::routing::test
