#pragma once

// turnout-bench's command line: the load run (`turnout-bench [flags] URL`)
// and the comparison of saved reports (`turnout-bench compare ...`). Parsing
// is pure: errors come back as InvalidArgument whose message names the flag
// ("--threads: expected a whole number from 1 to 1024, got 'x'"), and main
// prints them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/turnout_bench/key_mix.h"

namespace turnout::bench {

// A parsed http:// URL.
struct Target {
  std::string url;        // as given
  std::string scheme;     // "http" or "https"
  std::string host;       // without brackets for IPv6
  uint16_t port = 80;     // 443 by default for https
  std::string authority;  // the Host header: host[:port], port omitted when default
  std::string path;       // path and query, "/" when absent

  bool tls() const { return scheme == "https"; }
};

// Parses http[s]://host[:port][/path[?query]].
absl::StatusOr<Target> parseTarget(std::string_view url);

enum class LoadMode { kClosedLoop, kOpenLoop };

struct BenchOptions {
  Target target;
  uint32_t threads = 1;
  uint32_t connections = 10;
  // Measurement window after the warm-up. Absent with -n alone (then the run
  // ends after `requests`, capped at kMaxRunSeconds).
  std::optional<double> duration_s;
  std::optional<uint64_t> requests;
  // Open loop when set: requests/s over all connections.
  std::optional<double> rate;
  double warmup_s = 0;
  double timeout_s = 10;
  std::string method = "GET";
  std::vector<std::string> paths;  // one request route each; the URL's path when no --path
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased
  uint64_t body_size = 0;
  bool h2 = false;       // HTTP/2 (h2c with prior knowledge, or h2 by ALPN over TLS)
  uint32_t streams = 1;  // requests in flight per connection (h2c only)
  KeyMix key_mix;
  std::string key_header = "baggage";  // lowercase
  std::string json_path;               // "" none, "-" stdout
  std::string label;                   // report label; the URL when empty
  bool help = false;

  LoadMode mode() const { return rate ? LoadMode::kOpenLoop : LoadMode::kClosedLoop; }
};

// The cap on a run bounded by -n alone.
inline constexpr double kMaxRunSeconds = 3600;
// The measurement window when neither -d nor -n is given.
inline constexpr double kDefaultDurationSeconds = 10;

// `args` excludes argv[0]. help is set (and nothing else checked) on -h/--help.
absl::StatusOr<BenchOptions> parseBenchOptions(const std::vector<std::string_view>& args);

struct CompareOptions {
  std::vector<std::string> reports;  // JSON files written by --json
  std::string svg_path;
  std::string md_path;
  std::string title = "turnout-bench comparison";
  bool help = false;
};

// `args` excludes argv[0] and the word "compare".
absl::StatusOr<CompareOptions> parseCompareOptions(const std::vector<std::string_view>& args);

std::string_view benchUsage();
std::string_view compareUsage();

// "10", "10s", "250ms", "2m", "1h", "1.5s" -> seconds. Exposed for tests.
absl::StatusOr<double> parseSeconds(std::string_view text);

}  // namespace turnout::bench
