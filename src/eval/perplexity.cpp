// Perplexity protocols. See include/heirloom/eval.h. Windows are batched (B windows per forward) for speed;
// the result does not depend on the batch size.
#include <algorithm>
#include <cmath>
#include <vector>

#include "heirloom/error.h"
#include "heirloom/eval.h"
#include "ops/xent.h"

namespace heirloom {

namespace {

// A window: tokens [begin, begin + len), scoring predictions whose target index is in [score_from, begin + len).
struct Window {
  int64_t begin;
  int len;
  int64_t score_from;
  bool bos_first;  // replace the first token by BOS (llama protocol)
};

// per_target (optional, one entry per token): the loss of each scored target, at its index.
PerplexityResult run_windows(const Model& m, std::span<const int32_t> tokens, const std::vector<Window>& wins,
                             const AdapterView* adapter, int batch, Workspace* scratch, std::vector<float>* per_target = nullptr) {
  PerplexityResult res;
  res.n_windows = (int)wins.size();
  WorkspacePtr own = scratch ? nullptr : make_workspace();
  Workspace* ws = scratch ? scratch : own.get();
  const std::span<const AdapterView* const> ad = one_adapter(adapter);
  for (size_t w0 = 0; w0 < wins.size();) {
    // Group consecutive windows of equal length into one batch.
    size_t w1 = w0 + 1;
    while (w1 < wins.size() && (int)(w1 - w0) < batch && wins[w1].len == wins[w0].len) ++w1;
    const int B = (int)(w1 - w0), T = wins[w0].len - 1;
    std::vector<int32_t> tok((size_t)B * T), tgt((size_t)B * T);
    for (int b = 0; b < B; ++b) {
      const Window& w = wins[w0 + b];
      for (int t = 0; t < T; ++t) {
        tok[(size_t)b * T + t] = tokens[w.begin + t];
        const int64_t target_index = w.begin + t + 1;
        tgt[(size_t)b * T + t] = target_index >= w.score_from ? tokens[target_index] : kIgnoreIndex;
      }
      if (w.bos_first) tok[(size_t)b * T] = m.vocab.bos_id;
    }
    const ForwardResult r = forward(m, *ws, Batch{tok.data(), tgt.data(), B, T}, ad, ForwardOptions{});
    res.nll_sum += r.loss_sum;
    res.n_scored += r.n_scored;
    if (per_target) {
      const float* loss = token_losses(*ws);
      for (int b = 0; b < B; ++b)
        for (int t = 0; t < T; ++t)
          if (tgt[(size_t)b * T + t] != kIgnoreIndex) (*per_target)[wins[w0 + b].begin + t + 1] = loss[(size_t)b * T + t];
    }
    w0 = w1;
  }
  return res;
}

std::vector<Window> sliding_windows(const Model& m, std::span<const int32_t> tokens, int ctx) {
  const int64_t n = (int64_t)tokens.size();
  if (ctx < 2 || ctx > m.config.n_ctx)
    throw Error("context " + std::to_string(ctx) + " is outside [2, " + std::to_string(m.config.n_ctx) + "]",
                "the model's context length is the largest window");
  if (n < 2) throw Error("the text has " + std::to_string(n) + " tokens; perplexity needs at least 2");
  // Window length ctx + 1 tokens gives ctx predictions; windows advance by half a window.
  const int stride = std::max(1, ctx / 2);
  std::vector<Window> wins;
  int64_t scored_to = 1;  // targets [1, scored_to) are done
  for (int64_t begin = 0; scored_to < n; begin += stride) {
    const int len = (int)std::min<int64_t>(ctx + 1, n - begin);
    if (len < 2) break;
    wins.push_back({begin, len, scored_to, false});
    scored_to = begin + len;
  }
  return wins;
}

}  // namespace

PerplexityResult perplexity_sliding(const Model& m, std::span<const int32_t> tokens, int ctx, const AdapterView* adapter,
                                    int batch, Workspace* ws) {
  return run_windows(m, tokens, sliding_windows(m, tokens, ctx), adapter, batch, ws);
}

RoutedPerplexity perplexity_routed(std::span<const RoutedBranch> branches, std::span<const int32_t> tokens, int ctx, int batch) {
  if (branches.empty()) throw Error("routed perplexity needs at least one branch");
  const int64_t n = (int64_t)tokens.size();
  RoutedPerplexity out;
  std::vector<std::vector<float>> loss(branches.size(), std::vector<float>((size_t)n, 0.f));
  WorkspacePtr ws = make_workspace();
  for (size_t b = 0; b < branches.size(); ++b) {
    const std::vector<Window> wins = sliding_windows(*branches[b].model, tokens, ctx);
    out.branch.push_back(run_windows(*branches[b].model, tokens, wins, branches[b].adapter, batch, ws.get(), &loss[b]));
  }
  // Target i goes to the branch with the lowest loss on the ctx targets before it (the prompt the model
  // sees); the first target, with no history, to branch 0. Running sums make this O(n · branches).
  out.routed.assign(branches.size(), 0);
  std::vector<double> history(branches.size(), 0.0);
  for (int64_t i = 1; i < n; ++i) {
    size_t best = 0;
    for (size_t b = 1; b < branches.size(); ++b)
      if (history[b] < history[best]) best = b;
    out.total.nll_sum += loss[best][i];
    ++out.total.n_scored;
    ++out.routed[best];
    for (size_t b = 0; b < branches.size(); ++b) {
      history[b] += loss[b][i];
      if (i - ctx >= 1) history[b] -= loss[b][i - ctx];
    }
  }
  out.total.n_windows = out.branch[0].n_windows;
  return out;
}

PerplexityResult perplexity_llama(const Model& m, std::span<const int32_t> tokens, int n_ctx, const AdapterView* adapter,
                                  int batch, Workspace* ws) {
  if (n_ctx < 4 || n_ctx > m.config.n_ctx)
    throw Error("context " + std::to_string(n_ctx) + " is outside [4, " + std::to_string(m.config.n_ctx) + "]");
  const int64_t n_chunks = (int64_t)tokens.size() / n_ctx;
  if (n_chunks < 2)
    throw Error("llama.cpp's protocol needs at least 2·n_ctx = " + std::to_string(2 * n_ctx) + " tokens, the text has " +
                    std::to_string(tokens.size()),
                "use a longer text or a smaller --ctx");
  // Chunk i is tokens [i·n_ctx, (i+1)·n_ctx): logits at positions n_ctx/2 .. n_ctx−2 predict the next token.
  // We feed all n_ctx tokens and score targets at chunk positions n_ctx/2 + 1 .. n_ctx − 1.
  std::vector<Window> wins;
  for (int64_t i = 0; i < n_chunks; ++i) wins.push_back({i * n_ctx, n_ctx, i * n_ctx + n_ctx / 2 + 1, true});
  return run_windows(m, tokens, wins, adapter, batch, ws);
}

}  // namespace heirloom

namespace heirloom {

PerplexityResult perplexity_unigram(std::span<const int32_t> train, std::span<const int32_t> heldout, int V) {
  std::vector<double> count(V, 1.0);  // add-one
  for (int32_t t : train)
    if (t >= 0 && t < V) count[t] += 1;
  const double total = (double)train.size() + V;
  PerplexityResult r;
  r.n_windows = 1;
  for (size_t i = 1; i < heldout.size(); ++i) {  // the same targets a model scores: every token after the first
    const int32_t t = heldout[i];
    if (t < 0 || t >= V) throw Error("token id " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(V));
    r.nll_sum -= std::log(count[t] / total);
    ++r.n_scored;
  }
  return r;
}

}  // namespace heirloom
