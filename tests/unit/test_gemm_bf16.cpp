// gemm_bf16() (AMX tiles, or AVX512-BF16 dot products without them) against a double-precision reference on
// the same bf16-rounded inputs: odd sizes, both packing orientations, strides wider than the data (padding NaN,
// so reading it fails the test), accumulate onto C, one thread, two, and calls from inside a parallel region;
// aligned outputs (streamed) equal unaligned ones.
// Skipped only on CPUs without AVX512-BF16.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "heirloom/cache_line.h"
#include "core/gemm_bf16.h"
#include "core/gemm_bf16_pack.h"
#include "core/half.h"
#include "core/rng.h"
#include "ops/swiglu.h"
#include "ops/vec_math.h"
#include "ops/xent.h"
#include "heirloom/threads.h"

namespace heirloom {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(Bf16, RoundingIsNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.f)), 1.f);
  // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties go to the even (1); just above goes up.
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.f + 0x1p-8f)), 1.f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.f + 0x1p-8f + 0x1p-20f)), 1.f + 0x1p-7f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(-3.f)), -3.f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(kNaN))));
}

// C[M, N] (+)= A·B in double on the bf16-rounded inputs a(m, k), b(k, n): what every bf16 product should give.
template <class AAt, class BAt>
std::vector<float> bf16_reference(const std::vector<float>& C, int ldc, int M, int N, int K, bool accumulate, AAt a,
                                  BAt b) {
  std::vector<float> expect(C);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double acc = accumulate ? C[(size_t)m * ldc + n] : 0.0;
      for (int k = 0; k < K; ++k) acc += (double)bf16_to_f32(f32_to_bf16(a(m, k))) * bf16_to_f32(f32_to_bf16(b(k, n)));
      expect[(size_t)m * ldc + n] = (float)acc;
    }
  return expect;
}

struct Case {
  int M, N, K;
  bool trans, accumulate;
};

void run(const Case& p, bool inside_parallel) {
  SCOPED_TRACE("M=" + std::to_string(p.M) + " N=" + std::to_string(p.N) + " K=" + std::to_string(p.K) +
               (p.trans ? " trans" : "") + (p.accumulate ? " accumulate" : "") + (inside_parallel ? " nested" : ""));
  Rng rng(17 + p.M * 131 + p.N * 7 + p.K);
  const int lda = p.K + 3, ldc = p.N + 5;
  const int ld = (p.trans ? p.K : p.N) + 2, rows = p.trans ? p.N : p.K;  // stored B: [N, K] if trans, else [K, N]
  std::vector<float> A((size_t)p.M * lda, kNaN), W((size_t)rows * ld, kNaN), C((size_t)p.M * ldc, kNaN);
  for (int i = 0; i < p.M; ++i)
    for (int k = 0; k < p.K; ++k) A[(size_t)i * lda + k] = rng.normal();
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < (p.trans ? p.K : p.N); ++c) W[(size_t)r * ld + c] = rng.normal();
  for (int i = 0; i < p.M; ++i)
    for (int j = 0; j < p.N; ++j) C[(size_t)i * ldc + j] = p.accumulate ? rng.normal() : kNaN;
  const std::vector<float> expect = bf16_reference(C, ldc, p.M, p.N, p.K, p.accumulate,
      [&](int m, int k) { return A[(size_t)m * lda + k]; },
      [&](int k, int n) { return p.trans ? W[(size_t)n * ld + k] : W[(size_t)k * ld + n]; });
  const PackedB packed = pack_b_bf16(W.data(), ld, p.trans, p.K, p.N);
  if (inside_parallel) {
#pragma omp parallel num_threads(2)
    if (omp_get_thread_num() == 0) gemm_bf16(p.M, A.data(), lda, packed, C.data(), ldc, p.accumulate);
  } else {
    gemm_bf16(p.M, A.data(), lda, packed, C.data(), ldc, p.accumulate);
  }
  for (int i = 0; i < p.M; ++i)
    for (int j = 0; j < ldc; ++j) {
      const float got = C[(size_t)i * ldc + j], want = expect[(size_t)i * ldc + j];
      if (j >= p.N) {  // the stride's padding is never written
        ASSERT_TRUE(std::isnan(got)) << "wrote padding at " << i << "," << j;
        continue;
      }
      // Both sides multiply the same bf16 values exactly; only fp32 summation order differs.
      ASSERT_NEAR(got, want, 1e-5 * (1 + std::sqrt((double)p.K)) * (1 + std::fabs(want))) << "at " << i << "," << j;
    }
}

TEST(Bf16, GemmMatchesReferenceOnRoundedInputs) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16 (the fp32 path is used instead)";
  const Case cases[] = {{1, 1, 1, true, false},     {5, 17, 3, true, false},     {16, 16, 32, false, false},
                        {33, 40, 300, true, true},  {64, 768, 256, true, false}, {100, 256, 512, false, true},
                        {256, 512, 256, true, false}, {7, 8, 8192, false, true}, {31, 65, 64, false, false},
                        // a few rows take the AVX512-BF16 path; the large ones split it across threads
                        {1, 768, 256, true, false}, {2, 8192, 256, true, true}, {3, 33, 513, false, true},
                        {4, 520, 512, false, false},
                        // ≥ 8 row blocks and a B under 1 MB: each thread converts and multiplies its own rows
                        {290, 100, 70, false, true}, {1024, 256, 256, true, false},
                        // a packed B over 1 MB: taken 32 columns at a time by every row block (the head's order)
                        {100, 2100, 256, true, true}};
  for (const Case& p : cases) {
    run(p, false);
    run(p, true);
  }
  // ctest runs with OMP_NUM_THREADS=1: the products split across threads run once more on two.
  const int threads = num_threads();
  set_num_threads(2);
  for (const Case& p : cases) run(p, false);
  set_num_threads(threads);
}

// Rows of C 64-byte aligned are written around the caches (non-temporal stores, core/gemm_tile.h); the same
// product into rows one float off (stored as usual) must give the same bits, with the stride's padding and the
// last, partial panel's columns untouched, on one thread and two.
TEST(Bf16, StreamedOutputEqualsStoredOutput) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const int M = 100, N = 520, K = 256, ldc = 544;  // 520 = 16 panels of 32 and 8 columns
  Rng rng(23);
  std::vector<float> A((size_t)M * K), W((size_t)N * K);
  for (float& x : A) x = rng.normal();
  for (float& x : W) x = rng.normal();
  const PackedB packed = pack_b_bf16(W.data(), K, true, K, N);
  const int threads = num_threads();
  for (int nt : {1, 2}) {
    set_num_threads(nt);
    AlignedFloats buf((size_t)(M + 1) * ldc + 16, kNaN);
    float* aligned = buf.data();
    std::vector<float> off((size_t)M * ldc + 1, kNaN);
    gemm_bf16(M, A.data(), K, packed, aligned, ldc, false);
    gemm_bf16(M, A.data(), K, packed, off.data() + 1, ldc, false);
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < ldc; ++j) {
        const float a = aligned[(size_t)i * ldc + j], b = off[1 + (size_t)i * ldc + j];
        if (j >= N) ASSERT_TRUE(std::isnan(a) && std::isnan(b)) << "wrote padding at " << i << "," << j;
        else ASSERT_EQ(a, b) << "threads " << nt << " at " << i << "," << j;
      }
  }
  set_num_threads(threads);
}

// A product written in bf16 (the experts' gate and up projections) is its fp32 product rounded, value for value:
// many rows (dot products' tiles, streamed where C is aligned) and few (the row-by-row path), 520 columns (a
// panel of 8 past the last whole one), one thread and two; nothing written past N.
TEST(Bf16, ProductWrittenInBf16IsItsFp32ProductRounded) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const int N = 520, K = 200, ldc = 544;
  const uint16_t kSentinel = 0x7fc1;  // a bf16 NaN no product writes
  Rng rng(31);
  std::vector<float> W((size_t)N * K);
  for (float& x : W) x = rng.normal();
  const PackedB packed = pack_b_bf16(W.data(), K, true, K, N);
  const int threads = num_threads();
  for (int M : {3, 100}) {
    std::vector<float> X((size_t)M * K);
    for (float& x : X) x = rng.normal();
    std::vector<int32_t> order(M);
    for (int i = 0; i < M; ++i) order[i] = i;
    const int64_t ld = bf16_rows_stride(M, packed);
    std::vector<uint16_t> rows((size_t)M * ld);
    gather_bf16_rows(X.data(), K, order.data(), M, packed, rows.data(), ld);
    std::vector<float> f32((size_t)M * N);
    gemm_bf16_on_rows(rows.data(), ld, M, packed, f32.data(), N, false);
    std::vector<uint16_t> want((size_t)M * N);
    convert_rows(f32.data(), N, M, N, N, N, 0, M, want.data());
    for (int nt : {1, 2}) {
      set_num_threads(nt);
      std::vector<uint16_t, CacheLineAllocator<uint16_t>> buf((size_t)M * ldc + 32, kSentinel);
      for (int shift : {0, 1}) {  // C on cache lines (streamed), and one value off them
        SCOPED_TRACE("M " + std::to_string(M) + ", threads " + std::to_string(nt) + ", shift " + std::to_string(shift));
        std::fill(buf.begin(), buf.end(), kSentinel);
        gemm_bf16_on_rows(rows.data(), ld, M, packed, buf.data() + shift, ldc);
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < ldc; ++j) {
            const uint16_t got = buf[shift + (size_t)i * ldc + j];
            if (j >= N) ASSERT_EQ(got, kSentinel) << "wrote padding at " << i << "," << j;
            else ASSERT_EQ(got, want[(size_t)i * N + j]) << "at " << i << "," << j;
          }
      }
    }
  }
  set_num_threads(threads);
}

// Weight gradients: C[M, N] (+)= Aᵀ · B with A stored [K, M], B stored [K, N], both converted per call.
void run_tn(int M, int N, int K, bool accumulate, bool inside_parallel) {
  SCOPED_TRACE("tn M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
               (accumulate ? " accumulate" : "") + (inside_parallel ? " nested" : ""));
  Rng rng(5 + M * 3 + N * 11 + K);
  const int lda = M + 1, ldb = N + 3, ldc = N + 2;
  std::vector<float> A((size_t)K * lda, kNaN), B((size_t)K * ldb, kNaN), C((size_t)M * ldc, kNaN);
  for (int k = 0; k < K; ++k) {
    for (int i = 0; i < M; ++i) A[(size_t)k * lda + i] = rng.normal();
    for (int j = 0; j < N; ++j) B[(size_t)k * ldb + j] = rng.normal();
  }
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) C[(size_t)i * ldc + j] = accumulate ? rng.normal() : kNaN;
  std::vector<float> expect(C);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double acc = accumulate ? C[(size_t)i * ldc + j] : 0.0;
      for (int k = 0; k < K; ++k)
        acc += (double)bf16_to_f32(f32_to_bf16(A[(size_t)k * lda + i])) * bf16_to_f32(f32_to_bf16(B[(size_t)k * ldb + j]));
      expect[(size_t)i * ldc + j] = (float)acc;
    }
  if (inside_parallel) {
#pragma omp parallel num_threads(2)
    if (omp_get_thread_num() == 0) gemm_bf16_tn(M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc, accumulate);
  } else {
    gemm_bf16_tn(M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc, accumulate);
  }
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < ldc; ++j) {
      const float got = C[(size_t)i * ldc + j], want = expect[(size_t)i * ldc + j];
      if (j >= N) {
        ASSERT_TRUE(std::isnan(got)) << "wrote padding at " << i << "," << j;
        continue;
      }
      ASSERT_NEAR(got, want, 1e-5 * (1 + std::sqrt((double)K)) * (1 + std::fabs(want))) << "at " << i << "," << j;
    }
}

TEST(Bf16, TransposedGemmMatchesReferenceOnRoundedInputs) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16 (the fp32 path is used instead)";
  const int cases[][4] = {{1, 1, 1, 0}, {5, 17, 3, 1}, {33, 40, 300, 1}, {768, 256, 1024, 1}, {256, 512, 64, 0}, {70, 9, 33, 0}};
  for (const auto& c : cases) {
    run_tn(c[0], c[1], c[2], c[3], false);
    run_tn(c[0], c[1], c[2], c[3], true);
  }
  const int threads = num_threads();  // and split across two threads (see above)
  set_num_threads(2);
  for (const auto& c : cases) run_tn(c[0], c[1], c[2], c[3], false);
  set_num_threads(threads);
}

// Several A against one B packed once (the experts' gate and up gradients): each C the same bits as its own call.
TEST(Bf16, TransposedGemmsSharingBEqualSeparateCalls) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const int M = 70, N = 40, K = 90, lda = M + 3, ldb = N + 5, ldc = N;
  Rng rng(91);
  std::vector<float> A1((size_t)K * lda), A2((size_t)K * lda), B((size_t)K * ldb);
  for (auto* v : {&A1, &A2, &B})
    for (auto& x : *v) x = rng.normal();
  for (bool accumulate : {false, true}) {
    std::vector<float> c1((size_t)M * ldc, 0.25f), c2 = c1, s1 = c1, s2 = c1;
    const BfProduct both[2] = {{A1.data(), c1.data()}, {A2.data(), c2.data()}};
    gemm_bf16_tn(M, N, K, both, 2, lda, B.data(), ldb, ldc, accumulate);
    gemm_bf16_tn(M, N, K, A1.data(), lda, B.data(), ldb, s1.data(), ldc, accumulate);
    gemm_bf16_tn(M, N, K, A2.data(), lda, B.data(), ldb, s2.data(), ldc, accumulate);
    EXPECT_EQ(c1, s1) << (accumulate ? "accumulate" : "write");
    EXPECT_EQ(c2, s2) << (accumulate ? "accumulate" : "write");
  }
}

// Rows made on demand in bf16 (the cross-entropy's dlogits): bit for bit what gemm_bf16 gives on the stored fp32
// rows, and each row asked for once.
TEST(Bf16, ProducedRowsEqualStoredRows) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  for (int M : {1, 4, 5, 33, 100, 300}) {  // 1, 4: the few-row path; 300: rows split between the threads
    const int K = 300, N = 70;
    Rng rng(40 + M);
    std::vector<float> A((size_t)M * K), W((size_t)N * K);
    for (auto& x : A) x = rng.normal();
    for (auto& x : W) x = rng.normal();
    const PackedB p = pack_b_bf16(W.data(), K, true, K, N);
    for (bool accumulate : {false, true}) {
      std::vector<float> stored((size_t)M * N, 0.5f), produced = stored;
      std::vector<int> asked(M, 0);
      gemm_bf16(M, A.data(), K, p, stored.data(), N, accumulate);
      gemm_bf16_produced(M, [&](int r, uint16_t* row) {
        ++asked[r];  // rows are disjoint between threads
        for (int k = 0; k < K; ++k) row[k] = to_bf16(A[(size_t)r * K + k]);
      }, p, produced.data(), N, accumulate);
      EXPECT_EQ(produced, stored) << "M=" << M << (accumulate ? " accumulate" : "");
      for (int r = 0; r < M; ++r) EXPECT_EQ(asked[r], 1) << "row " << r;
    }
  }
}

// gemm_bf16_tn takes Aᵀ's k-pairs as two rows of A make them (the dot products' pairs layout) where gemm_bf16
// takes rows: the same chains of the same pairs, so bit for bit gemm_bf16 on Aᵀ stored. Shapes where the two
// threads' rows split inside a cache line of pairs (768: at row 360; 256: at 120), odd K, one row, wide strides.
TEST(Bf16, TransposedGemmEqualsGemmOnTheTransposedA) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const int threads = num_threads();
  for (int nt : {1, 2}) {
    set_num_threads(nt);
    for (const auto& [M, N, K] : {std::tuple{768, 256, 1024}, {256, 96, 250}, {1, 40, 7}, {77, 33, 65}, {300, 64, 31}}) {
      const int lda = M + 5, ldb = N + 3;
      Rng rng(M * 3 + K);
      std::vector<float> A((size_t)K * lda), At((size_t)M * K), B((size_t)K * ldb);
      for (auto& v : A) v = rng.normal();
      for (auto& v : B) v = rng.normal();
      for (int k = 0; k < K; ++k)
        for (int m = 0; m < M; ++m) At[(size_t)m * K + k] = A[(size_t)k * lda + m];
      const PackedB packed = pack_b_bf16(B.data(), ldb, false, K, N);
      for (bool accumulate : {false, true}) {
        std::vector<float> want((size_t)M * N, 0.75f), got = want;
        gemm_bf16(M, At.data(), K, packed, want.data(), N, accumulate);
        gemm_bf16_tn(M, N, K, A.data(), lda, B.data(), ldb, got.data(), N, accumulate);
        EXPECT_EQ(got, want) << "M=" << M << " N=" << N << " K=" << K << " threads " << nt
                             << (accumulate ? " accumulate" : "");
      }
    }
  }
  set_num_threads(threads);
}

// A filled into pair rows a row at a time, rows in any order (as threads make the head's dlogits): bit for bit
// gemm_bf16_tn on the rows stored. One PairRows reused, NaNs left in it: its padding is zeros again (an odd K's
// last pair half made). Odd M (a tail of words), one thread and two.
TEST(Bf16, TransposedGemmOnPairRowsEqualsItOnStoredRows) {
  if (!tn_takes_pairs()) GTEST_SKIP() << "this CPU's weight gradients do not take pair rows (no AVX512-BF16, or AMX)";
  const int threads = num_threads();
  PairRows pairs;
  for (int nt : {1, 2}) {
    set_num_threads(nt);
    for (const auto& [M, N, K] : {std::tuple{1000, 64, 256}, {300, 40, 65}, {37, 17, 3}, {8192, 32, 64}}) {
      Rng rng(M + N + K);
      std::vector<uint16_t> A16((size_t)K * M);
      std::vector<float> B((size_t)K * N);
      for (auto& v : A16) v = to_bf16(rng.normal());
      for (auto& v : B) v = rng.normal();
      std::fill(pairs.words.begin(), pairs.words.end(), 0x7FC07FC0u);  // NaNs left by the last use
      size_pair_rows(pairs, K, M);
      for (int k = K - 1; k >= 0; --k) put_pair_row(pairs, k, A16.data() + (size_t)k * M);  // backwards
      for (bool accumulate : {false, true}) {
        std::vector<float> want((size_t)M * N, 0.25f), got = want;
        gemm_bf16_tn(M, N, K, A16.data(), M, B.data(), N, want.data(), N, accumulate);
        gemm_bf16_tn(pairs, N, B.data(), N, got.data(), N, accumulate);
        EXPECT_EQ(got, want) << "M=" << M << " N=" << N << " K=" << K << " threads " << nt
                             << (accumulate ? " accumulate" : "");
      }
    }
  }
  set_num_threads(threads);
}

// A B kept packed as its rows are made (a trainer's forward keeps the experts' input rows and h so): rows put in
// runs that start and end off the 32-row blocks, one at a time and backwards, into a buffer left with other
// values, give the pack of the stored rows bit for bit, and the weight gradients on it (A in fp32, or in pair
// rows) equal those that pack B themselves. Odd K, N off the 16-column blocks.
TEST(Bf16, KeptPackOfPutRowsEqualsThePackOfStoredRows) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  PackedB kept;
  PairRows pairs;
  for (const auto& [K, N, M] : {std::tuple{75, 40, 33}, {256, 512, 64}, {1, 17, 5}, {64, 32, 300}}) {
    SCOPED_TRACE("K=" + std::to_string(K) + " N=" + std::to_string(N));
    Rng rng(K + N);
    const int ldr = N + 5;
    std::vector<float> B((size_t)K * N), A((size_t)K * M);
    std::vector<uint16_t> rows((size_t)K * ldr, 0xFFFF), A16(A.size());
    for (auto& v : B) v = rng.normal();
    for (size_t i = 0; i < A.size(); ++i) A[i] = rng.normal(), A16[i] = to_bf16(A[i]);
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N; ++n) rows[(size_t)k * ldr + n] = to_bf16(B[(size_t)k * N + n]);
    const PackedB want = pack_b_bf16(B.data(), N, false, K, N);
    std::fill(kept.data.begin(), kept.data.end(), (uint16_t)0x7FC1);  // NaNs left by the last use
    size_b_rows(kept, K, N);
    const int a = K / 3, b = 2 * K / 3;
    put_b_rows(kept, 0, a, rows.data(), ldr);
    for (int k = b - 1; k >= a; --k) put_b_row(kept, k, rows.data() + (size_t)k * ldr);
    put_b_rows(kept, b, K - b, rows.data() + (size_t)b * ldr, ldr);
    ASSERT_EQ(kept.Kp, want.Kp);
    ASSERT_EQ(kept.Np, want.Np);
    for (size_t i = 0; i < (size_t)want.Kp * want.Np; ++i) ASSERT_EQ(kept.data[i], want.data[i]) << "pack word " << i;
    for (bool accumulate : {false, true}) {
      std::vector<float> expected((size_t)M * N, 0.25f), got = expected;
      gemm_bf16_tn(M, N, K, A.data(), M, B.data(), N, expected.data(), N, accumulate);
      const BfProduct product{A.data(), got.data()};
      gemm_bf16_tn(M, &product, 1, M, kept, N, accumulate);
      EXPECT_EQ(got, expected) << "A in fp32" << (accumulate ? ", accumulate" : "");
      if (!tn_takes_pairs()) continue;
      size_pair_rows(pairs, K, M);
      for (int k = 0; k < K; ++k) put_pair_row(pairs, k, A16.data() + (size_t)k * M);
      std::fill(got.begin(), got.end(), 0.25f);
      const PairProduct paired{&pairs, got.data()};
      gemm_bf16_tn(&paired, 1, kept, N, accumulate);
      EXPECT_EQ(got, expected) << "A in pair rows" << (accumulate ? ", accumulate" : "");
    }
  }
}

// gemm_bf16_tn on an A already in bf16 (the trained head's dlogits, made in bf16): bit for bit the product on A in
// fp32. Edges off the 16 x 32 blocks, wide strides, accumulate, one thread and two; and the head's case itself,
// cross-entropy rows made in bf16 against xent_backward_write's fp32 rows (ignored rows, targets in the tails).
TEST(Bf16, TransposedGemmOnBf16AEqualsItOnFp32A) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const int threads = num_threads();
  for (int nt : {1, 2}) {
    set_num_threads(nt);
    for (const auto& [M, N, K] : {std::tuple{70, 40, 33}, {300, 64, 256}, {5, 17, 3}, {1030, 32, 70}}) {
      const int lda = M + 7;
      Rng rng(M + K);
      std::vector<float> A((size_t)K * lda), B((size_t)K * N);
      std::vector<uint16_t> A16((size_t)K * lda);
      for (size_t i = 0; i < A.size(); ++i) A[i] = rng.normal(), A16[i] = to_bf16(A[i]);
      for (auto& v : B) v = rng.normal();
      for (bool accumulate : {false, true}) {
        std::vector<float> want((size_t)M * N, 0.5f), got = want;
        gemm_bf16_tn(M, N, K, A.data(), lda, B.data(), N, want.data(), N, accumulate);
        gemm_bf16_tn(M, N, K, A16.data(), lda, B.data(), N, got.data(), N, accumulate);
        EXPECT_EQ(got, want) << "M=" << M << " K=" << K << " threads " << nt << (accumulate ? " accumulate" : "");
      }
    }
  }
  set_num_threads(threads);
  const int N = 70, V = 300, C = 40;
  Rng rng(5);
  std::vector<float> logits((size_t)N * V), x((size_t)N * C), lse(N), losses(N), dlogits((size_t)N * V);
  std::vector<uint16_t> d16((size_t)N * V);
  std::vector<int32_t> targets(N);
  for (auto& v : logits) v = rng.normal() * 3.f;
  for (auto& v : x) v = rng.normal();
  for (int n = 0; n < N; ++n) targets[n] = n % 7 == 3 ? kIgnoreIndex : n % 5 == 0 ? V - 1 - n % 3 : (int)rng.below(V);
  int scored = 0;
  xent_forward(losses.data(), logits.data(), targets.data(), N, V, &scored, lse.data());
  xent_backward_write(dlogits.data(), logits.data(), targets.data(), 1.f / scored, N, V, lse.data());
  for (int n = 0; n < N; ++n)
    xent_backward_row(d16.data() + (size_t)n * V, logits.data() + (size_t)n * V, targets[n], 1.f / scored, V, lse[n]);
  std::vector<float> want((size_t)V * C), got((size_t)V * C);
  gemm_bf16_tn(V, C, N, dlogits.data(), V, x.data(), C, want.data(), C, false);
  gemm_bf16_tn(V, C, N, d16.data(), V, x.data(), C, got.data(), C, false);
  EXPECT_EQ(got, want) << "the head's gradient";
}

// Rows made in bf16 (to_bf16, store16, and the row functions that write either type) are their fp32 rows as
// the products round them (to_bf16_rows: vcvtneps2bf16): ties to even, denormals to zero, NaN kept.
TEST(Bf16, RowsMadeInBf16AreTheirFp32RowsRounded) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  auto rounded = [](const std::vector<float>& x) {  // the products' rounding, by the hardware
    const int n = (int)x.size(), ld = (n + 31) / 32 * 32;
    std::vector<uint16_t> out((size_t)32 * ld);
    to_bf16_rows(x.data(), n, false, 1, n, out.data(), ld);
    return std::vector<uint16_t>(out.begin(), out.begin() + n);
  };
  Rng rng(77);
  std::vector<float> x(1000);
  for (auto& v : x) v = rng.normal() * 3.f;
  const float specials[] = {0.f, -0.f, 1.f + 0x1p-8f, 1.f + 0x1p-8f + 0x1p-7f, -(1.f + 0x1p-8f), 0x1p-130f, -0x1p-140f,
                            0x1p-126f, std::numeric_limits<float>::infinity(), kNaN, 3.0e38f, -3.3e38f};
  std::copy(std::begin(specials), std::end(specials), x.begin() + 3);  // some in the vector part, some in no lane
  const std::vector<uint16_t> want = rounded(x);
  std::vector<uint16_t> scalar(x.size()), vec(x.size());
  for (size_t i = 0; i < x.size(); ++i) scalar[i] = to_bf16(x[i]);
  for (size_t i = 0; i + 16 <= x.size(); i += 16) store16(vec.data() + i, load16(x.data() + i));
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) {  // NaN stays NaN (its payload is not compared)
      EXPECT_EQ(scalar[i] & 0x7fc0, 0x7fc0) << i;
      continue;
    }
    EXPECT_EQ(scalar[i], want[i]) << "x=" << x[i];
    if (i < x.size() / 16 * 16) {
      EXPECT_EQ(vec[i], want[i]) << "x=" << x[i];
    }
  }
  // The row functions, F = 520 (a tail past the last 16), over finite values.
  const int F = 520;
  std::vector<float> g(F), u(F), d(F), f32(F), dup(F), dup16(F);
  for (int i = 0; i < F; ++i) g[i] = rng.normal() * 4.f, u[i] = rng.normal(), d[i] = rng.normal();
  std::vector<uint16_t> b16(F);
  swiglu_forward_row(f32.data(), g.data(), u.data(), F);
  swiglu_forward_row(b16.data(), g.data(), u.data(), F);
  EXPECT_EQ(b16, rounded(f32)) << "swiglu forward";
  swiglu_backward_row(f32.data(), dup.data(), d.data(), g.data(), u.data(), F);
  swiglu_backward_row(b16.data(), dup16.data(), d.data(), g.data(), u.data(), F);
  EXPECT_EQ(b16, rounded(f32)) << "swiglu backward";
  EXPECT_EQ(dup16, dup) << "swiglu backward's fp32 half";
  {  // gate and up read in bf16 (as the experts keep them): the values of the same rows in fp32
    const std::vector<uint16_t> g16 = rounded(g), u16 = rounded(u);
    std::vector<float> gf(F), uf(F), from16(F), dup_from16(F);
    for (int i = 0; i < F; ++i) gf[i] = bf16_to_f32(g16[i]), uf[i] = bf16_to_f32(u16[i]);
    swiglu_forward_row(f32.data(), gf.data(), uf.data(), F);
    swiglu_forward_row(from16.data(), g16.data(), u16.data(), F);
    EXPECT_EQ(from16, f32) << "swiglu forward on bf16 gate and up";
    swiglu_backward_row(f32.data(), dup.data(), d.data(), gf.data(), uf.data(), F);
    swiglu_backward_row(from16.data(), dup_from16.data(), d.data(), g16.data(), u16.data(), F);
    EXPECT_EQ(from16, f32) << "swiglu backward on bf16 gate and up";
    EXPECT_EQ(dup_from16, dup) << "swiglu backward's up half on bf16 gate and up";
  }
  scale_row(f32.data(), d.data(), 0.37f, F);
  scale_row(b16.data(), d.data(), 0.37f, F);
  EXPECT_EQ(b16, rounded(f32)) << "scaled row";
  for (int target : {0, 17, F - 1, -1}) {  // the target in the first vector, a later one, the tail; none
    xent_backward_row(f32.data(), g.data(), target, 0.25f, F, 9.f);
    xent_backward_row(b16.data(), g.data(), target, 0.25f, F, 9.f);
    EXPECT_EQ(b16, rounded(f32)) << "cross-entropy row, target " << target;
  }
}

// Small products on prepared operands (attention's blocks): the first K rows and N columns of a packed B,
// A converted as rows or from its transpose, edges off the tiles, accumulate, on one thread of a parallel
// region; and a row's result does not depend on how many rows are multiplied with it.
TEST(Bf16, SmallProductsOnPreparedOperands) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  struct Small { int M, N, K, BK, BN; bool trans_a, trans_b, accumulate; };
  const Small cases[] = {{32, 32, 32, 32, 128, false, true, false}, {17, 70, 24, 24, 96, true, false, true},
                         {100, 32, 65, 128, 32, false, false, true}, {1, 5, 3, 40, 9, true, true, false},
                         {64, 20, 31, 31, 20, false, true, true}};
  for (const Small& p : cases) {
    SCOPED_TRACE("M=" + std::to_string(p.M) + " N=" + std::to_string(p.N) + " K=" + std::to_string(p.K) + " of B " +
                 std::to_string(p.BK) + "x" + std::to_string(p.BN));
    Rng rng(3 + p.M + 7 * p.N + 11 * p.K);
    const int lda = (p.trans_a ? p.M : p.K) + 2, ldb = (p.trans_b ? p.BK : p.BN) + 1, ldc = p.N + 3;
    std::vector<float> A((size_t)(p.trans_a ? p.K : p.M) * lda, kNaN), W((size_t)(p.trans_b ? p.BN : p.BK) * ldb, kNaN);
    auto a = [&](int m, int k) -> float& { return p.trans_a ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k]; };
    auto w = [&](int k, int n) -> float& { return p.trans_b ? W[(size_t)n * ldb + k] : W[(size_t)k * ldb + n]; };
    for (int m = 0; m < p.M; ++m)
      for (int k = 0; k < p.K; ++k) a(m, k) = rng.normal();
    for (int k = 0; k < p.BK; ++k)
      for (int n = 0; n < p.BN; ++n) w(k, n) = rng.normal();
    std::vector<float> C((size_t)p.M * ldc, kNaN);
    for (int m = 0; m < p.M; ++m)
      for (int n = 0; n < p.N; ++n) C[(size_t)m * ldc + n] = p.accumulate ? rng.normal() : kNaN;
    const std::vector<float> expect = bf16_reference(C, ldc, p.M, p.N, p.K, p.accumulate, a, w);
    std::vector<float> first_row(C.begin(), C.begin() + ldc);
#pragma omp parallel num_threads(2)
    if (omp_get_thread_num() == 1) {
      PackedB b;
      pack_b_bf16_into(b, W.data(), ldb, p.trans_b, p.BK, p.BN);
      const int ldo = (p.K + 31) / 32 * 32 + 32;  // wider than the data: the stride is honoured
      std::vector<uint16_t> rows((size_t)(p.M + 31) / 32 * 32 * ldo);
      to_bf16_rows(A.data(), lda, p.trans_a, p.M, p.K, rows.data(), ldo);
      Bf16Tiles tiles;
      gemm_bf16_small(p.M, p.N, p.K, rows.data(), ldo, b, C.data(), ldc, p.accumulate);
      gemm_bf16_small(1, p.N, p.K, rows.data(), ldo, b, first_row.data(), ldc, p.accumulate);
    }
    for (int m = 0; m < p.M; ++m)
      for (int n = 0; n < ldc; ++n) {
        const float got = C[(size_t)m * ldc + n], want = expect[(size_t)m * ldc + n];
        if (n >= p.N) {
          ASSERT_TRUE(std::isnan(got)) << "wrote padding at " << m << "," << n;
          continue;
        }
        ASSERT_NEAR(got, want, 1e-5 * (1 + std::sqrt((double)p.K)) * (1 + std::fabs(want))) << "at " << m << "," << n;
      }
    for (int n = 0; n < p.N; ++n) ASSERT_EQ(first_row[n], C[n]) << "row 0 alone differs at column " << n;
  }
}

}  // namespace
}  // namespace heirloom
