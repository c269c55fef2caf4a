// Sampling and the generation loop. See include/heirloom/generate.h.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/rng.h"
#include "heirloom/error.h"
#include "heirloom/generate.h"
#include "model/workspace.h"

namespace heirloom {

// The candidates are the top_k tokens (all when top_k is 0); top_p keeps the smallest run of them, in
// descending probability, that reaches top_p. Only what these rules need is sorted: a server request with
// neither limit (the OpenAI defaults) once sorted all 8,192 tokens per token, a third of a decode step.
int32_t sample_token(const float* logits, int V, const SamplingOptions& opt, float u) {
  if (opt.temperature <= 0.f) return (int32_t)(std::max_element(logits, logits + V) - logits);
  auto before = [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::vector<int32_t> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  const int k = opt.top_k > 0 ? std::min(opt.top_k, V) : V;
  if (k < V) {
    std::nth_element(idx.begin(), idx.begin() + k, idx.end(), before);
    idx.resize(k);
    std::sort(idx.begin(), idx.end(), before);
  }
  const float mx = *std::max_element(logits, logits + V);
  std::vector<double> w(V);  // by token; only the candidates' are set
  double sum = 0;
  for (int32_t t : idx) sum += (w[t] = std::exp((double)(logits[t] - mx) / opt.temperature));
  int keep = (int)idx.size();
  if (opt.top_p < 1.f) {
    // Sort a growing prefix until its probability reaches top_p (already sorted when k < V).
    const int n = (int)idx.size();
    double acc = 0;
    for (int lo = 0, hi = std::min(n, 64); lo < n; lo = hi, hi = std::min(n, 4 * hi)) {
      if (k == V) {
        std::nth_element(idx.begin() + lo, idx.begin() + hi - 1, idx.end(), before);
        std::sort(idx.begin() + lo, idx.begin() + hi, before);
      }
      int i = lo;
      for (; i < hi && acc / sum < opt.top_p; ++i) acc += w[idx[i]];
      if (acc / sum >= opt.top_p) {
        keep = i;
        break;
      }
    }
  }
  double kept = 0;
  for (int i = 0; i < keep; ++i) kept += w[idx[i]];
  double r = u * kept;
  for (int i = 0; i < keep; ++i) {
    r -= w[idx[i]];
    if (r < 0) return idx[i];
  }
  return idx[keep - 1];
}

std::vector<int32_t> generate(const Model& m, std::span<const int32_t> prompt, int n_new, const SamplingOptions& opt,
                              const AdapterView* adapter, const std::function<bool(int32_t)>& on_token,
                              std::shared_ptr<const FrozenWeights> packed) {
  if (prompt.empty()) throw Error("generate: the prompt is empty", "give at least one token (BOS counts)");
  if ((int)prompt.size() >= m.config.n_ctx)
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens; the model's context is " +
                std::to_string(m.config.n_ctx), "shorten the prompt");
  auto ws = make_workspace();
  ws->frozen = std::move(packed);
  KvCache cache = make_kv_cache(m.config, 1, m.config.n_ctx);
  const std::span<const AdapterView* const> ads = one_adapter(adapter);
  ForwardOptions fo;
  fo.cache = &cache;
  fo.last_logits_only = true;
  Rng rng(opt.seed);
  std::vector<int32_t> out;
  forward(m, *ws, Batch{prompt.data(), nullptr, 1, (int)prompt.size()}, ads, fo);
  // Each new token through the continuous-batching path, alone: the numbers `heirloom serve` computes for
  // this request in any batch, so the two give the same text.
  KvCache* const mine[1] = {&cache};
  fo.cache = nullptr;
  fo.caches = mine;
  const int V = m.config.n_vocab;
  for (int i = 0; i < n_new; ++i) {
    const int32_t tok = sample_token(logits(*ws), V, opt, rng.uniform());
    out.push_back(tok);
    if (on_token && !on_token(tok)) break;
    if (tok == m.vocab.eos_id || cache.n_pos >= m.config.n_ctx) break;
    forward(m, *ws, Batch{&tok, nullptr, 1, 1}, ads, fo);
  }
  return out;
}

}  // namespace heirloom
