// Cross-entropy forward/backward. See xent.h.
#include "ops/xent.h"

#include "core/parallel.h"
#include "ops/vec_math.h"

#include <algorithm>
#include <cmath>

namespace heirloom {

namespace {
// max and log(sum(exp(x - max))) of one row.
inline void row_lse_of(const float* x, int V, float* mx, float* lse) {
  const float m = row_max(x, V);
  *mx = m;
  *lse = std::log(row_sum_exp(x, V, m));
}
}  // namespace

double xent_forward(float* losses, const float* logits, const int32_t* targets, int N, int V, int* n_scored,
                    float* row_lse) {
  parallel_blocks(N, 16, (int64_t)N * V >= kSplitValues, [&](int64_t r0, int64_t r1) {
    for (int64_t n = r0; n < r1; ++n) {
      if (targets[n] < 0) {
        losses[n] = 0.f;
        continue;
      }
      const float* x = logits + n * V;
      float mx, lse;
      row_lse_of(x, V, &mx, &lse);
      losses[n] = lse + mx - x[targets[n]];
      if (row_lse) row_lse[n] = lse + mx;
    }
  });
  double total = 0;  // in row order: the same sum on any number of threads
  int scored = 0;
  for (int n = 0; n < N; ++n)
    if (targets[n] >= 0) total += losses[n], ++scored;
  if (n_scored) *n_scored = scored;
  return total;
}

namespace {
// One row: d (+)= (softmax(x) − onehot(target))·scale, with off = the row's log-sum-exp.
template <bool kWrite>
inline void grad_row(float* d, const float* x, int32_t target, float scale, int V, float off) {
  int i = 0;
  for (; i + 16 <= V; i += 16) {
    const f32x16 g = exp_fast(load16(x + i) - off) * scale;
    store16(d + i, kWrite ? g : load16(d + i) + g);
  }
  for (; i < V; ++i) d[i] = (kWrite ? 0.f : d[i]) + exp_fast(x[i] - off) * scale;
  d[target] -= scale;
}

template <bool kWrite>
void xent_grad(float* dlogits, const float* logits, const int32_t* targets, float scale, int N, int V,
               const float* row_lse) {
  parallel_blocks(N, 16, (int64_t)N * V >= kSplitValues, [&](int64_t r0, int64_t r1) {
    for (int64_t n = r0; n < r1; ++n) {
      float* d = dlogits + n * V;
      if (targets[n] < 0) {
        if (kWrite) std::fill(d, d + V, 0.f);
        continue;
      }
      const float* x = logits + (int64_t)n * V;
      float off;
      if (row_lse) {
        off = row_lse[n];
      } else {
        float mx, lse;
        row_lse_of(x, V, &mx, &lse);
        off = mx + lse;
      }
      grad_row<kWrite>(d, x, targets[n], scale, V, off);
    }
  });
}
}  // namespace

template <>
void xent_backward_row(float* d, const float* logits_row, int32_t target, float scale, int V, float row_lse) {
  if (target < 0) return std::fill(d, d + V, 0.f);
  grad_row<true>(d, logits_row, target, scale, V, row_lse);
}

// The same values rounded to bf16: the target's entry has scale taken off in fp32 before it is rounded.
template <>
void xent_backward_row(uint16_t* d, const float* x, int32_t target, float scale, int V, float row_lse) {
  if (target < 0) return std::fill(d, d + V, (uint16_t)0);
  int i = 0;
  for (; i + 16 <= V; i += 16) {
    f32x16 g = exp_fast(load16(x + i) - row_lse) * scale;
    if ((unsigned)(target - i) < 16u) g[target - i] -= scale;
    store16(d + i, g);
  }
  for (; i < V; ++i) store1(d + i, exp_fast(x[i] - row_lse) * scale - (i == target ? scale : 0.f));
}

void xent_backward(float* dlogits, const float* logits, const int32_t* targets, float scale, int N, int V,
                   const float* row_lse) {
  xent_grad<false>(dlogits, logits, targets, scale, N, V, row_lse);
}

void xent_backward_write(float* dlogits, const float* logits, const int32_t* targets, float scale, int N, int V,
                         const float* row_lse) {
  xent_grad<true>(dlogits, logits, targets, scale, N, V, row_lse);
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
  row_lse_of(logits, V, &mx, &lse);
  return logits[token] - mx - lse;
}

}  // namespace heirloom
