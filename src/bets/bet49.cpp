// Bet 49 — the adapter shootout: norm-only vs LoRA vs full fine-tune at an equal wall-clock budget per
// person (each kind trains as many steps as fit), on Bet 10's data. Held-out personal and general ppl,
// adapter bytes on disk (fp16), seconds, and which kinds are Pareto-optimal.
#include <filesystem>

#include "bets/harness.h"
#include "core/progress.h"
#include "plot/svg.h"

namespace heirloom::bets {

json bet49(Context& ctx) {
  const Protocol pr = seed_protocol(ctx);
  const double budget = ctx.opt.quick ? 0.5 : 20.0;  // seconds of training per cell
  const std::vector<AdapterKind> kinds = {AdapterKind::norm, AdapterKind::lora, AdapterKind::full};
  ctx.config = pr.to_json();
  ctx.config["budget_seconds"] = budget;
  ctx.config["kinds"] = {"norm", "lora", "full"};
  ctx.config["lora"] = {{"rank", 8}, {"alpha", 16}, {"targets", "q,k,v,o"}};
  ctx.resume();
  Progress bar((long)(kinds.size() * ctx.people.size()), "bet 49", "cell", ctx.opt.progress);
  long done = 0;
  for (AdapterKind k : kinds)
    for (const Person& p : ctx.people) {
      ctx.cell(std::string(kind_name(k)) + "/" + p.name, [&] {
        PersonalizeOptions o = pr.o;
        o.steps = 1 << 30;  // the budget decides
        o.max_seconds = budget;
        o.trajectory_every = 0;
        Adapter a;
        json r = personalize_cell(ctx, k, head(p.train, pr.train_tokens), head(p.heldout, pr.heldout_tokens), o, &a);
        const std::string tmp = ctx.partial_path() + ".adapter.gguf";
        save_adapter(a, ctx.base.config, tmp, StorageType::f16);
        r["adapter_bytes"] = std::filesystem::file_size(tmp);
        std::filesystem::remove(tmp);
        return r;
      });
      bar.update(++done, std::string(kind_name(k)) + " " + p.name);
    }
  bar.finish();

  // Per kind: means over people; a kind is Pareto-optimal when no other kind is at least as good on
  // personal ppl drop, general rise and bytes, and better on one.
  json summary = json::object();
  struct Point { double drop, rise, bytes; };
  std::vector<Point> pts;
  plot::BarChart chart{"Bet 49: held-out personal ppl drop at an equal training budget (x, log scale)", "drop (before / after)",
                       true, {}, {}, {}};
  for (const Person& p : ctx.people) chart.groups.push_back(p.name);
  for (AdapterKind k : kinds) {
    const std::string kn = kind_name(k);
    std::vector<double> drop, rise, steps, bytes;
    for (const Person& p : ctx.people) {
      const json& c = ctx.cells[kn + "/" + p.name];
      drop.push_back(c["personal_drop"]);
      rise.push_back(c["general_rise"]);
      steps.push_back(c["steps"]);
      bytes.push_back(c["adapter_bytes"]);
    }
    chart.series_labels.push_back(kn), chart.values.push_back(drop);
    summary[kn] = {{"personal_drop", spread(drop)}, {"general_rise", spread(rise)}, {"steps", spread(steps)},
                   {"adapter_bytes", bytes.front()}};
    pts.push_back({summary[kn]["personal_drop"]["mean"], summary[kn]["general_rise"]["mean"], bytes.front()});
  }
  json pareto = json::array();
  for (size_t i = 0; i < kinds.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < kinds.size(); ++j) {
      if (i == j) continue;
      const bool no_worse = pts[j].drop >= pts[i].drop && pts[j].rise <= pts[i].rise && pts[j].bytes <= pts[i].bytes;
      const bool better = pts[j].drop > pts[i].drop || pts[j].rise < pts[i].rise || pts[j].bytes < pts[i].bytes;
      dominated |= no_worse && better;
    }
    if (!dominated) pareto.push_back(kind_name(kinds[i]));
  }
  summary["pareto_optimal"] = pareto;
  const json seed = {{"claim", "norm-only Pareto-dominates full fine-tune at a 5-minute budget"}, {"pareto_optimal", {"norm"}}};
  return ctx.finish(summary, seed, plot::render(chart));
}

}  // namespace heirloom::bets
