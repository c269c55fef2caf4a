// Attention in transposed blocks, in bf16 on dot products and in fp32 on AVX-512: see ops/attention_transposed.h.
//   forward:  Sᵀ = K·Qᵀ; m = scale·max_j Sᵀ[j]; e = exp(scale·Sᵀ − m); inv = 1/Σ_j e; p = e·inv; out = p·v
//   backward: dPᵀ = V·doutᵀ; r = Σ_j p ⊙ dPᵀ; ds = p ⊙ (dPᵀ − r)·scale; dq = ds·k; dv += pᵀ·dout; dk += dsᵀ·q
// (j over a block's keys, each a row of 32 queries: the sums down the rows are per query).
#include "ops/attention_transposed.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/gemm_tile.h"
#include "core/transpose16.h"
#include "ops/vec_math.h"

namespace heirloom {

namespace {

constexpr int kQ = kAttnRows;  // a block's queries: the lanes of a key row (two vectors)
static_assert(kQ == 32, "a key row is two 16-lane vectors");

int round_up(int x, int m) { return (x + m - 1) / m * m; }

// This thread's buffers, reused across units and calls.
struct Buffers {
  std::vector<uint16_t> rows;        // K (forward) or V (backward) in bf16 rows: the A of Sᵀ or dPᵀ
  PackedB qt, vk, rows_b[2];         // Qᵀ or doutᵀ [D, 32]; V (forward) or K (backward) [S, D]; dout, q [32, D]
  std::vector<float> scores;         // Sᵀ or dPᵀ, [keys][32]
  std::vector<uint32_t> pairs;       // p or ds in pairs of keys: pair i's 32 queries at i·ja
  std::vector<uint16_t> ds;          // ds's key rows in bf16, [keys][32]
  std::vector<float> grads;          // fp32: dPᵀ, then ds, [keys][32]
  std::vector<float> block_t;        // fp32: a block's rows of q or dout transposed, [D][32]
  std::vector<float> kc, vc;         // fp32: the unit's rows of k and v side by side, [S][D] (contiguous_rows)
  int ja = 0;
  void size(int S, int D) {
    const size_t S32 = (size_t)round_up(S, 32);
    ja = pair_stride(kQ);
    if (rows.size() < S32 * round_up(D, 32)) rows.resize(S32 * round_up(D, 32));
    if (scores.size() < S32 * kQ) scores.resize(S32 * kQ), ds.resize(S32 * kQ);
    if (pairs.size() < S32 / 2 * ja) pairs.resize(S32 / 2 * ja);
    if (grads.size() < S32 * kQ) grads.resize(S32 * kQ);
    if (block_t.size() < (size_t)round_up(D, 16) * kQ) block_t.resize((size_t)round_up(D, 16) * kQ);
    if (kc.size() < S32 * D) kc.resize(S32 * D), vc.resize(S32 * D);
  }
};
Buffers& buffers(int S, int D) {
  thread_local Buffers b;
  b.size(S, D);
  return b;
}

// The queries of lanes [16h, 16h + 16) that see key j of the block from t0: all before the block; of its own
// keys, query i sees key t0 + i' for i' ≤ i.
__mmask16 sees(int j, int t0, int h) {
  const int jj = j - t0 - 16 * h;
  return jj <= 0 ? (__mmask16)0xffff : jj >= 16 ? (__mmask16)0 : (__mmask16)(0xffff << jj);
}

// The lanes past a block's R < 32 rows of a [nk][32] product, which the product leaves as they were: zero.
__attribute__((target("avx512f"))) void clear_lanes(float* x, int nk, int R) {
  for (int j = 0; R < kQ && j < nk; ++j)
    for (int h = 0; h < 2; ++h)
      _mm512_mask_storeu_ps(x + j * kQ + 16 * h, (__mmask16)~first_columns(R - 16 * h), _mm512_setzero_ps());
}

// Two key rows' 16 lanes, x0 (key 2i) and x1 (key 2i + 1), in bf16: b0, b1, and their pairs word by word.
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw"), always_inline)) inline __m512i pair_words(
    __m512 x0, __m512 x1, __m256i& b0, __m256i& b1) {
  b0 = (__m256i)_mm512_cvtneps_pbh(x0), b1 = (__m256i)_mm512_cvtneps_pbh(x1);
  return _mm512_or_si512(_mm512_maskz_cvtepu16_epi32(0xffff, b0),
                         _mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, b1), 16));
}

// The block's column maxima, scaled: m[h] = scale·max_j x[j] over the keys each query of lanes 16h.. sees.
__attribute__((target("avx512f"))) void column_max(f32x16 (&m)[2], const float* x, int nk, int t0, f32x16 scale) {
  for (int h = 0; h < 2; ++h) {
    __m512 mx = _mm512_set1_ps(-3.0e38f);
    // (maskz: gcc 12 warns of the plain form's pass-through)
    for (int j = 0; j < t0; ++j) mx = _mm512_maskz_max_ps(0xffff, mx, _mm512_loadu_ps(x + j * kQ + 16 * h));
    for (int j = t0; j < nk; ++j) mx = _mm512_mask_max_ps(mx, sees(j, t0, h), mx, _mm512_loadu_ps(x + j * kQ + 16 * h));
    m[h] = (f32x16)mx * scale;  // scale > 0: the max of the scaled scores
  }
}

// x = exp(scale·x − m) in place (zero where a query does not see the key); sum[h] gets each query's Σ_j. The
// forward and a backward making p again both come here, with the same m: the same bits.
__attribute__((target("avx512f"))) void column_exp(float* x, int nk, int t0, f32x16 scale, const f32x16 (&m)[2],
                                                   f32x16 (&sum)[2]) {
  for (int j = 0; j < nk; ++j)
    for (int h = 0; h < 2; ++h) {
      float* xj = x + j * kQ + 16 * h;
      const f32x16 e = exp_fast(load16(xj) * scale - m[h]);
      const f32x16 ez = j < t0 ? e : (f32x16)_mm512_maskz_mov_ps(sees(j, t0, h), (__m512)e);
      store16(xj, ez);
      sum[h] += ez;
    }
}

// x[j] ⊙= inv down the block's key rows: each query lane by its own factor.
__attribute__((target("avx512f"))) void column_scale(float* x, int nk, const f32x16 (&inv)[2]) {
  for (int j = 0; j < nk; ++j)
    for (int h = 0; h < 2; ++h) store16(x + j * kQ + 16 * h, load16(x + j * kQ + 16 * h) * inv[h]);
}

// r[h] = Σ_j p[j] ⊙ d[j] down the block's key rows, per query (p in fp32, or the kept bf16 rows).
template <class P>
__attribute__((target("avx512f"))) void column_dot(f32x16 (&r)[2], const P* p, const float* d, int nk) {
  r[0] = r[1] = f32x16{};
  for (int j = 0; j < nk; ++j)
    for (int h = 0; h < 2; ++h) r[h] += load16(p + j * kQ + 16 * h) * load16(d + j * kQ + 16 * h);
}

// A block's m and inv per query, as row_stats holds them (two floats a row), to and from the lanes.
void put_stats(float* row_stats, const f32x16 (&m)[2], const f32x16 (&inv)[2], int t0, int R) {
  for (int t = 0; t < R; ++t) row_stats[2 * (t0 + t)] = m[t / 16][t % 16], row_stats[2 * (t0 + t) + 1] = inv[t / 16][t % 16];
}
void get_stats(f32x16 (&m)[2], f32x16 (&inv)[2], const float* row_stats, int t0, int R) {
  for (int t = 0; t < kQ; ++t) {
    m[t / 16][t % 16] = t < R ? row_stats[2 * (t0 + t)] : 0.f;
    inv[t / 16][t % 16] = t < R ? row_stats[2 * (t0 + t) + 1] : 0.f;
  }
}

// fp32: C[M, n] (+)= A · X[K, n] on gemm_f32_panel's micro-tiles, 32 columns at a time; A(r, k) = A[r·ars + k·aks].
void f32_product(float* C, int64_t ldc, const float* A, int64_t ars, int64_t aks, const float* X, int64_t ldx, int M,
                 int K, int n, bool accumulate) {
  for (int c0 = 0; M > 0 && c0 < n; c0 += kQ)
    gemm_f32_panel(M, K, A, ars, aks, X + c0, ldx, std::min(kQ, n - c0), C + c0, ldc, accumulate);
}

// xt[d][i] = x[i][d] for a block's R rows of D values (row stride ld), lanes from R on zero: 16 × 16 in registers.
__attribute__((target("avx512f"))) void transpose_block(float* xt, const float* x, int64_t ld, int R, int D) {
  for (int i0 = 0; i0 < kQ; i0 += 16)
    for (int d0 = 0; d0 < D; d0 += 16) {
      __m512i w[16];
      const __mmask16 cols = first_columns(D - d0);
      for (int i = 0; i < 16; ++i)
        w[i] = i0 + i < R ? _mm512_maskz_loadu_epi32(cols, x + (i0 + i) * ld + d0) : _mm512_setzero_si512();
      transpose16(w);
      for (int c = 0; c < std::min(16, D - d0); ++c) _mm512_storeu_si512(xt + (d0 + c) * kQ + i0, w[c]);
    }
}

// The unit's S rows of x (D values each, row stride ld) copied side by side into out, which is returned: fp32's
// products then read k and v as one stream, not D values out of every q, k, v row (3 KB apart at moe-30m). The
// protocol's fp32 steps took 0.987–0.995 of their time in six trials, the 1x512 forward 0.977–0.986 in three,
// norm-only 8x128 0.991–1.010 (`heirloom bench --experiment`, nineteenth session). The same products of the same
// values: the same bits.
const float* contiguous_rows(float* out, const float* x, int64_t ld, int S, int D) {
  for (int j = 0; j < S; ++j) std::copy(x + (int64_t)j * ld, x + (int64_t)j * ld + D, out + (int64_t)j * D);
  return out;
}

}  // namespace

int64_t attention_kept_offset(int block, int T) {
  int64_t n = 0;
  for (int i = 0; i < block; ++i) n += (int64_t)kAttnRows * round_up(std::min(T, (i + 1) * kAttnRows), 32);
  return n;
}

int64_t attention_kept_per_head(int T) { return attention_kept_offset((T + kAttnRows - 1) / kAttnRows, T); }

bool attention_transposed(const AttnShape& s, bool bf16) {
  return s.pos0 == 0 && (bf16 ? !bf16_amx_available() : f32_packed_available());
}

__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
void transposed_forward(float* out, int ldo, float* row_stats, const float* q, const float* k, const float* v,
                        const AttnShape& s, uint16_t* kept) {
  const int S = s.S(), D = s.D, T = s.T, ldr = round_up(D, 32);
  const f32x16 scale = f32x16{} + 1.0f / std::sqrt((float)D);
  Buffers& b = buffers(S, D);
  to_bf16_rows(k, s.ldkv, false, S, D, b.rows.data(), ldr);
  pack_b_bf16_into(b.vk, v, s.ldkv, false, S, D);
  float* sc = b.scores.data();
  for (int t0 = 0; t0 < T; t0 += kQ) {
    const int R = std::min(kQ, T - t0), nk = t0 + R;
    pack_b_bf16_into(b.qt, q + (int64_t)t0 * s.ldq, s.ldq, true, D, R);
    gemm_bf16_small(nk, R, D, b.rows.data(), ldr, b.qt, sc, kQ, false);  // Sᵀ [nk][32]
    clear_lanes(sc, nk, R);
    f32x16 m[2], sum[2] = {}, inv[2];
    column_max(m, sc, nk, t0, scale);
    column_exp(sc, nk, t0, scale, m, sum);
    for (int h = 0; h < 2; ++h) inv[h] = 1.0f / sum[h];
    // p = e·inv, the lanes past the block's rows zero: in pairs of keys for p·v, and as kept rows
    const __mmask16 lanes[2] = {first_columns(R), first_columns(R - 16)};
    uint16_t* kept_rows = kept ? kept + attention_kept_offset(t0 / kQ, T) : nullptr;
    // The kept rows (one line for each key) go around the caches: the backward reads them after the other layers.
    // The protocol's steps took 0.997 of their time (`heirloom bench --experiment`, three trials, seventeenth
    // session).
    const bool stream_kept = kept_rows && reinterpret_cast<uintptr_t>(kept_rows) % 64 == 0;
    auto keep = [&](uint16_t* row, __m256i v) {
      if (stream_kept) _mm256_stream_si256((__m256i*)row, v);
      else _mm256_storeu_si256((__m256i*)row, v);
    };
    for (int j = 0; j < nk; j += 2) {
      for (int h = 0; h < 2; ++h) {
        const __m512 p0 = _mm512_maskz_mul_ps(lanes[h], _mm512_loadu_ps(sc + j * kQ + 16 * h), (__m512)inv[h]);
        const __m512 p1 = j + 1 < nk
            ? _mm512_maskz_mul_ps(lanes[h], _mm512_loadu_ps(sc + (j + 1) * kQ + 16 * h), (__m512)inv[h])
            : _mm512_setzero_ps();
        __m256i b0, b1;
        _mm512_storeu_si512(b.pairs.data() + (int64_t)(j / 2) * b.ja + 16 * h, pair_words(p0, p1, b0, b1));
        if (kept_rows) keep(kept_rows + j * kQ + 16 * h, b0), keep(kept_rows + (j + 1) * kQ + 16 * h, b1);
      }
    }
    if (stream_kept) _mm_sfence();
    gemm_bf16_small_pairs(R, D, nk, b.pairs.data(), b.ja, b.vk, out + (int64_t)t0 * ldo, ldo, false);
    if (row_stats) put_stats(row_stats, m, inv, t0, R);
  }
}

__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
void transposed_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                         const float* v, const AttnShape& s, int b, int g, bool write, const uint16_t* probs) {
  const int S = s.S(), D = s.D, T = s.T, HD = s.H * D, group = s.H / s.Hkv, ldr = round_up(D, 32);
  const float scale = 1.0f / std::sqrt((float)D);
  Buffers& bf = buffers(S, D);
  const float* kb = k + b * s.kv_bstride + g * D;
  const float* vb = v + b * s.kv_bstride + g * D;
  to_bf16_rows(vb, s.ldkv, false, S, D, bf.rows.data(), ldr);  // dPᵀ's A
  pack_b_bf16_into(bf.vk, kb, s.ldkv, false, S, D);              // dq's B
  float* dp = bf.scores.data();
  float* dkb = dk + b * s.kv_bstride + g * D;
  float* dvb = dv + b * s.kv_bstride + g * D;
  for (int h = g * group; h < (g + 1) * group; ++h) {  // heads sharing k, v in order: no races
    for (int t0 = 0; t0 < T; t0 += kQ) {
      const int R = std::min(kQ, T - t0), nk = t0 + R;
      const float* dob = dout + ((int64_t)b * T + t0) * HD + h * D;
      const float* qb = q + ((int64_t)b * T + t0) * s.ldq + h * D;
      float* dqb = dq + ((int64_t)b * T + t0) * s.ldq + h * D;
      const uint16_t* p = attention_kept_block(probs, s, b, h, t0);
      pack_b_bf16_into(bf.qt, dob, HD, true, D, R);
      gemm_bf16_small(nk, R, D, bf.rows.data(), ldr, bf.qt, dp, kQ, false);  // dPᵀ [nk][32]
      clear_lanes(dp, nk, R);
      f32x16 r[2];
      column_dot(r, p, dp, nk);
      // ds (zero where p is: past each query's keys and the block's rows), as key rows and in pairs of keys
      uint16_t* dsr = bf.ds.data();
      for (int j = 0; j < nk; j += 2)
        for (int h2 = 0; h2 < 2; ++h2) {
          auto grad = [&](int jj) {
            const int o = jj * kQ + 16 * h2;
            return (__m512)(load16(p + o) * (load16(dp + o) - r[h2]) * scale);
          };
          __m256i b0, b1;
          const __m512i w = pair_words(grad(j), j + 1 < nk ? grad(j + 1) : _mm512_setzero_ps(), b0, b1);
          _mm512_storeu_si512(bf.pairs.data() + (int64_t)(j / 2) * bf.ja + 16 * h2, w);
          _mm256_storeu_si256((__m256i*)(dsr + j * kQ + 16 * h2), b0);
          _mm256_storeu_si256((__m256i*)(dsr + (j + 1) * kQ + 16 * h2), b1);
        }
      gemm_bf16_small_pairs(R, D, nk, bf.pairs.data(), bf.ja, bf.vk, dqb, s.ldq, !write);  // dq (+)= ds·k
      // dv += pᵀ·dout, dk += dsᵀ·q: the keys from t0 on are new to the group's first head
      pack_b_bf16_into(bf.rows_b[0], dob, HD, false, R, D);
      pack_b_bf16_into(bf.rows_b[1], qb, s.ldq, false, R, D);
      const int seen = h == g * group ? t0 : nk;
      for (const auto& [a, rows, acc] : {std::tuple{p, &bf.rows_b[0], dvb},
                                         std::tuple{(const uint16_t*)dsr, &bf.rows_b[1], dkb}}) {
        gemm_bf16_small(seen, D, R, a, kQ, *rows, acc, s.ldkv, true);
        gemm_bf16_small(nk - seen, D, R, a + seen * kQ, kQ, *rows, acc + (int64_t)seen * s.ldkv, s.ldkv, !write);
      }
    }
  }
}

__attribute__((target("avx512f")))
void transposed_forward_f32(float* out, int ldo, float* row_stats, const float* q, const float* k, const float* v,
                            const AttnShape& s) {
  const int S = s.S(), D = s.D, T = s.T;
  const f32x16 scale = f32x16{} + 1.0f / std::sqrt((float)D);
  Buffers& b = buffers(S, D);
  float* sc = b.scores.data();
  float* qt = b.block_t.data();
  k = contiguous_rows(b.kc.data(), k, s.ldkv, S, D), v = contiguous_rows(b.vc.data(), v, s.ldkv, S, D);
  for (int t0 = 0; t0 < T; t0 += kQ) {
    const int R = std::min(kQ, T - t0), nk = t0 + R;
    transpose_block(qt, q + (int64_t)t0 * s.ldq, s.ldq, R, D);
    f32_product(sc, kQ, k, D, 1, qt, kQ, nk, D, kQ, false);  // Sᵀ [nk][32], lanes past R zero
    f32x16 m[2], sum[2] = {}, inv[2];
    column_max(m, sc, nk, t0, scale);
    column_exp(sc, nk, t0, scale, m, sum);
    for (int h = 0; h < 2; ++h) inv[h] = 1.0f / sum[h];
    column_scale(sc, nk, inv);
    f32_product(out + (int64_t)t0 * ldo, ldo, sc, 1, kQ, v, D, R, nk, D, false);  // p·v, p read down the columns
    if (row_stats) put_stats(row_stats, m, inv, t0, R);
  }
}

__attribute__((target("avx512f")))
void transposed_backward_f32(float* dq, float* dk, float* dv, const float* dout, const float* row_stats,
                             const float* q, const float* k, const float* v, const AttnShape& s, int b, int g,
                             bool write) {
  const int S = s.S(), D = s.D, T = s.T, HD = s.H * D, group = s.H / s.Hkv;
  const f32x16 scale = f32x16{} + 1.0f / std::sqrt((float)D);
  Buffers& bf = buffers(S, D);
  const float* kb = contiguous_rows(bf.kc.data(), k + b * s.kv_bstride + g * D, s.ldkv, S, D);
  const float* vb = contiguous_rows(bf.vc.data(), v + b * s.kv_bstride + g * D, s.ldkv, S, D);
  float* dkb = dk + b * s.kv_bstride + g * D;
  float* dvb = dv + b * s.kv_bstride + g * D;
  float* p = bf.scores.data();
  float* dp = bf.grads.data();
  float* xt = bf.block_t.data();
  for (int h = g * group; h < (g + 1) * group; ++h) {  // heads sharing k, v in order: no races
    const float* st = row_stats + 2 * ((int64_t)b * s.H + h) * T;
    for (int t0 = 0; t0 < T; t0 += kQ) {
      const int R = std::min(kQ, T - t0), nk = t0 + R;
      const float* dob = dout + ((int64_t)b * T + t0) * HD + h * D;
      const float* qb = q + ((int64_t)b * T + t0) * s.ldq + h * D;
      float* dqb = dq + ((int64_t)b * T + t0) * s.ldq + h * D;
      // p again, bit for bit the forward's: the same product, the forward's m and inv
      transpose_block(xt, qb, s.ldq, R, D);
      f32_product(p, kQ, kb, D, 1, xt, kQ, nk, D, kQ, false);
      f32x16 m[2], inv[2], unused[2] = {};
      get_stats(m, inv, st, t0, R);
      column_exp(p, nk, t0, scale, m, unused);
      column_scale(p, nk, inv);
      transpose_block(xt, dob, HD, R, D);
      f32_product(dp, kQ, vb, D, 1, xt, kQ, nk, D, kQ, false);  // dPᵀ [nk][32], lanes past R zero
      f32x16 r[2];
      column_dot(r, p, dp, nk);
      for (int j = 0; j < nk; ++j)
        for (int h2 = 0; h2 < 2; ++h2) {
          const int o = j * kQ + 16 * h2;
          store16(dp + o, load16(p + o) * (load16(dp + o) - r[h2]) * scale);  // ds, zero where p is
        }
      f32_product(dqb, s.ldq, dp, 1, kQ, kb, D, R, nk, D, !write);  // dq (+)= ds·k
      // dv += pᵀ·dout, dk += dsᵀ·q: the keys from t0 on are new to the group's first head
      const int seen = h == g * group ? t0 : nk;
      for (const auto& [a, x, ldx, acc] : {std::tuple{(const float*)p, dob, (int64_t)HD, dvb},
                                           std::tuple{(const float*)dp, qb, (int64_t)s.ldq, dkb}}) {
        f32_product(acc, s.ldkv, a, kQ, 1, x, ldx, seen, R, D, true);
        f32_product(acc + (int64_t)seen * s.ldkv, s.ldkv, a + seen * kQ, kQ, 1, x, ldx, nk - seen, R, D, !write);
      }
    }
  }
}

}  // namespace heirloom
