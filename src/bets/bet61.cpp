// Bet 61 — the confusion matrix: each person's norm adapter scored on every person's held-out text, and
// the margin by which a text's own adapter beats the others (the seed: 5-29 %).
#include <algorithm>
#include <cmath>

#include "bets/harness.h"
#include "core/progress.h"
#include "plot/svg.h"

namespace heirloom::bets {

json bet61(Context& ctx) {
  const Protocol pr = seed_protocol(ctx);
  ctx.config = pr.to_json();
  ctx.config["kind"] = "norm";
  ctx.resume();
  const size_t P = ctx.people.size();
  Progress bar((long)P, "bet 61", "adapter", ctx.opt.progress);
  std::vector<std::vector<double>> ppl(P);  // [adapter][text]
  std::vector<double> base_ppl;
  for (size_t i = 0; i < P; ++i) {
    const json row = ctx.cell("adapter/" + ctx.people[i].name, [&] {
      PersonalizeOptions o = pr.o;
      o.trajectory_every = 0;
      Adapter a;
      json r = personalize_cell(ctx, AdapterKind::norm, head(ctx.people[i].train, pr.train_tokens),
                                head(ctx.people[i].heldout, pr.heldout_tokens), o, &a);
      json on = json::object();
      for (const Person& q : ctx.people) on[q.name] = adapter_ppl(ctx, &a, head(q.heldout, pr.heldout_tokens), o.seq);
      r["ppl_on"] = on;
      return r;
    });
    for (const Person& q : ctx.people) ppl[i].push_back(row["ppl_on"][q.name]);
    bar.update((long)i + 1, ctx.people[i].name);
  }
  bar.finish();
  const json base_row = ctx.cell("base", [&] {
    json on = json::object();
    for (const Person& q : ctx.people) on[q.name] = adapter_ppl(ctx, nullptr, head(q.heldout, pr.heldout_tokens), pr.o.seq);
    return on;
  });
  plot::Heatmap hm{"Bet 61: each adapter on each held-out text, ppl % above the text's own adapter", "adapter",
                   "held-out text", {}, {}, {}, 0};
  json margins = json::object();
  std::vector<double> best_margin, mean_margin;
  int own_wins = 0;
  for (size_t j = 0; j < P; ++j) {
    double best_other = INFINITY, sum_other = 0;
    for (size_t i = 0; i < P; ++i)
      if (i != j) best_other = std::min(best_other, ppl[i][j]), sum_other += ppl[i][j];
    const double own = ppl[j][j];
    best_margin.push_back(best_other / own - 1.0);
    mean_margin.push_back(sum_other / (P - 1) / own - 1.0);
    own_wins += own < best_other;
    margins[ctx.people[j].name] = {{"own_ppl", own}, {"best_other_ppl", best_other}, {"base_ppl", base_row[ctx.people[j].name]},
                                   {"margin_vs_best_other", best_margin.back()}, {"margin_vs_mean_other", mean_margin.back()}};
  }
  for (size_t i = 0; i < P; ++i) {
    hm.rows.push_back(ctx.people[i].name);
    hm.cols.push_back(ctx.people[i].name);
    std::vector<double> r;
    for (size_t j = 0; j < P; ++j) r.push_back(100.0 * (ppl[i][j] / ppl[j][j] - 1.0));
    hm.values.push_back(r);
  }
  const json summary = {{"own_adapter_wins", own_wins}, {"people", P}, {"margin_vs_best_other", spread(best_margin)},
                        {"margin_vs_mean_other", spread(mean_margin)}, {"per_person", margins}};
  const json seed = {{"claim", "own adapter wins by a 5-29% margin per user"}, {"margin_min", 0.05}, {"margin_max", 0.29}};
  return ctx.finish(summary, seed, plot::render(hm));
}

}  // namespace heirloom::bets
