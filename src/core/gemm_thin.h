// Products with one side of at most kThinSide (LoRA's rank, the router's experts): gemm() runs them on AVX-512
// directly (fp32 micro-tiles, dot products of A's rows, or rank updates of C's rows). OpenBLAS packs both operands on every call, most of the time at these shapes (its rate
// on LoRA's rank-8 products was about 55 GFLOP/s, a quarter of this machine's fp32 GEMM peak).
#pragma once

namespace heirloom {

constexpr int kThinSide = 16;

// gemm()'s arguments (core/gemm.h). Returns false, having done nothing, when the product is not thin, beta is
// neither 0 nor 1, op(B) would have to be copied and is large, or the CPU has no AVX-512F; gemm() then calls
// the BLAS. Each element of C depends on its row alone (one FMA chain over k in order; for the dot products of
// A's rows, 16 lanes then a fixed tree): the same result on any number of threads.
bool gemm_thin(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
               int ldb, float beta, float* C, int ldc);

}  // namespace heirloom
