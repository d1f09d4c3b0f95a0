#include "bench/turnout_bench/compare_chart.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace turnout::bench {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                   "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
constexpr double kWidth = 960;
constexpr double kPlotLeft = 80, kPlotRight = 700, kPlotTop = 60, kPlotBottom = 400;
constexpr double kBarsTop = 480, kBarHeight = 22, kBarGap = 10;
constexpr double kBarLeft = 260, kBarRight = 800;

std::string xmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// The largest x (in nines) a report's samples support.
double maxNines(const SavedReport& r) {
  return r.latency.count() > 1 ? std::log10(static_cast<double>(r.latency.count())) : 1.0;
}

// "0%", "90%", "99%", "99.9%", ... for whole nines.
std::string ninesLabel(int k) {
  if (k == 0) return "0%";
  if (k == 1) return "90%";
  return "99" + (k > 2 ? "." + std::string(static_cast<size_t>(k - 2), '9') : std::string()) + "%";
}

struct Scale {
  double unit_ns;  // 1e3 (us), 1e6 (ms) or 1e9 (s)
  const char* unit;
  double step;     // tick step in `unit`
  double top;      // axis maximum in `unit`
};

Scale niceScale(double max_ns) {
  Scale s{1e3, "us", 1, 1};
  if (max_ns >= 1e9) {
    s.unit_ns = 1e9;
    s.unit = "s";
  } else if (max_ns >= 1e6) {
    s.unit_ns = 1e6;
    s.unit = "ms";
  }
  const double max = std::max(max_ns / s.unit_ns, 1e-3);
  const double raw = max / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) {
      s.step = m * mag;
      break;
    }
  }
  s.top = std::ceil(max / s.step) * s.step;
  return s;
}

std::string formatNumber(double v) {
  if (v >= 100 || v == std::floor(v)) return absl::StrFormat("%.0f", v);
  if (v >= 10) return absl::StrFormat("%.1f", v);
  return absl::StrFormat("%.2g", v);
}

}  // namespace

double percentileAtNines(double nines) { return 100.0 * (1.0 - std::pow(10.0, -nines)); }
double ninesAtPercentile(double percentile) {
  if (percentile >= 100) return INFINITY;
  return -std::log10(1.0 - percentile / 100.0);
}

std::string renderCompareSvg(const std::vector<SavedReport>& reports, const std::string& title) {
  const double height = kBarsTop + 40 + static_cast<double>(reports.size()) * (kBarHeight + kBarGap) + 20;
  double x_max = 2;
  double y_max_ns = 1;
  double rps_max = 1;
  for (const SavedReport& r : reports) {
    x_max = std::max(x_max, std::ceil(maxNines(r)));
    y_max_ns = std::max(y_max_ns, static_cast<double>(r.latency.max()));
    rps_max = std::max(rps_max, r.rps);
  }
  const Scale y = niceScale(y_max_ns);
  const auto px = [&](double nines) {
    return kPlotLeft + (kPlotRight - kPlotLeft) * std::min(nines, x_max) / x_max;
  };
  const auto py = [&](double ns) {
    return kPlotBottom - (kPlotBottom - kPlotTop) * (ns / y.unit_ns) / y.top;
  };

  std::string s;
  absl::StrAppendFormat(&s,
                        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                        "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
                        kWidth, height, kWidth, height);
  absl::StrAppendFormat(&s, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
  absl::StrAppendFormat(&s, "<text x=\"%.0f\" y=\"28\" font-size=\"16\" font-weight=\"bold\">%s</text>\n",
                        kPlotLeft, xmlEscape(title));
  absl::StrAppendFormat(&s, "<text x=\"%.0f\" y=\"48\">Latency by percentile</text>\n", kPlotLeft);

  // Grid, ticks and axis labels.
  s += "<g class=\"grid\" stroke=\"#ddd\">\n";
  for (int k = 0; k <= static_cast<int>(x_max); ++k) {
    absl::StrAppendFormat(&s, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\"/>\n", px(k),
                          kPlotTop, px(k), kPlotBottom);
  }
  for (double v = 0; v <= y.top + y.step / 2; v += y.step) {
    absl::StrAppendFormat(&s, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\"/>\n",
                          kPlotLeft, py(v * y.unit_ns), kPlotRight, py(v * y.unit_ns));
  }
  s += "</g>\n<g class=\"axes\">\n";
  for (int k = 0; k <= static_cast<int>(x_max); ++k) {
    absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n",
                          px(k), kPlotBottom + 18, ninesLabel(k));
  }
  for (double v = 0; v <= y.top + y.step / 2; v += y.step) {
    absl::StrAppendFormat(&s, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                          kPlotLeft - 6, py(v * y.unit_ns) + 4, formatNumber(v));
  }
  absl::StrAppendFormat(&s, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">percentile</text>\n",
                        (kPlotLeft + kPlotRight) / 2, kPlotBottom + 38);
  absl::StrAppendFormat(&s,
                        "<text transform=\"translate(24,%.0f) rotate(-90)\" "
                        "text-anchor=\"middle\">latency (%s)</text>\n",
                        (kPlotTop + kPlotBottom) / 2, y.unit);
  absl::StrAppendFormat(&s,
                        "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                        "stroke=\"#444\"/>\n</g>\n",
                        kPlotLeft, kPlotTop, kPlotRight - kPlotLeft, kPlotBottom - kPlotTop);

  // One step curve per report, and the legend.
  for (size_t i = 0; i < reports.size(); ++i) {
    const SavedReport& r = reports[i];
    const char* color = kColors[i % std::size(kColors)];
    if (!r.latency.empty()) {
      std::string points;
      const double end = maxNines(r);
      constexpr int kSteps = 400;
      for (int step = 0; step <= kSteps; ++step) {
        const double x = end * step / kSteps;
        const double v = static_cast<double>(r.latency.valueAtPercentile(percentileAtNines(x)));
        absl::StrAppendFormat(&points, "%.1f,%.1f ", px(x), py(v));
      }
      absl::StrAppendFormat(&points, "%.1f,%.1f", px(end), py(static_cast<double>(r.latency.max())));
      absl::StrAppendFormat(&s,
                            "<polyline class=\"latency\" data-label=\"%s\" fill=\"none\" "
                            "stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n",
                            xmlEscape(r.label), color, points);
    }
    const double ly = kPlotTop + 10 + static_cast<double>(i) * 20;
    absl::StrAppendFormat(&s,
                          "<rect x=\"%.0f\" y=\"%.0f\" width=\"14\" height=\"4\" fill=\"%s\"/>"
                          "<text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                          kPlotRight + 14, ly, color, kPlotRight + 34, ly + 6, xmlEscape(r.label));
  }

  // Throughput bars.
  absl::StrAppendFormat(&s, "<text x=\"%.0f\" y=\"%.0f\">Throughput (responses/s)</text>\n",
                        kPlotLeft, kBarsTop - 14);
  const double base = reports.empty() ? 0 : reports[0].rps;
  for (size_t i = 0; i < reports.size(); ++i) {
    const SavedReport& r = reports[i];
    const double y0 = kBarsTop + static_cast<double>(i) * (kBarHeight + kBarGap);
    const double w = (kBarRight - kBarLeft) * r.rps / rps_max;
    absl::StrAppendFormat(&s,
                          "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n"
                          "<rect class=\"rps\" data-label=\"%s\" x=\"%.0f\" y=\"%.1f\" "
                          "width=\"%.1f\" height=\"%.0f\" fill=\"%s\"/>\n"
                          "<text x=\"%.1f\" y=\"%.1f\">%.0f (%.2fx)</text>\n",
                          kBarLeft - 8, y0 + 15, xmlEscape(r.label), xmlEscape(r.label), kBarLeft,
                          y0, w, kBarHeight, kColors[i % std::size(kColors)], kBarLeft + w + 6,
                          y0 + 15, r.rps, base > 0 ? r.rps / base : 0.0);
  }
  s += "</svg>\n";
  return s;
}

std::string renderCompareMarkdown(const std::vector<SavedReport>& reports) {
  std::string s =
      "| report | mode | req/s | req/s vs first | p50 | p90 | p99 | p99.9 | max | p99 vs first | "
      "errors |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
  const double base_rps = reports.empty() ? 0 : reports[0].rps;
  const double base_p99 =
      reports.empty() ? 0 : static_cast<double>(reports[0].latency.valueAtPercentile(99));
  for (const SavedReport& r : reports) {
    const std::string mode =
        r.rate ? absl::StrFormat("open-loop %.0f/s", *r.rate) : std::string("closed-loop");
    const double p99 = static_cast<double>(r.latency.valueAtPercentile(99));
    absl::StrAppendFormat(
        &s, "| %s | %s | %.0f | %.2f | %s | %s | %s | %s | %s | %.2f | %u |\n",
        absl::StrReplaceAll(r.label, {{"|", "\\|"}}), mode, r.rps,
        base_rps > 0 ? r.rps / base_rps : 0.0, formatLatency(r.latency.valueAtPercentile(50)),
        formatLatency(r.latency.valueAtPercentile(90)), formatLatency(r.latency.valueAtPercentile(99)),
        formatLatency(r.latency.valueAtPercentile(99.9)), formatLatency(r.latency.max()),
        base_p99 > 0 ? p99 / base_p99 : 0.0, r.errors);
  }
  return s;
}

}  // namespace turnout::bench
