// SwiGLU activation: out = silu(gate) ⊙ up, silu(x) = x·σ(x). The projections around it are matmuls.
#pragma once
#include <cstdint>

namespace heirloom {

// out[N, F] = silu(gate[N, F]) ⊙ up[N, F], gate and up in fp32 or bf16 (as the bf16 products write them)
template <class In>
void swiglu_forward(float* out, const In* gate, const In* up, int N, int F);
// dgate, dup = ... (written, not accumulated: callers need not clear them)
template <class In>
void swiglu_backward(float* dgate, float* dup, const float* dout, const In* gate, const In* up, int N, int F);
// One row of each (F values) on the calling thread, with the same values as the row's in the two above: for
// products that make their input rows as they go (ops/moe.cpp). Out and Up are float, or uint16_t for the values
// in bf16 as the bf16 products round their rows (ops/vec_math.h: to_bf16): float and float, bf16 and float,
// or both bf16. In (gate and up) is float or bf16.
template <class Out, class In>
void swiglu_forward_row(Out* out, const In* gate, const In* up, int F);
template <class Out, class Up, class In>
void swiglu_backward_row(Out* dgate, Up* dup, const float* dout, const In* gate, const In* up, int F);

void swiglu_forward_ref(float* out, const float* gate, const float* up, int N, int F);
void swiglu_backward_ref(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int N,
                         int F);

}  // namespace heirloom
