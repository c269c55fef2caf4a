// The one matrix-multiply entry point. Row-major, BLAS semantics:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
// op(X) is X or X^T per the trans flag; lda/ldb/ldc are row strides in elements.
// Everything in the engine that is a GEMM goes through here, so a faster kernel lands in one place.
#pragma once
#include <cstdint>

#include "heirloom/threads.h"

namespace heirloom {

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);

// Naive triple loop in double accumulation: the reference the tests compare gemm() against.
void gemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc);

}  // namespace heirloom
