// The end of the fp32 and bf16 register-blocked micro-kernels (core/gemm_f32.cpp, core/gemm_bf16_dot.cpp): R
// rows of 32 columns held in two zmm accumulators each, added to C or stored over it.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace heirloom {

// Rows [0, M) cut into n = ⌈M / mr⌉ micro-tiles whose heights differ by at most one: for the fp32 kernel
// (mr = 12) a product of 64 rows runs as 11, 11, 11, 11, 10, 10 rather than 12, 12, 12, 12, 12, 4, whose last
// tile loads two panel vectors for every 8 multiply-adds. Each row's arithmetic is the same in a tile of any
// height, so the cut changes no result. (The bf16 kernel's 15-row tiles gained nothing from it.)
struct RowTiles {
  int n, q, rem;  // n tiles; the first rem have q + 1 rows, the rest q
  RowTiles(int M, int mr) : n((M + mr - 1) / mr), q(n ? M / n : 0), rem(n ? M % n : 0) {}
  int start(int i) const { return i * q + (i < rem ? i : rem); }  // the first row of tile i (M for i = n)
};

// The mask of the first w of 16 columns (none for w ≤ 0, all for w ≥ 16).
inline __mmask16 first_columns(int w) { return (__mmask16)((1u << (w <= 0 ? 0 : w >= 16 ? 16 : w)) - 1); }

// Whether a product may stream its output (store_tile's `stream`): written over, not added to, into rows that
// start on cache lines.
inline bool can_stream(const float* C, int64_t ldc, bool accumulate) {
  return !accumulate && reinterpret_cast<uintptr_t>(C) % 64 == 0 && ldc % 16 == 0;
}

// C[r][0:16] and C[r][16:32] (+)= c0[r], c1[r] for r < R; the masks guard C's columns past its edge.
// With `stream` (and not accumulating) whole rows of 32 go around the caches (non-temporal stores; C's rows
// 64-byte aligned): an output the step reads much later, or from the other core, would otherwise first be read
// into this core's caches and evict the weight and rows the product is still multiplying. The caller fences
// (_mm_sfence) before anything else reads C.
template <int R>
__attribute__((target("avx512f"), always_inline)) inline void store_tile(float* C, int64_t ldc, __m512 (&c0)[R],
                                                                        __m512 (&c1)[R], __mmask16 mask0,
                                                                        __mmask16 mask1, bool accumulate,
                                                                        bool stream = false) {
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* c = C + r * ldc;
    if (accumulate) {
      c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(mask0, c));
      c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(mask1, c + 16));
    }
    if (stream && !accumulate && mask0 == 0xFFFF && mask1 == 0xFFFF) {
      _mm512_stream_ps(c, c0[r]);
      _mm512_stream_ps(c + 16, c1[r]);
    } else {
      _mm512_mask_storeu_ps(c, mask0, c0[r]);
      _mm512_mask_storeu_ps(c + 16, mask1, c1[r]);
    }
  }
}

}  // namespace heirloom
