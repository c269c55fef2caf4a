// RMSNorm forward/backward. See rmsnorm.h.
// dx_i = r*w_i*dy_i - r^3/C * x_i * sum_j(dy_j*w_j*x_j);  dw_i = sum_n dy_i*x_i*r.
#include "ops/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "ops/vec_math.h"

namespace heirloom {

// The row loops are written in 16-lane vectors: GCC kept an `omp simd` reduction's sum on the stack, and the
// backward's dot product ran at a fraction of the machine's pace (a norm step waited on it).
namespace {
void norm_row(float* y, float* rstd, const float* x, const float* weight, int C, float eps) {
  const float r = 1.0f / std::sqrt(row_dot(x, x, C) / C + eps);
  *rstd = r;
  int c = 0;
  for (; c + 16 <= C; c += 16) store16(y + c, load16(x + c) * r * load16(weight + c));
  for (; c < C; ++c) y[c] = x[c] * r * weight[c];
}
}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
  parallel_blocks(N, 16, (int64_t)N * C >= kSplitValues, [&](int64_t r0, int64_t r1) {
    for (int64_t n = r0; n < r1; ++n) norm_row(out + n * C, rstd + n, inp + n * C, weight, C, eps);
  });
}

void add_rmsnorm_forward(float* x, const float* add, float* out, float* rstd, const float* weight, int N, int C,
                         float eps) {
  parallel_blocks(N, 16, (int64_t)N * C >= kSplitValues, [&](int64_t r0, int64_t r1) {
    for (int64_t n = r0; n < r1; ++n) {
      float* xr = x + n * C;
      const float* ar = add + n * C;
      for (int c = 0; c < C; ++c) xr[c] += ar[c];
      norm_row(out + n * C, rstd + n, xr, weight, C, eps);
    }
  });
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C) {
  // One pass over blocks of rows: each block's input gradient and its own partial gain gradient (its rows'
  // sums), then the partials added in block order. The sums are the same for any thread count, and the gain
  // gradient costs no second pass over x and dy (nor a second wake-up of the other thread with only C / 64
  // column blocks to share).
  constexpr int kRows = 16;
  const int blocks = (N + kRows - 1) / kRows;
  thread_local std::vector<float> partials;  // per calling thread: [blocks, C]
  if (dweight && partials.size() < (size_t)blocks * C) partials.resize((size_t)blocks * C);
  float* part = partials.data();
  parallel_blocks(N, kRows, (int64_t)N * C >= kSplitValues, [&](int64_t r0, int64_t r1) {
    float* acc = dweight ? part + r0 / kRows * C : nullptr;
    if (acc) std::fill(acc, acc + C, 0.f);
    for (int64_t n = r0; n < r1; ++n) {
      const float* x = inp + n * C;
      const float* dy = dout + n * C;
      const float r = rstd[n];
      f32x16 s{};
      int c = 0;
      for (; c + 16 <= C; c += 16) {
        const f32x16 t = load16(dy + c) * load16(x + c);
        s += t * load16(weight + c);
        if (acc) store16(acc + c, load16(acc + c) + t * r);
      }
      float dot = hsum(s);
      for (; c < C; ++c) {
        dot += dy[c] * x[c] * weight[c];
        if (acc) acc[c] += dy[c] * x[c] * r;
      }
      if (!dinp) continue;
      float* dx = dinp + n * C;
      const float k = r * r * r * dot / C;
      for (c = 0; c + 16 <= C; c += 16)
        store16(dx + c, load16(dx + c) + r * load16(weight + c) * load16(dy + c) - k * load16(x + c));
      for (; c < C; ++c) dx[c] += r * weight[c] * dy[c] - k * x[c];
    }
  });
  if (!dweight) return;
  for (int b = 0; b < blocks; ++b) {
    const float* acc = part + (int64_t)b * C;
    for (int c = 0; c < C; ++c) dweight[c] += acc[c];
  }
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
