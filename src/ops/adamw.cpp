// AdamW, clipping helpers and the schedule. See adamw.h.
#include "ops/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"

namespace heirloom {

AdamwStep::AdamwStep(const AdamwHparams& h, int step, float lr)
    : h(h), c1(1.0f / (1.0f - std::pow(h.beta1, (float)step))), c2(1.0f / (1.0f - std::pow(h.beta2, (float)step))),
      lr(lr) {}

namespace {

// adamw_update's arithmetic on n values. The constants are copied first: the stores below are floats, as
// they are, so the compiler would read them again on every iteration.
void adamw_values(const AdamwStep& s, float* param, const float* grad, float* m, float* v, int64_t n) {
  const float scale = s.h.grad_scale, b1 = s.h.beta1, b2 = s.h.beta2, a1 = 1.0f - b1, a2 = 1.0f - b2;
  const float eps = s.h.eps, wd = s.h.weight_decay, lr = s.lr, c1 = s.c1, c2 = s.c2;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float g = scale * grad[i];
    m[i] = b1 * m[i] + a1 * g;
    v[i] = b2 * v[i] + a2 * g * g;
    param[i] -= lr * (m[i] * c1 / (std::sqrt(v[i] * c2) + eps) + wd * param[i]);
  }
}

}  // namespace

void AdamwStep::apply(float* param, const float* grad, float* m, float* v, int64_t n) const {
  adamw_values(*this, param, grad, m, v, n);
}

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, const AdamwHparams& h, int step,
                  float lr) {
  const AdamwStep s(h, step, lr);
  constexpr int64_t kChunk = 4096;  // whole cache lines per thread
  parallel_blocks(n, kChunk, n >= kSplitValues, [&](int64_t i0, int64_t i1) {
    adamw_values(s, param + i0, grad + i0, m + i0, v + i0, i1 - i0);
  });
}

void adamw_update_ref(float* param, const float* grad, float* m, float* v, int64_t n, const AdamwHparams& h, int step,
                      float lr) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = (double)h.grad_scale * grad[i];
    const double mi = h.beta1 * (double)m[i] + (1.0 - h.beta1) * g;
    const double vi = h.beta2 * (double)v[i] + (1.0 - h.beta2) * g * g;
    const double mh = mi / (1.0 - std::pow((double)h.beta1, step)), vh = vi / (1.0 - std::pow((double)h.beta2, step));
    m[i] = (float)mi;
    v[i] = (float)vi;
    param[i] = (float)(param[i] - lr * (mh / (std::sqrt(vh) + h.eps) + h.weight_decay * (double)param[i]));
  }
}

// Blocks summed alone, then their sums in order: the same bits for any number of threads.
double sum_squares(const float* x, int64_t n) {
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  if (blocks <= 1) return sum_squares_serial(x, n);
  std::vector<double> part(blocks);
  parallel_for(blocks, n >= kSplitValues,
               [&](int64_t b) { part[b] = sum_squares_serial(x + b * kBlock, std::min(kBlock, n - b * kBlock)); });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

double sum_squares_serial(const float* x, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += (double)x[i] * x[i];
  return s;
}

void scale_inplace(float* x, int64_t n, float s) {
  parallel_blocks(n, 4096, n >= kSplitValues, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] *= s;
  });
}

float lr_schedule(int step, int warmup, int total, float lr_max, float lr_min) {
  if (warmup > 0 && step < warmup) return lr_max * (step + 1) / warmup;
  if (total <= warmup) return lr_max;
  const float progress = std::clamp((float)(step - warmup) / (float)(total - warmup), 0.f, 1.f);
  return lr_min + 0.5f * (lr_max - lr_min) * (1.0f + std::cos(3.14159265358979f * progress));
}

}  // namespace heirloom
