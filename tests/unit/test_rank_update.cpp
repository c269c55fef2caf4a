// A low-rank update added inside a bf16 product as it stores C (core/rank_update.h: LoRA's out += s·u·Bᵀ and
// dx += du·A) gives the bits of the product followed by apply_rank_update (gemm()'s rank-K update) on the same
// operands: parts on some columns or all of them, one ending at C's edge inside a panel, several on the same
// columns (added in order), written over or added to C (aligned: the streamed stores), one thread or two, few
// rows and many. A part off the 32-column panels is added after the product instead, with the same bits.
// Each result is also checked against a double-precision sum, and checked to differ from the product alone.
// Skipped on CPUs without AVX512-BF16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/gemm_bf16.h"
#include "core/half.h"
#include "core/rank_update.h"
#include "core/rng.h"
#include "heirloom/cache_line.h"
#include "heirloom/threads.h"

namespace heirloom {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct PartSpec {
  int c0, c1, rank;
};

void check(int M, const std::vector<PartSpec>& specs, bool accumulate) {
  const int N = 112, K = 96, ldc = 128;  // 112 = 3 panels of 32 and 16 columns
  SCOPED_TRACE("M=" + std::to_string(M) + " parts=" + std::to_string(specs.size()) +
               " first at " + std::to_string(specs[0].c0) + (accumulate ? " accumulate" : ""));
  Rng rng(7 + M + 13 * (int)specs.size() + specs[0].c0);
  std::vector<float> A((size_t)M * K), W((size_t)N * K);
  for (float& x : A) x = rng.normal();
  for (float& x : W) x = rng.normal();
  const PackedB packed = pack_b_bf16(W.data(), K, true, K, N);
  // Each part's U [M, rank] with row stride rank + 3 and Bt [rank, c1 − c0] with row stride N.
  std::vector<std::vector<float>> U(specs.size()), Bt(specs.size());
  RankUpdate ru;
  for (size_t i = 0; i < specs.size(); ++i) {
    const PartSpec& s = specs[i];
    U[i].assign((size_t)M * (s.rank + 3), kNaN);
    Bt[i].assign((size_t)s.rank * N, kNaN);
    for (int r = 0; r < M; ++r)
      for (int k = 0; k < s.rank; ++k) U[i][(size_t)r * (s.rank + 3) + k] = rng.normal();
    for (int k = 0; k < s.rank; ++k)
      for (int j = 0; j < s.c1 - s.c0; ++j) Bt[i][(size_t)k * N + j] = rng.normal();
    ru.add({s.c0, s.c1, s.rank, U[i].data(), s.rank + 3, Bt[i].data(), N});
  }
  AlignedFloats start((size_t)M * ldc, kNaN);
  for (int r = 0; r < M; ++r)
    for (int j = 0; j < N; ++j) start[(size_t)r * ldc + j] = accumulate ? rng.normal() : kNaN;
  const int threads = num_threads();
  for (int nt : {1, 2}) {
    set_num_threads(nt);
    AlignedFloats inside(start), after(start), alone(start);
    gemm_bf16(M, A.data(), K, packed, inside.data(), ldc, accumulate, &ru);
    gemm_bf16(M, A.data(), K, packed, after.data(), ldc, accumulate);
    apply_rank_update(ru, after.data(), ldc, M);
    gemm_bf16(M, A.data(), K, packed, alone.data(), ldc, accumulate);
    double moved = 0;
    for (int r = 0; r < M; ++r)
      for (int j = 0; j < ldc; ++j) {
        const size_t at = (size_t)r * ldc + j;
        if (j >= N) {
          ASSERT_TRUE(std::isnan(inside[at])) << "wrote padding at " << r << "," << j;
          continue;
        }
        ASSERT_EQ(std::memcmp(&inside[at], &after[at], sizeof(float)), 0)
            << "threads " << nt << " at " << r << "," << j << ": " << inside[at] << " vs " << after[at];
        double want = accumulate ? start[at] : 0.0;
        for (int k = 0; k < K; ++k)
          want += (double)bf16_to_f32(f32_to_bf16(A[(size_t)r * K + k])) * bf16_to_f32(f32_to_bf16(W[(size_t)j * K + k]));
        for (size_t i = 0; i < specs.size(); ++i)
          if (j >= specs[i].c0 && j < specs[i].c1)
            for (int k = 0; k < specs[i].rank; ++k)
              want += (double)U[i][(size_t)r * (specs[i].rank + 3) + k] * Bt[i][(size_t)k * N + j - specs[i].c0];
        ASSERT_NEAR(inside[at], want, 1e-4 * (1 + std::fabs(want))) << "at " << r << "," << j;
        moved = std::max(moved, (double)std::fabs(inside[at] - alone[at]));
      }
    EXPECT_GT(moved, 0.1) << "the update changed nothing";
  }
  set_num_threads(threads);
}

TEST(RankUpdate, InsideTheProductEqualsTheUpdateAfter) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const std::vector<PartSpec> columns = {{0, 32, 8}, {32, 112, 5}};             // q|k|v's: side by side, to the edge
  const std::vector<PartSpec> in_order = {{0, 112, 8}, {0, 112, 3}, {0, 112, 8}};  // dx += du_q·A_q + du_k·A_k + …
  const std::vector<PartSpec> off_panels = {{16, 48, 4}};                        // not fusable: added after
  for (int M : {3, 70, 200})
    for (bool accumulate : {false, true}) {
      check(M, columns, accumulate);
      check(M, in_order, accumulate);
      check(M, off_panels, accumulate);
    }
}

TEST(RankUpdate, FusableOnlyOnWholePanels) {
  RankUpdate u;
  u.add({0, 32, 8, nullptr, 8, nullptr, 32});
  u.add({32, 100, 8, nullptr, 8, nullptr, 68});
  EXPECT_TRUE(fusable_in_panels(u, 100));
  EXPECT_FALSE(fusable_in_panels(u, 128)) << "a part ending inside a panel that is not C's last";
  RankUpdate off;
  off.add({16, 48, 8, nullptr, 8, nullptr, 32});
  EXPECT_FALSE(fusable_in_panels(off, 64));
  RankUpdate empty_rank;
  empty_rank.add({0, 32, 0, nullptr, 0, nullptr, 32});
  EXPECT_FALSE(fusable_in_panels(empty_rank, 32));
}

}  // namespace
}  // namespace heirloom
