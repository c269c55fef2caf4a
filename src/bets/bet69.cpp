// Bet 69 — generational inheritance on the seed's synthetic protocol (src/inherit/synthetic.h), every
// scheme, with the pre-registered STRICT / LENIENT / CATASTROPHIC flags.
#include "bets/harness.h"
#include "inherit/synthetic.h"
#include "plot/svg.h"

namespace heirloom::bets {

json bet69(Context& ctx) {
  inherit::SyntheticConfig c;
  if (ctx.opt.seeds > 0) c.seeds = ctx.opt.seeds;
  const std::vector<std::string>& schemes = c.schemes;
  ctx.config = c.to_json();
  const inherit::Synthetic syn = inherit::synthetic_inheritance(c);
  const json& table = syn.table;
  ctx.cells = table;
  json task_cosine = syn.task_cosine;
  // Pre-registered flags.
  auto regimes_passing = [&](const std::string& sc, double bar) {
    int n = 0;
    for (const auto& [ov, row] : table.items()) n += row[sc]["parent_ratio"] >= bar && row[sc]["child_ratio"] >= bar;
    return n;
  };
  json strict_schemes = json::array(), lenient_schemes = json::array();
  bool every_scheme_harmful = true;
  for (const std::string& sc : schemes) {
    if (regimes_passing(sc, 0.80) >= 2) strict_schemes.push_back(sc);
    if (regimes_passing(sc, 0.60) >= 2) lenient_schemes.push_back(sc);
    // Harmful: worse than the child trained from scratch on both domains, in every overlap regime.
    for (const auto& [ov, row] : table.items()) {
      const json& c = row[sc];
      const bool harmful = c["parent_q_mean"].get<double>() < c["scratch_parent_q_mean"].get<double>() &&
                           c["child_q_mean"].get<double>() < c["scratch_child_q_mean"].get<double>();
      if (!harmful) every_scheme_harmful = false;
    }
  }
  plot::BarChart chart{"Bet 69: parent and child retention by scheme (overlap 0.0 / 0.5 / 0.9)", "ratio", false, {}, {}, {}};
  for (const std::string& sc : schemes) chart.groups.push_back(sc);
  for (const auto& [ov, row] : table.items())
    for (const char* side : {"parent_ratio", "child_ratio"}) {
      std::vector<double> v;
      for (const std::string& sc : schemes) v.push_back(row[sc][side]);
      chart.series_labels.push_back(std::string(side == std::string("parent_ratio") ? "parent" : "child") + " @" + ov);
      chart.values.push_back(v);
    }
  const json summary = {{"task_vector_cosine", task_cosine}, {"strict", !strict_schemes.empty()}, {"strict_schemes", strict_schemes},
                        {"lenient", !lenient_schemes.empty()}, {"lenient_schemes", lenient_schemes},
                        {"catastrophic", every_scheme_harmful}};
  const json seed = {{"linear_average", {{"0.0", {0.71, 0.70}}, {"0.5", {0.99, 1.02}}, {"0.9", {1.10, 1.04}}}},
                     {"strict", true}, {"lenient", true}, {"catastrophic", false},
                     {"note", "the seed's table names blend_03 'heavy parent' with lambda = 0.3 child weight, "
                              "while its setup writes lambda*parent; heirloom's lambda weights the parent"}};
  return ctx.finish(summary, seed, plot::render(chart));
}

}  // namespace heirloom::bets
