#include "bench/turnout_bench/bench_options.h"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace turnout::bench {
namespace {

absl::StatusOr<BenchOptions> parse(std::vector<std::string_view> args) {
  return parseBenchOptions(args);
}

TEST_CASE("bench options default to a 10 s closed loop on the URL's path", "[bench][options]") {
  auto o = parse({"http://127.0.0.1:8080/x?y=1"});
  REQUIRE(o.ok());
  CHECK(o->threads == 1);
  CHECK(o->connections == 10);
  REQUIRE(o->duration_s);
  CHECK(*o->duration_s == 10);
  CHECK_FALSE(o->requests);
  CHECK(o->mode() == LoadMode::kClosedLoop);
  CHECK(o->paths == std::vector<std::string>{"/x?y=1"});
  CHECK(o->target.authority == "127.0.0.1:8080");
  CHECK(o->method == "GET");
  CHECK(o->key_header == "baggage");
  CHECK(o->key_mix.shares().size() == 1);
  CHECK(o->warmup_s == 0);
  CHECK(o->timeout_s == 10);
}

TEST_CASE("bench options take every flag in short, long and = forms", "[bench][options]") {
  auto o = parse({"-t2", "-c", "8", "--duration=3s", "-R", "500.5", "--warmup", "250ms",
                  "--timeout", "2", "--method", "POST", "--path", "/a,/b", "--path=/c", "-H",
                  "X-A: b ", "--header", "Baggage: userId=7", "--body-size", "1k", "--key-mix",
                  "baseline=1,k=1", "--key-header", "X-Turnout-Routing-Key", "--json", "-",
                  "--label", "L", "-n", "2M", "http://h:81/p"});
  REQUIRE(o.ok());
  CHECK(o->threads == 2);
  CHECK(o->connections == 8);
  CHECK(*o->duration_s == 3);
  CHECK(*o->rate == 500.5);
  CHECK(o->mode() == LoadMode::kOpenLoop);
  CHECK(o->warmup_s == Approx(0.25));
  CHECK(o->timeout_s == 2);
  CHECK(o->method == "POST");
  CHECK(o->paths == std::vector<std::string>{"/a", "/b", "/c"});
  REQUIRE(o->headers.size() == 2);
  CHECK(o->headers[0] == std::pair<std::string, std::string>{"x-a", "b"});
  CHECK(o->headers[1] == std::pair<std::string, std::string>{"baggage", "userId=7"});
  CHECK(o->body_size == 1000);
  CHECK(o->key_mix.shares().size() == 2);
  CHECK(o->key_header == "x-turnout-routing-key");
  CHECK(o->json_path == "-");
  CHECK(o->label == "L");
  CHECK(*o->requests == 2000000);
}

TEST_CASE("bench options: --h2 with several streams per connection", "[bench][options]") {
  auto o = parse({"--h2", "-m", "16", "http://h/"});
  REQUIRE(o.ok());
  CHECK(o->h2);
  CHECK(o->streams == 16);
  auto h1 = parse({"http://h/"});
  REQUIRE(h1.ok());
  CHECK_FALSE(h1->h2);
  CHECK(h1->streams == 1);
}

TEST_CASE("bench options: -n alone has no duration (the run caps it)", "[bench][options]") {
  auto o = parse({"-n", "500", "http://h/"});
  REQUIRE(o.ok());
  CHECK_FALSE(o->duration_s);
  CHECK(*o->requests == 500);
}

TEST_CASE("bench options: -h/--help stops parsing and asks for the usage", "[bench][options]") {
  auto help = parse({"-t", "2", "--help", "--bogus"});
  REQUIRE(help.ok());
  CHECK(help->help);
  auto short_help = parse({"-h"});
  REQUIRE(short_help.ok());
  CHECK(short_help->help);
  for (std::string_view flag : {"--threads", "--connections", "--duration", "--requests",
                                "--rate", "--warmup", "--timeout", "--method", "--path",
                                "--header", "--body-size", "--key-mix", "--key-header", "--json",
                                "--label", "--h2", "--streams", "coordinated omission"}) {
    CAPTURE(flag);
    CHECK(benchUsage().find(flag) != std::string_view::npos);
  }
}

TEST_CASE("bench options errors name the flag", "[bench][options]") {
  struct Case {
    std::vector<std::string_view> args;
    const char* error;
  };
  const Case c = GENERATE(
      Case{{"-t", "0", "http://h/"}, "-t/--threads: expected a whole number from 1 to 1024, got '0'"},
      Case{{"--threads", "x", "http://h/"}, "-t/--threads: expected a whole number"},
      Case{{"http://h/", "--threads"}, "--threads: needs a value"},
      Case{{"-c", "2", "-t", "4", "http://h/"},
           "-c/--connections: 2 is fewer than -t/--threads (4)"},
      Case{{"-c", "100001", "http://h/"}, "-c/--connections: expected a whole number from 1 to 100000"},
      Case{{"-d", "abc", "http://h/"}, "-d/--duration: expected a duration such as 10, 10s"},
      Case{{"-d", "0", "http://h/"}, "-d/--duration: must be more than 0"},
      Case{{"-n", "0", "http://h/"}, "-n/--requests: expected a whole number from 1"},
      Case{{"-R", "0", "http://h/"}, "-R/--rate: expected a positive number, got '0'"},
      Case{{"-R", "fast", "http://h/"}, "-R/--rate: expected a positive number, got 'fast'"},
      Case{{"--warmup", "-1", "http://h/"}, "--warmup: expected a duration"},
      Case{{"--timeout", "0s", "http://h/"}, "--timeout: must be more than 0"},
      Case{{"-H", "nocolon", "http://h/"}, "-H/--header: 'nocolon' is not 'name: value'"},
      Case{{"-H", "bad name: v", "http://h/"}, "-H/--header: 'bad name' is not a valid header name"},
      Case{{"-H", "content-length: 5", "http://h/"}, "'content-length' is set by --body-size"},
      Case{{"--body-size", "2G", "http://h/"}, "--body-size: expected a whole number from 0"},
      Case{{"--key-mix", "a=x", "http://h/"}, "--key-mix: weight of 'a'"},
      Case{{"--key-mix", "baseline=0", "http://h/"}, "--key-mix: every weight is 0"},
      Case{{"--key-header", "a b", "http://h/"}, "--key-header: 'a b' is not a header name"},
      Case{{"--key-header", "Host", "http://h/"}, "--key-header: cannot be host"},
      Case{{"--path", "nope", "http://h/"}, "--path: 'nope' must start with '/'"},
      Case{{"--method", "GE T", "http://h/"}, "--method: 'GE T' is not a method token"},
      Case{{"-m", "4", "http://h/"}, "-m/--streams: needs --h2"},
      Case{{"--h2", "--streams", "0", "http://h/"}, "-m/--streams: expected a whole number from 1 to 1000"},
      Case{{"--bogus", "http://h/"}, "unknown flag '--bogus' (see --help)"},
      Case{{"-x", "http://h/"}, "unknown flag '-x'"},
      Case{{}, "no target URL"},
      Case{{"http://a/", "http://b/"}, "one URL only: got 'http://a/' and 'http://b/'"},
      Case{{"ftp://h/"}, "URL 'ftp://h/': the scheme must be http or https"},
      Case{{"h:80/"}, "URL 'h:80/': expected http[s]://host[:port][/path]"});
  std::string joined;
  for (auto a : c.args) joined += std::string(a) + " ";
  CAPTURE(joined);
  auto o = parse(c.args);
  REQUIRE_FALSE(o.ok());
  CHECK_THAT(std::string(o.status().message()), Catch::Contains(c.error));
}

TEST_CASE("target URLs: host, port, authority and path", "[bench][options]") {
  struct Case {
    const char* url;
    const char* host;
    uint16_t port;
    const char* authority;
    const char* path;
  };
  const Case c = GENERATE(Case{"http://h", "h", 80, "h", "/"},
                          Case{"HTTP://h:80/", "h", 80, "h", "/"},
                          Case{"http://h:8080/a/b?c=d", "h", 8080, "h:8080", "/a/b?c=d"},
                          Case{"http://h:81?q", "h", 81, "h:81", "/?q"},
                          Case{"http://[::1]:9/x", "::1", 9, "[::1]:9", "/x"},
                          Case{"http://[::1]/", "::1", 80, "[::1]", "/"},
                          Case{"https://h/x", "h", 443, "h", "/x"},
                          Case{"https://h:443", "h", 443, "h", "/"},
                          Case{"https://h:8443/", "h", 8443, "h:8443", "/"},
                          Case{"https://h:80/", "h", 80, "h:80", "/"});
  CAPTURE(c.url);
  auto t = parseTarget(c.url);
  REQUIRE(t.ok());
  CHECK(t->host == c.host);
  CHECK(t->port == c.port);
  CHECK(t->authority == c.authority);
  CHECK(t->path == c.path);
}

TEST_CASE("target URLs that cannot be used are refused", "[bench][options]") {
  const char* url = GENERATE("ftp://h/", "http:///x", "http://:80/", "http://h:0/",
                             "http://h:65536/", "http://h:x/", "http://h:/", "http://u@h/",
                             "http://[::1/", "http://[::1]x/", "http://h/a b");
  CAPTURE(url);
  CHECK_FALSE(parseTarget(url).ok());
}

TEST_CASE("durations take s, ms, us, m and h", "[bench][options]") {
  CHECK(*parseSeconds("10") == 10);
  CHECK(*parseSeconds("1.5s") == 1.5);
  CHECK(*parseSeconds("250ms") == Approx(0.25));
  CHECK(*parseSeconds("500us") == Approx(0.0005));
  CHECK(*parseSeconds("2m") == 120);
  CHECK(*parseSeconds("1h") == 3600);
  CHECK(*parseSeconds("0") == 0);
  for (const char* bad : {"", "s", "-1s", "1x", "1 s", "inf", "nan"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseSeconds(bad).ok());
  }
}

TEST_CASE("compare options: reports and outputs", "[bench][options]") {
  auto o = parseCompareOptions({"a.json", "--svg", "x.svg", "b.json", "--md=x.md", "--title", "T"});
  REQUIRE(o.ok());
  CHECK(o->reports == std::vector<std::string>{"a.json", "b.json"});
  CHECK(o->svg_path == "x.svg");
  CHECK(o->md_path == "x.md");
  CHECK(o->title == "T");
  auto none = parseCompareOptions({"--svg", "x.svg"});
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(std::string(none.status().message()), Catch::Contains("no reports given"));
  auto bad = parseCompareOptions({"a.json", "--png", "x.png"});
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("unknown flag '--png'"));
  auto missing = parseCompareOptions({"a.json", "--svg"});
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(std::string(missing.status().message()), Catch::Contains("--svg: needs a value"));
}

}  // namespace
}  // namespace turnout::bench
