// Cross-entropy forward/backward. See xent.h.
#include "ops/xent.h"

#include "ops/vec_math.h"

#include <algorithm>
#include <cmath>

namespace heirloom {

namespace {
// max and log(sum(exp(x - max))) of one row.
inline void row_lse(const float* x, int V, float* mx, float* lse) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int i = 0; i < V; ++i) m = std::max(m, x[i]);
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < V; ++i) s += exp_fast(x[i] - m);
  *mx = m;
  *lse = std::log(s);
}
}  // namespace

double xent_forward(float* losses, const float* logits, const int32_t* targets, int N, int V, int* n_scored) {
  double total = 0;
  int scored = 0;
#pragma omp parallel for schedule(static) reduction(+ : total, scored)
  for (int n = 0; n < N; ++n) {
    if (targets[n] < 0) {
      losses[n] = 0.f;
      continue;
    }
    const float* x = logits + (int64_t)n * V;
    float mx, lse;
    row_lse(x, V, &mx, &lse);
    losses[n] = lse + mx - x[targets[n]];
    total += losses[n];
    ++scored;
  }
  if (n_scored) *n_scored = scored;
  return total;
}

void xent_backward(float* dlogits, const float* logits, const int32_t* targets, float scale, int N, int V) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    if (targets[n] < 0) continue;
    const float* x = logits + (int64_t)n * V;
    float* d = dlogits + (int64_t)n * V;
    float mx, lse;
    row_lse(x, V, &mx, &lse);
    const float off = mx + lse;
#pragma omp simd
    for (int i = 0; i < V; ++i) d[i] += exp_fast(x[i] - off) * scale;
    d[targets[n]] -= scale;
  }
}

double xent_forward_ref(float* losses, const float* logits, const int32_t* targets, int N, int V, int* n_scored) {
  double total = 0;
  int scored = 0;
  for (int n = 0; n < N; ++n) {
    losses[n] = 0.f;
    if (targets[n] < 0) continue;
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < V; ++i) mx = std::max(mx, (double)logits[(int64_t)n * V + i]);
    for (int i = 0; i < V; ++i) s += std::exp(logits[(int64_t)n * V + i] - mx);
    losses[n] = (float)(std::log(s) + mx - logits[(int64_t)n * V + targets[n]]);
    total += losses[n];
    ++scored;
  }
  if (n_scored) *n_scored = scored;
  return total;
}

void xent_backward_ref(float* dlogits, const float* logits, const int32_t* targets, float scale, int N, int V) {
  for (int n = 0; n < N; ++n) {
    if (targets[n] < 0) continue;
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < V; ++i) mx = std::max(mx, (double)logits[(int64_t)n * V + i]);
    for (int i = 0; i < V; ++i) s += std::exp(logits[(int64_t)n * V + i] - mx);
    for (int i = 0; i < V; ++i)
      dlogits[(int64_t)n * V + i] += (float)((std::exp(logits[(int64_t)n * V + i] - mx) / s - (i == targets[n])) * scale);
  }
}

float log_softmax_at(const float* logits, int V, int32_t token) {
  float mx, lse;
  row_lse(logits, V, &mx, &lse);
  return logits[token] - mx - lse;
}

}  // namespace heirloom
