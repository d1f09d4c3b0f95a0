#include "routing/path_normalizer.h"

#include <catch2/catch.hpp>
#include <string>

namespace turnout::routing {
namespace {

TEST_CASE("normalize_path follows RFC 3986 and rejects what it cannot normalise",
          "[routing][path]") {
  auto [in, out] = GENERATE(table<std::string, std::string>({
      {"/", "/"},
      {"/a/b", "/a/b"},
      {"/a/./b", "/a/b"},
      {"/a/../b", "/b"},
      {"/a/b/..", "/a/"},
      {"/a/b/.", "/a/b/"},
      {"/a/%7Euser", "/a/~user"},
      {"/a/%2fb", "/a/%2Fb"},
      {"/a/%41%62", "/a/Ab"},
      {"/a/b?x=/../y", "/a/b?x=/../y"},
      {"/a/./b#frag/..", "/a/b#frag/.."},
      {"/a//b", "/a//b"},
      {"/..", "<reject>"},
      {"/a/../..", "<reject>"},
      {"/a%zz", "<reject>"},
      {"/a%4", "<reject>"},
      {"*", "<reject>"},
  }));
  auto r = normalizePath(in, true, false);
  if (out == "<reject>") {
    CHECK_FALSE(r.has_value());
  } else {
    REQUIRE(r.has_value());
    CHECK(*r == out);
  }
}

TEST_CASE("merge_slashes collapses runs of slashes in the path only", "[routing][path]") {
  auto [in, out] = GENERATE(table<std::string, std::string>({
      {"//a///b/", "/a/b/"},
      {"/a/b?x=//y", "/a/b?x=//y"},
      {"/", "/"},
  }));
  auto r = normalizePath(in, false, true);
  REQUIRE(r.has_value());
  CHECK(*r == out);
}

TEST_CASE("with both options dot segments go first, then slashes merge", "[routing][path]") {
  auto r = normalizePath("/a//./b/../c", true, true);
  REQUIRE(r.has_value());
  CHECK(*r == "/a/c");
}

TEST_CASE("with neither option the path is untouched", "[routing][path]") {
  CHECK(*normalizePath("/a/../b//c", false, false) == "/a/../b//c");
}

}  // namespace
}  // namespace turnout::routing
