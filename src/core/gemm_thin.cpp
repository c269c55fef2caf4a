// See gemm_thin.h. C is cut into tasks of kTaskRows rows × one 32-column panel (gemm_f32_panel), split across
// the threads when called outside a parallel region; op(B)'s rows must be contiguous, so a transposed or
// scaled B is first copied (it is small here: one of its sides is thin, or the copy is refused).
// Sums over a long K of a transposed A (weight gradients: LoRA's dA and dB, the router's) stream their wide
// operand row by row instead (outer_sum below), and products to at most 16 columns over a K of 64 or more
// (LoRA's u = x·Aᵀ and du = s·dout·B, the router's logits) multiply each k's row of op(B) by A's values at k,
// broadcast, for 8 rows at a time (broadcast_rows below): on 32-column panels they used 8 of every 32 lanes,
// and as dot products of A's rows, summed across lanes after, they took 1.4–1.9 times as long (bench/RESULTS.md).
// Products over a K of at most 16 of an untransposed A (LoRA's out += s·u·Bᵀ and dx += du·A) update C row by
// row (rank_rows below).
#include "core/gemm_thin.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/gemm_f32.h"
#include "core/gemm_tile.h"
#include "core/product_time.h"
#include "core/thread_team.h"

namespace heirloom {

namespace {
constexpr int kPanel = 32, kTaskRows = 48;
constexpr int64_t kMaxCopy = 1 << 16;  // floats of op(B) worth copying
constexpr int kOuterMinK = 64;         // from this K on, a transposed A's thin products take outer_sum
constexpr int kKBlock = 16;            // rows of X per pass over a thread's columns
constexpr int kRowsMinK = 64;          // from this K on, products to at most kThinSide columns take broadcast_rows
// Rows of the wide operand fetched ahead by rank_rows: a step's activations come from memory, and
// these products have too little arithmetic per byte to hide the wait (BM_lora_thin_cold; bench/RESULTS.md).
constexpr int kAheadRows = 4;

// acc[r][j] (+)= Σ_k U[k·ldu + r] · X[k·ldx + j] for r < R, j < W, k < K: X's rows are read whole (a thread's
// columns of them), kKBlock at a time, and the accumulators wait in acc (R rows of ldacc, in L1) between
// blocks. Every element is still one FMA chain over k in order, the same bits as gemm_f32_panel's.
template <int R>
__attribute__((target("avx512f"))) void outer_cols(int K, const float* U, int64_t ldu, const float* X, int64_t ldx,
                                                   int W, float* acc, int ldacc) {
  constexpr int V = R <= 8 ? 4 : 2;  // vectors of 16 columns per pass: R·V ≤ 32 accumulators
  for (int k0 = 0; k0 < K; k0 += kKBlock) {
    const int k1 = std::min(K, k0 + kKBlock);
    // The next block's rows on their way while this one is summed: X is an activation saved long before.
    for (int k = k1; k < std::min(K, k1 + kKBlock); ++k)
      for (int j = 0; j < W; j += 16) _mm_prefetch((const char*)(X + (int64_t)k * ldx + j), _MM_HINT_T0);
    for (int j = 0; j < W; j += 16 * V) {
      __mmask16 mask[V];
      __m512 a[R][V];
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) mask[v] = first_columns(W - j - 16 * v);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) a[r][v] = _mm512_loadu_ps(acc + (int64_t)r * ldacc + j + 16 * v);
      for (int k = k0; k < k1; ++k) {
        __m512 x[V];
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) x[v] = _mm512_maskz_loadu_ps(mask[v], X + (int64_t)k * ldx + j + 16 * v);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const __m512 u = _mm512_set1_ps(U[(int64_t)k * ldu + r]);
#pragma GCC unroll 4
          for (int v = 0; v < V; ++v) a[r][v] = _mm512_fmadd_ps(u, x[v], a[r][v]);
        }
      }
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) _mm512_storeu_ps(acc + (int64_t)r * ldacc + j + 16 * v, a[r][v]);
    }
  }
}

using OuterCols = void (*)(int, const float*, int64_t, const float*, int64_t, int, float*, int);
template <int... R>
constexpr auto outer_table(std::integer_sequence<int, R...>) {
  return std::array<OuterCols, sizeof...(R)>{&outer_cols<R + 1>...};
}
constexpr auto kOuterCols = outer_table(std::make_integer_sequence<int, kThinSide>{});

// C (+)= Uᵀ·X for U [K, R ≤ kThinSide], X [K, W]: element (r, j) of the product goes to C[r·crs + j·cjs]
// (C = op(A)·op(B) when A is Uᵀ; Cᵀ when B is U). Threads take equal shares of X's columns.
void outer_sum(int R, int W, int K, const float* U, int64_t ldu, const float* X, int64_t ldx, float* C, int64_t crs,
               int64_t cjs, bool accumulate) {
  const int shares = !in_team() && (int64_t)R * W * K >= (1 << 16) ? omp_get_max_threads() : 1;
  auto share = [&](int t, int nt) {
    const int blocks = (W + 15) / 16;
    const int j0 = blocks * t / nt * 16, j1 = std::min(W, blocks * (t + 1) / nt * 16), w = j1 - j0;
    if (w > 0) {
      const int ldacc = (w + 63) / 64 * 64;
      thread_local std::vector<float> acc;
      acc.assign((size_t)R * ldacc, 0.f);
      kOuterCols[R - 1](K, U, ldu, X + j0, ldx, w, acc.data(), ldacc);
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < w; ++j) {
          float& c = C[r * crs + (int64_t)(j0 + j) * cjs];
          c = accumulate ? acc[(size_t)r * ldacc + j] + c : acc[(size_t)r * ldacc + j];
        }
    }
  };
  if (shares == 1) return share(0, 1);  // no team: even a one-thread team costs a call
  run_team(shares, [&](int t, int nt) {
    const PartOfProduct part;  // of gemm()'s product, which holds every thread
    share(t, nt);
  });
}

// C[r0:r1, 0:N] (+)= A[r0:r1, 0:K] · B[K, N] for K ≤ kThinSide (a rank-K update: LoRA's out += s·u·Bᵀ and
// dx += du·A), B's rows contiguous (ldb): row by row, 64 columns at a time, each element one FMA chain over k in
// order from zero, then added to C, as gemm_f32_panel's are (the same bits). C's rows are read and written in
// order, kAheadRows ahead: on 32-column panels of 48 rows they came from memory at about 15 GB/s.
__attribute__((target("avx512f"))) void rank_rows(int r0, int r1, int N, int K, const float* A, int64_t lda,
                                                  const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  for (int r = r0; r < r1; r += 2) {  // two rows at a time share each load of B
    const bool two = r + 1 < r1;
    const float* a0 = A + (int64_t)r * lda;
    const float* a1 = two ? a0 + lda : a0;
    float* c0 = C + (int64_t)r * ldc;
    float* c1 = two ? c0 + ldc : c0;
    if (r + kAheadRows < r1) {
      _mm_prefetch((const char*)(a0 + kAheadRows * lda), _MM_HINT_T0);
      _mm_prefetch((const char*)(a1 + kAheadRows * lda), _MM_HINT_T0);
      for (int n = 0; n < N; n += 16) {
        _mm_prefetch((const char*)(c0 + kAheadRows * ldc + n), _MM_HINT_T0);
        _mm_prefetch((const char*)(c1 + kAheadRows * ldc + n), _MM_HINT_T0);
      }
    }
    for (int n0 = 0; n0 < N; n0 += 64) {
      __m512 acc0[4], acc1[4];
      __mmask16 mask[4];
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) acc0[v] = acc1[v] = _mm512_setzero_ps(), mask[v] = first_columns(N - n0 - 16 * v);
      for (int k = 0; k < K; ++k) {
        const __m512 x0 = _mm512_set1_ps(a0[k]), x1 = _mm512_set1_ps(a1[k]);
        const float* b = B + (int64_t)k * ldb + n0;
#pragma GCC unroll 4
        for (int v = 0; v < 4; ++v) {
          const __m512 bv = _mm512_maskz_loadu_ps(mask[v], b + 16 * v);
          acc0[v] = _mm512_fmadd_ps(x0, bv, acc0[v]);
          acc1[v] = _mm512_fmadd_ps(x1, bv, acc1[v]);
        }
      }
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) {
        if (accumulate) acc0[v] = _mm512_add_ps(acc0[v], _mm512_maskz_loadu_ps(mask[v], c0 + n0 + 16 * v));
        _mm512_mask_storeu_ps(c0 + n0 + 16 * v, mask[v], acc0[v]);
      }
      if (two)
#pragma GCC unroll 4
        for (int v = 0; v < 4; ++v) {
          if (accumulate) acc1[v] = _mm512_add_ps(acc1[v], _mm512_maskz_loadu_ps(mask[v], c1 + n0 + 16 * v));
          _mm512_mask_storeu_ps(c1 + n0 + 16 * v, mask[v], acc1[v]);
        }
    }
  }
}

// C[r0:r1, 0:N] (+)= A[r0:r1, 0:K] · Bk[K, W] for N ≤ W (8: ymm, 16: zmm), Bk's rows op(B)'s rows (zeros past N):
// R rows at a time, each k's row of Bk against each row's A[r][k] broadcast. Each element is one FMA chain over
// k in order, on its row alone.
template <int W>
struct Lanes;  // the vector of W floats, and what broadcast_tile does with it
#define HEIRLOOM_LANES __attribute__((target("avx512f,avx512vl"), always_inline)) static inline
template <>
struct Lanes<8> {
  using V = __m256;
  HEIRLOOM_LANES V zero() { return _mm256_setzero_ps(); }
  HEIRLOOM_LANES V fma(float a, const float* b, V c) { return _mm256_fmadd_ps(_mm256_set1_ps(a), _mm256_loadu_ps(b), c); }
  HEIRLOOM_LANES V add(V v, __mmask16 m, const float* c) { return _mm256_add_ps(v, _mm256_maskz_loadu_ps((__mmask8)m, c)); }
  HEIRLOOM_LANES void store(float* c, __mmask16 m, V v) { _mm256_mask_storeu_ps(c, (__mmask8)m, v); }
};
template <>
struct Lanes<16> {
  using V = __m512;
  HEIRLOOM_LANES V zero() { return _mm512_setzero_ps(); }
  HEIRLOOM_LANES V fma(float a, const float* b, V c) { return _mm512_fmadd_ps(_mm512_set1_ps(a), _mm512_loadu_ps(b), c); }
  HEIRLOOM_LANES V add(V v, __mmask16 m, const float* c) { return _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, c)); }
  HEIRLOOM_LANES void store(float* c, __mmask16 m, V v) { _mm512_mask_storeu_ps(c, m, v); }
};
#undef HEIRLOOM_LANES

template <int R, int W>
__attribute__((target("avx512f,avx512vl"))) void broadcast_tile(const float* A, int64_t lda, int K, const float* Bk,
                                                                 float* C, int64_t ldc, int N, bool accumulate,
                                                                 const float* next) {
  using L = Lanes<W>;
  typename L::V acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = L::zero();
  for (int k = 0; k < K; ++k) {
    if (next && k % 16 == 0)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) _mm_prefetch((const char*)(next + r * lda + k), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = L::fma(A[r * lda + k], Bk + (int64_t)k * W, acc[r]);
  }
  const __mmask16 m = first_columns(N);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) L::store(C + r * ldc, m, accumulate ? L::add(acc[r], m, C + r * ldc) : acc[r]);
}

// Rows [r0, r1) in tiles of 8, each tile fetching the next one's rows of A (a step's activations, from memory).
template <int W>
void broadcast_rows(int r0, int r1, int K, const float* A, int64_t lda, const float* Bk, int N, float* C, int64_t ldc,
                    bool accumulate) {
  using Tile = void (*)(const float*, int64_t, int, const float*, float*, int64_t, int, bool, const float*);
  static constexpr Tile tiles[8] = {&broadcast_tile<1, W>, &broadcast_tile<2, W>, &broadcast_tile<3, W>,
                                    &broadcast_tile<4, W>, &broadcast_tile<5, W>, &broadcast_tile<6, W>,
                                    &broadcast_tile<7, W>, &broadcast_tile<8, W>};
  for (int r = r0; r < r1; r += 8) {
    const int n = std::min(8, r1 - r);
    const float* next = r + 8 + 8 <= r1 ? A + (int64_t)(r + 8) * lda : nullptr;
    tiles[n - 1](A + (int64_t)r * lda, lda, K, Bk, C + (int64_t)r * ldc, ldc, N, accumulate, next);
  }
}

// fn(r0, r1) over rows [0, M): split across the threads in shares of whole steps of rows when called outside a
// parallel region and `worth`, else on the calling thread.
template <class Fn>
void rows_across_threads(int M, int step, bool worth, Fn&& fn) {
  const int units = (M + step - 1) / step;
  if (in_team() || !worth || units < 2) return fn(0, M);
  run_team(omp_get_max_threads(), [&](int t, int nt) {
    const PartOfProduct part;  // of gemm()'s product, which holds every thread
    const TeamShare share = team_share(units, t, nt);
    fn(std::min(M, step * (int)share.first), std::min(M, step * (int)share.last));
  });
}

bool broadcast_rows_available() {
  static const bool ok = f32_packed_available() && __builtin_cpu_supports("avx512vl");
  return ok;
}

// C[M, N] (+)= alpha·A·op(B) for A's rows contiguous, N ≤ kThinSide: op(B)·alpha copied as Bk [K, W], rows split
// across the threads in tiles of 8.
void broadcast_product_rows(bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                            int ldb, bool accumulate, float* C, int ldc) {
  const int W = N <= 8 ? 8 : 16;
  thread_local std::vector<float> buf;  // per calling thread: callers may multiply inside parallel regions
  buf.assign((size_t)K * W, 0.f);
  for (int k = 0; k < K; ++k)
    for (int n = 0; n < N; ++n) buf[(size_t)k * W + n] = alpha * (trans_b ? B[(int64_t)n * ldb + k] : B[(int64_t)k * ldb + n]);
  const float* bk = buf.data();  // (a lambda would name the executing thread's own buf)
  rows_across_threads(M, 8, (int64_t)M * N * K >= (1 << 16), [&](int r0, int r1) {
    if (W == 8) broadcast_rows<8>(r0, r1, K, A, lda, bk, N, C, ldc, accumulate);
    else broadcast_rows<16>(r0, r1, K, A, lda, bk, N, C, ldc, accumulate);
  });
}
}  // namespace

bool gemm_thin(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
               int ldb, float beta, float* C, int ldc) {
  if (std::min({M, N, K}) > kThinSide || (beta != 0.f && beta != 1.f) || !f32_packed_available()) return false;
  const bool outer = trans_a && !trans_b && K >= kOuterMinK;
  if (outer && M <= kThinSide && alpha == 1.f)  // C[M, N] = Aᵀ·B: A's rows are U's
    return outer_sum(M, N, K, A, lda, B, ldb, C, ldc, 1, beta == 1.f), true;
  if (!trans_a && N <= kThinSide && K >= kRowsMinK && (int64_t)K * 16 <= kMaxCopy && broadcast_rows_available())
    return broadcast_product_rows(trans_b, M, N, K, alpha, A, lda, B, ldb, beta == 1.f, C, ldc), true;
  const bool copy = trans_b || alpha != 1.f;
  if (copy && (int64_t)K * N > kMaxCopy) return false;
  const float* b = B;
  int64_t ldb_rows = ldb;
  if (copy) {  // op(B)[k][n] · alpha as rows of N
    thread_local std::vector<float> buf;  // per calling thread: callers may multiply inside parallel regions
    buf.resize((size_t)K * N);
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N; ++n)
        buf[(size_t)k * N + n] = alpha * (trans_b ? B[(int64_t)n * ldb + k] : B[(int64_t)k * ldb + n]);
    b = buf.data(), ldb_rows = N;
  }
  if (outer && N <= kThinSide)  // Cᵀ[N, M] = op(B)ᵀ·A, alpha folded into B as for the panels
    return outer_sum(N, M, K, b, ldb_rows, A, lda, C, 1, ldc, beta == 1.f), true;
  if (!trans_a && K <= kThinSide) {  // a rank-K update of C's rows
    rows_across_threads(M, 1, (int64_t)M * N * K >= (1 << 16),
                        [&](int r0, int r1) { rank_rows(r0, r1, N, K, A, lda, b, ldb_rows, C, ldc, beta == 1.f); });
    return true;
  }
  const int64_t ars = trans_a ? 1 : lda, aks = trans_a ? lda : 1;
  const int row_tasks = (M + kTaskRows - 1) / kTaskRows, panels = (N + kPanel - 1) / kPanel, tasks = row_tasks * panels;
  auto task = [&](int t) {
    const int r0 = t / panels * kTaskRows, col = t % panels * kPanel;
    gemm_f32_panel(std::min(kTaskRows, M - r0), K, A + r0 * ars, ars, aks, b + col, ldb_rows, std::min(kPanel, N - col),
                   C + (int64_t)r0 * ldc + col, ldc, beta == 1.f);
  };
  const bool parallel = !in_team() && tasks > 1 && (int64_t)M * N * K >= (1 << 16);
  if (!parallel) {
    for (int t = 0; t < tasks; ++t) task(t);
    return true;
  }
  run_team(omp_get_max_threads(), [&](int th, int nt) {
    const PartOfProduct part;  // of gemm()'s product, which holds every thread
    for (auto [t, last] = team_share(tasks, th, nt); t < last; ++t) task((int)t);
  });
  return true;
}

}  // namespace heirloom
