// `heirloom overlap PARENT CHILD`: how much two adapters overlap and what each inheritance scheme is
// predicted to keep — to read before accepting an inheritance.
#include <cstdio>

#include "commands.h"
#include "heirloom/model.h"
#include "heirloom/overlap.h"

namespace heirloom::cli {

void print_overlap(const inherit::OverlapReport& r) {
  std::printf("cosine of the task vectors   %+.3f\n", r.cosine);
  std::printf("norm ratio child / parent     %.3f\n", r.norm_ratio);
  std::printf("sign conflicts (largest 10%%) %.1f %%\n", 100 * r.sign_conflict);
  std::printf("per layer:");
  for (const auto& [name, cos] : r.layer_cosine) std::printf(" %s %+.2f", name.c_str(), cos);
  std::printf("\nregime: %s (orthogonal below cosine %.2f, aligned from %.2f: the synthetic Bet 69's overlaps 0.0 / 0.5 / 0.9)\n",
              r.regime.c_str(), r.partial_from, r.aligned_from);
  std::printf("\npredicted retention (parent skill / child skill, from the synthetic Bet 69 curves):\n");
  for (const auto& [scheme, v] : r.predicted.items())
    std::printf("  %-12s %.2f / %.2f%s\n", scheme.c_str(), v["parent_ratio"].get<double>(), v["child_ratio"].get<double>(),
                scheme == "concat" ? "   (keeps both adapters: 2x memory)" : "");
}

Action add_overlap(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("overlap", "how much a parent's and a child's adapters overlap, and what inheritance would keep");
  struct Opts { std::string parent, child, base; };
  auto o = std::make_shared<Opts>();
  sub->add_option("parent", o->parent, "the parent's adapter (GGUF)")->required()->check(CLI::ExistingFile);
  sub->add_option("child", o->child, "the child's adapter (GGUF), on the same base")->required()->check(CLI::ExistingFile);
  sub->add_option("--base,--model", o->base, "their base model; default: the moe-30m base under models/ or the cache");
  add_common_flags(*sub, common);
  return [o, &common] {
    const Model base = load_model(resolve_model(o->base));
    const Adapter p = load_adapter(o->parent, base), c = load_adapter(o->child, base);
    const inherit::OverlapReport r = inherit::overlap(p, c, base.config);
    if (common.json) {
      nlohmann::json j = inherit::to_json(r);
      j["parent"] = o->parent;
      j["child"] = o->child;
      print_json(j);
      return 0;
    }
    std::printf("parent %s (%s), child %s (%s), %s adapters\n", o->parent.c_str(), p.info.owner.c_str(), o->child.c_str(),
                c.info.owner.c_str(), kind_name(p.kind));
    print_overlap(r);
    return 0;
  };
}

}  // namespace heirloom::cli
