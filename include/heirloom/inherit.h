// Inheritance (issue 6, Bet 69): a successor's heir made from a parent's adapter and the child's own,
// by one of the merge schemes, with its lineage recorded. The overlap report (overlap.h) says which
// scheme to expect what from; this file makes the heir and measures it.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "heirloom/adapter.h"
#include "heirloom/eval.h"
#include "heirloom/overlap.h"

namespace heirloom::inherit {

// A merge scheme and its parameter:
//   linear            the mean of parent and child;
//   blend:λ           λ·parent + (1 − λ)·child (λ weights the parent);
//   taskvec:α         parent + α·(child − parent);
//   distill           start from the parent and train on the child's text (needs the text);
//   concat            keep both, route each input to the one with lower perplexity on the prompt so far (2x memory);
//   ties:density      TIES-merging (trim to the density, elect signs, disjoint mean);
//   dare:density      DARE (drop 1 − density at random, rescale, average).
struct Scheme {
  std::string name;
  float arg = 0;
  std::string spec() const;      // "blend:0.7"
  std::string describe() const;  // "lambda = 0.7 (the parent's weight)"
};
// "auto" is not a scheme: callers resolve it with recommend(). Error names the valid schemes.
Scheme parse_scheme(const std::string& s);

// The recommendation for a regime: concatenation when the adapters are orthogonal (no single merge keeps
// both) or when the successor asks to keep both skills whatever the memory; otherwise the single-adapter
// scheme with the best predicted worse-of-two retention. `why` says which and why, in plain words.
Scheme recommend(const OverlapReport& r, bool keep_both, std::string* why);

// The heir of `parent` and `child` by a scheme that needs no training (every scheme but distill), with
// its lineage filled in. LoRA adapters are merged on their products scale·B·A and factored back to rank
// 2R (exact for linear, blend and taskvec, whose merged products have rank ≤ 2R); `lora_energy_kept`
// receives the share of the merged products' energy the factorisation keeps (1 when exact).
Adapter merge_heir(const Adapter& parent, const Adapter& child, const Scheme& scheme, const ModelConfig& c,
                   const OverlapReport& overlap, double* lora_energy_kept = nullptr, uint64_t seed = 1);
// The lineage an heir of these two adapters gets (merge_heir fills it; distill uses it directly).
Lineage lineage_of(const Adapter& parent, const Adapter& child, const Scheme& scheme, const OverlapReport& overlap);

// The share of a pure adapter's log-perplexity gain over the base that an heir keeps (1 = all of it,
// 0 = none, negative = worse than the base); 0 when the pure adapter gained nothing.
double gain_kept(double base_ppl, double pure_ppl, double heir_ppl);

// Held-out perplexity of text under an adapter on base; a concatenated heir is routed. ctx ≤ base context.
struct AdapterPerplexity {
  PerplexityResult result;
  std::vector<int64_t> routed;  // concatenated heirs: targets charged to each branch
  double ppl() const { return result.ppl(); }
};
AdapterPerplexity adapter_perplexity(const Model& base, const Adapter* a, std::span<const int32_t> tokens, int ctx);

// A concatenated heir's branch for a prompt: the one with the lowest perplexity on it (0 for a prompt of
// fewer than two tokens).
size_t route_by_prompt(const Model& base, const Adapter& heir, const std::vector<int32_t>& prompt);

}  // namespace heirloom::inherit
