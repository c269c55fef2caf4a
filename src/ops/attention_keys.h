// The attention backward's key-side gradients on AVX512-BF16 dot products where the forward kept its bf16
// probabilities (ops/attention.cpp): dv += pᵀ·dout and dk += dsᵀ·q with pᵀ and dsᵀ as A in pairs of k
// (gemm_bf16_small_pairs), the words that two rows of p or ds make side by side, written by the pass that makes
// ds from p and dp (softmax_grad_pairs) along with ds's bf16 rows for dq = ds·k; dout's and q's rows of a block
// are packed as B [R, D] (pairs of rows, no transpose). Before, pᵀ and dsᵀ were packed as B from p and ds, ds
// converted once more for dq, and doutᵀ and qᵀ made by transposed conversions, and dvᵀ, dkᵀ gathered in a
// scratch cleared per head and transposed into dv, dk: a block's own passes took as long as its products.
// The protocol's steps took 0.990 of their time with this in three trials (B = the old way: 1.009–1.012,
// `heirloom bench --experiment`, bench/RESULTS.md). Internal to ops/attention.cpp.
#pragma once
#include <cstdint>
#include <vector>

#include "core/gemm_bf16.h"

namespace heirloom {

// One thread's buffers. dv and dk gather in [S, D] scratch, each row written first by the block that first
// reaches its key, then added to; put_rows moves them into dv's and dk's rows at the unit's end.
struct KeyGrads {
  PackedB dout_b, q_b;                      // the block's rows of dout and q as B [R, D]
  std::vector<uint32_t> p_pairs, ds_pairs;  // pᵀ and dsᵀ: pair of rows i at [i·ja, i·ja + nk)
  std::vector<uint16_t> ds_rows;            // ds in bf16, row t at t·ldk: dq's A
  std::vector<float> dv, dk;                // [S, D]
  int64_t ja = 0;                           // words per pair of rows (pair_stride: an odd number of lines)
};
// This thread's buffers for blocks of at most `rows` query rows against S keys of D values.
KeyGrads& key_grads(int rows, int S, int D);

// ds = p ⊙ (dp − rowsum(p ⊙ dp))·scale for the block's R rows, with softmax_grad_row's arithmetic (p the kept
// bf16 rows at stride ldk, zero past each row's keys; dp at stride S; row t has n_keys0 + t keys), written at
// once as ds's bf16 rows (stride ldk, zero past the row's keys) and, with p, as pᵀ and dsᵀ in pairs of k.
void softmax_grad_pairs(KeyGrads& g, const uint16_t* p16, int ldk, const float* dp, int S, int R, int n_keys0,
                        float scale);

// y[j][d] = (add ? y[j][d] : 0) + x[j][d] for j < S, d < D; y with row stride ld, x [S, D].
void put_rows(float* y, int ld, const float* x, int S, int D, bool add);

}  // namespace heirloom
