// Perplexity: a sliding window (every token scored once, each with at least half a window of context
// except in the first window) and llama.cpp's own protocol (shared/GGUF-NOTES.md), so a heirloom number
// can stand beside a llama-perplexity number.
#pragma once
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "heirloom/engine.h"

namespace heirloom {

struct PerplexityResult {
  double nll_sum = 0;  // nats
  int64_t n_scored = 0;
  int n_windows = 0;
  double mean_nll() const { return n_scored ? nll_sum / n_scored : 0.0; }
  double ppl() const { return std::exp(mean_nll()); }
};

// tokens: the whole text, BOS first if the model's vocabulary adds one. ctx ≤ model context.
// ws: scratch to reuse across calls (null = a fresh one).
PerplexityResult perplexity_sliding(const Model& m, std::span<const int32_t> tokens, int ctx,
                                    const AdapterView* adapter = nullptr, int batch = 4, Workspace* ws = nullptr);
// llama.cpp's protocol: chunks of n_ctx, first token replaced by BOS, score the second half only.
PerplexityResult perplexity_llama(const Model& m, std::span<const int32_t> tokens, int n_ctx,
                                  const AdapterView* adapter = nullptr, int batch = 4, Workspace* ws = nullptr);

// Routing between adapters (a concatenated heir, issue 6): every branch scores the text with the sliding
// protocol, and each target is charged to the branch with the lowest loss on the ctx targets before it —
// "the adapter that gives lower perplexity on the prompt so far", causal, so no target chooses by its own loss.
struct RoutedBranch {
  const Model* model;           // the base, or a private merged copy for a full adapter
  const AdapterView* adapter;   // null for none
};
struct RoutedPerplexity {
  PerplexityResult total;                 // the routed model
  std::vector<PerplexityResult> branch;   // each branch alone
  std::vector<int64_t> routed;            // targets charged to each branch
};
RoutedPerplexity perplexity_routed(std::span<const RoutedBranch> branches, std::span<const int32_t> tokens, int ctx,
                                   int batch = 4);

}  // namespace heirloom

namespace heirloom {

// The unigram baseline: token frequencies of `train` (add-one smoothed over a vocabulary of V) scoring
// `heldout`. A base that does not beat this has learned nothing beyond word counts.
PerplexityResult perplexity_unigram(std::span<const int32_t> train, std::span<const int32_t> heldout, int V);

}  // namespace heirloom
