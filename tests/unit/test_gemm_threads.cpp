// The packed products split across two threads give the bits of one thread, whichever way they split: by rows
// (A taller than B is wide), or by B's columns (B at least as wide as A is tall in fp32, 1.5 times in bf16,
// each thread multiplying all of A by its own share of B's panels). ctest runs with OMP_NUM_THREADS=1, so these
// are the tests that run the splits.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/paced_split.h"
#include "core/rng.h"
#include "heirloom/threads.h"

namespace heirloom {
namespace {

std::vector<float> normals(size_t n, Rng& rng) {
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal();
  return v;
}

// C on `threads` threads for the product `run(C)` writes (or adds to C's starting values).
template <class Run>
std::vector<float> on_threads(int threads, const std::vector<float>& C0, Run&& run) {
  const int before = num_threads();
  set_num_threads(threads);
  std::vector<float> C = C0;
  run(C.data());
  set_num_threads(before);
  return C;
}

// M x N x K: 64 x 768 and 97 x 256 split by columns in fp32 (the first, and 100 x 160, in bf16), 300 x 256 by
// rows, 40 x 200 by columns with a partial panel in a thread's share.
constexpr std::array<std::array<int, 3>, 5> kShapes = {
    {{64, 768, 256}, {97, 256, 256}, {300, 256, 256}, {40, 200, 96}, {100, 160, 64}}};

// product(M, N, K, A, B, C, accumulate) on two threads and on one, for each shape, written and added to.
template <class Product>
void expect_one_threads_bits(Product&& product) {
  for (auto [M, N, K] : kShapes)
    for (bool accumulate : {false, true}) {
      Rng rng(M + N + K);
      const std::vector<float> A = normals((size_t)M * K, rng), B = normals((size_t)N * K, rng);
      const std::vector<float> C0 = normals((size_t)M * N, rng);
      auto run = [&](float* C) { product(M, N, K, A.data(), B.data(), C, accumulate); };
      EXPECT_EQ(on_threads(2, C0, run), on_threads(1, C0, run))
          << "M=" << M << " N=" << N << " K=" << K << (accumulate ? " accumulate" : "");
    }
}

TEST(GemmThreads, Fp32TwoThreadsGiveOneThreadsBits) {
  if (!f32_packed_available()) GTEST_SKIP() << "this CPU has no AVX-512F";
  expect_one_threads_bits([](int M, int N, int K, const float* A, const float* B, float* C, bool accumulate) {
    gemm_f32_packed(M, A, K, pack_b_f32(B, K, true, K, N), C, N, accumulate);
  });
}

TEST(GemmThreads, Bf16TwoThreadsGiveOneThreadsBits) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  expect_one_threads_bits([](int M, int N, int K, const float* A, const float* B, float* C, bool accumulate) {
    gemm_bf16(M, A, K, pack_b_bf16(B, K, true, K, N), C, N, accumulate);
  });
}

// The column splits share B's panels by the threads' paces (core/paced_split.h): with thread 0 recorded as three
// times as fast, the shares are uneven, and the bits are still one thread's.
TEST(GemmThreads, UnevenPacedSplitsGiveOneThreadsBits) {
  for (int i = 0; i < 40; ++i) {
    const PacedSplit s = paced_split(24, 2);
    const double seconds[2] = {1e-6 * (double)s.first[1], 3e-6 * (double)(s.first[2] - s.first[1])};
    record_paces(s, seconds);
  }
  ASSERT_GE(paced_split(24, 2).first[1], 17);
  if (f32_packed_available())
    expect_one_threads_bits([](int M, int N, int K, const float* A, const float* B, float* C, bool accumulate) {
      gemm_f32_packed(M, A, K, pack_b_f32(B, K, true, K, N), C, N, accumulate);
    });
  if (bf16_gemm_available())
    expect_one_threads_bits([](int M, int N, int K, const float* A, const float* B, float* C, bool accumulate) {
      gemm_bf16(M, A, K, pack_b_bf16(B, K, true, K, N), C, N, accumulate);
    });
}

}  // namespace
}  // namespace heirloom
