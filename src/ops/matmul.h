// Linear layer without bias: out = inp · Wᵀ, W stored [O, I] (PyTorch order, GGUF ne = [I, O]).
// Row strides let a layer write into a slice of a wider buffer (q|k|v share one [N, (H+2Hkv)·D] buffer).
#pragma once

#include "core/gemm_bf16.h"

namespace heirloom {

// A frozen W [O, I] packed once as bf16 for both products it takes part in (see core/gemm_bf16.h).
struct PackedWeight {
  PackedB fwd;  // B = Wᵀ [I, O], for inp · Wᵀ
  PackedB bwd;  // B = W [O, I], for dout · W
};
PackedWeight pack_weight(const float* weight, int O, int I);
void repack_weight(PackedWeight& p, const float* weight, int O, int I);  // in place, same shape

// out[N, O] (row stride ldo) = (accumulate ? out : 0) + inp[N, I] (row stride ldi) · weight[O, I]ᵀ
// With `packed` (the same W, packed), the product runs in bf16 with fp32 accumulation.
void matmul_forward(float* out, int ldo, const float* inp, int ldi, const float* weight, int N, int I, int O,
                    bool accumulate = false, const PackedWeight* packed = nullptr);
// dinp[N, I] += dout · W ; dweight[O, I] += doutᵀ · inp.  Either output may be null (skipped).
// `packed` (bf16 mode) computes both in bf16 with fp32 accumulation: dinp on the packed W, dweight with
// dout and inp converted per call. write_dinp: dinp = dout · W instead (saves clearing it first).
void matmul_backward(float* dinp, int ldi_d, float* dweight, const float* dout, int ldo, const float* inp, int ldi,
                     const float* weight, int N, int I, int O, const PackedWeight* packed = nullptr,
                     bool write_dinp = false);

void matmul_forward_ref(float* out, int ldo, const float* inp, int ldi, const float* weight, int N, int I, int O,
                        bool accumulate = false);
void matmul_backward_ref(float* dinp, int ldi_d, float* dweight, const float* dout, int ldo, const float* inp,
                         int ldi, const float* weight, int N, int I, int O);

}  // namespace heirloom
