// RMSNorm forward/backward. See rmsnorm.h.
// dx_i = r*w_i*dy_i - r^3/C * x_i * sum_j(dy_j*w_j*x_j);  dw_i = sum_n dy_i*x_i*r.
// The gain gradient is reduced over rows inside column blocks, so no thread shares an output.
#include "ops/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/parallel.h"

namespace heirloom {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
  parallel_blocks(N, 16, (int64_t)N * C >= kSplitValues, [&](int64_t r0, int64_t r1) {
    for (int64_t n = r0; n < r1; ++n) {
      const float* x = inp + n * C;
      float* y = out + n * C;
      float ss = 0.f;
#pragma omp simd reduction(+ : ss)
      for (int c = 0; c < C; ++c) ss += x[c] * x[c];
      const float r = 1.0f / std::sqrt(ss / C + eps);
      rstd[n] = r;
#pragma omp simd
      for (int c = 0; c < C; ++c) y[c] = x[c] * r * weight[c];
    }
  });
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C) {
  const bool worth = (int64_t)N * C >= kSplitValues;
  if (dinp)
    parallel_blocks(N, 16, worth, [&](int64_t r0, int64_t r1) {
      for (int64_t n = r0; n < r1; ++n) {
        const float* x = inp + n * C;
        const float* dy = dout + n * C;
        float* dx = dinp + n * C;
        const float r = rstd[n];
        float dot = 0.f;
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < C; ++c) dot += dy[c] * weight[c] * x[c];
        const float k = r * r * r * dot / C;
#pragma omp simd
        for (int c = 0; c < C; ++c) dx[c] += r * weight[c] * dy[c] - k * x[c];
      }
    });
  if (!dweight) return;
  // The gain gradient by blocks of columns, each summed over all rows by one thread: no output shared.
  constexpr int kBlock = 64;
  parallel_blocks(C, kBlock, worth, [&](int64_t c0, int64_t c1) {
    float acc[kBlock] = {};
    for (int n = 0; n < N; ++n) {
      const float* x = inp + (int64_t)n * C;
      const float* dy = dout + (int64_t)n * C;
      const float r = rstd[n];
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += dy[c] * x[c] * r;
    }
    for (int64_t c = c0; c < c1; ++c) dweight[c] += acc[c - c0];
  });
}


void rmsnorm_forward_ref(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
  for (int n = 0; n < N; ++n) {
    double ss = 0;
    for (int c = 0; c < C; ++c) ss += (double)inp[(int64_t)n * C + c] * inp[(int64_t)n * C + c];
    const double r = 1.0 / std::sqrt(ss / C + eps);
    rstd[n] = (float)r;
    for (int c = 0; c < C; ++c) out[(int64_t)n * C + c] = (float)(inp[(int64_t)n * C + c] * r * weight[c]);
  }
}

void rmsnorm_backward_ref(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                          const float* rstd, int N, int C) {
  for (int n = 0; n < N; ++n) {
    const double r = rstd[n];
    double dot = 0;
    for (int c = 0; c < C; ++c) dot += (double)dout[(int64_t)n * C + c] * weight[c] * inp[(int64_t)n * C + c];
    for (int c = 0; c < C; ++c) {
      const int64_t i = (int64_t)n * C + c;
      if (dinp) dinp[i] += (float)(r * weight[c] * dout[i] - r * r * r * dot / C * inp[i]);
      if (dweight) dweight[c] += (float)(dout[i] * inp[i] * r);
    }
  }
}

}  // namespace heirloom
