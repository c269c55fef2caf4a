// Making an heir. See include/heirloom/inherit.h.
#include "heirloom/inherit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "adapter/lora_layout.h"
#include "heirloom/error.h"
#include "heirloom/eval.h"
#include "inherit/lora_refactor.h"
#include "inherit/merge.h"

namespace heirloom::inherit {

namespace {

constexpr const char* kSchemes = "linear, blend:LAMBDA, taskvec:ALPHA, distill, concat, ties:DENSITY, dare:DENSITY";

bool takes_arg(const std::string& name) { return name == "blend" || name == "taskvec" || name == "ties" || name == "dare"; }

std::string number(float x) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", x);
  return b;
}

void check_compatible(const Adapter& parent, const Adapter& child) {
  if (!parent.info.base_fingerprint.empty() && !child.info.base_fingerprint.empty() &&
      parent.info.base_fingerprint != child.info.base_fingerprint)
    throw Error("the parent's adapter belongs to the base " + parent.info.base_fingerprint + " and the child's to " +
                    child.info.base_fingerprint,
                "inheritance merges deltas from one base; train the child's adapter on the parent's base");
  if (parent.kind != child.kind)
    throw Error(std::string("the parent's adapter is a ") + kind_name(parent.kind) + " adapter and the child's a " +
                    kind_name(child.kind) + " adapter",
                std::string("train the child's adapter with --kind ") + kind_name(parent.kind));
  if (parent.kind == AdapterKind::lora && parent.lora.targets != child.lora.targets)
    throw Error("the LoRA adapters adapt different projections", "train the child's adapter with the parent's --targets");
  if (!parent.routed() && !child.routed() && parent.kind != AdapterKind::lora && parent.params.size() != child.params.size())
    throw Error("the adapters have different shapes (" + std::to_string(parent.params.size()) + " and " +
                std::to_string(child.params.size()) + " values)");
  if (child.routed()) throw Error("the child's adapter is a concatenated heir", "give the child's own adapter, trained on their text");
}

merge::Vec merged(const merge::Vec& p, const merge::Vec& c, const Scheme& s, uint64_t seed) {
  if (s.name == "linear") return merge::linear({&p, &c});
  if (s.name == "blend") return merge::blend(p, c, s.arg);
  if (s.name == "taskvec") return merge::task_vector(p, c, s.arg);
  if (s.name == "ties") return merge::ties({&p, &c}, s.arg);
  if (s.name == "dare") return merge::dare({&p, &c}, s.arg, seed);
  throw Error("scheme '" + s.name + "' is not a merge of two vectors");
}

// A LoRA heir: the schemes applied to the products, each block factored back to rank R_parent + R_child.
Adapter merge_lora(const Adapter& parent, const Adapter& child, const Scheme& s, const ModelConfig& c, double* energy,
                   uint64_t seed) {
  const TaskVector tp = task_vector_of(parent, c), tc = task_vector_of(child, c);
  if (tp.v.size() != tc.v.size()) throw Error("the LoRA adapters have different shapes");
  const merge::Vec m = merged(tp.v, tc.v, s, seed);
  Adapter heir;
  heir.kind = AdapterKind::lora;
  heir.lora = parent.lora;
  heir.lora.rank = std::min(256, parent.lora.rank + child.lora.rank);
  heir.lora.alpha = parent.lora.scale() * (float)heir.lora.rank;  // the parent's scale
  heir.params.assign(adapter_size(c, AdapterKind::lora, heir.lora), 0.f);
  const int k = heir.lora.rank;
  const float scale = heir.lora.scale();
  double kept = 0, total = 0;
  size_t part = 0;
  for (const LoraBlock& b : lora_blocks(c, heir.lora)) {
    const int64_t at = tp.parts[part++].second.first;
    for (int e = 0; e < b.copies; ++e) {
      const float* dw = m.data() + at + (int64_t)e * b.out * b.in;
      double t = 0;
      for (int64_t i = 0; i < (int64_t)b.out * b.in; ++i) t += (double)dw[i] * dw[i];
      const double share = factor_low_rank(dw, b.out, b.in, k, scale, heir.params.data() + b.b_offset + (int64_t)e * b.out * k,
                                            heir.params.data() + b.a_offset + (int64_t)e * k * b.in, seed + (uint64_t)part * 131 + e);
      kept += share * t;
      total += t;
    }
  }
  if (energy) *energy = total > 0 ? kept / total : 1.0;
  return heir;
}

}  // namespace

std::string Scheme::spec() const { return takes_arg(name) ? name + ":" + number(arg) : name; }

std::string Scheme::describe() const {
  if (name == "blend") return "lambda = " + number(arg) + " (the parent's weight: lambda*parent + (1-lambda)*child)";
  if (name == "taskvec") return "alpha = " + number(arg) + " (parent + alpha*(child - parent))";
  if (name == "ties") return "density = " + number(arg) + " (largest entries kept per adapter; signs elected)";
  if (name == "dare") return "density = " + number(arg) + " (entries kept at random, rescaled by 1/density)";
  if (name == "linear") return "the mean of parent and child";
  if (name == "distill") return "the parent's adapter trained further on the child's text";
  if (name == "concat") return "both adapters kept; each input routed to the one with lower perplexity on the prompt so far";
  return name;
}

Scheme parse_scheme(const std::string& s) {
  const size_t colon = s.find(':');
  Scheme r{s.substr(0, colon), 0.f};
  const bool known = r.name == "linear" || r.name == "distill" || r.name == "concat" || takes_arg(r.name);
  if (!known) throw Error("unknown merge scheme '" + s + "'", std::string("the schemes are auto, ") + kSchemes);
  if (colon == std::string::npos) {
    if (r.name == "blend") r.arg = 0.5f;
    if (r.name == "taskvec") r.arg = 1.0f;
    if (r.name == "ties") r.arg = 0.2f;
    if (r.name == "dare") r.arg = 0.5f;
    return r;
  }
  if (!takes_arg(r.name)) throw Error("the scheme '" + r.name + "' takes no parameter (found '" + s + "')");
  char* end = nullptr;
  r.arg = std::strtof(s.c_str() + colon + 1, &end);
  if (end == s.c_str() + colon + 1 || *end != '\0') throw Error("'" + s + "': the parameter after ':' must be a number");
  if ((r.name == "ties" || r.name == "dare") && !(r.arg > 0.f && r.arg <= 1.f))
    throw Error("'" + s + "': the density must be in (0, 1]");
  return r;
}

Scheme recommend(const OverlapReport& r, bool keep_both, std::string* why) {
  auto say = [&](const std::string& s) {
    if (why) *why = s;
  };
  if (keep_both) {
    say("you asked to keep both skills: concatenation keeps both adapters whole and routes each input (2x memory)");
    return {"concat", 0};
  }
  if (r.regime == "orthogonal") {
    say("the two adapters point in unrelated directions: any single merged adapter loses about a third of each skill, "
        "so concatenation keeps both and routes each input (2x memory)");
    return {"concat", 0};
  }
  std::string best;
  double best_floor = -1e9;
  for (const auto& [scheme, v] : r.predicted.items()) {
    if (scheme == "concat") continue;
    const double floor = std::min(v["parent_ratio"].get<double>(), v["child_ratio"].get<double>());
    if (floor > best_floor) best_floor = floor, best = scheme;
  }
  char b[256];
  std::snprintf(b, sizeof b, "the adapters are in the %s regime: %s is predicted to keep at least %.0f %% of both skills in one adapter",
                r.regime.c_str(), best.c_str(), 100 * best_floor);
  say(b);
  return parse_scheme(best);
}

Lineage lineage_of(const Adapter& parent, const Adapter& child, const Scheme& scheme, const OverlapReport& overlap) {
  Lineage l;
  l.generation = parent.lineage.generation + 1;
  l.parent_generation = parent.lineage.generation;
  l.scheme = scheme.spec();
  l.params = scheme.describe();
  l.parent_sha256 = parent.info.sha256;
  l.child_sha256 = child.info.sha256;
  l.parent_owner = parent.info.owner;
  l.child_owner = child.info.owner;
  l.overlap_cosine = overlap.cosine;
  l.regime = overlap.regime;
  return l;
}

Adapter merge_heir(const Adapter& parent, const Adapter& child, const Scheme& scheme, const ModelConfig& c,
                   const OverlapReport& overlap, double* lora_energy_kept, uint64_t seed) {
  check_compatible(parent, child);
  if (scheme.name == "distill") throw Error("distillation trains on the child's text; it is not a merge");
  if (lora_energy_kept) *lora_energy_kept = 1.0;
  Adapter heir;
  if (scheme.name == "concat") {
    heir.kind = parent.kind;
    heir.lora = parent.lora;
    // A concatenated parent passes its branches on: the heir routes over every generation kept.
    auto keep = [&](const Adapter& b) {
      Adapter& br = heir.branches.emplace_back();
      br.kind = b.kind, br.lora = b.lora, br.info = b.info, br.params = b.params;
    };
    for (const Adapter* a : {&parent, &child}) {
      if (!a->routed()) keep(*a);
      for (const Adapter& b : a->branches) keep(b);
    }
    for (const Adapter& b : heir.branches)
      if (b.kind == AdapterKind::lora && b.lora.rank != heir.lora.rank)
        throw Error("concatenation keeps LoRA adapters of one rank; these have ranks " + std::to_string(heir.lora.rank) +
                    " and " + std::to_string(b.lora.rank));
  } else {
    if (parent.routed())
      throw Error("the parent's adapter is a concatenated heir (two adapters routed); only concatenation can extend it",
                  "use --scheme concat, or inherit from one of its branches");
    if (parent.kind == AdapterKind::lora) {
      heir = merge_lora(parent, child, scheme, c, lora_energy_kept, seed);
    } else {
      heir.kind = parent.kind;
      heir.params = merged(parent.params, child.params, scheme, seed);
    }
  }
  heir.info = child.info;  // the heir belongs to the successor, on the same base
  heir.info.sha256.clear();
  heir.lineage = lineage_of(parent, child, scheme, overlap);
  return heir;
}

double gain_kept(double base_ppl, double pure_ppl, double heir_ppl) {
  const double gain = std::log(base_ppl) - std::log(pure_ppl);
  return gain > 0 ? (std::log(base_ppl) - std::log(heir_ppl)) / gain : 0.0;
}

AdapterPerplexity adapter_perplexity(const Model& base, const Adapter* a, std::span<const int32_t> tokens, int ctx) {
  AdapterPerplexity out;
  if (a && a->routed()) {
    std::vector<AppliedAdapters> applied;
    applied.reserve(a->branches.size());
    std::vector<RoutedBranch> branches;
    for (const Adapter& b : a->branches) {
      applied.push_back(apply_adapters(base, {{&b, 1.f}}));
      branches.push_back({&applied.back().model(base), applied.back().view_ptr()});
    }
    const RoutedPerplexity r = perplexity_routed(branches, tokens, ctx);
    out.result = r.total;
    out.routed = r.routed;
    return out;
  }
  if (!a) {
    out.result = perplexity_sliding(base, tokens, ctx);
    return out;
  }
  const AppliedAdapters applied = apply_adapters(base, {{a, 1.f}});
  out.result = perplexity_sliding(applied.model(base), tokens, ctx, applied.view_ptr());
  return out;
}

size_t route_by_prompt(const Model& base, const Adapter& heir, const std::vector<int32_t>& prompt) {
  if (prompt.size() < 2) return 0;
  const std::vector<int32_t> tail(prompt.end() - std::min<size_t>(prompt.size(), (size_t)base.config.n_ctx), prompt.end());
  size_t best = 0;
  double best_ppl = 0;
  for (size_t b = 0; b < heir.branches.size(); ++b) {
    const double ppl = inherit::adapter_perplexity(base, &heir.branches[b], tail, std::max(2, (int)tail.size() - 1)).ppl();
    if (b == 0 || ppl < best_ppl) best = b, best_ppl = ppl;
  }
  return best;
}


}  // namespace heirloom::inherit
