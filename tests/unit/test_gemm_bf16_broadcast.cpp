// The dot-product micro-tiles give vdpbf16ps a row's k-pair two ways (core/gemm_bf16_dot.h: broadcast inside
// each instruction, 15 rows a tile; or once into a register, 14 rows a tile). The CPU decides which runs, so
// both must give the same bits: every output element is one chain over the k-pairs in order, whatever the
// tile it falls in. Checked on row heights around both tiles' and tasks' edges, both A layouts (rows, and
// pairs for the transposed products), the few-row path, one thread and two, and against the reference.
// Skipped on CPUs without AVX512-BF16, and on AMX CPUs (whose products do not take the dot-product tiles).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/gemm_bf16.h"
#include "core/gemm_bf16_dot.h"
#include "core/half.h"
#include "core/rng.h"
#include "heirloom/threads.h"

namespace heirloom {
namespace {

// Runs `product` under each broadcast and expects the same bits; returns the result.
template <class Product>
std::vector<float> same_under_both(const std::string& what, Product&& product) {
  const DotBroadcast chosen = dot_broadcast();
  set_dot_broadcast(DotBroadcast::in_instruction);
  const std::vector<float> inside = product();
  set_dot_broadcast(DotBroadcast::in_register);
  const std::vector<float> in_register = product();
  set_dot_broadcast(chosen);
  EXPECT_EQ(inside.size(), in_register.size()) << what;
  size_t differ = 0;
  for (size_t i = 0; i < inside.size() && i < in_register.size(); ++i)
    differ += std::memcmp(&inside[i], &in_register[i], sizeof(float)) != 0;
  EXPECT_EQ(differ, 0u) << what << ": elements that differ between the two broadcasts";
  return inside;
}

std::vector<float> normals(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = rng.normal();
  return v;
}

float rounded(float x) { return bf16_to_f32(f32_to_bf16(x)); }

TEST(Bf16Broadcast, BothBroadcastsGiveTheSameBits) {
  if (!bf16_gemm_available() || bf16_amx_available()) GTEST_SKIP() << "no AVX512-BF16 dot-product tiles here";
  const int threads = num_threads();
  for (int t : {1, 2}) {
    set_num_threads(t);
    // Rows: one tile of either kind, one more than it, a task of each kind (56, 60) and past it, many tasks.
    for (int M : {1, 3, 14, 15, 16, 29, 56, 60, 64, 130, 290}) {
      const int N = 72, K = 100, lda = K + 3, ldc = N + 1;
      const std::vector<float> A = normals((size_t)M * lda, 7 + M), W = normals((size_t)K * N, 11 + M);
      const PackedB B = pack_b_bf16(W.data(), N, false, K, N);
      const std::string at = "threads " + std::to_string(t) + " M=" + std::to_string(M);
      const std::vector<float> C = same_under_both("gemm_bf16 " + at, [&] {
        std::vector<float> c((size_t)M * ldc, 0.f);
        gemm_bf16(M, A.data(), lda, B, c.data(), ldc, false);
        return c;
      });
      for (int i = 0; i < M; i += 7)  // and right: the reference on the same rounded operands
        for (int j = 0; j < N; j += 5) {
          double want = 0;
          for (int k = 0; k < K; ++k) want += (double)rounded(A[(size_t)i * lda + k]) * rounded(W[(size_t)k * N + j]);
          ASSERT_NEAR(C[(size_t)i * ldc + j], want, 1e-4 * (1 + std::fabs(want))) << at << " at " << i << "," << j;
        }
      // Aᵀ · B with A stored [K, M]: the pairs layout.
      const std::vector<float> At = normals((size_t)K * M, 13 + M), Bk = normals((size_t)K * N, 17 + M);
      same_under_both("gemm_bf16_tn " + at, [&] {
        std::vector<float> c((size_t)M * N, 0.f);
        gemm_bf16_tn(M, N, K, At.data(), M, Bk.data(), N, c.data(), N, false);
        return c;
      });
      // The few-row path on rows already in bf16.
      const int ldo = (K + 31) / 32 * 32 + 32;
      std::vector<uint16_t> rows((size_t)(M + 31) / 32 * 32 * ldo);
      to_bf16_rows(A.data(), lda, false, M, K, rows.data(), ldo);
      same_under_both("gemm_bf16_small " + at, [&] {
        std::vector<float> c((size_t)M * N, 0.f);
        gemm_bf16_small(M, N, K, rows.data(), ldo, B, c.data(), N, false);
        return c;
      });
    }
  }
  set_num_threads(threads);
}

// gemm_bf16_small_pairs takes A in pairs of k (the attention's pᵀ and dsᵀ): the same bits as gemm_bf16_small on
// the same values in rows, under both broadcasts, written and added to, for row counts around the tiles and odd K
// (its last pair half zero).
TEST(Bf16Broadcast, SmallProductOnPairsGivesTheRowsBits) {
  if (!bf16_gemm_available() || bf16_amx_available()) GTEST_SKIP() << "no AVX512-BF16 dot-product tiles here";
  for (int K : {32, 31, 7})
    for (int M : {1, 13, 14, 15, 29, 64, 256}) {
      const int N = 40, J = (K + 1) / 2, ja = M + 16, ldo = (K + 31) / 32 * 32;
      const std::vector<float> A = normals((size_t)M * K, 19 + M + K), W = normals((size_t)K * N, 23 + K);
      const PackedB B = pack_b_bf16(W.data(), N, false, K, N);
      std::vector<uint16_t> rows((size_t)(M + 31) / 32 * 32 * ldo);
      to_bf16_rows(A.data(), K, false, M, K, rows.data(), ldo);
      std::vector<uint32_t> pairs((size_t)J * ja, 0u);
      for (int j = 0; j < J; ++j)
        for (int m = 0; m < M; ++m) {
          const uint32_t lo = f32_to_bf16(A[(size_t)m * K + 2 * j]);
          const uint32_t hi = 2 * j + 1 < K ? f32_to_bf16(A[(size_t)m * K + 2 * j + 1]) : 0u;
          pairs[(size_t)j * ja + m] = lo | hi << 16;
        }
      const std::vector<float> start = normals((size_t)M * N, 29 + M);
      for (bool accumulate : {false, true}) {
        const std::string at = "M=" + std::to_string(M) + " K=" + std::to_string(K) + (accumulate ? " added" : " written");
        const std::vector<float> want = same_under_both("rows " + at, [&] {
          std::vector<float> c = start;
          gemm_bf16_small(M, N, K, rows.data(), ldo, B, c.data(), N, accumulate);
          return c;
        });
        const std::vector<float> got = same_under_both("pairs " + at, [&] {
          std::vector<float> c = start;
          gemm_bf16_small_pairs(M, N, K, pairs.data(), ja, B, c.data(), N, accumulate);
          return c;
        });
        ASSERT_EQ(got.size(), want.size());
        EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << at;
      }
    }
}

}  // namespace
}  // namespace heirloom
