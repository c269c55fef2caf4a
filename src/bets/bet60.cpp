// Bet 60 — the noise-floor negative control: the same adapter trained on uniformly random tokens instead
// of the person's text, both scored on the person's held-out text.
#include <algorithm>
#include <cmath>

#include "bets/harness.h"
#include "core/progress.h"
#include "core/rng.h"
#include "plot/svg.h"

namespace heirloom::bets {

json bet60(Context& ctx) {
  const Protocol pr = seed_protocol(ctx);
  const std::vector<AdapterKind> kinds = {AdapterKind::full, AdapterKind::norm};
  ctx.config = pr.to_json();
  ctx.config["kinds"] = {"full", "norm"};
  ctx.config["random"] = "uniform over the vocabulary, same token count, BOS first";
  ctx.resume();
  Progress bar((long)(kinds.size() * ctx.people.size() * 2), "bet 60", "cell", ctx.opt.progress);
  long done = 0;
  json summary = json::object();
  plot::BarChart chart{"Bet 60: held-out personal ppl after training on the person's text vs on random tokens", "perplexity",
                       true, {}, {}, {}};
  for (const Person& p : ctx.people) chart.groups.push_back(p.name);
  for (AdapterKind k : kinds) {
    const std::string kn = kind_name(k);
    std::vector<double> ratio, real_after, random_after;
    int real_wins = 0;
    for (size_t i = 0; i < ctx.people.size(); ++i) {
      const Person& p = ctx.people[i];
      const auto held = head(p.heldout, pr.heldout_tokens);
      const json real = ctx.cell(kn + "/" + p.name + "/real", [&] {
        return personalize_cell(ctx, k, head(p.train, pr.train_tokens), held, pr.o);
      });
      bar.update(++done);
      const json rnd = ctx.cell(kn + "/" + p.name + "/random", [&] {
        Rng rng(1000 + i);
        std::vector<int32_t> noise{ctx.base.vocab.bos_id};
        for (int64_t t = 1; t < pr.train_tokens; ++t) noise.push_back((int32_t)rng.below(ctx.base.config.n_vocab));
        return personalize_cell(ctx, k, noise, held, pr.o);
      });
      bar.update(++done, kn + " " + p.name);
      real_after.push_back(real["personal_ppl_after"]);
      random_after.push_back(rnd["personal_ppl_after"]);
      ratio.push_back(random_after.back() / real_after.back());
      real_wins += ratio.back() > 1.0;
    }
    chart.series_labels.push_back(kn + " real"), chart.values.push_back(real_after);
    chart.series_labels.push_back(kn + " random"), chart.values.push_back(random_after);
    summary[kn] = {{"real_wins", real_wins}, {"people", ctx.people.size()},
                   {"random_over_real_ppl", spread(ratio)}};
  }
  bar.finish();
  const json seed = {{"claim", "random text beat real text for the programmer user; real won 2 of 3 users by 1.10-1.36x"},
                     {"real_wins", 2}, {"people", 3}, {"margin_min", 1.10}, {"margin_max", 1.36}};
  return ctx.finish(summary, seed, plot::render(chart));
}

}  // namespace heirloom::bets
