// Attention forward/backward. See attention.h.
//   p = softmax(q·kᵀ·scale) (causal);  out = p·v
//   dv += pᵀ·dout;  dp = dout·vᵀ;  ds = p ⊙ (dp − rowsum(p ⊙ dp));  dq += ds·k·scale;  dk += dsᵀ·q·scale
#include "ops/attention.h"

#include "core/gemm.h"
#include "core/gemm_f32.h"
#include "ops/vec_math.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace heirloom {

namespace {
inline float dot(const float* a, const float* b, int n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
}  // namespace

// Both passes run per (sequence, head) as small products on strided views of q, k, v, single-threaded inside
// the parallel loop, in blocks of kRows query rows: a block needs only the keys up to its last row, so the
// masked upper triangle is skipped block by block. Inside a block the few masked entries are computed and
// then zeroed (`att` still gets its zeros): with 32-row blocks that is 1/(2·blocks) more than the triangle
// (25 % at T = 128; 64-row blocks computed 50 % more and took 1.2x the time of attention's forward + backward).
// With AVX-512 the products run on gemm_f32_panel's micro-tiles (no BLAS call, no packing of q or the
// probabilities; products whose columns are keys read kᵀ or vᵀ, transposed once per (sequence, head));
// without it, through the BLAS on the same views.
namespace {
constexpr int kRows = 32;
constexpr int kPanel = 32;  // columns per gemm_f32_panel call

int round_up(int x, int m) { return (x + m - 1) / m * m; }

// xᵀ [D, ld_out] of rows 0..n-1 of x (row stride ldx), keys n..ld_out-1 zero.
void transpose_rows(float* out, int ld_out, const float* x, int ldx, int n, int D) {
  for (int j0 = 0; j0 < n; j0 += 16) {  // 16 rows at a time: what they read and write stays in L1
    const int j1 = std::min(n, j0 + 16);
    for (int d = 0; d < D; ++d) {
      float* o = out + (int64_t)d * ld_out;
#pragma omp simd
      for (int j = j0; j < j1; ++j) o[j] = x[(int64_t)j * ldx + d];
    }
  }
  for (int d = 0; d < D; ++d) std::fill(out + (int64_t)d * ld_out + n, out + (int64_t)(d + 1) * ld_out, 0.f);
}

// Keys transposed for the micro-tiles: xᵀ of rows 0..n-1 of x into `buf`, or null on the BLAS path.
const float* keys_t(std::vector<float>& buf, int ld_out, const float* x, int ldx, int n, int D) {
  if (!f32_packed_available()) return nullptr;
  if (buf.size() < (size_t)D * ld_out) buf.resize((size_t)D * ld_out);
  transpose_rows(buf.data(), ld_out, x, ldx, n, D);
  return buf.data();
}

// C[R, n] = A[R, D] · xᵀ for keys x [n, D] (row stride ldx); xt = keys_t(x) with row stride ldt, or null.
void times_keys(float* C, int ldc, const float* A, int lda, const float* x, int ldx, const float* xt, int ldt, int R,
                int n, int D) {
  if (!xt) return gemm(false, true, R, n, D, 1.f, A, lda, x, ldx, 0.f, C, ldc);
  for (int j0 = 0; j0 < n; j0 += kPanel)
    gemm_f32_panel(R, D, A, lda, 1, xt + j0, ldt, std::min(kPanel, n - j0), C + j0, ldc, false);
}

// C[M, D] (+)= A · X[K, D] for A(r, k) = A[r·ars + k·aks] with ars or aks = 1, X with row stride ldx.
void times_rows(float* C, int ldc, const float* A, int ars, int aks, const float* X, int ldx, int M, int K, int D,
                bool accumulate) {
  if (!f32_packed_available())  // aks = 1: A row-major with stride ars; ars = 1: A stored transposed
    return gemm(ars == 1 && aks != 1, false, M, D, K, 1.f, A, aks == 1 ? ars : aks, X, ldx, accumulate ? 1.f : 0.f,
                C, ldc);
  for (int d0 = 0; d0 < D; d0 += kPanel)
    gemm_f32_panel(M, K, A, ars, aks, X + d0, ldx, std::min(kPanel, D - d0), C + d0, ldc, accumulate);
}
}  // namespace

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v,
                       const AttnShape& s) {
  const int S = s.S(), D = s.D, HD = s.H * s.D, group = s.H / s.Hkv, St = round_up(S, kPanel);
  const float scale = 1.0f / std::sqrt((float)D);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      const int g = h / group;
      const float* qb = q + (int64_t)b * s.T * s.ldq + h * D;
      const float* kb = k + b * s.kv_bstride + g * D;
      const float* vb = v + b * s.kv_bstride + g * D;
      float* ob = out + (int64_t)b * s.T * HD + h * D;
      thread_local std::vector<float> kt_buf, scratch;
      if (!att && scratch.size() < (size_t)kRows * S) scratch.resize((size_t)kRows * S);
      const float* kt = keys_t(kt_buf, St, kb, s.ldkv, S, D);
      for (int t0 = 0; t0 < s.T; t0 += kRows) {
        const int t1 = std::min(s.T, t0 + kRows), nk = s.pos0 + t1;
        // This block's probabilities: in att, or (not kept) in a scratch block that stays in cache.
        float* pb = att ? att + (((int64_t)b * s.H + h) * s.T + t0) * S : scratch.data();
        times_keys(pb, S, qb + (int64_t)t0 * s.ldq, s.ldq, kb, s.ldkv, kt, St, t1 - t0, nk, D);
        for (int t = t0; t < t1; ++t) {
          float* p = pb + (int64_t)(t - t0) * S;
          const int n_keys = s.pos0 + t + 1;
          const float mx = scale * row_max(p, n_keys);  // scale > 0: the max of the scaled scores
          const float inv = 1.0f / row_exp(p, p, n_keys, mx, scale);
          for (int j = 0; j < n_keys; ++j) p[j] *= inv;
          std::fill(p + n_keys, p + (att ? S : nk), 0.f);  // att keeps its contract: the whole causal matrix
        }
        times_rows(ob + (int64_t)t0 * HD, HD, pb, S, 1, vb, s.ldkv, t1 - t0, nk, D, false);
      }
    }
}

void attention_backward(float* dq, float* dk, float* dv, float* datt, const float* dout, const float* att,
                        const float* q, const float* k, const float* v, const AttnShape& s) {
  const int S = s.S(), D = s.D, HD = s.H * s.D, group = s.H / s.Hkv, St = round_up(S, kPanel);
  const float scale = 1.0f / std::sqrt((float)D);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; ++b)
    for (int g = 0; g < s.Hkv; ++g) {
      const float* kb = k + b * s.kv_bstride + g * D;
      const float* vb = v + b * s.kv_bstride + g * D;
      float* dkb = dk + b * s.kv_bstride + g * D;
      float* dvb = dv + b * s.kv_bstride + g * D;
      thread_local std::vector<float> vt_buf;
      const float* vt = keys_t(vt_buf, St, vb, s.ldkv, S, D);
      for (int h = g * group; h < (g + 1) * group; ++h) {  // heads sharing k, v run in order: no races
        for (int t0 = 0; t0 < s.T; t0 += kRows) {
          const int t1 = std::min(s.T, t0 + kRows), nk = s.pos0 + t1, R = t1 - t0;
          const float* pb = att + ((int64_t)b * s.H + h) * s.T * S + (int64_t)t0 * S;
          float* ds = datt + ((int64_t)b * s.H + h) * s.T * S + (int64_t)t0 * S;
          const float* dob = dout + ((int64_t)b * s.T + t0) * HD + h * D;
          const float* qb = q + ((int64_t)b * s.T + t0) * s.ldq + h * D;
          float* dqb = dq + ((int64_t)b * s.T + t0) * s.ldq + h * D;
          times_rows(dvb, s.ldkv, pb, 1, S, dob, HD, nk, R, D, true);  // dv += pᵀ·dout
          times_keys(ds, S, dob, HD, vb, s.ldkv, vt, St, R, nk, D);     // dp = dout·vᵀ
          for (int t = 0; t < R; ++t) {
            const float* p = pb + (int64_t)t * S;
            float* d = ds + (int64_t)t * S;
            const int n_keys = s.pos0 + t0 + t + 1;
            const float pdp = dot(p, d, n_keys);
            for (int j = 0; j < n_keys; ++j) d[j] = p[j] * (d[j] - pdp) * scale;
            std::fill(d + n_keys, d + nk, 0.f);
          }
          times_rows(dqb, s.ldq, ds, S, 1, kb, s.ldkv, R, nk, D, true);  // dq += ds·k
          times_rows(dkb, s.ldkv, ds, 1, S, qb, s.ldq, nk, R, D, true);  // dk += dsᵀ·q
        }
      }
    }
}

void attention_forward_ref(float* out, float* att, const float* q, const float* k, const float* v,
                           const AttnShape& s) {
  const int S = s.S(), D = s.D, HD = s.H * s.D, group = s.H / s.Hkv;
  const double scale = 1.0 / std::sqrt((double)D);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h)
      for (int t = 0; t < s.T; ++t) {
        const int g = h / group;
        std::vector<double> sc(S, 0.0);
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j <= s.pos0 + t; ++j) {
          double d = 0;
          for (int i = 0; i < D; ++i)
            d += (double)q[((int64_t)b * s.T + t) * s.ldq + h * D + i] * k[b * s.kv_bstride + (int64_t)j * s.ldkv + g * D + i];
          sc[j] = d * scale;
          mx = std::max(mx, sc[j]);
        }
        for (int j = 0; j <= s.pos0 + t; ++j) sum += (sc[j] = std::exp(sc[j] - mx));
        float* p = att + (((int64_t)b * s.H + h) * s.T + t) * S;
        for (int j = 0; j < S; ++j) p[j] = j <= s.pos0 + t ? (float)(sc[j] / sum) : 0.f;
        for (int i = 0; i < D; ++i) {
          double o = 0;
          for (int j = 0; j <= s.pos0 + t; ++j) o += sc[j] / sum * v[b * s.kv_bstride + (int64_t)j * s.ldkv + g * D + i];
          out[((int64_t)b * s.T + t) * HD + h * D + i] = (float)o;
        }
      }
}

void attention_backward_ref(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                            const float* k, const float* v, const AttnShape& s) {
  const int S = s.S(), D = s.D, HD = s.H * s.D, group = s.H / s.Hkv;
  const double scale = 1.0 / std::sqrt((double)D);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h)
      for (int t = 0; t < s.T; ++t) {
        const int g = h / group, n_keys = s.pos0 + t + 1;
        const float* p = att + (((int64_t)b * s.H + h) * s.T + t) * S;
        const float* go = dout + ((int64_t)b * s.T + t) * HD + h * D;
        std::vector<double> dp(n_keys);
        double pdp = 0;
        for (int j = 0; j < n_keys; ++j) {
          const float* vj = v + b * s.kv_bstride + (int64_t)j * s.ldkv + g * D;
          double d = 0;
          for (int i = 0; i < D; ++i) d += (double)go[i] * vj[i];
          dp[j] = d;
          pdp += p[j] * d;
          for (int i = 0; i < D; ++i) dv[b * s.kv_bstride + (int64_t)j * s.ldkv + g * D + i] += (float)(p[j] * go[i]);
        }
        for (int j = 0; j < n_keys; ++j) {
          const double d = p[j] * (dp[j] - pdp) * scale;
          for (int i = 0; i < D; ++i) {
            dq[((int64_t)b * s.T + t) * s.ldq + h * D + i] += (float)(d * k[b * s.kv_bstride + (int64_t)j * s.ldkv + g * D + i]);
            dk[b * s.kv_bstride + (int64_t)j * s.ldkv + g * D + i] += (float)(d * q[((int64_t)b * s.T + t) * s.ldq + h * D + i]);
          }
        }
      }
}

}  // namespace heirloom
