// Attention on rows from position 0 (training, prefills), in fp32 on AVX-512 or in bf16 on AVX512-BF16 dot
// products (not AMX tiles): each block of kAttnRows queries is worked on transposed, keys down the rows and the
// block's 32 queries across one pair of vectors. The scores come as Sᵀ = K·Qᵀ; the softmax's max and sum then
// run down the columns, one vector op per key for 16 queries, with no reduction across lanes and no masked
// tail per row (only the block's own 32 keys are masked). p·v and dq = ds·k read p and ds down the columns (in
// bf16: two key rows side by side, in pairs of keys), and the backward's dPᵀ = V·doutᵀ, dv += pᵀ·dout and
// dk += dsᵀ·q take the key rows as they are. Before, each query row ran its own max, exp, sum and divide, and
// the bf16 backward moved p and ds into pairs of query rows. bench/ab.sh against the row-wise blocks (four
// rounds each): bf16 protocol 0.972, norm-only 8x128 0.975; fp32 protocol 0.961, norm-only 0.948.
// Internal to ops/attention.cpp.
#pragma once
#include <cstdint>

#include "ops/attention.h"

namespace heirloom {

constexpr int kAttnRows = 32;  // query rows per block: one pair of 16-lane vectors in the transposed blocks

// Where block `block` of a (sequence, head)'s kept probabilities starts (pos0 = 0): kAttnRows·round_up(nk_i, 32)
// values per earlier block i, nk_i = min(T, (i + 1)·kAttnRows) its keys.
int64_t attention_kept_offset(int block, int T);
int64_t attention_kept_per_head(int T);  // all of a (sequence, head)'s blocks
// Head h of sequence b's block of query rows from t0, in a buffer of attention_kept_size values.
template <class U>
U* attention_kept_block(U* probs, const AttnShape& s, int b, int h, int t0) {
  return probs + ((int64_t)b * s.H + h) * attention_kept_per_head(s.T) + attention_kept_offset(t0 / kAttnRows, s.T);
}

// Whether attention takes the transposed blocks for s: rows from position 0, with bf16 products (`bf16`, the
// caller's decision) on dot products, not AMX tiles, or in fp32 on AVX-512.
bool attention_transposed(const AttnShape& s, bool bf16);

// One (sequence b, head h) of the forward: out's rows (stride ldo), row_stats' rows (null: none) as the other
// path writes them (m, inv per query), and, when kept is not null, the head's probabilities for the backward:
// block i at attention_kept_offset(i) holds its keys' rows of 32 bf16 values (query lanes past the block's
// rows zero), round_up(nk_i, 2) of them.
void transposed_forward(float* out, int ldo, float* row_stats, const float* q, const float* k, const float* v,
                        const AttnShape& s, uint16_t* kept);

// One (sequence b, key head g) unit of the backward from the probabilities the forward kept, for the group's
// heads in turn: dq's rows written (write) or added to; dk's and dv's by the products themselves, a key's row
// written (write) or added to by the first block that reaches it, then added to. (Gathered in a scratch and
// moved into dk and dv at the end, the protocol's steps took 1.006–1.009 of the time: `heirloom bench
// --experiment`, three trials.) Pointers as attention_backward's, whole; probs as attention_kept_size's buffer.
void transposed_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                         const float* v, const AttnShape& s, int b, int g, bool write, const uint16_t* probs);

// The same in fp32 on gemm_f32_panel's micro-tiles (AVX-512), keeping row_stats only: the backward makes p
// again from the same product and the forward's m and inv, bit for bit.
void transposed_forward_f32(float* out, int ldo, float* row_stats, const float* q, const float* k, const float* v,
                            const AttnShape& s);
void transposed_backward_f32(float* dq, float* dk, float* dv, const float* dout, const float* row_stats,
                             const float* q, const float* k, const float* v, const AttnShape& s, int b, int g,
                             bool write);

}  // namespace heirloom
