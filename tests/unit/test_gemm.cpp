// gemm() (OpenBLAS, or heirloom's fp32 panels: thin products, and from 64 rows on AVX-512) against gemm_ref() (naive, double accumulation): every transpose combination, odd sizes,
// leading dimensions wider than the data, alpha/beta ≠ 1, beta = 0 with garbage in C, and K = 0.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/gemm.h"
#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "heirloom/cache_line.h"
#include "core/rng.h"
#include "heirloom/threads.h"

namespace heirloom {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kPad = -12345.f;

struct Problem {
  bool ta, tb;
  int M, N, K;
  float alpha, beta;
  bool c_garbage = false;  // beta = 0: C starts as NaN and must not be read
};

std::string describe(const Problem& p) {
  return std::string("trans_a=") + (p.ta ? "T" : "N") + " trans_b=" + (p.tb ? "T" : "N") + " M=" +
         std::to_string(p.M) + " N=" + std::to_string(p.N) + " K=" + std::to_string(p.K) +
         " alpha=" + std::to_string(p.alpha) + " beta=" + std::to_string(p.beta);
}

// panels: heirloom's fp32 panels with B packed per call (gemm_f32_general, what gemm() runs where
// own_fp32_products()), beta 0 or 1; else gemm() itself.
void run(const Problem& p, bool panels = false) {
  SCOPED_TRACE(describe(p) + (panels ? " on the panels" : ""));
  Rng rng(1000 + p.M * 31 + p.N * 7 + p.K + (p.ta ? 1 : 0) + (p.tb ? 2 : 0));
  // Stored shapes: A is [M, K] or (trans) [K, M]; B is [K, N] or (trans) [N, K]; C is [M, N].
  const int a_rows = p.ta ? p.K : p.M, a_cols = p.ta ? p.M : p.K;
  const int b_rows = p.tb ? p.N : p.K, b_cols = p.tb ? p.K : p.N;
  const int lda = a_cols + 3, ldb = b_cols + 5, ldc = p.N + 2;
  // Padding of A and B is NaN: reading it would poison the result.
  std::vector<float> A((size_t)std::max(a_rows, 1) * lda, kNaN), B((size_t)std::max(b_rows, 1) * ldb, kNaN);
  for (int i = 0; i < a_rows; ++i)
    for (int j = 0; j < a_cols; ++j) A[(size_t)i * lda + j] = rng.normal();
  for (int i = 0; i < b_rows; ++i)
    for (int j = 0; j < b_cols; ++j) B[(size_t)i * ldb + j] = rng.normal();
  std::vector<float> C0((size_t)p.M * ldc, kPad);
  for (int i = 0; i < p.M; ++i)
    for (int j = 0; j < p.N; ++j) C0[(size_t)i * ldc + j] = p.c_garbage ? kNaN : rng.normal();

  std::vector<float> C = C0, Cref = C0;
  if (panels)
    gemm_f32_general(p.ta, p.tb, p.M, p.N, p.K, p.alpha, A.data(), lda, B.data(), ldb, p.beta == 1.f, C.data(), ldc);
  else
    gemm(p.ta, p.tb, p.M, p.N, p.K, p.alpha, A.data(), lda, B.data(), ldb, p.beta, C.data(), ldc);
  gemm_ref(p.ta, p.tb, p.M, p.N, p.K, p.alpha, A.data(), lda, B.data(), ldb, p.beta, Cref.data(), ldc);

  int bad = 0;
  for (int i = 0; i < p.M; ++i) {
    for (int j = 0; j < p.N; ++j) {
      // The definition in double, with a bound from the magnitudes that enter the float sum.
      double exact = 0, mag = 0;
      for (int k = 0; k < p.K; ++k) {
        const double a = p.ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        const double b = p.tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        exact += a * b;
        mag += std::fabs(a * b);
      }
      const double c0 = C0[(size_t)i * ldc + j];
      exact *= p.alpha;
      mag *= std::fabs(p.alpha);
      if (p.beta != 0.f) exact += p.beta * c0, mag += std::fabs(p.beta * c0);
      // Worst-case float summation error bound (K + 2)·u·Σ|terms|, u = 2^-24.
      const double tol = (p.K + 2) * 6e-8 * mag + 1e-30;
      const float got = C[(size_t)i * ldc + j], ref = Cref[(size_t)i * ldc + j];
      if (!(std::fabs(got - exact) <= tol) && bad++ < 5)
        ADD_FAILURE() << "gemm C[" << i << "," << j << "] = " << got << ", exact " << exact << " (tol " << tol << ")";
      if (!(std::fabs(ref - exact) <= 1e-6 * mag + 1e-30) && bad++ < 5)
        ADD_FAILURE() << "gemm_ref C[" << i << "," << j << "] = " << ref << ", exact " << exact;
    }
    for (int j = p.N; j < ldc; ++j) {
      ASSERT_EQ(C[(size_t)i * ldc + j], kPad) << "gemm wrote C padding at row " << i;
      ASSERT_EQ(Cref[(size_t)i * ldc + j], kPad) << "gemm_ref wrote C padding at row " << i;
    }
  }
  EXPECT_EQ(bad, 0);
}

TEST(GemmTest, AllTransposesOddSizesStrided) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      run({ta, tb, 7, 11, 13, 0.75f, -0.5f});
      run({ta, tb, 7, 11, 13, 1.f, 1.f});                 // accumulate
      run({ta, tb, 5, 3, 9, -1.25f, 0.f, true});          // beta = 0: C's old contents (NaN) ignored
      run({ta, tb, 1, 1, 1, 2.f, 0.25f});                 // scalar
      run({ta, tb, 1, 17, 3, 1.f, 0.f});                  // one row
      run({ta, tb, 67, 45, 129, 0.5f, 2.f});              // beyond the BLAS micro-kernel tiles
      run({ta, tb, 130, 77, 93, 0.5f, 1.f});              // heirloom's panels where own_fp32_products()
      run({ta, tb, 64, 33, 300, -1.5f, 0.f, true});       // the fewest rows they take; a partial panel
    }
}

// gemm_f32_general directly, whichever kernel gemm() chooses on this machine.
TEST(GemmTest, PanelsWithBPackedPerCallAllTransposes) {
  if (!f32_packed_available()) GTEST_SKIP() << "no AVX-512F: gemm() runs every product on the BLAS";
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      run({ta, tb, 130, 77, 93, 0.5f, 1.f}, true);
      run({ta, tb, 64, 33, 300, -1.5f, 0.f, true}, true);
      run({ta, tb, 7, 40, 13, 1.f, 1.f}, true);  // fewer rows than a micro-tile
      run({ta, tb, 100, 1, 70, 2.f, 0.f, true}, true);
      run({ta, tb, 30, 160, 2100, 1.f, 1.f}, true);  // a B over 1 MB, K over 1024: row groups over slices of K
    }
}

// Products with a side of at most 16 (core/gemm_thin.h: LoRA's rank-8 products, the router's 8 experts) run on
// the fp32 micro-tiles where the CPU has AVX-512, split across two threads or not: every shape LoRA takes,
// alpha ≠ 1 (folded into a copy of B), beta 0 with NaN in C, beta 1, and a transposed B too large to copy.
TEST(GemmTest, ThinProductsAllShapes) {
  const int threads = num_threads();
  for (int t : {1, 2}) {
    set_num_threads(t);
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        run({ta, tb, 300, 8, 256, 1.f, 0.f, true});    // u = x·Aᵀ
        run({ta, tb, 300, 256, 8, 0.5f, 1.f});         // out += s·u·Bᵀ
        run({ta, tb, 256, 8, 300, 0.5f, 1.f});         // dB += s·doutᵀ·u
        run({ta, tb, 8, 256, 300, 1.f, 1.f});          // dA += duᵀ·x
        run({ta, tb, 70, 16, 33, -2.f, 0.f, true});    // a thin side of 16, a partial row block
        run({ta, tb, 9, 300, 300, 1.f, 1.f});          // op(B) of 90,000 values: copied only when not transposed
        run({ta, tb, 71, 13, 100, -2.f, 1.f});         // A's rows as dot products: 8 + 5 columns, a K tail, a last row alone
        run({ta, tb, 1, 8, 256, 0.5f, 0.f, true});     // one row, as generation's
        run({ta, tb, 50, 100, 5, 1.5f, 1.f});          // a rank-5 update of 100 columns: a partial pass of 64
        run({ta, tb, 33, 70, 3, -1.f, 0.f, true});     // the same written over NaN
      }
  }
  set_num_threads(threads);
}

// Thin products of a transposed A over a long K (LoRA's dA += duᵀ·x and dB += s·doutᵀ·u, the router's weight
// gradient) stream the wide operand row by row; each element must still be one FMA chain over k in order, as
// on the panels: bit for bit, on one thread or two, with beta 0 or 1.
TEST(GemmTest, ThinTransposedSumsAreOneFmaChainPerElement) {
  if (!f32_packed_available()) GTEST_SKIP() << "no AVX-512F: these products run on the BLAS";
  const int threads = num_threads();
  struct Case { int M, N, K; float alpha, beta; };
  for (int t : {1, 2}) {
    set_num_threads(t);
    for (const Case& c : {Case{8, 256, 300, 1.f, 1.f}, Case{256, 8, 1024, 0.5f, 1.f}, Case{1, 70, 64, 1.f, 0.f},
                          Case{16, 33, 129, 1.f, 0.f}, Case{13, 200, 100, 1.f, 1.f}, Case{300, 3, 65, -2.f, 0.f},
                          Case{9, 12, 80, 0.25f, 1.f}}) {
      Rng rng(5 + c.M + c.N + c.K);
      std::vector<float> A((size_t)c.K * c.M), B((size_t)c.K * c.N), C((size_t)c.M * c.N);
      for (auto& x : A) x = rng.normal();
      for (auto& x : B) x = rng.normal();
      for (auto& x : C) x = rng.normal();
      std::vector<float> want = C;
      for (int m = 0; m < c.M; ++m)
        for (int n = 0; n < c.N; ++n) {
          float acc = 0.f;  // alpha goes with B, as gemm_thin folds it into B's copy
          for (int k = 0; k < c.K; ++k) acc = std::fmaf(A[(size_t)k * c.M + m], c.alpha * B[(size_t)k * c.N + n], acc);
          float& w = want[(size_t)m * c.N + n];
          w = c.beta == 1.f ? acc + w : acc;
        }
      gemm(true, false, c.M, c.N, c.K, c.alpha, A.data(), c.M, B.data(), c.N, c.beta, C.data(), c.N);
      for (size_t i = 0; i < C.size(); ++i)
        ASSERT_EQ(C[i], want[i]) << "M=" << c.M << " N=" << c.N << " K=" << c.K << " threads=" << t << " at " << i;
    }
  }
  set_num_threads(threads);
}

// Thin products over A's rows (u = x·Aᵀ, the router's logits) sum each row's dot products on their own: a row's
// result does not depend on the rows beside it, nor on the threads (the row-exact promise of core/gemm.h).
TEST(GemmTest, ThinRowProductsDependOnTheRowAlone) {
  const int threads = num_threads();
  constexpr int M = 37, N = 11, K = 200;
  Rng rng(77);
  std::vector<float> A((size_t)M * K), B((size_t)N * K), all((size_t)M * N), alone((size_t)M * N);
  for (auto& x : A) x = rng.normal();
  for (auto& x : B) x = rng.normal();
  for (int t : {1, 2}) {
    set_num_threads(t);
    gemm(false, true, M, N, K, 0.5f, A.data(), K, B.data(), K, 0.f, all.data(), N);
    for (int m = 0; m < M; ++m)
      gemm(false, true, 1, N, K, 0.5f, A.data() + (size_t)m * K, K, B.data(), K, 0.f, alone.data() + (size_t)m * N, N);
    for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], alone[i]) << "threads=" << t << " at " << i;
  }
  set_num_threads(threads);
}

TEST(GemmTest, KZeroScalesC) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      run({ta, tb, 7, 11, 0, 0.75f, -0.5f});  // C = beta·C
      run({ta, tb, 7, 11, 0, 1.f, 1.f});      // C unchanged
      run({ta, tb, 7, 11, 0, 1.f, 0.f, true});  // C = 0 even if it held NaN
    }
  // Explicit values, independent of gemm_ref.
  std::vector<float> C = {1.f, -2.f, 3.f, kPad, 4.f, 5.f, -6.f, kPad};
  gemm(false, false, 2, 3, 0, 1.f, nullptr, 1, nullptr, 3, 0.5f, C.data(), 4);
  EXPECT_EQ(C, (std::vector<float>{0.5f, -1.f, 1.5f, kPad, 2.f, 2.5f, -3.f, kPad}));
}

TEST(GemmTest, EmptyOutputIsANoOp) {
  std::vector<float> C(4, 7.f);
  gemm(false, false, 0, 3, 5, 1.f, nullptr, 5, nullptr, 3, 0.f, C.data(), 3);
  gemm(false, false, 3, 0, 5, 1.f, nullptr, 5, nullptr, 1, 0.f, C.data(), 1);
  EXPECT_EQ(C, std::vector<float>(4, 7.f));
}

}  // namespace
}  // namespace heirloom

namespace heirloom {
namespace {

// Under RowExact, A·Bᵀ is correct and each row's result is bit-identical whatever rows surround it.
TEST(GemmTest, RowExactRowsDoNotDependOnTheBatch) {
  for (int K : {5, 16, 64, 83}) {
    const int M = 7, N = 21, lda = K + 1, ldb = K + 3;
    Rng rng(77 + K);
    std::vector<float> A((size_t)M * lda), B((size_t)N * ldb), C0((size_t)M * N);
    for (auto* v : {&A, &B, &C0})
      for (auto& x : *v) x = rng.normal();
    {
      RowExact scope;
      run(Problem{false, true, M, N, K, 0.7f, 0.3f});
      std::vector<float> all = C0;
      gemm(false, true, M, N, K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, all.data(), N);
      for (int i = 0; i < M; ++i) {
        std::vector<float> one(C0.begin() + (size_t)i * N, C0.begin() + (size_t)(i + 1) * N);
        gemm(false, true, 1, N, K, 0.7f, A.data() + (size_t)i * lda, lda, B.data(), ldb, 0.3f, one.data(), N);
        for (int j = 0; j < N; ++j) ASSERT_EQ(one[j], all[(size_t)i * N + j]) << "K=" << K << " row " << i << " col " << j;
      }
    }
  }
}

// gemm_rows_nn (RowExact's A·B on CPUs without AVX-512) is correct, and each row's result is bit-identical
// alone, at another address, whatever rows surround it: the 64- and 16-column blocks and the last columns.
TEST(GemmTest, RowsTimesMatrixDoNotDependOnTheBatch) {
  for (int N : {7, 16, 83, 144}) {
    const int M = 6, K = 37, lda = K + 1, ldb = N + 3;
    Rng rng(91 + N);
    std::vector<float> A((size_t)M * lda), B((size_t)K * ldb), C0((size_t)M * N);
    for (auto* v : {&A, &B, &C0})
      for (auto& x : *v) x = rng.normal();
    std::vector<float> all = C0, ref = C0;
    gemm_rows_nn(M, N, K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, all.data(), N);
    gemm_ref(false, false, M, N, K, 0.7f, A.data(), lda, B.data(), ldb, 0.3f, ref.data(), N);
    for (size_t i = 0; i < all.size(); ++i) ASSERT_NEAR(all[i], ref[i], 1e-4f) << "N=" << N << " at " << i;
    for (int i = 0; i < M; ++i) {
      std::vector<float> a(K + 3), one(C0.begin() + (size_t)i * N, C0.begin() + (size_t)(i + 1) * N);
      std::copy(A.begin() + (size_t)i * lda, A.begin() + (size_t)i * lda + K, a.begin() + 3);  // unaligned
      gemm_rows_nn(1, N, K, 0.7f, a.data() + 3, K, B.data(), ldb, 0.3f, one.data(), N);
      for (int j = 0; j < N; ++j) ASSERT_EQ(one[j], all[(size_t)i * N + j]) << "N=" << N << " row " << i << " col " << j;
    }
  }
}

// CachedOutputs changes where the packed kernels write (through the caches, not around them), never what: the
// same bits for a product split across the threads, fp32 panels and bf16 alike, written and added to; the scope
// nests and restores.
TEST(GemmTest, CachedOutputsChangeNoValue) {
  EXPECT_FALSE(outputs_cached());
  {
    CachedOutputs outer;
    { CachedOutputs inner; EXPECT_TRUE(outputs_cached()); }
    EXPECT_TRUE(outputs_cached()) << "an inner scope ended the outer one";
  }
  EXPECT_FALSE(outputs_cached());
  const int M = 256, N = 256, K = 256;
  Rng rng(5);
  std::vector<float> A((size_t)M * K), W((size_t)K * N), C0((size_t)M * N);
  for (float& x : A) x = rng.normal();
  for (float& x : W) x = rng.normal();
  for (float& x : C0) x = rng.normal();
  auto both = [&](const std::string& what, auto&& product) {
    for (bool accumulate : {false, true}) {
      AlignedFloats streamed(C0.begin(), C0.end()), cached(C0.begin(), C0.end());  // lines: they may stream
      product(streamed.data(), accumulate);
      {
        CachedOutputs scope;
        product(cached.data(), accumulate);
      }
      EXPECT_EQ(std::memcmp(streamed.data(), cached.data(), sizeof(float) * streamed.size()), 0)
          << what << (accumulate ? ", added to" : ", written");
    }
  };
  if (f32_packed_available()) {
    const PackedF32 b = pack_b_f32(W.data(), N, false, K, N);
    both("fp32 panels", [&](float* c, bool acc) { gemm_f32_packed(M, A.data(), K, b, c, N, acc); });
  }
  if (bf16_gemm_available()) {
    const PackedB b = pack_b_bf16(W.data(), N, false, K, N);
    both("bf16", [&](float* c, bool acc) { gemm_bf16(M, A.data(), K, b, c, N, acc); });
  }
}

}  // namespace
}  // namespace heirloom
