// Softmax cross-entropy over the vocabulary with an ignore index (target < 0 is not scored).
// The loss is the mean over scored rows; backward writes dlogits = (softmax − onehot)·dloss/n_scored.
#pragma once
#include <cstdint>

namespace heirloom {

constexpr int32_t kIgnoreIndex = -1;

// losses[N] (0 for ignored rows); returns the sum of losses; *n_scored = rows with a target.
// row_lse, when given, receives each scored row's log-sum-exp for xent_backward.
double xent_forward(float* losses, const float* logits, const int32_t* targets, int N, int V, int* n_scored,
                    float* row_lse = nullptr);
// dlogits[N, V] += (softmax(logits) − onehot(target)) · scale  (ignored rows get nothing).
// row_lse: the forward's, so the rows are read once instead of three times.
void xent_backward(float* dlogits, const float* logits, const int32_t* targets, float scale, int N, int V,
                   const float* row_lse = nullptr);
// The same, but dlogits[N, V] = ... (ignored rows are zeroed): no separate pass to clear 32 MB first.
void xent_backward_write(float* dlogits, const float* logits, const int32_t* targets, float scale, int N, int V,
                         const float* row_lse = nullptr);

// One row of xent_backward_write, given the forward's log-sum-exp of the row: for a dlogits that is consumed
// row by row and never stored (the head's bf16 product converts each row as it is made).
// Out is float, or uint16_t for the values in bf16 as the bf16 products round their rows (ops/vec_math.h).
template <class Out>
void xent_backward_row(Out* d, const float* logits_row, int32_t target, float scale, int V, float row_lse);
template <>
void xent_backward_row(float* d, const float* logits_row, int32_t target, float scale, int V, float row_lse);
template <>
void xent_backward_row(uint16_t* d, const float* logits_row, int32_t target, float scale, int V, float row_lse);

double xent_forward_ref(float* losses, const float* logits, const int32_t* targets, int N, int V, int* n_scored);
void xent_backward_ref(float* dlogits, const float* logits, const int32_t* targets, float scale, int N, int V);

// log-softmax probability of one token given a row of logits (for scoring and sampling).
float log_softmax_at(const float* logits, int V, int32_t token);

}  // namespace heirloom
