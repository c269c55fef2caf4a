// Bet 69 on real adapters (what the seed says it does not claim): a parent's norm adapter trained on one
// voice; a child whose text is 0 %, 50 % or 90 % that voice (the rest another voice); every scheme; quality
// is held-out perplexity on each domain. parent_ratio = ppl(pure parent) / ppl(heir) on the parent's
// held-out text; child_ratio = ppl(big child) / ppl(heir) on the child's (big child: the child's text
// trained as long as the parent). Ratios of perplexities are gentle, so the share of the log-ppl gain over
// the base that the heir keeps is reported beside them. The overlap report's prediction is recorded
// with each cell, to check the regime thresholds on real adapters.
#include <cmath>

#include "bets/heirs.h"
#include "core/progress.h"
#include "plot/svg.h"

namespace heirloom::bets {

namespace {

// The (parent voice, other voice) pairs: two contrasting pairs of the built corpora when present.
std::vector<std::pair<std::string, std::string>> voice_pairs(const Context& ctx) {
  auto has = [&](const std::string& n) {
    for (const Person& p : ctx.people)
      if (p.name == n) return true;
    return false;
  };
  std::vector<std::pair<std::string, std::string>> out;
  for (auto [a, b] : {std::pair<std::string, std::string>{"bierce", "kjv"}, {"python-asyncio", "jargon"}})
    if (has(a) && has(b)) out.push_back({a, b});
  if (out.empty()) out.push_back({ctx.people[0].name, ctx.people[1].name});
  if (ctx.opt.quick) out.resize(1);
  return out;
}

const Person& person(const Context& ctx, const std::string& name) {
  for (const Person& p : ctx.people)
    if (p.name == name) return p;
  return ctx.people.front();
}


}  // namespace

json bet69_real(Context& ctx) {
  const HeirProtocol p = heir_protocol(ctx);
  const std::vector<std::string> schemes = heir_schemes();
  const std::vector<double> overlaps{0.0, 0.5, 0.9};
  const int seeds = ctx.opt.seeds > 0 ? ctx.opt.seeds : ctx.opt.quick ? 1 : 2;
  const auto pairs = voice_pairs(ctx);
  ctx.config = p.to_json();
  ctx.config["overlaps"] = overlaps;
  ctx.config["seeds"] = seeds;
  ctx.config["schemes"] = schemes;
  for (const auto& [a, b] : pairs) ctx.config["pairs"].push_back({a, b});
  ctx.config["child_text"] = "64-token chunks interleaved: the overlap share from the parent's voice (text the parent never saw), the rest from the other voice";
  ctx.resume();
  Progress bar((long)(pairs.size() * overlaps.size() * seeds), "bet 69-real", "cell", ctx.opt.progress);
  long done = 0;
  json per_overlap = json::object();  // ov → scheme → lists over cells
  for (const auto& [pv, ov_name] : pairs)
    for (double ov : overlaps)
      for (int s = 1; s <= seeds; ++s) {
        const std::string ovs = std::to_string(ov).substr(0, 3);
        const json c = ctx.cell(pv + ">" + ov_name + "/" + ovs + "/" + std::to_string(s), [&] {
          const Person &P = person(ctx, pv), &O = person(ctx, ov_name);
          const std::vector<int32_t> parent_train = head(P.train, p.train_tokens);
          const std::vector<int32_t> child_train = mix(ctx, P.train, p.train_tokens, O.train, 0, ov, p.train_tokens);
          const std::vector<int32_t> parent_held = head(P.heldout, p.heldout_tokens);
          const std::vector<int32_t> child_held = mix(ctx, P.heldout, p.heldout_tokens, O.heldout, 0, ov, p.heldout_tokens);
          const uint64_t seed = (uint64_t)s * 101;
          const Adapter parent = train_norm(ctx, p, parent_train, p.long_steps, seed);
          const Adapter child = train_norm(ctx, p, child_train, p.short_steps, seed + 1);
          const Adapter big = train_norm(ctx, p, child_train, p.long_steps, seed + 2);
          const inherit::OverlapReport rep = inherit::overlap(parent, child, ctx.base.config);
          auto both = [&](const Adapter* a) {
            return json{{"parent_domain_ppl", adapter_ppl(ctx, a, parent_held, p.seq)}, {"child_domain_ppl", adapter_ppl(ctx, a, child_held, p.seq)}};
          };
          json r = {{"cosine", rep.cosine}, {"regime", rep.regime}, {"base", both(nullptr)}, {"parent", both(&parent)},
                    {"child", both(&child)}, {"big_child", both(&big)}};
          const double base_p = r["base"]["parent_domain_ppl"], base_c = r["base"]["child_domain_ppl"];
          const double pure_p = r["parent"]["parent_domain_ppl"], pure_c = r["big_child"]["child_domain_ppl"];
          for (const std::string& sc : schemes) {
            const Adapter heir = heir_by(ctx, p, parent, child, sc, child_train, seed + 3);
            json h = both(&heir);
            const double hp = h["parent_domain_ppl"], hc = h["child_domain_ppl"];
            h["parent_ratio"] = pure_p / hp;
            h["child_ratio"] = pure_c / hc;
            h["parent_gain_kept"] = inherit::gain_kept(base_p, pure_p, hp);
            h["child_gain_kept"] = inherit::gain_kept(base_c, pure_c, hc);
            h["predicted"] = rep.predicted.contains(sc) ? rep.predicted[sc] : json();
            r["schemes"][sc] = h;
          }
          return r;
        });
        for (const std::string& sc : schemes) {
          json& agg = per_overlap[ovs][sc];
          for (const char* k : {"parent_ratio", "child_ratio", "parent_gain_kept", "child_gain_kept"}) agg[k].push_back(c["schemes"][sc][k]);
          agg["predicted_parent_ratio"].push_back(c["schemes"][sc]["predicted"]["parent_ratio"]);
          agg["predicted_child_ratio"].push_back(c["schemes"][sc]["predicted"]["child_ratio"]);
          // Harmful: worse than the child's own adapter (trained from scratch) on both domains.
          agg["harmful"].push_back(c["schemes"][sc]["parent_domain_ppl"].get<double>() > c["child"]["parent_domain_ppl"].get<double>() &&
                                   c["schemes"][sc]["child_domain_ppl"].get<double>() > c["child"]["child_domain_ppl"].get<double>());
        }
        per_overlap[ovs]["_cosine"].push_back(c["cosine"]);
        per_overlap[ovs]["_regime"].push_back(c["regime"]);
        bar.update(++done, pv + " " + ovs);
      }
  bar.finish();

  auto mean = [](const json& v) {
    double s = 0;
    for (const auto& x : v) s += x.get<double>();
    return v.empty() ? 0.0 : s / (double)v.size();
  };
  json table = json::object(), strict = json::array(), lenient = json::array(), strict_gain = json::array();
  bool every_scheme_harmful = true;
  for (const std::string& sc : schemes) {
    int pass8 = 0, pass6 = 0, pass8_gain = 0;
    for (const auto& [ovs, row] : per_overlap.items()) {
      const json& a = row[sc];
      const double pr = mean(a["parent_ratio"]), cr = mean(a["child_ratio"]), pg = mean(a["parent_gain_kept"]), cg = mean(a["child_gain_kept"]);
      table[ovs][sc] = {{"parent_ratio", pr}, {"child_ratio", cr}, {"parent_gain_kept", pg}, {"child_gain_kept", cg},
                        {"predicted_parent_ratio", mean(a["predicted_parent_ratio"])},
                        {"predicted_child_ratio", mean(a["predicted_child_ratio"])}};
      pass8 += pr >= 0.8 && cr >= 0.8;
      pass6 += pr >= 0.6 && cr >= 0.6;
      pass8_gain += pg >= 0.8 && cg >= 0.8;
      for (const auto& h : a["harmful"])
        if (!h.get<bool>()) every_scheme_harmful = false;
    }
    if (pass8 >= 2) strict.push_back(sc);
    if (pass6 >= 2) lenient.push_back(sc);
    if (pass8_gain >= 2) strict_gain.push_back(sc);
  }
  json cosines = json::object(), regimes = json::object();
  for (const auto& [ovs, row] : per_overlap.items()) cosines[ovs] = mean(row["_cosine"]), regimes[ovs] = row["_regime"];

  plot::BarChart chart{"Bet 69-real: share of each domain's log-ppl gain the heir keeps (overlap 0.0 / 0.5 / 0.9)", "gain kept", false, {}, {}, {}};
  for (const std::string& sc : schemes) chart.groups.push_back(sc);
  for (const auto& [ovs, row] : table.items())
    for (const char* side : {"parent_gain_kept", "child_gain_kept"}) {
      std::vector<double> v;
      for (const std::string& sc : schemes) v.push_back(row[sc][side]);
      chart.series_labels.push_back(std::string(side[0] == 'p' ? "parent" : "child") + " @" + ovs);
      chart.values.push_back(v);
    }
  const json summary = {{"table", table}, {"task_vector_cosine", cosines}, {"regime_per_cell", regimes},
                        {"strict", !strict.empty()}, {"strict_schemes", strict}, {"lenient", !lenient.empty()},
                        {"lenient_schemes", lenient}, {"catastrophic", every_scheme_harmful},
                        {"strict_by_gain_kept_schemes", strict_gain},
                        {"flags_note", "STRICT / LENIENT use the perplexity ratios, as the bet's protocol defines them; "
                                       "strict_by_gain_kept applies the 0.80 bar to the share of the log-ppl gain kept instead"}};
  const json seed = {{"claim", "not claimed by the seed: its Bet 69 is synthetic and says real adapters were not tested"},
                     {"synthetic_linear_average", {{"0.0", {0.71, 0.70}}, {"0.5", {0.99, 1.02}}, {"0.9", {1.10, 1.04}}}}};
  return ctx.finish(summary, seed, plot::render(chart));
}

}  // namespace heirloom::bets
