// The attention backward's key-side gradients on dot products: see ops/attention_keys.h.
#include "ops/attention_keys.h"

#include <immintrin.h>

#include "core/gemm_tile.h"
#include "ops/vec_math.h"

namespace heirloom {

KeyGrads& key_grads(int rows_max, int S, int D) {
  thread_local KeyGrads k;
  const int S32 = (S + 31) / 32 * 32;
  k.ja = pair_stride(S32);  // a block's row writes whole lines up to round_up(nk, 32) ≤ S32
  const size_t pairs = (size_t)(rows_max + 1) / 2 * k.ja, rows = (size_t)rows_max * S32, sd = (size_t)S * D;
  if (k.p_pairs.size() < pairs) k.p_pairs.resize(pairs), k.ds_pairs.resize(pairs);
  if (k.ds_rows.size() < rows) k.ds_rows.resize(rows);
  if (k.dv.size() < sd) k.dv.resize(sd), k.dk.resize(sd);
  return k;
}

__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
void softmax_grad_pairs(KeyGrads& g, const uint16_t* p16, int ldk, const float* dp, int S, int R, int n_keys0,
                        float scale) {
  auto p_row = [&](int t, int j) {
    return t < R ? _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_loadu_si256((const __m256i*)(p16 + (int64_t)t * ldk + j)))
                 : _mm512_setzero_si512();
  };
  for (int t = 0; t < R; t += 2) {
    const bool hi = t + 1 < R;
    const int n_lo = n_keys0 + t, n_hi = n_lo + 1;
    const float pdp_lo = row_dot(p16 + (int64_t)t * ldk, dp + (int64_t)t * S, n_lo);
    const float pdp_hi = hi ? row_dot(p16 + (int64_t)(t + 1) * ldk, dp + (int64_t)(t + 1) * S, n_hi) : 0.f;
    uint32_t* p_pair = g.p_pairs.data() + (int64_t)(t / 2) * g.ja;
    uint32_t* ds_pair = g.ds_pairs.data() + (int64_t)(t / 2) * g.ja;
    uint16_t* ds_lo = g.ds_rows.data() + (int64_t)t * ldk;
    for (int j = 0; j < ldk; j += 16) {
      const __m512i plo = p_row(t, j), phi = p_row(t + 1, j);
      _mm512_storeu_si512(p_pair + j, _mm512_or_si512(plo, _mm512_maskz_slli_epi32(0xffff, phi, 16)));
      // the lanes past a row's keys: zero, whatever its dp holds there
      auto grad = [&](__m512i p, int r, float pdp, int n) {
        const __m512 pf = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, p, 16));
        const f32x16 d = (f32x16)_mm512_loadu_ps(dp + (int64_t)r * S + j);
        const f32x16 v = (f32x16)pf * (d - pdp) * scale;
        return _mm512_maskz_mov_ps(first_columns(n - j), (__m512)v);
      };
      const __m512 glo = grad(plo, t, pdp_lo, n_lo);
      const __m512 ghi = hi ? grad(phi, t + 1, pdp_hi, n_hi) : _mm512_setzero_ps();
      const __m256i blo = (__m256i)_mm512_cvtneps_pbh(glo), bhi = (__m256i)_mm512_cvtneps_pbh(ghi);
      _mm256_storeu_si256((__m256i*)(ds_lo + j), blo);
      if (hi) _mm256_storeu_si256((__m256i*)(ds_lo + ldk + j), bhi);
      _mm512_storeu_si512(ds_pair + j, _mm512_or_si512(_mm512_maskz_cvtepu16_epi32(0xffff, blo),
                                                       _mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, bhi), 16)));
    }
  }
}

void put_rows(float* y, int ld, const float* x, int S, int D, bool add) {
  for (int j = 0; j < S; ++j) {  // rows of D = 32: a memmove call per row took longer than the moving
    float* row = y + (int64_t)j * ld;
    const float* src = x + (int64_t)j * D;
    int d = 0;
    for (; d + 16 <= D; d += 16) store16(row + d, add ? load16(row + d) + load16(src + d) : load16(src + d));
    for (; d < D; ++d) row[d] = add ? row[d] + src[d] : src[d];
  }
}

}  // namespace heirloom
