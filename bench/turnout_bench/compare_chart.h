#pragma once

// `turnout-bench compare`: saved reports drawn side by side, written by our
// own code (no plotting dependency).
//
// The SVG has two panels. Latency by percentile, HdrHistogram style: the x
// axis is in "nines", x = -log10(1 - p), so 90%, 99%, 99.9%... are evenly
// spaced and the tail gets the room; each report's curve stops at the
// percentile its sample count supports (1 - 1/count) and ends on its max.
// Below it, throughput as horizontal bars with the ratio to the first report.

#include <string>
#include <vector>

#include "bench/turnout_bench/bench_report.h"

namespace turnout::bench {

std::string renderCompareSvg(const std::vector<SavedReport>& reports, const std::string& title);
std::string renderCompareMarkdown(const std::vector<SavedReport>& reports);

// The percentile (0..100) at `nines` on the chart's x axis, and back.
double percentileAtNines(double nines);
double ninesAtPercentile(double percentile);

}  // namespace turnout::bench
