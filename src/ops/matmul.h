// Linear layer without bias: out = inp · Wᵀ, W stored [O, I] (PyTorch order, GGUF ne = [I, O]).
// Row strides let a layer write into a slice of a wider buffer (q|k|v share one [N, (H+2Hkv)·D] buffer).
#pragma once

namespace heirloom {

// out[N, O] (row stride ldo) = (accumulate ? out : 0) + inp[N, I] (row stride ldi) · weight[O, I]ᵀ
void matmul_forward(float* out, int ldo, const float* inp, int ldi, const float* weight, int N, int I, int O,
                    bool accumulate = false);
// dinp[N, I] += dout · W ; dweight[O, I] += doutᵀ · inp.  Either output may be null (skipped).
void matmul_backward(float* dinp, int ldi_d, float* dweight, const float* dout, int ldo, const float* inp, int ldi,
                     const float* weight, int N, int I, int O);

void matmul_forward_ref(float* out, int ldo, const float* inp, int ldi, const float* weight, int N, int I, int O,
                        bool accumulate = false);
void matmul_backward_ref(float* dinp, int ldi_d, float* dweight, const float* dout, int ldo, const float* inp,
                         int ldi, const float* weight, int N, int I, int O);

}  // namespace heirloom
