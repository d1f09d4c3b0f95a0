// turnout-bench: the load harness (bench/README.md).
//   turnout-bench [flags] http://host:port/path     run load, print a report
//   turnout-bench compare a.json b.json --svg x.svg  chart saved reports

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"
#include "bench/turnout_bench/bench_options.h"
#include "bench/turnout_bench/bench_report.h"
#include "bench/turnout_bench/compare_chart.h"
#include "bench/turnout_bench/load_run.h"
#include "bench/turnout_bench/request_set.h"

namespace turnout::bench {
namespace {

constexpr int kExitNoResponses = 1;
constexpr int kExitUsage = 2;

int fail(absl::string_view message) {
  std::fprintf(stderr, "turnout-bench: %.*s\n", static_cast<int>(message.size()), message.data());
  return kExitUsage;
}

bool writeFile(const std::string& path, const std::string& content) {
  if (path == "-") {
    std::fwrite(content.data(), 1, content.size(), stdout);
    return std::fflush(stdout) == 0;
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  f.close();
  return !f.fail();
}

int runCompare(const std::vector<std::string_view>& args) {
  auto options = parseCompareOptions(args);
  if (!options.ok()) return fail(options.status().message());
  if (options->help) {
    std::fwrite(compareUsage().data(), 1, compareUsage().size(), stdout);
    return 0;
  }
  std::vector<SavedReport> reports;
  for (const std::string& path : options->reports) {
    auto r = loadReport(path);
    if (!r.ok()) return fail(r.status().message());
    reports.push_back(*std::move(r));
  }
  const std::string md = renderCompareMarkdown(reports);
  if (!options->svg_path.empty() &&
      !writeFile(options->svg_path, renderCompareSvg(reports, options->title))) {
    return fail("--svg: cannot write '" + options->svg_path + "'");
  }
  if (!options->md_path.empty() && !writeFile(options->md_path, md)) {
    return fail("--md: cannot write '" + options->md_path + "'");
  }
  if (options->svg_path.empty() && options->md_path.empty()) writeFile("-", md);
  return 0;
}

int runBench(const std::vector<std::string_view>& args) {
  auto options = parseBenchOptions(args);
  if (!options.ok()) return fail(options.status().message());
  if (options->help) {
    std::fwrite(benchUsage().data(), 1, benchUsage().size(), stdout);
    return 0;
  }
  // A peer that resets mid-write must be an error count, not a signal.
  std::signal(SIGPIPE, SIG_IGN);
  const RequestSet requests(*options);
  auto outcome = runLoad(*options, requests, isatty(STDERR_FILENO) == 1);
  if (!outcome.ok()) return fail(outcome.status().message());
  const std::string text = renderText(*options, *outcome);
  const bool json_to_stdout = options->json_path == "-";
  std::fwrite(text.data(), 1, text.size(), json_to_stdout ? stderr : stdout);
  std::fflush(json_to_stdout ? stderr : stdout);
  if (!options->json_path.empty() &&
      !writeFile(options->json_path, renderJson(*options, *outcome))) {
    return fail("--json: cannot write '" + options->json_path + "'");
  }
  if (outcome->aborted) {
    std::fprintf(stderr, "turnout-bench: a worker missed the deadline and was stopped\n");
  }
  if (outcome->stats.requests == 0) {
    std::fprintf(stderr, "turnout-bench: no responses in the measurement window\n");
    return kExitNoResponses;
  }
  return 0;
}

}  // namespace
}  // namespace turnout::bench

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "compare") {
    return turnout::bench::runCompare(std::vector<std::string_view>(args.begin() + 1, args.end()));
  }
  return turnout::bench::runBench(args);
}
