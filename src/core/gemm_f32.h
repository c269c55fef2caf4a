// fp32 matrix multiply for frozen weights on AVX-512: the weight is packed once into panels of 32 columns,
// so no call packs it again (OpenBLAS packs both operands on every call, about 15 % of an fp32 training
// step at the model's K = 256), and A is read in place.
// Every output element is one FMA chain over k in order, whatever M is and however rows are grouped, so the
// products are row-exact (core/gemm.h RowExact) by construction.
// Chosen at run time: f32_packed_available() is false on CPUs without AVX-512F (or with HEIRLOOM_NO_AVX512=1
// set, to run the paths those CPUs take), and callers keep gemm().
#pragma once
#include "heirloom/cache_line.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace heirloom {

// B[K, N] in fp32 as panels of 32 columns, zero-padded to Np = ⌈N/32⌉·32: B[k][n] at
// data[((n / 32) · K + k) · 32 + n % 32].
struct PackedF32 {
  int K = 0, N = 0, Np = 0;
  std::vector<float, CacheLineAllocator<float>> data;
};

// B[k][n] = trans ? src[n·ld + k] : src[k·ld + n], for k < K, n < N.
PackedF32 pack_b_f32(const float* src, int ld, bool trans, int K, int N);
// The same, in place over p (already shaped for this K, N): for weights that change every step.
void pack_b_f32_into(PackedF32& p, const float* src, int ld, bool trans);
// scale · B for B[K, N] of any shape, reusing p's buffer (grown, never shrunk): for operands packed per call.
void pack_b_f32_into(PackedF32& p, const float* src, int ld, bool trans, int K, int N, float scale);

// C[M, N] (row stride ldc) = (accumulate ? C : 0) + A[M, K] · B, A with row stride lda.
// Requires f32_packed_available().
void gemm_f32_packed(int M, const float* A, int lda, const PackedF32& B, float* C, int ldc, bool accumulate);

// The same with A made a row at a time by row(r, out) (K values), a block of rows at a time, on the calling
// thread: for rows computed from others just before the product (ops/moe.cpp's SwiGLU rows), which then never
// go to memory. Every element is the same FMA chain as gemm_f32_packed's over the same values.
void gemm_f32_produced(int M, const std::function<void(int, float*)>& row, const PackedF32& B, float* C, int ldc,
                       bool accumulate);

// The same for a strided A: A(r, k) at A[r·ars + k·aks] (a transposed A is ars = 1, aks = its row stride).
// Not timed itself: for callers that time the product they are part of (gemm()).
void gemm_f32_strided(int M, const float* A, int64_t ars, int64_t aks, const PackedF32& B, float* C, int ldc,
                      bool accumulate);
// gemm()'s product on these panels: C[M, N] (+)= alpha·op(A)·op(B) (BLAS flags and strides), op(B)·alpha
// packed per call into a buffer per thread, A read in place. Not timed itself, as gemm_f32_strided.
void gemm_f32_general(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, bool accumulate, float* C, int ldc);

bool f32_packed_available();  // this CPU has AVX-512F
// Rows per task of the packed kernel (four micro-tiles): a caller splitting a product's rows between threads
// splits them in whole tasks.
int f32_task_rows();

// The building block of small strided products (attention), single-threaded; requires f32_packed_available():
// C[M, w] (+)= A[M, K] · B[K, w] for w ≤ 32, where A(r, k) = A[r·ars + k·aks] (a transposed A is ars = 1)
// and row k of B is the w floats at B + k·ldb. Each element is one FMA chain over k in order.
void gemm_f32_panel(int M, int K, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb, int w,
                    float* C, int64_t ldc, bool accumulate);

}  // namespace heirloom
