// Causal grouped-query self-attention on already-projected (and RoPE-rotated) q, k, v.
// Query head h reads key/value head h / (H / Hkv). Query row t of a sequence sits at absolute position
// pos0 + t and sees keys 0 .. pos0 + t, so the same op serves training (pos0 = 0, S = T) and KV-cache
// generation (k, v point into the cache, S = pos0 + T). Scale 1/sqrt(D).
// Saved for backward: row_stats[B, H, T, 2], each row's largest scaled score m and inv = 1 / Σ exp(score − m)
// over its keys; the backward makes the probabilities again from them, block by block, bit for bit as the
// forward made them, or, where the products run in bf16, reads the bf16 probabilities the forward kept.
#pragma once
#include <cstdint>

#include "ops/rope.h"

namespace heirloom {

struct AttnShape {
  int B, T, H, Hkv, D;
  int pos0 = 0;        // absolute position of query row 0
  int ldq;             // row stride of q (and dq)
  int ldkv;            // row stride of k, v (and dk, dv)
  int64_t kv_bstride;  // stride between sequences in k, v
  bool bf16 = false;   // products in bf16 with fp32 accumulation on AMX tiles (≥ kAmxKeys keys) where the CPU has them; else fp32
  int S() const { return pos0 + T; }
};

// out[B, T, H·D] contiguous; row_stats[B, H, T, 2], or null when backward will not run. The probabilities
// are formed block by block in a small per-thread scratch and never written out: no T×S per head.
// probs: where the products run in bf16 (AttnShape::bf16, enough keys) and pos0 = 0, the forward also keeps
// the probabilities as the bf16 rows its p·v product multiplies (attention_kept_size values), and a backward given
// them reads them instead of making them again (no q·kᵀ, no exp); its gradients then use p as the forward's
// product did, rounded to bf16. Elsewhere it is not touched; null keeps nothing.
void attention_forward(float* out, float* row_stats, const float* q, const float* k, const float* v,
                       const AttnShape& s, uint16_t* probs = nullptr);
int64_t attention_kept_size(int B, int H, int T);  // uint16 values for probs at B sequences of T rows
// The same with q's and k's rows rotated in place first (rope_forward, row t at position t), each head by the
// unit that reads it, instead of by a pass of its own: for one key head per query head and no cache
// (H = Hkv, pos0 = 0), where no two units share a head of k.
void attention_forward_rotating(float* out, float* row_stats, float* q, float* k, const float* v,
                                const AttnShape& s, const RopeTable& rope, uint16_t* probs = nullptr);
// dq, dk, dv += ..., from the forward's row_stats. Parallel over (sequence, kv head): no shared outputs.
// write: they are written instead (each unit clears its own columns first: no pass of the caller's to zero them).
// rope: q and k were rotated (ops/rope.h); each unit rotates its dq and dk back when it is done with them (query
// row t at position pos0 + t, key j at j), as rope_backward over the whole of them would.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* row_stats, const float* q,
                        const float* k, const float* v, const AttnShape& s, bool write = false,
                        const RopeTable* rope = nullptr, const uint16_t* probs = nullptr);

// In double precision: out, att[B, H, T, S] (rows beyond the causal limit zero) and, when given, row_stats.
void attention_forward_ref(float* out, float* att, const float* q, const float* k, const float* v,
                           const AttnShape& s, float* row_stats = nullptr);
void attention_backward_ref(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                            const float* k, const float* v, const AttnShape& s);

}  // namespace heirloom
