// The one matrix-multiply entry point. Row-major, BLAS semantics:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
// op(X) is X or X^T per the trans flag; lda/ldb/ldc are row strides in elements.
// Everything in the engine that is a GEMM goes through here, so a faster kernel lands in one place.
#pragma once

#include <cstdint>
#include <string>

#include "heirloom/threads.h"

namespace heirloom {

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);

// While a RowExact is alive on this thread, products of the form A·Bᵀ (the engine's forward products), and
// A·B on CPUs without AVX-512 (whose attention runs through gemm()), compute each output row with arithmetic
// that does not depend on the other rows or on how many there are: a batch of sequences then gives every
// sequence exactly the numbers it gets alone (the server's continuous batching). Other products still go to the
// BLAS.
// The mode is per thread: a parallel region that calls gemm() passes it on with RowExact(row_exact()).
class RowExact {
 public:
  explicit RowExact(bool on = true);
  ~RowExact();
  RowExact(const RowExact&) = delete;
  RowExact& operator=(const RowExact&) = delete;

 private:
  bool prev_;
};

bool row_exact();  // is a RowExact alive on this thread?

// The packed kernels write an output they overwrite around the caches (non-temporal stores, core/gemm_tile.h):
// most outputs are read long after, and write-allocating them evicted the weights and rows the products were
// using. While a CachedOutputs is alive on this thread, the products it calls write through the caches instead:
// for outputs the very next op reads (a norm's backward reading the input gradient, attention's backward its
// dout, an expert's second input-gradient product adding to its first), which went to memory and came back.
// Decided on the calling thread, for all of a split product's threads. With the three scopes in
// model/backward.cpp and ops/moe.cpp the protocol's steps took 0.990-0.993 of their time in four trials
// (`heirloom bench --experiment`, bench/RESULTS.md). The values are the same either way.
class CachedOutputs {
 public:
  CachedOutputs();
  ~CachedOutputs();
  CachedOutputs(const CachedOutputs&) = delete;
  CachedOutputs& operator=(const CachedOutputs&) = delete;

 private:
  bool prev_;
};
bool outputs_cached();  // is a CachedOutputs alive on this thread?

// Whether gemm() runs its larger products (64 rows or more, beta 0 or 1) on heirloom's fp32 panels here:
// on every AVX-512 CPU (core/gemm.cpp says why); else OpenBLAS.
bool own_fp32_products();
// The kernel OpenBLAS runs on this CPU ("Cooperlake", "Haswell", ...): its own choice, or OPENBLAS_CORETYPE's.
std::string blas_kernel();

// C[M,N] = alpha·A[M,K]·B[N,K]ᵀ + beta·C, row by row as above (what gemm() runs under RowExact).
void gemm_rows_nt(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                  float* C, int ldc);
// C[M,N] = alpha·A[M,K]·B[K,N] + beta·C, row by row: under RowExact on CPUs without AVX-512 (attention's
// probabilities times values go to gemm() there).
void gemm_rows_nn(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                  float* C, int ldc);

// Naive triple loop in double accumulation: the reference the tests compare gemm() against.
void gemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc);

}  // namespace heirloom
