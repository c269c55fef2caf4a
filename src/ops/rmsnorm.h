// RMSNorm: out = x / sqrt(mean(x^2) + eps) * w, as llama.cpp computes it.
// Saved: rstd[N] = 1/sqrt(mean(x^2) + eps) per row, reused by backward.
#pragma once

namespace heirloom {

// out[N, C], rstd[N]; inp[N, C]; weight[C]
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
// The residual add before a norm in the same pass: x[N, C] += add[N, C], then out = rmsnorm(x) (the same
// numbers as add, then rmsnorm_forward).
void add_rmsnorm_forward(float* x, const float* add, float* out, float* rstd, const float* weight, int N, int C,
                         float eps);
// dinp[N, C] += ...; dweight[C] += ... (dweight null = frozen gain)
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C);

void rmsnorm_forward_ref(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
void rmsnorm_backward_ref(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                          const float* rstd, int N, int C);

}  // namespace heirloom
