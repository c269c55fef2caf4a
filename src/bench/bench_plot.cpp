// `heirloom bench --plot`: the report as charts (plot/svg.h), for a person who would rather look than read.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "heirloom/bench.h"
#include "plot/svg.h"

namespace heirloom {

namespace {
// A row's task, short enough to label a bar: "train step lora r8 q,k,v,o 8x128 [bf16]" → "lora r8 8x128", the
// personalize row → "protocol".
std::string task_of(const std::string& name) {
  std::string t = name.substr(0, name.rfind(" ["));
  if (t.rfind("personalize", 0) == 0) return "protocol";
  if (t.rfind("generate", 0) == 0) return "generate";
  if (t.rfind("train step ", 0) == 0) t = t.substr(11);
  if (const size_t at = t.find(" q,k,v,o"); at != std::string::npos) t.erase(at, 8);
  return t;
}
}  // namespace

std::string bench_plot(const BenchReport& r) {
  std::vector<std::string> charts;
  // Each task's share of the GEMM peak in its own precision, fp32 and bf16 side by side; GFLOP/s where this run
  // measured no peak (--only without sgemm).
  bool peaks = false;
  for (const BenchRow& x : r.rows) peaks |= x.peak_fraction > 0;
  plot::BarChart bars{peaks ? "Share of the GEMM peak, " + r.preset + ", " + std::to_string(r.threads) + " threads (target 70 %)"
                            : "Throughput, " + r.preset + ", " + std::to_string(r.threads) + " threads",
                      peaks ? "% of the GEMM peak" : "GFLOP/s", false, {}, {}, {}};
  auto shown = [&](const BenchRow& x) { return peaks ? x.peak_fraction > 0 : x.gflops > 0; };
  for (const BenchRow& x : r.rows) {
    if (!shown(x)) continue;
    const std::string task = task_of(x.name);
    if (std::find(bars.groups.begin(), bars.groups.end(), task) == bars.groups.end()) bars.groups.push_back(task);
    if (std::find(bars.series_labels.begin(), bars.series_labels.end(), x.precision) == bars.series_labels.end())
      bars.series_labels.push_back(x.precision);
  }
  bars.values.assign(bars.series_labels.size(), std::vector<double>(bars.groups.size(), 0.0));
  for (const BenchRow& x : r.rows) {
    if (!shown(x)) continue;
    const size_t s = std::find(bars.series_labels.begin(), bars.series_labels.end(), x.precision) - bars.series_labels.begin();
    const size_t g = std::find(bars.groups.begin(), bars.groups.end(), task_of(x.name)) - bars.groups.begin();
    bars.values[s][g] = peaks ? 100 * x.peak_fraction : x.gflops;
  }
  if (!bars.groups.empty()) charts.push_back(plot::render(bars));
  // --ops: where each task's time goes, part by part, and how near the peak each part's products run; one
  // precision at a time (columns are tasks).
  for (const std::string& precision : bars.series_labels) {
    plot::Heatmap share{"Where the time goes [" + precision + "]: each part's share of the run (%)", "part", "task", {}, {}, {}, 1};
    plot::Heatmap peak{"Each part's products [" + precision + "]: % of the GEMM peak (— : none)", "part", "task", {}, {}, {}, 0};
    std::vector<const BenchRow*> tasks;
    for (const BenchRow& x : r.rows)
      if (x.precision == precision && !x.parts.empty()) tasks.push_back(&x), share.cols.push_back(task_of(x.name));
    for (const BenchRow* x : tasks)
      for (const BenchRow::Part& p : x->parts)
        if (std::find(share.rows.begin(), share.rows.end(), p.name) == share.rows.end()) share.rows.push_back(p.name);
    if (tasks.empty()) continue;
    const double gemm_peak = precision == "bf16" ? r.bf16_peak_gflops : r.sgemm_peak_gflops;
    for (const std::string& part : share.rows) {
      std::vector<double> s, f;
      bool any_flop = false;
      for (const BenchRow* x : tasks) {
        const auto p = std::find_if(x->parts.begin(), x->parts.end(), [&](const BenchRow::Part& q) { return q.name == part; });
        const bool has = p != x->parts.end();
        s.push_back(has ? 100 * p->share : NAN);
        f.push_back(has && p->gflop > 0 && gemm_peak > 0 ? 100 * p->gflops / gemm_peak : NAN);
        any_flop |= has && p->gflop > 0;
      }
      share.values.push_back(s);
      if (any_flop) peak.rows.push_back(part), peak.values.push_back(f);
    }
    peak.cols = share.cols;
    charts.push_back(plot::render(share));
    if (!peak.rows.empty() && gemm_peak > 0) charts.push_back(plot::render(peak));
  }
  // Traced runs (--trace, --experiment): each step's time, and the instruction ceiling measured between them.
  for (const BenchRow& x : r.rows) {
    if (x.step_ms.empty()) continue;
    const std::string row = task_of(x.name) + " [" + x.precision + "]";
    // (a full-step trial's steps are its own; the personalize task's traced run is one more run of it)
    plot::LineChart steps{row + (x.ceiling_trace.empty() ? ": each step's time in the trial" : ": each step's time, one more run"),
                          "step", "ms", false, {}};
    // A trial's steps alternate without and with the change (--experiment): one line each.
    const bool trial = x.experiment_pairs > 0;
    plot::Series s{trial ? "without the change" : "ms per step", {}, {}}, with{"with the change", {}, {}, true};
    for (size_t i = 0; i < x.step_ms.size(); ++i) {
      plot::Series& to = trial && trial_step_on((int)i) ? with : s;
      to.x.push_back((double)i + 1), to.y.push_back(x.step_ms[i]);
    }
    steps.series.push_back(s);
    if (trial) steps.series.push_back(with);
    charts.push_back(plot::render(steps));
    if (x.ceiling_trace.empty()) continue;
    // (a slow stretch of steps that the ceiling does not share is the memory's)
    plot::LineChart ceiling{row + ": instruction ceiling every " + std::to_string(kTraceSteps) + " steps", "step",
                            "GFLOP/s", false, {}};
    plot::Series c{"instruction ceiling", {}, {}};
    for (size_t i = 0; i < x.ceiling_trace.size(); ++i)
      c.x.push_back((double)(i + 1) * kTraceSteps), c.y.push_back(x.ceiling_trace[i]);
    ceiling.series.push_back(c);
    charts.push_back(plot::render(ceiling));
  }
  return plot::stack(charts);
}

}  // namespace heirloom
