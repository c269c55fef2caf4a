// Bet 69 down a family line: a parent's norm adapter (voice 0) inherited by a child (voice 1), whose heir
// is inherited by a grandchild (voice 2), and so on, each generation training its own adapter on its own
// voice for the child's budget and inheriting by one scheme. After each hop: how much of the first
// generation's skill survives (ppl of the pure first adapter over the heir's on voice 0's held-out text,
// and the share of its log-ppl gain kept), and how the heir does on the newest generation's own text.
#include <cmath>

#include "bets/heirs.h"
#include "core/progress.h"
#include "plot/svg.h"

namespace heirloom::bets {

namespace {

std::vector<const Person*> family(const Context& ctx, int generations) {
  std::vector<const Person*> out;
  for (const char* n : {"bierce", "kjv", "jargon", "python-asyncio"})
    for (const Person& p : ctx.people)
      if (p.name == n) out.push_back(&p);
  if ((int)out.size() < generations) {
    out.clear();
    for (int i = 0; i < generations && i < (int)ctx.people.size(); ++i) out.push_back(&ctx.people[i]);
  }
  out.resize(std::min<size_t>(out.size(), generations));
  return out;
}


}  // namespace

json bet69_chain(Context& ctx) {
  const HeirProtocol p = heir_protocol(ctx);
  const std::vector<std::string> schemes = heir_schemes();
  const int generations = ctx.opt.quick ? 3 : 4, seeds = ctx.opt.seeds > 0 ? ctx.opt.seeds : ctx.opt.quick ? 1 : 2;
  const std::vector<const Person*> line = family(ctx, generations);
  ctx.config = p.to_json();
  ctx.config["generations"] = (int)line.size();
  ctx.config["seeds"] = seeds;
  ctx.config["schemes"] = schemes;
  for (const Person* q : line) ctx.config["voices"].push_back(q->name);
  ctx.resume();
  Progress bar(seeds, "bet 69-chain", "seed", ctx.opt.progress);
  std::vector<json> runs;
  for (int s = 1; s <= seeds; ++s) {
    runs.push_back(ctx.cell("seed/" + std::to_string(s), [&] {
      const uint64_t seed = (uint64_t)s * 211;
      std::vector<std::vector<int32_t>> train, held;
      for (const Person* q : line) train.push_back(head(q->train, p.train_tokens)), held.push_back(head(q->heldout, p.heldout_tokens));
      // Generation 0 trains as long as a parent; every later generation for a child's budget.
      std::vector<Adapter> own;
      for (size_t g = 0; g < line.size(); ++g) own.push_back(train_norm(ctx, p, train[g], g == 0 ? p.long_steps : p.short_steps, seed + g));
      const double base0 = adapter_ppl(ctx, nullptr, held[0], p.seq), pure0 = adapter_ppl(ctx, &own[0], held[0], p.seq);
      json r = {{"first_generation", {{"base_ppl", base0}, {"own_ppl", pure0}}}, {"schemes", json::object()}};
      for (const std::string& sc : schemes) {
        Adapter heir = own[0];
        json hops = json::array();
        for (size_t g = 1; g < line.size(); ++g) {
          heir = heir_by(ctx, p, heir, own[g], sc, train[g], seed + 17 * g);
          const double on0 = adapter_ppl(ctx, &heir, held[0], p.seq), on_g = adapter_ppl(ctx, &heir, held[g], p.seq);
          const double own_g = adapter_ppl(ctx, &own[g], held[g], p.seq), base_g = adapter_ppl(ctx, nullptr, held[g], p.seq);
          hops.push_back({{"generation", g}, {"voice", line[g]->name}, {"first_voice_ppl", on0}, {"first_ratio", pure0 / on0},
                          {"first_gain_kept", inherit::gain_kept(base0, pure0, on0)}, {"own_voice_ppl", on_g}, {"own_ratio", own_g / on_g},
                          {"own_gain_kept", inherit::gain_kept(base_g, own_g, on_g)}});
        }
        r["schemes"][sc] = hops;
      }
      return r;
    }));
    bar.update(s, "seed " + std::to_string(s));
  }
  bar.finish();

  plot::LineChart chart{"Bet 69-chain: the first generation's log-ppl gain kept after each hop", "generation", "gain kept", false, {}};
  json table = json::object();
  for (const std::string& sc : schemes) {
    plot::Series line_s{sc, {0}, {1.0}, sc == "concat"};
    json rows = json::array();
    for (size_t h = 0; h + 1 < line.size(); ++h) {
      double fr = 0, fg = 0, orr = 0, og = 0;
      for (const json& run : runs) {
        const json& hop = run["schemes"][sc][h];
        fr += hop["first_ratio"].get<double>(), fg += hop["first_gain_kept"].get<double>();
        orr += hop["own_ratio"].get<double>(), og += hop["own_gain_kept"].get<double>();
      }
      const double n = (double)runs.size();
      rows.push_back({{"generation", h + 1}, {"first_ratio", fr / n}, {"first_gain_kept", fg / n}, {"own_ratio", orr / n},
                      {"own_gain_kept", og / n}});
      line_s.x.push_back((double)h + 1);
      line_s.y.push_back(fg / n);
    }
    table[sc] = rows;
    chart.series.push_back(line_s);
  }
  const json summary = {{"table", table},
                        {"note", "first_* = the first generation's voice; own_* = the newest generation's voice against its own adapter"}};
  const json seed = {{"claim", "not measured by the seed: its Bet 69 stops at one generation"}};
  return ctx.finish(summary, seed, plot::render(chart));
}

}  // namespace heirloom::bets
