// Bet 43 — replication of Bet 10: every person, several seeds, three disjoint held-out texts each;
// how many runs pass STRICT (the seed: 15 of 15 for its one user).
#include <algorithm>
#include <cmath>

#include "bets/harness.h"
#include "core/progress.h"
#include "plot/svg.h"

namespace heirloom::bets {

json bet43(Context& ctx) {
  const Protocol pr = seed_protocol(ctx);
  const std::vector<AdapterKind> kinds = {AdapterKind::full, AdapterKind::norm};
  const int seeds = ctx.opt.seeds > 0 ? ctx.opt.seeds : ctx.opt.quick ? 2 : 5, texts = 3;
  ctx.config = pr.to_json();
  ctx.config["seeds"] = seeds;
  ctx.config["heldout_texts"] = texts;
  ctx.config["kinds"] = {"full", "norm"};
  ctx.resume();
  Progress bar((long)(kinds.size() * ctx.people.size() * seeds), "bet 43", "cell", ctx.opt.progress);
  long done = 0;
  json summary = json::object();
  plot::BarChart chart{"Bet 43: STRICT passes per person (of " + std::to_string(seeds * texts) + ")", "STRICT passes", false, {}, {}, {}};
  for (const Person& p : ctx.people) chart.groups.push_back(p.name);
  for (AdapterKind k : kinds) {
    const std::string kn = kind_name(k);
    int strict_total = 0, cells_total = 0;
    std::vector<double> per_person;
    for (const Person& p : ctx.people) {
      int strict = 0;
      for (int s = 1; s <= seeds; ++s) {
        const json c = ctx.cell(kn + "/" + p.name + "/seed" + std::to_string(s), [&] {
          PersonalizeOptions o = pr.o;
          o.seed = (uint64_t)s;
          o.trajectory_every = 0;
          Adapter a;
          json r = personalize_cell(ctx, k, head(p.train, pr.train_tokens), heldout_slice(ctx.base, p, 0, pr.heldout_tokens), o, &a);
          json list = json::array();
          for (int t = 0; t < texts; ++t) {
            const auto held = heldout_slice(ctx.base, p, t, pr.heldout_tokens);
            const double before = t == 0 ? r["personal_ppl_before"].get<double>() : adapter_ppl(ctx, nullptr, held, o.seq);
            const double after = t == 0 ? r["personal_ppl_after"].get<double>() : adapter_ppl(ctx, &a, held, o.seq);
            list.push_back({{"personal_ppl_before", before}, {"personal_ppl_after", after},
                            {"verdict", bet10_verdict(before, after, r["general_ppl_before"], r["general_ppl_after"])}});
          }
          r["texts"] = list;
          return r;
        });
        for (const auto& t : c["texts"]) strict += t["verdict"] == "STRICT";
        bar.update(++done, kn + " " + p.name);
      }
      per_person.push_back(strict);
      strict_total += strict;
      cells_total += seeds * texts;
    }
    chart.series_labels.push_back(kn);
    chart.values.push_back(per_person);
    summary[kn] = {{"strict", strict_total}, {"runs", cells_total}, {"strict_per_person", spread(per_person)},
                   {"all_strict", strict_total == cells_total}};
  }
  bar.finish();
  const json seed = {{"claim", "STRICT 15/15: 5 seeds x 3 held-out texts, one user, full fine-tune"}, {"strict", 15}, {"runs", 15}};
  return ctx.finish(summary, seed, plot::render(chart));
}

}  // namespace heirloom::bets
