#include "proxy/stats/stats_render.h"

#include "config/json_string.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "re2/re2.h"

namespace turnout::proxy::stats {
namespace {

constexpr std::array<const char*, 10> kQuantileLabels = {
    "P0", "P25", "P50", "P75", "P90", "P95", "P99", "P99.5", "P99.9", "P100"};

struct Extractor {
  std::string tag;
  std::unique_ptr<RE2> regex;
};

// Envoy's default tag extractors for the names turnout emits, in Envoy's
// order: those without a prefix first, then the ones keyed by the first token.
// RE2 has no lookahead, so `^listener(?=\.).*?\.http\.` becomes
// `^listener\..*?\.http\.`, which accepts the same names.
const std::vector<Extractor>& extractors() {
  static const std::vector<Extractor>* kExtractors = [] {
    auto* v = new std::vector<Extractor>();
    auto add = [v](std::string tag, const char* re) {
      v->push_back(Extractor{std::move(tag), std::make_unique<RE2>(re)});
    };
    add("envoy.response_code", R"(_rq(_(\d{3}))$)");
    add("envoy.response_code_class", R"(_rq_(\d)xx$)");
    add("envoy.cluster_name", R"(^cluster\.(([^\.]+)\.).*)");
    add("envoy.http_conn_manager_prefix", R"(^listener\..*?\.http\.((.*?)\.))");
    add("envoy.http_conn_manager_prefix", R"(^http\.((.*?)\.))");
    add("envoy.listener_address",
        R"(^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.))");
    return v;
  }();
  return *kExtractors;
}

std::string promSanitize(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) c = '_';
  }
  if (!out.empty() && out[0] >= '0' && out[0] <= '9') out.insert(out.begin(), '_');
  return out;
}

std::string promLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string formattedTags(const TaggedName& t) {
  std::string out;
  for (const auto& [k, v] : t.tags) {
    if (!out.empty()) out += ',';
    absl::StrAppend(&out, promSanitize(k), "=\"", promLabelValue(v), "\"");
  }
  return out;
}

struct Scalar {
  std::string name;
  StatKind kind;
  uint64_t counter;
  int64_t gauge;
};

std::vector<Scalar> collectScalars(const Store& store, const StatsFilter& filter) {
  std::vector<Scalar> out;
  store.forEachScalar([&](const Store::ScalarView& v) {
    if (!filter.matches(v.name, v.used)) return;
    out.push_back(Scalar{std::string(v.name), v.kind, v.counter, v.gauge});
  }, filter.usedOnly(), filter.nameFilter());
  return out;  // the store visits in name order
}

struct Histogram {
  std::string name;
  HistogramSnapshot cumulative;
  HistogramSnapshot interval;
};

std::vector<Histogram> collectHistograms(const Store& store, const StatsFilter& filter) {
  std::vector<Histogram> out;
  store.forEachHistogram([&](const Store::HistogramView& v) {
    if (!filter.matches(v.name, v.used)) return;
    out.push_back(Histogram{std::string(v.name), *v.cumulative, *v.interval});
  }, filter.usedOnly(), filter.nameFilter());
  return out;  // the store visits in name order
}

std::string jsonNumber(double v) { return std::isnan(v) ? "null" : formatDouble(v); }

}  // namespace

absl::StatusOr<StatsFilter> StatsFilter::create(bool used_only, std::string regex) {
  StatsFilter f;
  f.used_only_ = used_only;
  if (!regex.empty()) {
    auto re = std::make_shared<RE2>(regex, RE2::Quiet);
    if (!re->ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Invalid re2 regex '", regex, "': ", re->error()));
    }
    f.regex_ = std::move(re);
  }
  return f;
}

bool StatsFilter::matches(std::string_view name, bool used) const {
  if (used_only_ && !used) return false;
  if (regex_ && !RE2::PartialMatch(re2::StringPiece(name.data(), name.size()), *regex_)) return false;
  return true;
}

Store::NameFilter StatsFilter::nameFilter() const {
  if (!regex_) return nullptr;
  return [re = regex_](std::string_view name) {
    return RE2::PartialMatch(re2::StringPiece(name.data(), name.size()), *re);
  };
}

TaggedName extractTags(std::string_view name) {
  TaggedName out;
  std::vector<std::pair<size_t, size_t>> remove;  // [begin, end) in `name`
  const re2::StringPiece input(name.data(), name.size());
  for (const Extractor& e : extractors()) {
    re2::StringPiece groups[3];
    const int n = 1 + e.regex->NumberOfCapturingGroups();
    if (n < 2 || !e.regex->Match(input, 0, input.size(), RE2::UNANCHORED, groups, std::min(n, 3))) {
      continue;
    }
    const re2::StringPiece removed = groups[1];
    const re2::StringPiece value = n > 2 ? groups[2] : groups[1];
    if (removed.data() == nullptr) continue;
    out.tags.emplace_back(e.tag, std::string(value.data(), value.size()));
    const size_t begin = static_cast<size_t>(removed.data() - name.data());
    remove.emplace_back(begin, begin + removed.size());
  }
  out.extracted.reserve(name.size());
  for (size_t i = 0; i < name.size(); ++i) {
    bool skip = false;
    for (const auto& [b, e] : remove) {
      if (i >= b && i < e) {
        skip = true;
        break;
      }
    }
    if (!skip) out.extracted += name[i];
  }
  return out;
}

std::string formatDouble(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

std::string jsonQuote(std::string_view s) {
  std::string out;
  config::appendJsonString(out, s);
  return out;
}

// Text and JSON stream from the store's sorted visit: an unfiltered /stats
// with 10,000 clusters is a million stats, and a list of them all would cost
// far more than the answer.
std::string renderText(const Store& store, const StatsFilter& filter) {
  std::string out;
  store.forEachScalar([&](const Store::ScalarView& v) {
    if (!filter.matches(v.name, v.used)) return;
    out.append(v.name);
    if (v.kind == StatKind::Counter) {
      absl::StrAppend(&out, ": ", v.counter, "\n");
    } else {
      absl::StrAppend(&out, ": ", v.gauge, "\n");
    }
  }, filter.usedOnly(), filter.nameFilter());
  store.forEachHistogram([&](const Store::HistogramView& h) {
    if (!filter.matches(h.name, h.used)) return;
    out.append(h.name);
    if (h.cumulative->empty()) {
      out += ": No recorded values\n";
      return;
    }
    const auto cumulative = h.cumulative->supportedQuantilesMs();
    const auto interval = h.interval->supportedQuantilesMs();
    out += ":";
    for (size_t i = 0; i < kQuantileLabels.size(); ++i) {
      absl::StrAppend(&out, " ", kQuantileLabels[i], "(", formatDouble(interval[i]), ",",
                      formatDouble(cumulative[i]), ")");
    }
    out += "\n";
  }, filter.usedOnly(), filter.nameFilter());
  return out;
}

std::string renderJson(const Store& store, const StatsFilter& filter) {
  std::string out = "{\"stats\":[";
  bool first = true;
  store.forEachScalar([&](const Store::ScalarView& v) {
    if (!filter.matches(v.name, v.used)) return;
    if (!first) out += ',';
    first = false;
    absl::StrAppend(&out, "{\"name\":", jsonQuote(v.name), ",\"value\":");
    if (v.kind == StatKind::Counter) {
      absl::StrAppend(&out, v.counter, "}");
    } else {
      absl::StrAppend(&out, v.gauge, "}");
    }
  }, filter.usedOnly(), filter.nameFilter());
  bool first_h = true;
  store.forEachHistogram([&](const Store::HistogramView& h) {
    if (!filter.matches(h.name, h.used)) return;
    if (first_h) {
      if (!first) out += ',';
      out += "{\"histograms\":{\"supported_quantiles\":[0,25,50,75,90,95,99,99.5,99.9,100],"
             "\"computed_quantiles\":[";
    } else {
      out += ',';
    }
    first_h = false;
    absl::StrAppend(&out, "{\"name\":", jsonQuote(h.name), ",\"values\":[");
    const auto cumulative = h.cumulative->supportedQuantilesMs();
    const auto interval = h.interval->supportedQuantilesMs();
    for (size_t i = 0; i < cumulative.size(); ++i) {
      if (i != 0) out += ',';
      absl::StrAppend(&out, "{\"cumulative\":", jsonNumber(cumulative[i]),
                      ",\"interval\":", jsonNumber(interval[i]), "}");
    }
    out += "]}";
  }, filter.usedOnly(), filter.nameFilter());
  if (!first_h) out += "]}}";
  out += "]}";
  return out;
}

std::string renderPrometheus(const Store& store, const StatsFilter& filter) {
  std::string out;
  // One group per tag-extracted name, sorted; members sorted by full name.
  auto emitGroups = [&](std::map<std::string, std::vector<std::string>>& groups, const char* type) {
    for (auto& [metric, lines] : groups) {
      absl::StrAppend(&out, "# TYPE ", metric, " ", type, "\n");
      for (const std::string& line : lines) out += line;
      out += "\n";
    }
  };
  const auto scalars = collectScalars(store, filter);  // sorted by full name
  std::map<std::string, std::vector<std::string>> counters, gauges, histograms;
  for (const Scalar& s : scalars) {
    const TaggedName t = extractTags(s.name);
    const std::string metric = promSanitize(absl::StrCat("envoy_", t.extracted));
    const std::string line =
        s.kind == StatKind::Counter
            ? absl::StrCat(metric, "{", formattedTags(t), "} ", s.counter, "\n")
            : absl::StrCat(metric, "{", formattedTags(t), "} ", s.gauge, "\n");
    (s.kind == StatKind::Counter ? counters : gauges)[metric].push_back(line);
  }
  for (const Histogram& h : collectHistograms(store, filter)) {
    const TaggedName t = extractTags(h.name);
    const std::string metric = promSanitize(absl::StrCat("envoy_", t.extracted));
    const std::string tags = formattedTags(t);
    const std::string bucket_tags = tags.empty() ? "" : tags + ",";
    std::string text;
    for (double bound : kPrometheusBuckets) {
      absl::StrAppend(&text, metric, "_bucket{", bucket_tags, "le=\"", absl::StrFormat("%.32g", bound),
                      "\"} ", h.cumulative.countAtOrBelowMs(bound), "\n");
    }
    absl::StrAppend(&text, metric, "_bucket{", bucket_tags, "le=\"+Inf\"} ", h.cumulative.sample_count, "\n");
    absl::StrAppend(&text, metric, "_sum{", tags, "} ", absl::StrFormat("%.32g", h.cumulative.sumMs()), "\n");
    absl::StrAppend(&text, metric, "_count{", tags, "} ", h.cumulative.sample_count, "\n");
    histograms[metric].push_back(std::move(text));
  }
  emitGroups(counters, "counter");
  emitGroups(gauges, "gauge");
  emitGroups(histograms, "histogram");
  return out;
}

}  // namespace turnout::proxy::stats
