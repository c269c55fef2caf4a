// Activations kept by forward for backward, and backward's scratch. Sized on demand for (B, T, S);
// buffers are reused across calls of the same shape, so the training loop allocates nothing per step.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/gemm_bf16.h"
#include "heirloom/cache_line.h"
#include "heirloom/engine.h"
#include "ops/moe.h"
#include "ops/rope.h"

namespace heirloom {

// Buffers sized by ensure_shape: growing one leaves its new values unset (nothing relies on them), so memory
// a step never writes (the head's stored dlogits where the bf16 product makes its rows) is never touched.
template <class T>
using Buf = std::vector<T, CacheLineAllocator<T>>;

struct LayerActs {
  Buf<float> x;                  // [N, C] layer input (residual stream)
  Buf<float> ln1, rstd1;         // [N, C], [N]
  Buf<float> qkv;                // [N, (H + 2·Hkv)·D] after RoPE
  Buf<float> att_stats;          // [B, H, T, 2] attention rows' max score and 1 / Σ exp (backward)
  Buf<uint16_t> att_probs;       // bf16 attention probabilities, where its products run in bf16 (backward)
  Buf<float> atty;               // [N, H·D]
  Buf<float> mid;                // [N, C] residual after attention
  Buf<float> ln2, rstd2;         // [N, C], [N]
  Buf<float> hg, hu, h;          // dense: [N, F]; MoE: [N·K, F]
  Buf<uint16_t> hg16, hu16;      // MoE: [N·K, F], hg and hu in bf16 where the experts keep them so (MoeSaved)
  Buf<float> probs, weights, xg, y, logits;  // MoE: [N, E], [N, K], [N·K, C], [N·K, C], [N, E]
  Buf<int32_t> topk, offsets, slot_row, slot_of, cursor;
  std::array<Buf<float>, kLoraTargets> lora_u;  // [N, R]; expert targets [N·K, R] (one row per slot)
  std::vector<PackedB> xg_packs, h_packs;       // MoE, for backward: E each (MoeSaved), sized where used
  MoeSaved moe_saved();
};

// Whether adapter a (may be null) has a LoRA on target t of layer l.
inline bool has_lora(const AdapterView* a, int l, int t) { return a && !a->lora_a.empty() && a->lora_a[l][t]; }

struct Segment {
  int b0, b1;  // sequences [b0, b1)
  const AdapterView* adapter;
};

struct FrozenWeights;

struct Workspace {
  int B = 0, T = 0, S = 0, pos0 = 0;
  // Set (by an adapter trainer) to run the frozen base's products in bf16; null = fp32.
  std::shared_ptr<const FrozenWeights> frozen;
  int lora_rmax = 0;  // the largest LoRA rank in the batch: a segment's u rows start at r0 · lora_rmax
  bool has_backward_state = false, last_only = false;
  bool moe_h_kept = false;  // the last forward kept the experts' h for the base's weight gradients
  // Every layer's activations when backward follows; otherwise two, taken in turn (layer l reads its input
  // from one and writes its output to the other): an evaluation then touches an eighth of the memory.
  std::vector<LayerActs> layers;
  LayerActs& acts(int l) { return layers[has_backward_state ? l : l % 2]; }
  Buf<float> xf, lnf, rstdf, last_rows, logits, losses, row_lse;  // final residual, norm, head
  Buf<float> lora_bt;  // [R, QKV, C or E]: a product's LoRA s·Bᵀ, its targets' columns side by side (model/forward.cpp)
  Buf<int32_t> targets, tokens;
  std::vector<Segment> segments;
  std::vector<std::vector<float>> gains;  // per segment: effective norm gains [(2L + 1)·C], if it has a delta
  RopeTable rope;
  // backward scratch
  Buf<float> dres, dln, dqkv, datty, dlnf, dlogits, dgain, du;
  Buf<float> dh, dhg, dhu, ddy, ddxg, ddlogits, ddw, dgaux;
  Buf<uint16_t> dhu16;  // dhu in bf16 (MoeScratch)
  Buf<uint16_t> dlogits16;  // dlogits in bf16, for a trained bf16 head's weight gradient (on AMX tiles)
  PairRows dlogits_pairs;   // the same as its dot products take it (sized when first used)

  int N() const { return B * T; }
  // One segment over the whole batch: its adapter's LoRA can go into the base's products (core/rank_update.h).
  bool one_segment() const { return segments.size() == 1 && segments[0].b0 == 0 && segments[0].b1 == B; }
  // Effective gain j (2l: attn, 2l+1: ffn, 2L: output) for a segment.
  const float* gain(const Model& m, int seg, int j) const;
};

void ensure_shape(Workspace& ws, const Model& m, int B, int T, int S, int lora_rank, bool for_backward);

// The expert-FFN LoRA of layer l for the MoE op, one part per segment whose adapter has one; gradients
// only for the segments of `trained`. moe_lora() points the op at the workspace's buffers.
std::vector<MoeLoraPart> moe_lora_parts(const Workspace& ws, int l, const AdapterView* trained, const AdapterGrads* da);
MoeLora moe_lora(Workspace& ws, int l, const std::vector<MoeLoraPart>& parts);

}  // namespace heirloom
