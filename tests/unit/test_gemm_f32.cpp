// gemm_f32_packed() (fp32 panels, core/gemm_f32.h) against gemm_ref(): both packing orientations, odd sizes
// across the micro-tile and panel edges, strides wider than the data, overwrite and accumulate; each row's
// result does not depend on the other rows; packing in place equals a fresh pack; aligned outputs (streamed)
// equal unaligned ones.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "heirloom/cache_line.h"
#include "core/gemm.h"
#include "core/gemm_f32.h"
#include "core/rng.h"

namespace heirloom {
namespace {

constexpr float kPad = -12345.f;

std::vector<float> normals(size_t n, Rng& rng) {
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal();
  return v;
}

// C = (accumulate ? C : 0) + A·B for A [M, K] (row stride K + 3), B stored [K, N] or (trans) [N, K].
void check(int M, int N, int K, bool trans, bool accumulate) {
  SCOPED_TRACE("M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
               (trans ? " trans" : "") + (accumulate ? " accumulate" : ""));
  Rng rng(17 + M * 131 + N * 7 + K + trans);
  const int lda = K + 3, ldb = (trans ? K : N) + 5, ldc = N + 2;
  const std::vector<float> A = normals((size_t)M * lda, rng), B = normals((size_t)(trans ? N : K) * ldb, rng);
  std::vector<float> C0 = normals((size_t)M * ldc, rng);
  for (int i = 0; i < M; ++i)
    for (int j = N; j < ldc; ++j) C0[(size_t)i * ldc + j] = kPad;
  std::vector<float> C = C0, ref = C0;
  const PackedF32 p = pack_b_f32(B.data(), ldb, trans, K, N);
  gemm_f32_packed(M, A.data(), lda, p, C.data(), ldc, accumulate);
  gemm_ref(false, trans, M, N, K, 1.f, A.data(), lda, B.data(), ldb, accumulate ? 1.f : 0.f, ref.data(), ldc);
  int bad = 0;
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      double mag = accumulate ? std::fabs(C0[(size_t)i * ldc + j]) : 0;
      for (int k = 0; k < K; ++k)
        mag += std::fabs((double)A[(size_t)i * lda + k] * (trans ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]));
      const double tol = (K + 2) * 6e-8 * mag + 1e-30;  // worst-case float summation bound
      const float got = C[(size_t)i * ldc + j], want = ref[(size_t)i * ldc + j];
      if (!(std::fabs(got - want) <= tol) && bad++ < 5)
        ADD_FAILURE() << "C[" << i << "," << j << "] = " << got << ", reference " << want << " (tol " << tol << ")";
    }
    for (int j = N; j < ldc; ++j) ASSERT_EQ(C[(size_t)i * ldc + j], kPad) << "wrote C's padding at row " << i;
  }
  EXPECT_EQ(bad, 0);
}

TEST(GemmF32, MatchesReferenceAcrossTileAndPanelEdges) {
  if (!f32_packed_available()) GTEST_SKIP() << "this CPU has no AVX-512F (gemm() is used instead)";
  for (bool trans : {true, false})
    for (bool accumulate : {false, true}) {
      check(1, 1, 1, trans, accumulate);
      check(5, 31, 7, trans, accumulate);     // fewer rows than a micro-tile, one partial panel
      check(13, 33, 64, trans, accumulate);   // a micro-tile and one row; a panel and one column
      check(50, 70, 129, trans, accumulate);  // more than a task of rows; three panels, the last partial
      check(97, 256, 256, trans, accumulate); // the model's K, several tasks in parallel
      check(100, 70, 4000, trans, accumulate);  // a packed B over 1 MB, K over 1024: row groups over slices of K
      check(40, 1100, 300, trans, accumulate);   // a packed B over 1 MB, K under 1024: tasks run panel by panel
    }
}

TEST(GemmF32, EachRowIsTheSameWhateverTheOtherRows) {
  if (!f32_packed_available()) GTEST_SKIP() << "this CPU has no AVX-512F";
  // The second shape's B (2.3 MB) runs in row groups over slices of K; its 40 rows make 4 micro-tiles.
  for (auto [M, N, K] : {std::array{61, 75, 83}, std::array{40, 40, 9000}}) {
    Rng rng(5);
    const std::vector<float> A = normals((size_t)M * K, rng), B = normals((size_t)N * K, rng);
    const PackedF32 p = pack_b_f32(B.data(), K, true, K, N);
    std::vector<float> all((size_t)M * N);
    gemm_f32_packed(M, A.data(), K, p, all.data(), N, false);
    for (int i = 0; i < M; ++i) {
      std::vector<float> one(N);
      gemm_f32_packed(1, A.data() + (size_t)i * K, K, p, one.data(), N, false);
      for (int j = 0; j < N; ++j) ASSERT_EQ(one[j], all[(size_t)i * N + j]) << "K " << K << " row " << i << " col " << j;
    }
  }
}

// Rows of C 64-byte aligned are written around the caches (core/gemm_tile.h): the same bits as rows one
// float off, the padding untouched; a K over one slice (accumulated slice by slice) is stored as usual.
TEST(GemmF32, StreamedOutputEqualsStoredOutput) {
  if (!f32_packed_available()) GTEST_SKIP() << "this CPU has no AVX-512F";
  for (auto [M, N, K] : {std::array{61, 75, 83}, std::array{97, 256, 256}, std::array{20, 40, 1500}}) {
    Rng rng(7);
    const int ldc = (N + 15) / 16 * 16 + 16;
    const std::vector<float> A = normals((size_t)M * K, rng), B = normals((size_t)N * K, rng);
    const PackedF32 p = pack_b_f32(B.data(), K, true, K, N);
    AlignedFloats aligned((size_t)M * ldc, kPad);
    std::vector<float> off((size_t)M * ldc + 1, kPad);
    gemm_f32_packed(M, A.data(), K, p, aligned.data(), ldc, false);
    gemm_f32_packed(M, A.data(), K, p, off.data() + 1, ldc, false);
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < ldc; ++j)
        ASSERT_EQ(aligned[(size_t)i * ldc + j], off[1 + (size_t)i * ldc + j]) << "K " << K << " at " << i << "," << j;
    for (int i = 0; i < M; ++i) ASSERT_EQ(aligned[(size_t)i * ldc + N], kPad) << "wrote C's padding at row " << i;
  }
}

TEST(GemmF32, PackingInPlaceEqualsAFreshPack) {
  if (!f32_packed_available()) GTEST_SKIP() << "this CPU has no AVX-512F";
  Rng rng(9);
  const int K = 40, N = 45;
  const std::vector<float> B1 = normals((size_t)K * N, rng), B2 = normals((size_t)K * N, rng);
  for (bool trans : {true, false}) {
    PackedF32 p = pack_b_f32(B1.data(), trans ? K : N, trans, K, N);
    pack_b_f32_into(p, B2.data(), trans ? K : N, trans);
    const PackedF32 fresh = pack_b_f32(B2.data(), trans ? K : N, trans, K, N);
    ASSERT_EQ(p.Np, fresh.Np);
    EXPECT_TRUE(std::equal(p.data.begin(), p.data.end(), fresh.data.begin())) << (trans ? "trans" : "plain");
  }
}

}  // namespace
}  // namespace heirloom
