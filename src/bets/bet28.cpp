// Bet 28 — sample efficiency: held-out personal ppl of a norm adapter (Bet 10's protocol otherwise)
// trained on 250, 500, 1k, 2k, 4k and 8k tokens of the person's text.
#include "bets/harness.h"
#include "core/progress.h"
#include "plot/svg.h"

namespace heirloom::bets {

json bet28(Context& ctx) {
  const Protocol pr = seed_protocol(ctx);
  const std::vector<int64_t> sizes = ctx.opt.quick ? std::vector<int64_t>{100, 200, 400}
                                                   : std::vector<int64_t>{250, 500, 1000, 2000, 4000, 8000};
  ctx.config = pr.to_json();
  ctx.config["kind"] = "norm";
  ctx.config["train_token_counts"] = sizes;
  ctx.resume();
  Progress bar((long)(sizes.size() * ctx.people.size()), "bet 28", "cell", ctx.opt.progress);
  long done = 0;
  plot::LineChart chart{"Bet 28: held-out personal ppl after 100 norm steps vs training tokens", "training tokens", "perplexity",
                        true, {}};
  json summary = json::object();
  std::vector<std::vector<double>> drops(sizes.size());
  for (const Person& p : ctx.people) {
    plot::Series s{p.name, {}, {}, false};
    for (size_t i = 0; i < sizes.size(); ++i) {
      // A window needs seq + 1 tokens: shorter texts train on a shorter window.
      const json c = ctx.cell(p.name + "/" + std::to_string(sizes[i]), [&] {
        PersonalizeOptions o = pr.o;
        o.seq = (int)std::min<int64_t>(o.seq, sizes[i] - 1);
        o.trajectory_every = 0;
        return personalize_cell(ctx, AdapterKind::norm, head(p.train, sizes[i]), head(p.heldout, pr.heldout_tokens), o);
      });
      s.x.push_back((double)sizes[i]);
      s.y.push_back(c["personal_ppl_after"]);
      drops[i].push_back(c["personal_drop"]);
      bar.update(++done, p.name);
    }
    chart.series.push_back(s);
  }
  bar.finish();
  for (size_t i = 0; i < sizes.size(); ++i) summary[std::to_string(sizes[i])] = {{"personal_drop", spread(drops[i])}};
  const json seed = {{"claim", "sample efficiency curve: how much personal text is enough (Bet 28; no number given in Bet 10's text)"}};
  return ctx.finish(summary, seed, plot::render(chart));
}

}  // namespace heirloom::bets
