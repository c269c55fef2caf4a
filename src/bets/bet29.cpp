// Bet 29 — sequential personalisation: the person's text cut into 30 "days"; each day the same norm
// adapter is retrained (Bet 10's 100 steps, fresh AdamW state) on that day's text. Per day: general ppl
// (drift from the base), and personal ppl on the first day's and that day's held-out text.
#include "bets/harness.h"
#include "core/progress.h"
#include "plot/svg.h"

namespace heirloom::bets {

json bet29(Context& ctx) {
  const Protocol pr = seed_protocol(ctx);
  const int days = ctx.opt.quick ? 3 : 30;
  const int64_t day_tokens = ctx.opt.quick ? 300 : 800;  // of which the last 15% are the day's held-out text
  ctx.config = pr.to_json();
  ctx.config["kind"] = "norm";
  ctx.config["days"] = days;
  ctx.config["day_tokens"] = day_tokens;
  ctx.resume();
  Progress bar((long)(days * ctx.people.size()), "bet 29", "day", ctx.opt.progress);
  long done = 0;
  plot::LineChart drift{"Bet 29: held-out general ppl after each day's retraining", "day", "general perplexity", false, {}};
  plot::LineChart first{"Bet 29: held-out personal ppl on day 1's text", "day", "perplexity", true, {}};
  json summary = json::object();
  std::vector<double> drift_last, first_change;
  for (const Person& p : ctx.people) {
    const int64_t usable = std::min<int64_t>((int64_t)p.train.size() - 1, day_tokens * days) / days;
    auto day_text = [&](int d, bool held) {
      const int64_t begin = 1 + d * usable, cut = begin + usable * 85 / 100, end = begin + usable;
      std::vector<int32_t> t{ctx.base.vocab.bos_id};
      t.insert(t.end(), p.train.begin() + (held ? cut : begin), p.train.begin() + (held ? end : cut));
      return t;
    };
    // A day is one cell; the adapter it ends with is kept in the cell so a resumed run continues from it.
    Adapter a = make_adapter(ctx.base, AdapterKind::norm);
    plot::Series sd{p.name, {}, {}, false}, sf{p.name, {}, {}, false};
    double general_base = 0, first_before = 0, first_last = 0, general_last = 0;
    for (int d = 0; d < days; ++d) {
      const json c = ctx.cell(p.name + "/day" + std::to_string(d + 1), [&] {
        PersonalizeOptions o = pr.o;
        o.seq = (int)std::min<int64_t>(o.seq, usable * 85 / 100 - 1);
        o.trajectory_every = 0;
        o.seed = (uint64_t)d + 1;
        PersonalizeReport r = personalize_tokens(ctx.base, a, day_text(d, false), day_text(d, true), ctx.general, o);
        return json{{"general_ppl_base", d == 0 ? r.general_before : 0.0}, {"general_ppl", r.general_after},
                    {"today_ppl_before", r.personal_before}, {"today_ppl", r.personal_after},
                    {"first_day_ppl", adapter_ppl(ctx, &a, day_text(0, true), o.seq)},
                    {"first_day_ppl_base", d == 0 ? r.personal_before : 0.0},
                    {"adapter", a.params}, {"train_seconds", r.train_seconds}};
      });
      a.params = c["adapter"].get<std::vector<float>>();
      if (d == 0) general_base = c["general_ppl_base"], first_before = c["first_day_ppl_base"];
      sd.x.push_back(d + 1), sd.y.push_back(c["general_ppl"]);
      sf.x.push_back(d + 1), sf.y.push_back(c["first_day_ppl"]);
      first_last = c["first_day_ppl"];
      general_last = c["general_ppl"];
      bar.update(++done, p.name);
    }
    drift.series.push_back(sd);
    first.series.push_back(sf);
    drift_last.push_back(general_last / general_base - 1.0);
    first_change.push_back(first_last / first_before);
    summary[p.name] = {{"general_ppl_base", general_base}, {"general_ppl_last_day", general_last},
                       {"first_day_ppl_base", first_before}, {"first_day_ppl_last_day", first_last}};
  }
  bar.finish();
  for (auto& [key, c] : ctx.cells.items()) c.erase("adapter");  // kept for resuming only, not as a result
  summary["general_drift"] = spread(drift_last);
  summary["first_day_ppl_last_over_base"] = spread(first_change);
  const json seed = {{"claim", "sequential personalisation: does daily retraining degrade general ability (partial answer in Bet 29)"}};
  return ctx.finish(summary, seed, plot::stack({plot::render(drift), plot::render(first)}));
}

}  // namespace heirloom::bets
