// SwiGLU forward/backward. d silu(g)/dg = σ(g)·(1 + g·(1 − σ(g))).
#include "ops/swiglu.h"

#include "core/parallel.h"
#include "ops/vec_math.h"

#include <cmath>
#include <cstdint>

namespace heirloom {

void swiglu_forward(float* out, const float* gate, const float* up, int N, int F) {
  const int64_t n = (int64_t)N * F, n16 = n / 16 * 16;
  parallel_for(n16 / 16, true, [&](int64_t b) {  // also called per expert inside the experts' parallel loop
    const int64_t i = b * 16;
    const f32x16 g = load16(gate + i);
    store16(out + i, g / (1.0f + exp_fast(-g)) * load16(up + i));
  });
  for (int64_t i = n16; i < n; ++i) out[i] = gate[i] / (1.0f + exp_fast(-gate[i])) * up[i];
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int N, int F) {
  const int64_t n = (int64_t)N * F, n16 = n / 16 * 16;
  parallel_for(n16 / 16, true, [&](int64_t b) {
    const int64_t i = b * 16;
    const f32x16 g = load16(gate + i), u = load16(up + i), d = load16(dout + i);
    const f32x16 sg = 1.0f / (1.0f + exp_fast(-g));
    store16(dgate + i, d * u * sg * (1.0f + g * (1.0f - sg)));
    store16(dup + i, d * g * sg);
  });
  for (int64_t i = n16; i < n; ++i) {
    const float g = gate[i], sg = 1.0f / (1.0f + exp_fast(-g));
    dgate[i] = dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
    dup[i] = dout[i] * g * sg;
  }
}

void swiglu_forward_ref(float* out, const float* gate, const float* up, int N, int F) {
  for (int64_t i = 0; i < (int64_t)N * F; ++i) out[i] = (float)(gate[i] / (1.0 + std::exp(-(double)gate[i])) * up[i]);
}

void swiglu_backward_ref(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int N,
                         int F) {
  for (int64_t i = 0; i < (int64_t)N * F; ++i) {
    const double g = gate[i], sg = 1.0 / (1.0 + std::exp(-g));
    dgate[i] = (float)(dout[i] * up[i] * sg * (1.0 + g * (1.0 - sg)));
    dup[i] = (float)(dout[i] * g * sg);
  }
}

}  // namespace heirloom
