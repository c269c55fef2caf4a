// Causal grouped-query self-attention on already-projected (and RoPE-rotated) q, k, v.
// Query head h reads key/value head h / (H / Hkv). Query row t of a sequence sits at absolute position
// pos0 + t and sees keys 0 .. pos0 + t, so the same op serves training (pos0 = 0, S = T) and KV-cache
// generation (k, v point into the cache, S = pos0 + T). Scale 1/sqrt(D).
// Saved: att[B, H, T, S] softmax probabilities (rows beyond the causal limit are zero).
#pragma once
#include <cstdint>

namespace heirloom {

struct AttnShape {
  int B, T, H, Hkv, D;
  int pos0 = 0;        // absolute position of query row 0
  int ldq;             // row stride of q (and dq)
  int ldkv;            // row stride of k, v (and dk, dv)
  int64_t kv_bstride;  // stride between sequences in k, v
  bool bf16 = false;   // products in bf16 with fp32 accumulation (AMX tiles) where the CPU has them; else fp32
  int S() const { return pos0 + T; }
};

// out[B, T, H·D] contiguous; att[B, H, T, S], or null when backward will not run (the probabilities are then
// formed block by block in a small per-thread scratch and never written out: no T×S per head)
void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, const AttnShape& s);
// dq, dk, dv += ...; datt[B, H, T, S] is scratch. Parallel over (sequence, kv head): no shared outputs.
void attention_backward(float* dq, float* dk, float* dv, float* datt, const float* dout, const float* att,
                        const float* q, const float* k, const float* v, const AttnShape& s);

void attention_forward_ref(float* out, float* att, const float* q, const float* k, const float* v,
                           const AttnShape& s);
void attention_backward_ref(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                            const float* k, const float* v, const AttnShape& s);

}  // namespace heirloom
