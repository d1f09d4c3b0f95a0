#include "bench/turnout_bench/bench_report.h"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bench/turnout_bench/compare_chart.h"
#include "tests/unit/bench/bench_test_support.h"

namespace turnout::bench {
namespace {

using testing::optionsFor;

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char name[] = "/tmp/turnout-bench-test-XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    close(fd);
    path_ = name;
    std::ofstream(path_) << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A finished open-loop run with known numbers: 1000 responses over 2 s.
RunOutcome sampleOutcome(const RequestSet& requests) {
  RunOutcome r(requests);
  r.measured_s = 2.0;
  r.drain_s = 0.25;
  r.address = "127.0.0.1:8080";
  for (uint64_t i = 1; i <= 1000; ++i) {
    r.stats.latency.record(i * 1000);  // 1 us .. 1 ms
    r.stats.uncorrected.record(i * 500);
  }
  r.stats.requests = 1000;
  r.stats.status[200] = 990;
  r.stats.status[503] = 10;
  r.stats.key_requests = {900, 100};
  r.stats.route_requests = {1000};
  r.stats.errors[static_cast<size_t>(ErrorKind::kTimeout)] = 3;
  r.stats.bytes_read = 123456;
  r.stats.late = 7;
  return r;
}

TEST_CASE("JSON report carries config, results and a re-mergeable histogram",
          "[bench][report]") {
  const BenchOptions o =
      optionsFor({"-R", "500", "-c", "4", "--key-mix", "baseline=9,feat-a=1", "--label", "direct"});
  const RequestSet set(o);
  const RunOutcome r = sampleOutcome(set);
  const std::string json = renderJson(o, r);
  for (const char* field :
       {"\"tool\":\"turnout-bench\"", "\"format\":1", "\"label\":\"direct\"",
        "\"mode\":\"open-loop\"", "\"rate\":500.000", "\"connections\":4", "\"requests\":1000",
        "\"rps\":500.00", "\"late\":7", "\"basis\":\"intended-send-time\"",
        "\"duration_s\":2.000000,\"window\":\"intended-send-time\",\"drain_s\":0.250000",
        "\"uncorrected_latency\":{\"basis\":\"send-time\"", "\"status\":{\"200\":990,\"503\":10}",
        "\"timeout\":3", "\"total\":3", "{\"key\":\"feat-a\",\"weight\":1,\"requests\":100}",
        "\"p99.9\":", "\"p99.99\":", "\"buckets\":[[1000,1000,1],"}) {
    CAPTURE(field);
    CHECK(json.find(field) != std::string::npos);
  }

  TempFile file(json);
  auto back = loadReport(file.path());
  REQUIRE(back.ok());
  CHECK(back->label == "direct");
  CHECK(back->mode == "open-loop");
  REQUIRE(back->rate);
  CHECK(*back->rate == 500);
  CHECK(back->connections == 4);
  CHECK(back->requests == 1000);
  CHECK(back->rps == 500);
  CHECK(back->errors == 3);
  CHECK(back->duration_s == 2);
  CHECK(back->latency.count() == 1000);
  CHECK(back->latency.min() == r.stats.latency.min());
  CHECK(back->latency.max() == r.stats.latency.max());
  CHECK(back->latency.mean() == r.stats.latency.mean());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    CHECK(back->latency.valueAtPercentile(p) == r.stats.latency.valueAtPercentile(p));
  }
}

TEST_CASE("JSON report of a closed-loop run says its window counts completions",
          "[bench][report]") {
  const BenchOptions o = optionsFor({"-c", "4"});
  const RequestSet set(o);
  RunOutcome r = sampleOutcome(set);
  r.drain_s = 0;
  const std::string json = renderJson(o, r);
  CHECK(json.find("\"window\":\"completion-time\",\"drain_s\":0.000000") != std::string::npos);
  CHECK(json.find("\"basis\":\"send-time\"") != std::string::npos);
  CHECK(renderText(o, r).find("intended send time;") == std::string::npos);
}

TEST_CASE("text report reads like wrk's", "[bench][report]") {
  const BenchOptions o = optionsFor({"-R", "500", "--key-mix", "baseline=9,feat-a=1"});
  const RequestSet set(o);
  const std::string text = renderText(o, sampleOutcome(set));
  for (const char* line :
       {"turnout-bench open-loop @ http://127.0.0.1:8080/x (127.0.0.1:8080)",
        "coordinated omission corrected", " 99.900%", " 99.990%", "100.000%",
        "Uncorrected latency", "Late requests (connection busy at the intended time): 7",
        "1000 requests in 2.00s",
        "(requests due in the window, by intended send time; the last finished 0.25s after it)",
        "Status codes: 200=990 503=10", "Non-2xx or 3xx responses: 10",
        "Routing keys (baggage): baseline=900 (90.0%) feat-a=100 (10.0%)", "timeout 3",
        "Requests/sec:       500.00"}) {
    CAPTURE(line);
    CHECK(text.find(line) != std::string::npos);
  }
}

TEST_CASE("latencies print with a unit like wrk's", "[bench][report]") {
  CHECK(formatLatency(999) == "999ns");
  CHECK(formatLatency(56780) == "56.78us");
  CHECK(formatLatency(1234567) == "1.23ms");
  CHECK(formatLatency(2000000000) == "2.00s");
}

TEST_CASE("loading a report names the file and the bad field", "[bench][report]") {
  auto missing = loadReport("/nonexistent/r.json");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(std::string(missing.status().message()), Catch::Contains("/nonexistent/r.json"));

  TempFile other(R"({"tool": "wrk"})");
  auto not_ours = loadReport(other.path());
  REQUIRE_FALSE(not_ours.ok());
  CHECK_THAT(std::string(not_ours.status().message()), Catch::Contains("not a turnout-bench report"));

  TempFile partial(R"({"tool": "turnout-bench", "label": "x", "config": {"mode": "closed-loop"}})");
  auto bad = loadReport(partial.path());
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("field 'rate'"));
}

SavedReport saved(const std::string& label, double rps, uint64_t base_ns) {
  SavedReport r;
  r.label = label;
  r.mode = "closed-loop";
  r.rps = rps;
  for (uint64_t i = 0; i < 10000; ++i) r.latency.record(base_ns + i * 10);
  return r;
}

TEST_CASE("compare draws one latency curve and one bar per report", "[bench][compare]") {
  const std::vector<SavedReport> reports = {saved("direct", 1000, 50000),
                                            saved("via <turnout>", 500, 90000)};
  const std::string svg = renderCompareSvg(reports, "t & t");
  CHECK(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK(svg.find("t &amp; t") != std::string::npos);
  CHECK(svg.find("<polyline class=\"latency\" data-label=\"direct\"") != std::string::npos);
  CHECK(svg.find("<polyline class=\"latency\" data-label=\"via &lt;turnout&gt;\"") !=
        std::string::npos);
  CHECK(svg.find("<rect class=\"rps\" data-label=\"direct\"") != std::string::npos);
  CHECK(svg.find("(0.50x)") != std::string::npos);
  // 10,000 samples support four nines: the axis reads up to 99.99%.
  CHECK(svg.find(">99.99%<") != std::string::npos);
  CHECK(svg.find(">99.999%<") == std::string::npos);
  CHECK(svg.find("<turnout>") == std::string::npos);

  const std::string md = renderCompareMarkdown(reports);
  CHECK(md.find("| direct | closed-loop | 1000 | 1.00 |") != std::string::npos);
  CHECK(md.find("| via <turnout> | closed-loop | 500 | 0.50 |") != std::string::npos);
}

TEST_CASE("the chart's x axis is in nines", "[bench][compare]") {
  CHECK(percentileAtNines(0) == 0);
  CHECK(percentileAtNines(1) == Approx(90));
  CHECK(percentileAtNines(3) == Approx(99.9));
  CHECK(ninesAtPercentile(99) == Approx(2));
  CHECK(ninesAtPercentile(99.99) == Approx(4));
}

}  // namespace
}  // namespace turnout::bench
