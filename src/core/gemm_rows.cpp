// gemm_rows_nt: C = alpha·A·Bᵀ + beta·C where every output element is one dot product computed the same
// way whatever the block it falls in: 16 lanes accumulate k ≡ lane (mod 16), the lanes are summed in a
// fixed order, then the tail of K. Blocks of 4 rows × 4 columns only share loads, never arithmetic, so a
// row's result is independent of the rest of the batch. Threads split the columns; no sum crosses threads.
// gemm_rows_nn: C = alpha·A·B + beta·C with each element summed over k in order, columns side by side.
#include <cstring>

#include "core/gemm.h"
#include "core/parallel.h"

namespace heirloom {

namespace {

typedef float v16 __attribute__((vector_size(64)));

inline v16 load16(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline float lane_sum(v16 v) {
  float s = 0.f;
  for (int i = 0; i < 16; ++i) s += v[i];
  return s;
}

template <int RB, int CB>
void dot_block(int i0, int j0, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
               float* C, int ldc) {
  v16 acc[RB][CB];
  for (int r = 0; r < RB; ++r)
    for (int c = 0; c < CB; ++c) acc[r][c] = v16{};
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    v16 x[RB];
    for (int r = 0; r < RB; ++r) x[r] = load16(A + (int64_t)(i0 + r) * lda + k);
    for (int c = 0; c < CB; ++c) {
      const v16 w = load16(B + (int64_t)(j0 + c) * ldb + k);
      for (int r = 0; r < RB; ++r) acc[r][c] += x[r] * w;
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int c = 0; c < CB; ++c) {
      const float* a = A + (int64_t)(i0 + r) * lda;
      const float* b = B + (int64_t)(j0 + c) * ldb;
      float s = lane_sum(acc[r][c]);
      for (int kk = k; kk < K; ++kk) s += a[kk] * b[kk];
      float& out = C[(int64_t)(i0 + r) * ldc + j0 + c];
      out = beta == 0.f ? alpha * s : alpha * s + beta * out;
    }
}

template <int CB>
void column_block(int M, int j0, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                  float* C, int ldc) {
  int i = 0;
  for (; i + 4 <= M; i += 4) dot_block<4, CB>(i, j0, K, alpha, A, lda, B, ldb, beta, C, ldc);
  for (; i < M; ++i) dot_block<1, CB>(i, j0, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// Row i's columns [j0, j0 + 16·CB): one running sum per column, k in order.
template <int CB>
void nn_columns(int i, int j0, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                float* C, int ldc) {
  v16 acc[CB] = {};
  const float* a = A + (int64_t)i * lda;
  for (int k = 0; k < K; ++k)
    for (int c = 0; c < CB; ++c) acc[c] += a[k] * load16(B + (int64_t)k * ldb + j0 + 16 * c);
  float* out = C + (int64_t)i * ldc + j0;
  for (int c = 0; c < CB; ++c)
    for (int l = 0; l < 16; ++l) {
      float& o = out[16 * c + l];
      o = beta == 0.f ? alpha * acc[c][l] : alpha * acc[c][l] + beta * o;
    }
}

}  // namespace

void gemm_rows_nn(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                  float* C, int ldc) {
  parallel_for(M, (int64_t)M * N * K > 32768, [&](int64_t i) {
    int j = 0;
    for (; j + 64 <= N; j += 64) nn_columns<4>((int)i, j, K, alpha, A, lda, B, ldb, beta, C, ldc);
    for (; j + 16 <= N; j += 16) nn_columns<1>((int)i, j, K, alpha, A, lda, B, ldb, beta, C, ldc);
    for (; j < N; ++j) {  // the last columns one at a time, k in order as above
      float s = 0.f;
      for (int k = 0; k < K; ++k) s += A[i * lda + k] * B[(int64_t)k * ldb + j];
      float& o = C[i * ldc + j];
      o = beta == 0.f ? alpha * s : alpha * s + beta * o;
    }
  });
}

void gemm_rows_nt(int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                  float* C, int ldc) {
  const int n_blocks = N / 4;
  parallel_for(n_blocks, (int64_t)M * N * K > 32768,
               [&](int64_t jb) { column_block<4>(M, (int)jb * 4, K, alpha, A, lda, B, ldb, beta, C, ldc); });
  for (int j = n_blocks * 4; j < N; ++j) column_block<1>(M, j, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace heirloom
