#include "bench/turnout_bench/bench_options.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace turnout::bench {
namespace {

absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

absl::Status flagError(std::string_view flag, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(av(flag), ": ", av(what)));
}

bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!isTokenChar(c)) return false;
  }
  return true;
}

// A whole number with an optional k / M / G suffix (10^3, 10^6, 10^9).
absl::StatusOr<uint64_t> parseCount(std::string_view flag, std::string_view text, uint64_t min,
                                    uint64_t max) {
  const auto bad = [&] {
    return flagError(flag, absl::StrCat("expected a whole number from ", min, " to ", max,
                                        ", got '", av(text), "'"));
  };
  std::string_view digits = text;
  uint64_t scale = 1;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'k': case 'K': scale = 1000; break;
      case 'M': scale = 1000000; break;
      case 'G': scale = 1000000000; break;
      default: break;
    }
    if (scale != 1) digits.remove_suffix(1);
  }
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) return bad();
  if (v > max / scale) return bad();
  v *= scale;
  if (v < min || v > max) return bad();
  return v;
}

absl::StatusOr<double> parsePositiveNumber(std::string_view flag, std::string_view text) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !(v > 0) ||
      !std::isfinite(v)) {
    return flagError(flag, absl::StrCat("expected a positive number, got '", av(text), "'"));
  }
  return v;
}

constexpr std::string_view kBenchUsage = R"(usage: turnout-bench [flags] http[s]://host:port/path
       turnout-bench compare a.json b.json ... [--svg out.svg] [--md out.md]

Load generator for HTTP/1.1 keep-alive and HTTP/2 targets, over TCP or TLS
(turnout, its peers, origins).

Load shape:
  -t, --threads N        worker threads, one io_context each (default 1)
  -c, --connections N    keep-alive connections over all threads (default 10;
                         at least --threads)
  -d, --duration T       measurement window, after the warm-up (default 10s
                         unless -n is given). T: 10, 10s, 500ms, 2m, 1h
  -n, --requests N       stop after N responses (k/M/G suffixes); with -d, the
                         first limit reached wins; alone, capped at 1h
      --warmup T         run T before measuring; nothing from it is reported
                         (default 0)
  -R, --rate N           open loop: N requests/s in total at fixed intended
                         send times spread over the connections; latency is
                         measured from the intended time (coordinated omission
                         corrected, like wrk2). Without -R: closed loop, each
                         connection sends its next request when the previous
                         response is complete (saturation)
      --timeout T        per request and per connect (default 10s); a request
                         over it counts as a timeout error, its connection is
                         closed and reopened

Protocol (https:// is TLS with SNI; the server's certificate is not
verified, as benchmark targets are often self-signed):
      --h2               HTTP/2 instead of HTTP/1.1: h2c (prior knowledge)
                         for http://, h2 by ALPN for https://
  -m, --streams N        with --h2: requests in flight per connection
                         (default 1)

Requests:
      --method M         request method (default GET)
      --path P           request path; overrides the URL's. Repeat it (or give
                         P1,P2) to spread requests round-robin over several
                         routes, reported per route
  -H, --header 'N: V'    add a header (repeatable)
      --body-size N      send N bytes of filler body with content-length
      --key-mix SPEC     routing-key mix, e.g. baseline=90,feat-a=5,feat-b=5:
                         integer weights; `baseline` means no key. Keys are
                         assigned by a smooth weighted round robin, so the
                         shares are exact over every cycle of sum(weights)
      --key-header NAME  where the key goes (default baggage, as the member
                         turnout-routing-key=<key>, appended to a baggage -H;
                         tracestate: member turnout=<key>; any other name: the
                         key as the plain value, e.g. x-turnout-routing-key)

Output:
      --json FILE        write the full report as JSON to FILE (- = stdout; the
                         text summary then goes to stderr)
      --label TEXT       the report's name in `compare` (default: the URL)
  -h, --help             this text

A progress line is written to stderr once a second when it is a terminal.
Exit status: 0 when at least one response arrived, 1 when none did, 2 for a
bad command line or an unreachable target.
)";

constexpr std::string_view kCompareUsage =
    R"(usage: turnout-bench compare REPORT.json [REPORT.json ...] [flags]

Plots reports written with --json side by side.
      --svg FILE         latency by percentile (x axis in nines: 90%, 99%,
                         99.9%, ...) and a throughput bar chart, as SVG
      --md FILE          a Markdown table: req/s, percentiles, errors, and
                         each report's ratio to the first
      --title TEXT       chart title
  -h, --help             this text
With neither --svg nor --md, the Markdown table goes to stdout.
)";

// Walks argv: flags with values as "--flag V", "--flag=V" or "-fV".
class ArgCursor {
 public:
  explicit ArgCursor(const std::vector<std::string_view>& args) : args_(args) {}
  bool done() const { return i_ >= args_.size(); }
  // What the argument take() returned is.
  enum class Kind { kHelp, kPositional, kFlag };
  static Kind kindOf(std::string_view arg) {
    if (arg == "-h" || arg == "--help") return Kind::kHelp;
    if (!arg.starts_with("-") || arg == "-") return Kind::kPositional;
    return Kind::kFlag;
  }
  // The next argument; for "--name=value" only "--name" (the value is kept).
  std::string_view take() {
    std::string_view a = args_[i_++];
    inline_value_.reset();
    if (a.starts_with("--")) {
      if (const size_t eq = a.find('='); eq != std::string_view::npos) {
        inline_value_ = a.substr(eq + 1);
        return a.substr(0, eq);
      }
    } else if (a.size() > 2 && a[0] == '-' && a[1] != '-') {
      inline_value_ = a.substr(2);  // -t4
      return a.substr(0, 2);
    }
    return a;
  }
  absl::StatusOr<std::string_view> value(std::string_view flag) {
    if (inline_value_) {
      std::string_view v = *inline_value_;
      inline_value_.reset();
      return v;
    }
    if (done()) return flagError(flag, "needs a value");
    return args_[i_++];
  }

 private:
  const std::vector<std::string_view>& args_;
  size_t i_ = 0;
  std::optional<std::string_view> inline_value_;
};

absl::Status parseHeader(std::string_view text, BenchOptions& o) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return flagError("-H/--header", absl::StrCat("'", av(text), "' is not 'name: value'"));
  }
  std::string_view name = text.substr(0, colon);
  std::string_view value = text.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (!isToken(name)) {
    return flagError("-H/--header", absl::StrCat("'", av(name), "' is not a valid header name"));
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return flagError("-H/--header", absl::StrCat("the value of '", av(name),
                                                   "' contains CR, LF or NUL"));
    }
  }
  std::string lower = absl::AsciiStrToLower(av(name));
  if (lower == "content-length" || lower == "transfer-encoding") {
    return flagError("-H/--header",
                     absl::StrCat("'", lower, "' is set by --body-size, not by hand"));
  }
  o.headers.emplace_back(std::move(lower), std::string(value));
  return absl::OkStatus();
}

absl::Status addPaths(std::string_view text, BenchOptions& o) {
  for (absl::string_view p : absl::StrSplit(av(text), ',')) {
    if (p.empty() || p.front() != '/') {
      return flagError("--path", absl::StrCat("'", p, "' must start with '/'"));
    }
    for (char c : p) {
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
        return flagError("--path", absl::StrCat("'", p, "' contains a space or control character"));
      }
    }
    o.paths.emplace_back(p);
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view benchUsage() { return kBenchUsage; }
std::string_view compareUsage() { return kCompareUsage; }

absl::StatusOr<double> parseSeconds(std::string_view text) {
  std::string_view num = text;
  double scale = 1;
  if (num.ends_with("ms")) {
    scale = 1e-3;
    num.remove_suffix(2);
  } else if (num.ends_with("us")) {
    scale = 1e-6;
    num.remove_suffix(2);
  } else if (num.ends_with("s")) {
    num.remove_suffix(1);
  } else if (num.ends_with("m")) {
    scale = 60;
    num.remove_suffix(1);
  } else if (num.ends_with("h")) {
    scale = 3600;
    num.remove_suffix(1);
  }
  double v = 0;
  const auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  if (num.empty() || ec != std::errc() || end != num.data() + num.size() || v < 0 ||
      !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a duration such as 10, 10s, 500ms, 2m or 1h, got '", av(text), "'"));
  }
  return v * scale;
}

absl::StatusOr<Target> parseTarget(std::string_view url) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("URL '", av(url), "': ", av(why)));
  };
  Target t;
  t.url = std::string(url);
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return bad("expected http[s]://host[:port][/path]");
  t.scheme = absl::AsciiStrToLower(av(url.substr(0, sep)));
  if (t.scheme != "http" && t.scheme != "https") return bad("the scheme must be http or https");
  if (t.tls()) t.port = 443;
  std::string_view rest = url.substr(sep + 3);
  const size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  t.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (t.path.front() == '?') t.path.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) return bad("user info is not supported");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    t.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after the IPv6 address");
      port_text = after.substr(1);
    }
  } else {
    const size_t colon = authority.rfind(':');
    t.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (t.host.empty()) return bad("no host");
  if (!port_text.empty() || authority.ends_with(":")) {
    uint32_t port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
        port == 0 || port > 65535) {
      return bad(absl::StrCat("bad port '", av(port_text), "'"));
    }
    t.port = static_cast<uint16_t>(port);
  }
  for (char c : t.path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return bad("the path contains a space or control character");
    }
  }
  const std::string host = t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host;
  const uint16_t default_port = t.tls() ? 443 : 80;
  t.authority = t.port == default_port ? host : absl::StrCat(host, ":", t.port);
  return t;
}

absl::StatusOr<BenchOptions> parseBenchOptions(const std::vector<std::string_view>& args) {
  BenchOptions o;
  ArgCursor cur(args);
  std::optional<std::string_view> url;
  const auto seconds = [](std::string_view flag, std::string_view v) -> absl::StatusOr<double> {
    auto s = parseSeconds(v);
    if (!s.ok()) return flagError(flag, sv(s.status().message()));
    return *s;
  };
  while (!cur.done()) {
    const std::string_view flag = cur.take();
    const ArgCursor::Kind kind = ArgCursor::kindOf(flag);
    if (kind == ArgCursor::Kind::kHelp) {
      o.help = true;
      return o;
    }
    if (kind == ArgCursor::Kind::kPositional) {
      if (url) {
        return absl::InvalidArgumentError(
            absl::StrCat("one URL only: got '", av(*url), "' and '", av(flag), "'"));
      }
      url = flag;
      continue;
    }
    if (flag == "--h2") {
      o.h2 = true;
      continue;
    }
    // Every other flag takes a value.
    static constexpr std::string_view kValueFlags[] = {
        "-t", "--threads", "-c", "--connections", "-d", "--duration", "-n", "--requests",
        "-R", "--rate", "--warmup", "--timeout", "--method", "--path", "-H", "--header",
        "-m", "--streams",
        "--body-size", "--key-mix", "--key-header", "--json", "--label"};
    if (std::find(std::begin(kValueFlags), std::end(kValueFlags), flag) == std::end(kValueFlags)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag '", av(flag), "' (see --help)"));
    }
    const auto v = cur.value(flag);
    if (!v.ok()) return v.status();
    const std::string_view value = *v;
    if (flag == "-t" || flag == "--threads") {
      auto n = parseCount("-t/--threads", value, 1, 1024);
      if (!n.ok()) return n.status();
      o.threads = static_cast<uint32_t>(*n);
    } else if (flag == "-c" || flag == "--connections") {
      auto n = parseCount("-c/--connections", value, 1, 100000);
      if (!n.ok()) return n.status();
      o.connections = static_cast<uint32_t>(*n);
    } else if (flag == "-m" || flag == "--streams") {
      auto n = parseCount("-m/--streams", value, 1, 1000);
      if (!n.ok()) return n.status();
      o.streams = static_cast<uint32_t>(*n);
    } else if (flag == "-d" || flag == "--duration") {
      auto s = seconds("-d/--duration", value);
      if (!s.ok()) return s.status();
      if (!(*s > 0)) return flagError("-d/--duration", "must be more than 0");
      o.duration_s = *s;
    } else if (flag == "-n" || flag == "--requests") {
      auto n = parseCount("-n/--requests", value, 1, uint64_t{1} << 50);
      if (!n.ok()) return n.status();
      o.requests = *n;
    } else if (flag == "-R" || flag == "--rate") {
      auto r = parsePositiveNumber("-R/--rate", value);
      if (!r.ok()) return r.status();
      o.rate = *r;
    } else if (flag == "--warmup") {
      auto s = seconds("--warmup", value);
      if (!s.ok()) return s.status();
      o.warmup_s = *s;
    } else if (flag == "--timeout") {
      auto s = seconds("--timeout", value);
      if (!s.ok()) return s.status();
      if (!(*s > 0)) return flagError("--timeout", "must be more than 0");
      o.timeout_s = *s;
    } else if (flag == "--method") {
      if (!isToken(value)) {
        return flagError("--method", absl::StrCat("'", av(value), "' is not a method token"));
      }
      o.method = std::string(value);
    } else if (flag == "--path") {
      if (auto s = addPaths(value, o); !s.ok()) return s;
    } else if (flag == "-H" || flag == "--header") {
      if (auto s = parseHeader(value, o); !s.ok()) return s;
    } else if (flag == "--body-size") {
      auto n = parseCount("--body-size", value, 0, uint64_t{1} << 30);
      if (!n.ok()) return n.status();
      o.body_size = *n;
    } else if (flag == "--key-mix") {
      auto mix = KeyMix::parse(value);
      if (!mix.ok()) return flagError("--key-mix", sv(mix.status().message()));
      o.key_mix = *std::move(mix);
    } else if (flag == "--key-header") {
      if (!isToken(value)) {
        return flagError("--key-header", absl::StrCat("'", av(value), "' is not a header name"));
      }
      o.key_header = absl::AsciiStrToLower(av(value));
    } else if (flag == "--json") {
      o.json_path = std::string(value);
    } else if (flag == "--label") {
      o.label = std::string(value);
    }
  }
  if (!url) return absl::InvalidArgumentError("no target URL (see --help)");
  auto target = parseTarget(*url);
  if (!target.ok()) return target.status();
  o.target = *std::move(target);
  if (o.paths.empty()) o.paths.push_back(o.target.path);
  if (o.connections < o.threads) {
    return flagError("-c/--connections",
                     absl::StrCat(o.connections, " is fewer than -t/--threads (", o.threads,
                                  "); every thread needs a connection"));
  }
  if (o.streams > 1 && !o.h2) {
    return flagError("-m/--streams", "needs --h2 (HTTP/1.1 sends one request at a time)");
  }
  if (!o.duration_s && !o.requests) o.duration_s = kDefaultDurationSeconds;
  if (o.key_header == "host") {
    return flagError("--key-header", "cannot be host");
  }
  return o;
}

absl::StatusOr<CompareOptions> parseCompareOptions(const std::vector<std::string_view>& args) {
  CompareOptions o;
  ArgCursor cur(args);
  while (!cur.done()) {
    const std::string_view arg = cur.take();
    switch (ArgCursor::kindOf(arg)) {
      case ArgCursor::Kind::kHelp: o.help = true; return o;
      case ArgCursor::Kind::kPositional: o.reports.emplace_back(arg); continue;
      case ArgCursor::Kind::kFlag: break;
    }
    const std::string_view flag = arg;
    std::string* target = flag == "--svg"     ? &o.svg_path
                          : flag == "--md"    ? &o.md_path
                          : flag == "--title" ? &o.title
                                              : nullptr;
    if (target == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("compare: unknown flag '", av(flag), "' (see compare --help)"));
    }
    const auto v = cur.value(flag);
    if (!v.ok()) return v.status();
    *target = std::string(*v);
  }
  if (o.reports.empty()) {
    return absl::InvalidArgumentError("compare: no reports given (see compare --help)");
  }
  return o;
}

}  // namespace turnout::bench
