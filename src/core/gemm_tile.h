// The end of the fp32 and bf16 register-blocked micro-kernels (core/gemm_f32.cpp, core/gemm_bf16_dot.cpp): R
// rows of 32 columns held in two zmm accumulators each, added to C or stored over it.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "core/rank_update.h"

namespace heirloom {

// Rows [0, M) cut into n = ⌈M / mr⌉ micro-tiles whose heights differ by at most one: for the fp32 kernel
// (mr = 12) a product of 64 rows runs as 11, 11, 11, 11, 10, 10 rather than 12, 12, 12, 12, 12, 4, whose last
// tile loads two panel vectors for every 8 multiply-adds. Each row's arithmetic is the same in a tile of any
// height, so the cut changes no result. (The bf16 kernel cuts each task's rows so: core/gemm_bf16_dot.cpp.)
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

// A micro-tile's rows of 4-byte values (fp32, or bf16 pairs), row r at a + r·stride: three bases five rows apart
// and two strides (s1, s3 = 3·s1, in bytes) hold fifteen rows' addresses, where a pointer per row left the
// compiler short of registers (core/gemm_bf16_dot.cpp, core/gemm_f32.cpp). advance() moves every row on.
struct TileRows {
  const char* base[3];
  int64_t s1, s3;
  TileRows(const void* a, int64_t stride)
      : base{static_cast<const char*>(a), static_cast<const char*>(a) + 20 * stride,
             static_cast<const char*>(a) + 40 * stride},
        s1(4 * stride), s3(12 * stride) {}
  void advance(int64_t bytes) { base[0] += bytes, base[1] += bytes, base[2] += bytes; }
};

// The rows r < R of a micro-tile's step: OP(r, q, ADDR) for each, ADDR the row's value in memory as an operand of
// asm with the named operands [base] (rows.base[q], q = r / 5), [s1] and [s3] (rows.s1, rows.s3): row r is read
// at base[r / 5] + (0, 1, 2, 3, 4)·s1.
#define HEIRLOOM_TILE_ROW(OP, r, ADDR) \
  if constexpr (R > (r)) OP((r) % R, (r) / 5, ADDR)
#define HEIRLOOM_TILE_FIVE(OP, q)                             \
  HEIRLOOM_TILE_ROW(OP, 5 * (q), "(%[base])")                 \
  HEIRLOOM_TILE_ROW(OP, 5 * (q) + 1, "(%[base],%[s1],1)")     \
  HEIRLOOM_TILE_ROW(OP, 5 * (q) + 2, "(%[base],%[s1],2)")     \
  HEIRLOOM_TILE_ROW(OP, 5 * (q) + 3, "(%[base],%[s3],1)")     \
  HEIRLOOM_TILE_ROW(OP, 5 * (q) + 4, "(%[base],%[s1],4)")
#define HEIRLOOM_TILE_ROWS(OP) \
  HEIRLOOM_TILE_FIVE(OP, 0)    \
  HEIRLOOM_TILE_FIVE(OP, 1)    \
  HEIRLOOM_TILE_FIVE(OP, 2)

// One row's step with its value broadcast once into a register (BCAST, into a T), then two instructions OP
// (x, v0, c0[r]) and (x, v1, c1[r]) reading it there: an OP(r, q, ADDR) for HEIRLOOM_TILE_ROWS, inside a loop
// with c0, c1, v0, v1 and a TileRows `rows`.
#define HEIRLOOM_TILE_BROADCAST_ROW(BCAST, OP, T, r, q, ADDR)                                                    \
  {                                                                                                            \
    T x;                                                                                                       \
    asm(BCAST " " ADDR ", %[x]\n\t" OP " %[x], %[v0], %[c0]\n\t" OP " %[x], %[v1], %[c1]"                         \
        : [c0] "+v"(c0[r]), [c1] "+v"(c1[r]), [x] "=&v"(x)                                                     \
        : [base] "r"(rows.base[q]), [v0] "v"(v0), [v1] "v"(v1), [s1] "r"(rows.s1), [s3] "r"(rows.s3));         \
  }

// A RankUpdate's parts on one panel of 32 columns: Bt at its first column.
struct RankTiles {
  struct Part {
    const float* U;
    int64_t ldu;
    const float* Bt;
    int64_t ldbt;
    int rank;
  };
  int n = 0;
  Part part[RankUpdate::kMaxParts];
};

// c0[r], c1[r] = Σ_k U[row + r][k] · Bt[k][0:32] for r < R: one part of a rank update on a micro-tile, each
// element one FMA chain over k from zero (core/rank_update.h), the R rows' chains side by side.
template <int R>
__attribute__((target("avx512f"), always_inline)) inline void rank_tile(__m512 (&c0)[R], __m512 (&c1)[R],
                                                                       const RankTiles::Part& p, int64_t row,
                                                                       __mmask16 mask0, __mmask16 mask1) {
  const float* u = p.U + row * p.ldu;
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int k = 0; k < p.rank; ++k) {
    const __m512 b0 = _mm512_maskz_loadu_ps(mask0, p.Bt + k * p.ldbt);
    const __m512 b1 = _mm512_maskz_loadu_ps(mask1, p.Bt + k * p.ldbt + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(u[r * p.ldu + k]);
      c0[r] = _mm512_fmadd_ps(x, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(x, b1, c1[r]);
    }
  }
}

// C[r][0:16] and C[r][16:32] (+)= c0[r], c1[r] for r < R; the masks guard C's columns past its edge.
// With `stream` (and not accumulating) whole rows of 32 go around the caches (non-temporal stores; C's rows
// 64-byte aligned): an output the step reads much later, or from the other core, would otherwise first be read
// into this core's caches and evict the weight and rows the product is still multiplying. The caller fences
// (_mm_sfence) before anything else reads C. With `parts` rank tiles (rank_tile's sums, [parts][R][32] at
// `ranked`), they are added last, in order (after what the tile accumulates onto), before the store.
template <int R>
__attribute__((target("avx512f"), always_inline)) inline void store_tile(float* C, int64_t ldc, __m512 (&c0)[R],
                                                                        __m512 (&c1)[R], __mmask16 mask0,
                                                                        __mmask16 mask1, bool accumulate,
                                                                        bool stream = false,
                                                                        const float* ranked = nullptr, int parts = 0) {
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* c = C + r * ldc;
    if (accumulate) {
      c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(mask0, c));
      c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(mask1, c + 16));
    }
    for (int i = 0; i < parts; ++i) {
      c0[r] = _mm512_add_ps(c0[r], _mm512_load_ps(ranked + (i * R + r) * 32));
      c1[r] = _mm512_add_ps(c1[r], _mm512_load_ps(ranked + (i * R + r) * 32 + 16));
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
