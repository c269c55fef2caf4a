// gemm(): heirloom's fp32 panels (core/gemm_f32.h) for the larger products on an AVX-512 CPU, else OpenBLAS's
// sgemm; set_num_threads() keeps OpenMP and the BLAS in step.
#include "core/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "core/gemm_f32.h"
#include "core/gemm_thin.h"
#include "core/product_time.h"

namespace heirloom {

namespace {
thread_local bool t_row_exact = false;
// Fewer rows than this go to the BLAS: packing B costs K·N against the product's M·K·N multiply-adds.
constexpr int kOwnMinRows = 64;
}  // namespace

// heirloom's panels take the fp32 products wherever the CPU has AVX-512. OpenBLAS's AVX-512 kernels (SkylakeX,
// Cooperlake) beat them by a little until the panels' micro-tiles stopped reloading their row addresses from
// the stack: since, the fp32 full step runs 0.92 of its time on the panels, LoRA 0.94 (bench/ab.sh, eleventh
// session in bench/RESULTS.md). An AVX2 (or older) OpenBLAS kernel on an AVX-512 CPU lost to them by far.
bool own_fp32_products() { return f32_packed_available(); }

RowExact::RowExact(bool on) : prev_(t_row_exact) { t_row_exact = on; }
bool row_exact() { return t_row_exact; }
RowExact::~RowExact() { t_row_exact = prev_; }

thread_local bool t_outputs_cached = false;
CachedOutputs::CachedOutputs() : prev_(t_outputs_cached) { t_outputs_cached = true; }
CachedOutputs::~CachedOutputs() { t_outputs_cached = prev_; }
bool outputs_cached() { return t_outputs_cached; }

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // BLAS leaves C untouched for K=0 only when beta=1; make the semantics explicit.
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) C[(int64_t)i * ldc + j] = beta == 0.f ? 0.f : beta * C[(int64_t)i * ldc + j];
    return;
  }
  TimedProduct timed(ProductKind::blas, M, N, K);
  // Row by row under RowExact, and for thin products over A's rows (the router's logits, a LoRA's u = x·Aᵀ and
  // its update u·Bᵀ) on CPUs without AVX-512: gemm_thin's tiles keep each row's sums its own there, and without
  // them the BLAS summed a row differently beside others (a sequence decoded in a batch then differed from
  // itself alone).
  // There the attention's A·B products under RowExact go row by row too: OpenBLAS's sgemv gave one row
  // different last bits at another address (its Haswell kernels, an AVX2 CPU's, here forced by this machine's
  // OPENBLAS_CORETYPE=Haswell; its Cooperlake ones did not).
  const bool no_avx512 = !f32_packed_available();
  if (!trans_a && trans_b && (t_row_exact || (std::min(N, K) <= kThinSide && no_avx512)))
    return gemm_rows_nt(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (!trans_a && !trans_b && t_row_exact && no_avx512)
    return gemm_rows_nn(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (gemm_thin(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
  if (M == 1) {  // one row (generation): a matrix-vector product reads each weight once, without packing
    const int incx = trans_a ? lda : 1;
    if (trans_b)  // C[1,N] = a[1,K]·B[N,K]ᵀ = B·a
      cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, incx, beta, C, 1);
    else          // C[1,N] = a[1,K]·B[K,N] = Bᵀ·a
      cblas_sgemv(CblasRowMajor, CblasTrans, K, N, alpha, B, ldb, A, incx, beta, C, 1);
    return;
  }
  if (M >= kOwnMinRows && (beta == 0.f || beta == 1.f) && own_fp32_products())
    return gemm_f32_general(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta == 1.f, C, ldc);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double acc = 0;
      for (int k = 0; k < K; ++k) {
        const float a = trans_a ? A[(int64_t)k * lda + i] : A[(int64_t)i * lda + k];
        const float b = trans_b ? B[(int64_t)j * ldb + k] : B[(int64_t)k * ldb + j];
        acc += (double)a * b;
      }
      float& c = C[(int64_t)i * ldc + j];
      c = (float)(alpha * acc + (beta == 0.f ? 0.0 : (double)beta * c));
    }
}

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

std::string blas_kernel() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

}  // namespace heirloom
