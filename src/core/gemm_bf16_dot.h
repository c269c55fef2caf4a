// The bf16 GEMM for CPUs with AVX512-BF16 but no AMX (AMD Zen 4 and later, Intel Cooper Lake): the same packed
// B as the AMX tiles, multiplied with vdpbf16ps dot products in registers. Internal to core/gemm_bf16.cpp.
#pragma once
#include <cstdint>
#include <functional>

#include "core/gemm_bf16.h"

namespace heirloom {

// Writes rows [r0, r1) of bf16(A) at out + r·ld (B.Kp values, zero beyond K; rows ≥ M all zeros), and no
// other row: threads convert their own ranges side by side.
using ConvertRows = std::function<void(int r0, int r1, uint16_t* out, int ld)>;

// C[M, N] (+)= bf16(A) · B, A supplied by convert. Every output element is one dot-product chain over the
// k-pairs in order.
void dot_gemm(int M, const PackedB& B, float* C, int ldc, bool accumulate, const ConvertRows& convert);

// gemm_bf16_small (core/gemm_bf16.h) on dot products: the calling thread only, no tiles to configure.
void dot_gemm_small(int M, int N, int K, const uint16_t* a, int lda, const PackedB& B, float* C, int ldc,
                    bool accumulate);

}  // namespace heirloom
