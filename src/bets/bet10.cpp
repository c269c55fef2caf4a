// Bet 10 — a specialist per person. The seed's protocol for every person corpus: ~3,000 tokens of the
// person's text, ~500 held-out tokens, 100 AdamW steps; with the seed's primitive (full fine-tune,
// lr 5e-5) and with the production default (norm-only). Held-out personal and general perplexity
// before and after, the trajectory, wall-clock, and the pre-registered STRICT / LENIENT / CATASTROPHIC.
#include <algorithm>
#include <cmath>

#include "bets/harness.h"
#include "core/progress.h"
#include "plot/svg.h"

namespace heirloom::bets {

json bet10(Context& ctx) {
  const Protocol pr = seed_protocol(ctx);
  const PersonalizeOptions& o = pr.o;
  const std::vector<AdapterKind> kinds = {AdapterKind::full, AdapterKind::norm};
  ctx.config = pr.to_json();
  ctx.config["lr"] = {{"full", default_lr(AdapterKind::full)}, {"norm", default_lr(AdapterKind::norm)}};
  ctx.config["seed"] = o.seed;
  ctx.config["kinds"] = {"full", "norm"};
  ctx.resume();

  Progress bar((long)(kinds.size() * ctx.people.size()), "bet 10", "cell", ctx.opt.progress);
  long done = 0;
  for (AdapterKind k : kinds)
    for (const Person& p : ctx.people) {
      ctx.cell(std::string(kind_name(k)) + "/" + p.name, [&] {
        return personalize_cell(ctx, k, head(p.train, pr.train_tokens), head(p.heldout, pr.heldout_tokens), o);
      });
      bar.update(++done, std::string(kind_name(k)) + " " + p.name);
    }
  bar.finish();

  // Summary per kind: verdict counts and the spread of each measure over people.
  json summary = json::object();
  plot::BarChart drops{"Bet 10: held-out personal perplexity drop after " + std::to_string(o.steps) + " steps (x, log scale)",
                       "drop (before / after)", true, {}, {}, {}};
  plot::BarChart rises{"Bet 10: held-out general perplexity change (%)", "change (%)", false, {}, {}, {}};
  plot::LineChart traj{"Bet 10: held-out personal perplexity during full fine-tuning", "step", "perplexity", true, {}};
  for (const Person& p : ctx.people) drops.groups.push_back(p.name), rises.groups.push_back(p.name);
  for (AdapterKind k : kinds) {
    const std::string kn = kind_name(k);
    std::vector<double> drop, rise, secs;
    json counts = {{"STRICT", 0}, {"LENIENT", 0}, {"none", 0}, {"CATASTROPHIC", 0}};
    for (const Person& p : ctx.people) {
      const json& c = ctx.cells[kn + "/" + p.name];
      drop.push_back(c["personal_drop"]);
      rise.push_back(c["general_rise"]);
      secs.push_back(c["train_seconds"]);
      counts[c["verdict"].get<std::string>()] = counts[c["verdict"].get<std::string>()].get<int>() + 1;
      if (k == AdapterKind::full) {
        plot::Series s{p.name, {}, {}, false};
        for (const auto& pt : c["trajectory"]) s.x.push_back(pt[0]), s.y.push_back(pt[1]);
        traj.series.push_back(s);
      }
    }
    std::vector<double> rise_pct;
    for (double r : rise) rise_pct.push_back(100 * r);
    drops.series_labels.push_back(kn), drops.values.push_back(drop);
    rises.series_labels.push_back(kn), rises.values.push_back(rise_pct);
    std::vector<double> sorted = drop;
    std::sort(sorted.begin(), sorted.end());
    summary[kn] = {{"verdicts", counts},
                   {"people", ctx.people.size()},
                   {"personal_drop", spread(drop)},
                   {"personal_drop_median", sorted[sorted.size() / 2]},
                   {"general_rise", spread(rise)},
                   {"train_seconds", spread(secs)},
                   {"strict_all", counts["STRICT"].get<int>() == (int)ctx.people.size()},
                   {"catastrophic_any", counts["CATASTROPHIC"].get<int>() > 0}};
  }
  const json seed = {{"primitive", "full fine-tune, AdamW lr 5e-5, 100 steps, ~3,000 personal tokens, ~500 held-out tokens"},
                     {"personal_ppl_before", 114}, {"personal_ppl_after", 1.04}, {"personal_drop", 110},
                     {"general_ppl_before", 89}, {"general_ppl_after", 111}, {"general_rise", 0.25},
                     {"seconds", 5.6}, {"hardware", "M1 Max GPU (MPS)"}, {"verdict", "STRICT"}, {"people", 1}};
  return ctx.finish(summary, seed, plot::stack({plot::render(drops), plot::render(rises), plot::render(traj)}));
}

}  // namespace heirloom::bets
