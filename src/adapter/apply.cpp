// Combining adapters for one call, and merging them into a private copy of the base.
// See include/heirloom/adapter.h.
#include <algorithm>

#include "adapter/lora_layout.h"
#include "core/gemm.h"
#include "heirloom/adapter.h"
#include "heirloom/error.h"

namespace heirloom {

namespace {

// The base gain a norm delta index j (0 .. 2L) adds to.
float* norm_gain(Model& m, int j) {
  const int L = m.config.n_layer;
  return j == 2 * L ? m.w.output_norm : j % 2 == 0 ? m.w.layers[j / 2].attn_norm : m.w.layers[j / 2].ffn_norm;
}

void merge_one(Model& m, const Adapter& a, float s) {
  const ModelConfig& c = m.config;
  const int C = c.n_embd;
  switch (a.kind) {
    case AdapterKind::full:
      for (size_t i = 0; i < m.data.size(); ++i) m.data[i] += s * a.params[i];
      break;
    case AdapterKind::norm:
      for (int j = 0; j < 2 * c.n_layer + 1; ++j) {
        float* g = norm_gain(m, j);
        for (int i = 0; i < C; ++i) g[i] += s * a.params[(size_t)j * C + i];
      }
      break;
    case AdapterKind::lora:
      for (const LoraBlock& b : lora_blocks(c, a.lora))  // W_e[out, in] += s·scale · B_e[out, R] · A_e[R, in]
        for (int e = 0; e < b.copies; ++e) {
          const int64_t ae = (int64_t)e * a.lora.rank * b.in, be = (int64_t)e * b.out * a.lora.rank;
          gemm(false, false, b.out, b.in, a.lora.rank, s * a.lora.scale(), a.params.data() + b.b_offset + be, a.lora.rank,
               a.params.data() + b.a_offset + ae, b.in, 1.f,
               lora_base_weight(m.w.layers[b.layer], b.target) + (int64_t)e * b.out * b.in, b.in);
        }
      break;
    case AdapterKind::steer: break;  // never merged: apply_adapters refuses it first
  }
}

}  // namespace

AppliedAdapters apply_adapters(const Model& base, const std::vector<std::pair<const Adapter*, float>>& adapters,
                               bool merge_all) {
  const ModelConfig& c = base.config;
  const int C = c.n_embd, L = c.n_layer, n_norm = 2 * L + 1;
  AppliedAdapters out;
  auto merged_here = [&](const Adapter& a) { return a.kind == AdapterKind::full || merge_all; };
  for (auto [a, s] : adapters)
    if (a->routed())
      throw Error("this adapter is a concatenated heir: it keeps two adapters and routes each input to one of them",
                  "use it alone with `heirloom eval` or `heirloom generate`, which route it; it cannot be merged or combined");
  for (auto [a, s] : adapters)
    if (merge_all && a->kind == AdapterKind::steer)
      throw Error("a steering adapter adds to the residual stream and cannot be merged into weights",
                  "apply it at run time instead");
  for (auto [a, s] : adapters)
    if (merged_here(*a)) {
      if (!out.merged) out.merged = clone_model(base);
      merge_one(*out.merged, *a, s);
    }

  // What stays a run-time view: summed norm and steer deltas, LoRA pairs stacked into one rank.
  bool any_norm = false, any_steer = false;
  LoraShape stacked;
  stacked.rank = 0;
  stacked.targets = {};
  for (auto [a, s] : adapters) {
    if (merged_here(*a)) continue;
    any_norm |= a->kind == AdapterKind::norm;
    any_steer |= a->kind == AdapterKind::steer;
    if (a->kind == AdapterKind::lora) {
      stacked.rank += a->lora.rank;
      for (int t = 0; t < kLoraTargets; ++t) stacked.targets[t] = stacked.targets[t] || a->lora.targets[t];
    }
  }
  stacked.alpha = (float)stacked.rank;  // scale 1: each adapter's own scale is folded into its B columns
  const int64_t norm_n = any_norm ? (int64_t)n_norm * C : 0, steer_n = any_steer ? (int64_t)L * C : 0;
  const auto blocks = stacked.rank > 0 ? lora_blocks(c, stacked) : std::vector<LoraBlock>{};
  const int64_t lora_n = blocks.empty() ? 0 : blocks.back().b_offset + (int64_t)blocks.back().copies * blocks.back().out * stacked.rank;
  out.buffer.assign(norm_n + steer_n + lora_n, 0.f);
  float* norm = out.buffer.data();
  float* steer = norm + norm_n;
  float* lora = steer + steer_n;
  int r0 = 0;
  for (auto [a, s] : adapters) {
    if (merged_here(*a)) continue;
    if (a->kind == AdapterKind::norm)
      for (int64_t i = 0; i < norm_n; ++i) norm[i] += s * a->params[i];
    if (a->kind == AdapterKind::steer)
      for (int64_t i = 0; i < steer_n; ++i) steer[i] += s * a->params[i];
    if (a->kind != AdapterKind::lora) continue;
    const int R = a->lora.rank;
    const float fold = s * a->lora.scale();
    for (const LoraBlock& src : lora_blocks(c, a->lora)) {
      const LoraBlock& dst = *std::find_if(blocks.begin(), blocks.end(), [&](const LoraBlock& b) {
        return b.layer == src.layer && b.target == src.target;
      });
      const int RS = stacked.rank;
      for (int e = 0; e < src.copies; ++e) {  // rows r0.. of A_e, columns r0.. of B_e
        const float* sa = a->params.data() + src.a_offset + (int64_t)e * R * src.in;
        const float* sb = a->params.data() + src.b_offset + (int64_t)e * src.out * R;
        float* da = lora + dst.a_offset + (int64_t)e * RS * dst.in;
        float* db = lora + dst.b_offset + (int64_t)e * dst.out * RS;
        for (int r = 0; r < R; ++r) std::copy_n(sa + (int64_t)r * src.in, src.in, da + (int64_t)(r0 + r) * dst.in);
        for (int o = 0; o < src.out; ++o)
          for (int r = 0; r < R; ++r) db[(int64_t)o * RS + r0 + r] = fold * sb[(int64_t)o * R + r];
      }
    }
    r0 += R;
  }
  out.has_view = any_norm || any_steer || stacked.rank > 0;
  if (any_norm) out.view.norm_delta = norm;
  if (any_steer) out.view.steer = steer;
  if (stacked.rank > 0) {
    out.view.lora_rank = stacked.rank;
    out.view.lora_scale = 1.f;
    out.view.lora_a.assign(L, {});
    out.view.lora_b.assign(L, {});
    for (const LoraBlock& b : blocks) {
      out.view.lora_a[b.layer][b.target] = lora + b.a_offset;
      out.view.lora_b[b.layer][b.target] = lora + b.b_offset;
    }
  }
  return out;
}

}  // namespace heirloom
