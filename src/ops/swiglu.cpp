// SwiGLU forward/backward. d silu(g)/dg = σ(g)·(1 + g·(1 − σ(g))).
#include "ops/swiglu.h"

#include "core/parallel.h"
#include "ops/vec_math.h"

#include <cmath>
#include <cstdint>

namespace heirloom {

template <class Out, class In>
void swiglu_forward_row(Out* out, const In* gate, const In* up, int F) {
  int i = 0;
  for (; i + 16 <= F; i += 16) {
    const f32x16 g = load16(gate + i);
    store16(out + i, g / (1.0f + exp_fast(-g)) * load16(up + i));
  }
  for (; i < F; ++i) {
    const float g = load1(gate + i);
    store1(out + i, g / (1.0f + exp_fast(-g)) * load1(up + i));
  }
}
template void swiglu_forward_row(float*, const float*, const float*, int);
template void swiglu_forward_row(uint16_t*, const float*, const float*, int);
template void swiglu_forward_row(float*, const uint16_t*, const uint16_t*, int);
template void swiglu_forward_row(uint16_t*, const uint16_t*, const uint16_t*, int);

template <class Out, class Up, class In>
void swiglu_backward_row(Out* dgate, Up* dup, const float* dout, const In* gate, const In* up, int F) {
  int i = 0;
  for (; i + 16 <= F; i += 16) {
    const f32x16 g = load16(gate + i), d = load16(dout + i);
    const f32x16 sg = 1.0f / (1.0f + exp_fast(-g));
    store16(dgate + i, d * load16(up + i) * sg * (1.0f + g * (1.0f - sg)));
    store16(dup + i, d * g * sg);
  }
  for (; i < F; ++i) {
    const float g = load1(gate + i), sg = 1.0f / (1.0f + exp_fast(-g));
    store1(dgate + i, dout[i] * load1(up + i) * sg * (1.0f + g * (1.0f - sg)));
    store1(dup + i, dout[i] * g * sg);
  }
}
#define HEIRLOOM_SWIGLU_BACKWARD_ROW(Out, Up)                                                                \
  template void swiglu_backward_row(Out*, Up*, const float*, const float*, const float*, int);          \
  template void swiglu_backward_row(Out*, Up*, const float*, const uint16_t*, const uint16_t*, int);
HEIRLOOM_SWIGLU_BACKWARD_ROW(float, float)
HEIRLOOM_SWIGLU_BACKWARD_ROW(uint16_t, float)
HEIRLOOM_SWIGLU_BACKWARD_ROW(uint16_t, uint16_t)
#undef HEIRLOOM_SWIGLU_BACKWARD_ROW

// Row by row, so that a row's values are those of the _row functions whatever F is (they differ from the
// scalar tail's in the last bits). Also called per expert inside the experts' parallel loop.
template <class In>
void swiglu_forward(float* out, const In* gate, const In* up, int N, int F) {
  parallel_for(N, (int64_t)N * F >= kSplitValues, [&](int64_t r) {
    swiglu_forward_row(out + r * F, gate + r * F, up + r * F, F);
  });
}
template void swiglu_forward(float*, const float*, const float*, int, int);
template void swiglu_forward(float*, const uint16_t*, const uint16_t*, int, int);

template <class In>
void swiglu_backward(float* dgate, float* dup, const float* dout, const In* gate, const In* up, int N, int F) {
  parallel_for(N, (int64_t)N * F >= kSplitValues, [&](int64_t r) {
    swiglu_backward_row(dgate + r * F, dup + r * F, dout + r * F, gate + r * F, up + r * F, F);
  });
}
template void swiglu_backward(float*, float*, const float*, const float*, const float*, int, int);
template void swiglu_backward(float*, float*, const float*, const uint16_t*, const uint16_t*, int, int);

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
