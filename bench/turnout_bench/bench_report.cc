#include "bench/turnout_bench/bench_report.h"

#include <ctime>
#include <exception>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "config/json_string.h"
#include "yaml-cpp/yaml.h"

namespace turnout::bench {
namespace {

// The percentiles every report shows, with their JSON names.
struct NamedPercentile {
  double p;
  const char* name;
};
constexpr NamedPercentile kPercentiles[] = {{50, "p50"},   {75, "p75"},     {90, "p90"},
                                            {99, "p99"},   {99.9, "p99.9"}, {99.99, "p99.99"}};

std::string formatBytes(double b) {
  if (b >= 1024.0 * 1024 * 1024) return absl::StrFormat("%.2fGB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return absl::StrFormat("%.2fMB", b / (1024.0 * 1024));
  if (b >= 1024.0) return absl::StrFormat("%.2fKB", b / 1024.0);
  return absl::StrFormat("%.0fB", b);
}

std::string modeName(const BenchOptions& o) {
  return o.mode() == LoadMode::kOpenLoop ? "open-loop" : "closed-loop";
}

double us(double ns) { return ns / 1000.0; }

// "http/1.1", "h2c" (HTTP/2 over cleartext) or "h2" (over TLS).
std::string_view protocolName(const BenchOptions& o) {
  if (!o.h2) return "http/1.1";
  return o.target.tls() ? "h2" : "h2c";
}

// Writes JSON with commas handled: every value or key after the first in a
// container gets one.
class JsonOut {
 public:
  std::string take() { return std::move(s_); }
  JsonOut& key(std::string_view k) {
    comma();
    config::appendJsonString(s_, k);
    s_.push_back(':');
    after_key_ = true;
    return *this;
  }
  JsonOut& open(char c) {
    comma();
    s_.push_back(c);
    first_ = true;
    return *this;
  }
  JsonOut& close(char c) {
    s_.push_back(c);
    first_ = false;
    return *this;
  }
  JsonOut& str(std::string_view v) {
    comma();
    config::appendJsonString(s_, v);
    return *this;
  }
  JsonOut& num(uint64_t v) {
    comma();
    absl::StrAppend(&s_, v);
    return *this;
  }
  JsonOut& num(double v, int decimals = 3) {
    comma();
    s_ += absl::StrFormat("%.*f", decimals, v);
    return *this;
  }
  JsonOut& boolean(bool v) {
    comma();
    s_ += v ? "true" : "false";
    return *this;
  }
  JsonOut& null() {
    comma();
    s_ += "null";
    return *this;
  }

 private:
  void comma() {
    if (after_key_) {
      after_key_ = false;
      first_ = false;
      return;
    }
    if (!first_) s_.push_back(',');
    first_ = false;
  }
  std::string s_;
  bool first_ = true;
  bool after_key_ = false;
};

void latencySummary(JsonOut& j, const LatencyHistogram& h) {
  j.open('{');
  j.key("min").num(us(static_cast<double>(h.min())));
  j.key("mean").num(us(h.mean()));
  j.key("stdev").num(us(h.stdev()));
  for (const auto& np : kPercentiles) {
    j.key(np.name).num(us(static_cast<double>(h.valueAtPercentile(np.p))));
  }
  j.key("max").num(us(static_cast<double>(h.max())));
  j.close('}');
}

void histogramJson(JsonOut& j, const LatencyHistogram& h) {
  j.open('{');
  j.key("unit").str("ns");
  j.key("significant_digits").num(uint64_t{LatencyHistogram::kSignificantDigits});
  j.key("count").num(h.count());
  j.key("min").num(h.min());
  j.key("max").num(h.max());
  j.key("sum").num(h.sum());
  j.key("sum_sq").num(h.sumOfSquares(), 1);
  j.key("buckets").open('[');
  h.forEachBucket([&](uint32_t i, uint64_t n) {
    j.open('[')
        .num(uint64_t{LatencyHistogram::lowestEquivalent(i)})
        .num(uint64_t{LatencyHistogram::highestEquivalent(i)})
        .num(n)
        .close(']');
  });
  j.close(']');
  j.close('}');
}

void latencyJson(JsonOut& j, std::string_view basis, const LatencyHistogram& h) {
  j.open('{');
  j.key("basis").str(basis);
  j.key("us");
  latencySummary(j, h);
  j.key("histogram");
  histogramJson(j, h);
  j.close('}');
}

std::string isoTime(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void distributionText(std::string& out, const LatencyHistogram& h) {
  for (const auto& np : kPercentiles) {
    absl::StrAppendFormat(&out, "    %7.3f%%  %10s\n", np.p,
                          formatLatency(h.valueAtPercentile(np.p)));
  }
  absl::StrAppendFormat(&out, "    %7.3f%%  %10s\n", 100.0, formatLatency(h.max()));
}

}  // namespace

std::string formatLatency(uint64_t ns) {
  const double v = static_cast<double>(ns);
  if (ns < 1000) return absl::StrFormat("%.0fns", v);
  if (ns < 1000000) return absl::StrFormat("%.2fus", v / 1e3);
  if (ns < 1000000000) return absl::StrFormat("%.2fms", v / 1e6);
  return absl::StrFormat("%.2fs", v / 1e9);
}

std::string renderText(const BenchOptions& o, const RunOutcome& r) {
  const RunStats& s = r.stats;
  const bool open = o.mode() == LoadMode::kOpenLoop;
  std::string out;
  absl::StrAppendFormat(&out, "turnout-bench %s @ %s (%s)\n", modeName(o), o.target.url,
                        r.address);
  absl::StrAppendFormat(&out, "  %u threads and %u connections", o.threads, o.connections);
  if (o.h2) absl::StrAppendFormat(&out, " (%s, %u streams each)", protocolName(o), o.streams);
  if (o.target.tls() && !o.h2) out += " (TLS)";
  absl::StrAppendFormat(&out, ", %.2fs measured", r.measured_s);
  if (o.warmup_s > 0) absl::StrAppendFormat(&out, " after %.2fs warm-up", o.warmup_s);
  if (open) absl::StrAppendFormat(&out, ", offered %.2f req/s", *o.rate);
  if (r.interrupted) out += " (interrupted)";
  out += "\n";
  const LatencyHistogram& h = s.latency;
  absl::StrAppendFormat(&out, "  Latency %s\n",
                        open ? "(from the intended send time: coordinated omission corrected)"
                             : "(from the send time)");
  absl::StrAppendFormat(&out, "    %10s %10s %10s %10s\n", "mean", "stdev", "min", "max");
  absl::StrAppendFormat(&out, "    %10s %10s %10s %10s\n",
                        formatLatency(static_cast<uint64_t>(h.mean())),
                        formatLatency(static_cast<uint64_t>(h.stdev())), formatLatency(h.min()),
                        formatLatency(h.max()));
  out += "  Latency distribution (HDR, 3 significant digits)\n";
  distributionText(out, h);
  if (open) {
    out += "  Uncorrected latency (from the actual send time)\n";
    distributionText(out, s.uncorrected);
    absl::StrAppendFormat(&out, "  Late requests (connection busy at the intended time): %u (%.2f%%)\n",
                          s.late,
                          s.requests ? 100.0 * static_cast<double>(s.late) /
                                           static_cast<double>(s.requests)
                                     : 0.0);
  }
  absl::StrAppendFormat(&out, "  %u requests in %.2fs, %s read\n", s.requests, r.measured_s,
                        formatBytes(static_cast<double>(s.bytes_read)));
  if (open) {
    absl::StrAppendFormat(&out,
                          "  (requests due in the window, by intended send time; the last "
                          "finished %.2fs after it)\n",
                          r.drain_s);
  }
  out += "  Status codes:";
  uint64_t non_2xx_3xx = 0;
  for (size_t code = 0; code < s.status.size(); ++code) {
    if (s.status[code] == 0) continue;
    absl::StrAppendFormat(&out, " %s=%u", code == 0 ? std::string("other") : std::to_string(code),
                          s.status[code]);
    if (code < 200 || code >= 400) non_2xx_3xx += s.status[code];
  }
  out += s.requests == 0 ? " none\n" : "\n";
  if (non_2xx_3xx > 0) absl::StrAppendFormat(&out, "  Non-2xx or 3xx responses: %u\n", non_2xx_3xx);
  const auto& shares = o.key_mix.shares();
  if (shares.size() > 1 || !shares[0].baseline()) {
    out += "  Routing keys (" + o.key_header + "):";
    for (size_t k = 0; k < shares.size(); ++k) {
      absl::StrAppendFormat(&out, " %s=%u (%.1f%%)", shares[k].key, s.key_requests[k],
                            s.requests ? 100.0 * static_cast<double>(s.key_requests[k]) /
                                             static_cast<double>(s.requests)
                                       : 0.0);
    }
    out += "\n";
  }
  if (o.paths.size() > 1) {
    out += "  Routes:\n";
    for (size_t i = 0; i < o.paths.size(); ++i) {
      const LatencyHistogram& rh = s.route_latency[i];
      absl::StrAppendFormat(&out, "    %-24s %10u  p50 %10s  p99 %10s  max %10s\n", o.paths[i],
                            s.route_requests[i], formatLatency(rh.valueAtPercentile(50)),
                            formatLatency(rh.valueAtPercentile(99)), formatLatency(rh.max()));
    }
  }
  if (s.errorTotal() > 0) {
    out += "  Errors:";
    for (size_t k = 1; k < kErrorKindCount; ++k) {
      absl::StrAppendFormat(&out, " %s %u", errorKindName(static_cast<ErrorKind>(k)), s.errors[k]);
    }
    out += "\n";
  }
  const double secs = r.measured_s > 0 ? r.measured_s : 1;
  absl::StrAppendFormat(&out, "Requests/sec: %12.2f\n", static_cast<double>(s.requests) / secs);
  absl::StrAppendFormat(&out, "Transfer/sec: %12s\n",
                        formatBytes(static_cast<double>(s.bytes_read) / secs));
  return out;
}

std::string renderJson(const BenchOptions& o, const RunOutcome& r) {
  const RunStats& s = r.stats;
  const double secs = r.measured_s > 0 ? r.measured_s : 1;
  JsonOut j;
  j.open('{');
  j.key("tool").str("turnout-bench");
  j.key("format").num(uint64_t{1});
  j.key("label").str(o.label.empty() ? o.target.url : o.label);
  j.key("target").str(o.target.url);
  j.key("address").str(r.address);
  j.key("started_at").str(isoTime(r.started_at));
  j.key("config").open('{');
  j.key("mode").str(modeName(o));
  j.key("protocol").str(protocolName(o));
  j.key("tls").boolean(o.target.tls());
  j.key("streams").num(uint64_t{o.streams});
  j.key("threads").num(uint64_t{o.threads});
  j.key("connections").num(uint64_t{o.connections});
  j.key("rate");
  o.rate ? j.num(*o.rate) : j.null();
  j.key("duration_s");
  o.duration_s ? j.num(*o.duration_s) : j.null();
  j.key("requests_limit");
  o.requests ? j.num(*o.requests) : j.null();
  j.key("warmup_s").num(o.warmup_s);
  j.key("timeout_s").num(o.timeout_s);
  j.key("method").str(o.method);
  j.key("paths").open('[');
  for (const auto& p : o.paths) j.str(p);
  j.close(']');
  j.key("headers").open('[');
  for (const auto& [n, v] : o.headers) j.open('[').str(n).str(v).close(']');
  j.close(']');
  j.key("body_size").num(o.body_size);
  j.key("key_header").str(o.key_header);
  j.key("key_mix").open('[');
  for (const auto& share : o.key_mix.shares()) {
    j.open('{').key("key").str(share.key).key("weight").num(uint64_t{share.weight}).close('}');
  }
  j.close(']');
  j.close('}');
  j.key("interrupted").boolean(r.interrupted);
  j.key("duration_s").num(r.measured_s, 6);
  j.key("window").str(o.mode() == LoadMode::kOpenLoop ? "intended-send-time" : "completion-time");
  j.key("drain_s").num(r.drain_s, 6);
  j.key("requests").num(s.requests);
  j.key("rps").num(static_cast<double>(s.requests) / secs, 2);
  j.key("bytes_read").num(s.bytes_read);
  j.key("bytes_per_s").num(static_cast<double>(s.bytes_read) / secs, 1);
  j.key("connections_opened").num(s.connections_opened);
  j.key("late").num(s.late);
  j.key("latency");
  latencyJson(j, o.mode() == LoadMode::kOpenLoop ? "intended-send-time" : "send-time", s.latency);
  if (o.mode() == LoadMode::kOpenLoop) {
    j.key("uncorrected_latency");
    latencyJson(j, "send-time", s.uncorrected);
  }
  j.key("status").open('{');
  for (size_t code = 0; code < s.status.size(); ++code) {
    if (s.status[code] != 0) j.key(code == 0 ? "other" : std::to_string(code)).num(s.status[code]);
  }
  j.close('}');
  j.key("errors").open('{');
  for (size_t k = 1; k < kErrorKindCount; ++k) {
    j.key(errorKindName(static_cast<ErrorKind>(k))).num(s.errors[k]);
  }
  j.key("total").num(s.errorTotal());
  j.close('}');
  j.key("keys").open('[');
  const auto& shares = o.key_mix.shares();
  for (size_t k = 0; k < shares.size(); ++k) {
    j.open('{')
        .key("key")
        .str(shares[k].key)
        .key("weight")
        .num(uint64_t{shares[k].weight})
        .key("requests")
        .num(s.key_requests[k])
        .close('}');
  }
  j.close(']');
  j.key("routes").open('[');
  for (size_t i = 0; i < o.paths.size(); ++i) {
    j.open('{').key("path").str(o.paths[i]).key("requests").num(s.route_requests[i]);
    if (!s.route_latency.empty()) {
      j.key("latency_us");
      latencySummary(j, s.route_latency[i]);
    }
    j.close('}');
  }
  j.close(']');
  j.close('}');
  std::string out = j.take();
  out.push_back('\n');
  return out;
}

absl::StatusOr<SavedReport> loadReport(const std::string& path) {
  SavedReport r;
  r.path = path;
  std::string field;
  try {
    const YAML::Node root = YAML::LoadFile(path);
    const auto get = [&](const YAML::Node& parent, const char* name) {
      field = name;
      const YAML::Node n = parent[name];
      if (!n) throw std::runtime_error("missing");
      return n;
    };
    if (get(root, "tool").as<std::string>() != "turnout-bench") {
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a turnout-bench report"));
    }
    r.label = get(root, "label").as<std::string>();
    const YAML::Node config = get(root, "config");
    r.mode = get(config, "mode").as<std::string>();
    if (const YAML::Node rate = get(config, "rate"); !rate.IsNull()) r.rate = rate.as<double>();
    r.threads = get(config, "threads").as<uint32_t>();
    r.connections = get(config, "connections").as<uint32_t>();
    r.duration_s = get(root, "duration_s").as<double>();
    r.requests = get(root, "requests").as<uint64_t>();
    r.rps = get(root, "rps").as<double>();
    r.errors = get(get(root, "errors"), "total").as<uint64_t>();
    const YAML::Node hist = get(get(root, "latency"), "histogram");
    if (get(hist, "unit").as<std::string>() != "ns" ||
        get(hist, "significant_digits").as<int>() != LatencyHistogram::kSignificantDigits) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": latency.histogram has another unit or precision"));
    }
    for (const YAML::Node& b : get(hist, "buckets")) {
      field = "latency.histogram.buckets";
      if (!b.IsSequence() || b.size() != 3) throw std::runtime_error("bad bucket");
      r.latency.recordN(b[0].as<uint64_t>(), b[2].as<uint64_t>());
    }
    r.latency.setExact(get(hist, "min").as<uint64_t>(), get(hist, "max").as<uint64_t>(),
                       get(hist, "sum").as<uint64_t>(), get(hist, "sum_sq").as<double>());
  } catch (const YAML::BadFile&) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot read the file"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": bad or missing field '", field, "' (", e.what(), ")"));
  }
  return r;
}

}  // namespace turnout::bench
