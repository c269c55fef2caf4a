// Attention forward/backward. See attention.h.
//   p = softmax(q·kᵀ·scale) (causal);  out = p·v
//   dv += pᵀ·dout;  dp = dout·vᵀ;  ds = p ⊙ (dp − rowsum(p ⊙ dp));  dq += ds·k·scale;  dk += dsᵀ·q·scale
#include "ops/attention.h"

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
inline void axpy(float* y, float a, const float* x, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}
}  // namespace

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v,
                       const AttnShape& s) {
  const int S = s.S(), D = s.D, HD = s.H * s.D, group = s.H / s.Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      const int g = h / group;
      const float* kb = k + b * s.kv_bstride + g * D;
      const float* vb = v + b * s.kv_bstride + g * D;
      for (int t = 0; t < s.T; ++t) {
        const float* qt = q + ((int64_t)b * s.T + t) * s.ldq + h * D;
        float* p = att + (((int64_t)b * s.H + h) * s.T + t) * S;
        const int n_keys = s.pos0 + t + 1;
        float mx = -INFINITY;
        for (int j = 0; j < n_keys; ++j) {
          p[j] = dot(qt, kb + (int64_t)j * s.ldkv, D) * scale;
          mx = std::max(mx, p[j]);
        }
        const float sum = row_exp(p, p, n_keys, mx);
        const float inv = 1.0f / sum;
        for (int j = 0; j < n_keys; ++j) p[j] *= inv;
        std::fill(p + n_keys, p + S, 0.f);
        float* o = out + ((int64_t)b * s.T + t) * HD + h * D;
        std::fill(o, o + D, 0.f);
        for (int j = 0; j < n_keys; ++j) axpy(o, p[j], vb + (int64_t)j * s.ldkv, D);
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
      for (int h = g * group; h < (g + 1) * group; ++h)
        for (int t = 0; t < s.T; ++t) {
          const int64_t row = ((int64_t)b * s.H + h) * s.T + t;
          const float* p = att + row * S;
          float* ds = datt + row * S;
          const float* dot_ = dout + ((int64_t)b * s.T + t) * HD + h * D;
          const float* qt = q + ((int64_t)b * s.T + t) * s.ldq + h * D;
          float* dqt = dq + ((int64_t)b * s.T + t) * s.ldq + h * D;
          const int n_keys = s.pos0 + t + 1;
          float pdp = 0.f;
          for (int j = 0; j < n_keys; ++j) {
            ds[j] = dot(dot_, vb + (int64_t)j * s.ldkv, D);
            pdp += p[j] * ds[j];
            axpy(dvb + (int64_t)j * s.ldkv, p[j], dot_, D);
          }
          for (int j = 0; j < n_keys; ++j) {
            const float d = p[j] * (ds[j] - pdp) * scale;
            axpy(dqt, d, kb + (int64_t)j * s.ldkv, D);
            axpy(dkb + (int64_t)j * s.ldkv, d, qt, D);
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
