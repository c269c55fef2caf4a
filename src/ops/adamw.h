// AdamW (decoupled weight decay, bias-corrected moments), gradient-norm clipping and the
// warm-up + cosine learning-rate schedule. The optimizer state lives with the caller.
#pragma once
#include <cstdint>

namespace heirloom {

struct AdamwHparams {
  float lr = 3e-4f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.0f;
  float grad_scale = 1.0f;  // multiplies each gradient as it is read (clipping, without a pass of its own)
};

// step counts from 1. param -= lr·(m̂/(sqrt(v̂)+eps) + wd·param)
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, const AdamwHparams& h, int step,
                  float lr);
// One step's constants, for callers that update their parameters in pieces (fused with other work):
// apply is adamw_update's arithmetic on n values, on the calling thread.
struct AdamwStep {
  AdamwStep(const AdamwHparams& h, int step, float lr);
  void apply(float* param, const float* grad, float* m, float* v, int64_t n) const;
  AdamwHparams h;
  float c1, c2, lr;  // bias corrections 1/(1 - beta^step)
};
void adamw_update_ref(float* param, const float* grad, float* m, float* v, int64_t n, const AdamwHparams& h, int step,
                      float lr);

// Sum of squares of n values, accumulated in double (deterministic per thread count).
double sum_squares(const float* x, int64_t n);
double sum_squares_serial(const float* x, int64_t n);  // the same on the calling thread
void scale_inplace(float* x, int64_t n, float s);

// Linear warm-up over `warmup` steps to lr_max, then cosine decay to lr_min at `total` steps.
float lr_schedule(int step, int warmup, int total, float lr_max, float lr_min);

}  // namespace heirloom
