// Attention forward/backward. See attention.h.
//   p = softmax(q·kᵀ·scale) (causal);  out = p·v
//   dv += pᵀ·dout;  dp = dout·vᵀ;  ds = p ⊙ (dp − rowsum(p ⊙ dp));  dq += ds·k·scale;  dk += dsᵀ·q·scale
#include "ops/attention.h"

#include "core/gemm.h"
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

// Both passes run per (sequence, head) as small GEMMs on strided views of q, k, v (single-threaded
// inside the parallel loop), in blocks of kRows query rows: a block needs only the keys up to its last
// row, so the masked upper triangle is skipped block by block (about half of the products at T = 512).
// Inside a block the few masked entries are computed and then zeroed; `att` still gets its zeros.
namespace {
constexpr int kRows = 64;
}

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v,
                       const AttnShape& s) {
  const int S = s.S(), D = s.D, HD = s.H * s.D, group = s.H / s.Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      const int g = h / group;
      const float* qb = q + (int64_t)b * s.T * s.ldq + h * D;
      const float* kb = k + b * s.kv_bstride + g * D;
      const float* vb = v + b * s.kv_bstride + g * D;
      float* pb = att + ((int64_t)b * s.H + h) * s.T * S;
      float* ob = out + (int64_t)b * s.T * HD + h * D;
      for (int t0 = 0; t0 < s.T; t0 += kRows) {
        const int t1 = std::min(s.T, t0 + kRows), nk = s.pos0 + t1;
        gemm(false, true, t1 - t0, nk, D, scale, qb + (int64_t)t0 * s.ldq, s.ldq, kb, s.ldkv, 0.f, pb + (int64_t)t0 * S, S);
        for (int t = t0; t < t1; ++t) {
          float* p = pb + (int64_t)t * S;
          const int n_keys = s.pos0 + t + 1;
          const float mx = row_max(p, n_keys);
          const float inv = 1.0f / row_exp(p, p, n_keys, mx);
          for (int j = 0; j < n_keys; ++j) p[j] *= inv;
          std::fill(p + n_keys, p + S, 0.f);  // att keeps its contract: the whole causal matrix
        }
        gemm(false, false, t1 - t0, D, nk, 1.f, pb + (int64_t)t0 * S, S, vb, s.ldkv, 0.f, ob + (int64_t)t0 * HD, HD);
      }
    }
}

void attention_backward(float* dq, float* dk, float* dv, float* datt, const float* dout, const float* att,
                        const float* q, const float* k, const float* v, const AttnShape& s) {
  const int S = s.S(), D = s.D, HD = s.H * s.D, group = s.H / s.Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; ++b)
    for (int g = 0; g < s.Hkv; ++g) {
      const float* kb = k + b * s.kv_bstride + g * D;
      const float* vb = v + b * s.kv_bstride + g * D;
      float* dkb = dk + b * s.kv_bstride + g * D;
      float* dvb = dv + b * s.kv_bstride + g * D;
      for (int h = g * group; h < (g + 1) * group; ++h) {  // heads sharing k, v run in order: no races
        for (int t0 = 0; t0 < s.T; t0 += kRows) {
          const int t1 = std::min(s.T, t0 + kRows), nk = s.pos0 + t1, R = t1 - t0;
          const float* pb = att + ((int64_t)b * s.H + h) * s.T * S + (int64_t)t0 * S;
          float* ds = datt + ((int64_t)b * s.H + h) * s.T * S + (int64_t)t0 * S;
          const float* dob = dout + ((int64_t)b * s.T + t0) * HD + h * D;
          const float* qb = q + ((int64_t)b * s.T + t0) * s.ldq + h * D;
          float* dqb = dq + ((int64_t)b * s.T + t0) * s.ldq + h * D;
          gemm(true, false, nk, D, R, 1.f, pb, S, dob, HD, 1.f, dvb, s.ldkv);  // dv += pᵀ·dout
          gemm(false, true, R, nk, D, 1.f, dob, HD, vb, s.ldkv, 0.f, ds, S);   // dp = dout·vᵀ
          for (int t = 0; t < R; ++t) {
            const float* p = pb + (int64_t)t * S;
            float* d = ds + (int64_t)t * S;
            const int n_keys = s.pos0 + t0 + t + 1;
            const float pdp = dot(p, d, n_keys);
            for (int j = 0; j < n_keys; ++j) d[j] = p[j] * (d[j] - pdp) * scale;
            std::fill(d + n_keys, d + nk, 0.f);
          }
          gemm(false, false, R, D, nk, 1.f, ds, S, kb, s.ldkv, 1.f, dqb, s.ldq);  // dq += ds·k
          gemm(true, false, nk, D, R, 1.f, ds, S, qb, s.ldq, 1.f, dkb, s.ldkv);   // dk += dsᵀ·q
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
