// Text generation with a KV cache: greedy (temperature 0) or temperature + top-k + top-p sampling,
// reproducible for a seed. Tokens stream out through a callback as they are chosen.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "heirloom/engine.h"

namespace heirloom {

struct SamplingOptions {
  float temperature = 0.8f;  // 0 = greedy
  int top_k = 40;            // 0 = off
  float top_p = 0.95f;       // 1 = off
  uint64_t seed = 1;
};

// Picks a token from one row of logits; `u` is a uniform draw in [0, 1).
int32_t sample_token(const float* logits, int V, const SamplingOptions& opt, float u);

// Feeds the prompt once, then one token per step from the cache. on_token returns false to stop.
// Stops at EOS or when the model's context is full. Returns the generated ids (without the prompt).
// `packed`: the model packed by pack_frozen(), in its precision; null = fp32 products through the BLAS.
std::vector<int32_t> generate(const Model& m, std::span<const int32_t> prompt, int n_new, const SamplingOptions& opt,
                              const AdapterView* adapter = nullptr,
                              const std::function<bool(int32_t)>& on_token = nullptr,
                              std::shared_ptr<const FrozenWeights> packed = nullptr);

}  // namespace heirloom
