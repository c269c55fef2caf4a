// See gemm_thin.h. C is cut into tasks of kTaskRows rows × one 32-column panel (gemm_f32_panel), split across
// the threads when called outside a parallel region; op(B)'s rows must be contiguous, so a transposed or
// scaled B is first copied (it is small here: one of its sides is thin, or the copy is refused).
#include "core/gemm_thin.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/gemm_f32.h"
#include "core/product_time.h"

namespace heirloom {

namespace {
constexpr int kPanel = 32, kTaskRows = 48;
constexpr int64_t kMaxCopy = 1 << 16;  // floats of op(B) worth copying
}  // namespace

bool gemm_thin(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
               int ldb, float beta, float* C, int ldc) {
  if (std::min({M, N, K}) > kThinSide || (beta != 0.f && beta != 1.f) || !f32_packed_available()) return false;
  const bool copy = trans_b || alpha != 1.f;
  if (copy && (int64_t)K * N > kMaxCopy) return false;
  const float* b = B;
  int64_t ldb_rows = ldb;
  if (copy) {  // op(B)[k][n] · alpha as rows of N
    thread_local std::vector<float> buf;  // per calling thread: callers may multiply inside parallel regions
    buf.resize((size_t)K * N);
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N; ++n)
        buf[(size_t)k * N + n] = alpha * (trans_b ? B[(int64_t)n * ldb + k] : B[(int64_t)k * ldb + n]);
    b = buf.data(), ldb_rows = N;
  }
  const int64_t ars = trans_a ? 1 : lda, aks = trans_a ? lda : 1;
  const int row_tasks = (M + kTaskRows - 1) / kTaskRows, panels = (N + kPanel - 1) / kPanel, tasks = row_tasks * panels;
  auto task = [&](int t) {
    const int r0 = t / panels * kTaskRows, col = t % panels * kPanel;
    gemm_f32_panel(std::min(kTaskRows, M - r0), K, A + r0 * ars, ars, aks, b + col, ldb_rows, std::min(kPanel, N - col),
                   C + (int64_t)r0 * ldc + col, ldc, beta == 1.f);
  };
  const bool parallel = !omp_in_parallel() && tasks > 1 && (int64_t)M * N * K >= (1 << 16);
#pragma omp parallel if (parallel)
  {
    const PartOfProduct part;  // of gemm()'s product, which holds every thread
#pragma omp for schedule(static)
    for (int t = 0; t < tasks; ++t) task(t);
  }
  return true;
}

}  // namespace heirloom
