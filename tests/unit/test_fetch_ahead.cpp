// core/fetch_ahead.h: the next packed product on the thread takes the hint (and clears it), and a product that
// fetches another weight ahead gives exactly the results it gives without the hint.
#include <gtest/gtest.h>

#include <vector>

#include "core/fetch_ahead.h"
#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/rng.h"

namespace heirloom {
namespace {

std::vector<float> normals(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal();
  return v;
}

TEST(FetchAhead, TakingTheHintClearsIt) {
  std::vector<char> bytes(4096);
  fetch_ahead(bytes.data(), 4096);
  const FetchAhead a = take_fetch_ahead(64);
  EXPECT_EQ(a.p, bytes.data());
  EXPECT_EQ(a.bytes, 4096);
  const FetchAhead b = take_fetch_ahead(64);
  EXPECT_EQ(b.p, nullptr);
  EXPECT_EQ(b.bytes, 0);
  fetch_ahead(nullptr, 4096);  // no address, no bytes
  EXPECT_EQ(take_fetch_ahead(64).bytes, 0);
}

TEST(FetchAhead, AProductOfFewRowsClearsTheHintWithoutUsingIt) {
  std::vector<char> bytes(4096);
  fetch_ahead(bytes.data(), 4096);
  EXPECT_EQ(take_fetch_ahead(kFetchAheadRows - 1).p, nullptr);
  EXPECT_EQ(take_fetch_ahead(kFetchAheadRows).p, nullptr) << "taking the hint clears it, used or not";
  fetch_ahead(bytes.data(), 4096);
  EXPECT_EQ(take_fetch_ahead(kFetchAheadRows).p, bytes.data());
}

// An expert's shapes (64 rows, K = 256, N = 512, B in L2): the first row block fetches the next weight.
constexpr int M = 64, K = 256, N = 512;

TEST(FetchAhead, Fp32ProductTakesTheHintAndGivesTheSameResults) {
  if (!f32_packed_available()) GTEST_SKIP() << "no AVX-512F";
  const std::vector<float> A = normals((size_t)M * K, 3), W = normals((size_t)N * K, 4), W2 = normals((size_t)N * K, 5);
  const PackedF32 p = pack_b_f32(W.data(), K, true, K, N), next = pack_b_f32(W2.data(), K, true, K, N);
  std::vector<float> plain((size_t)M * N), hinted((size_t)M * N);
  gemm_f32_packed(M, A.data(), K, p, plain.data(), N, false);
  fetch_ahead(next.data.data(), (int64_t)next.data.size() * sizeof(float));
  gemm_f32_packed(M, A.data(), K, p, hinted.data(), N, false);
  EXPECT_EQ(take_fetch_ahead(64).p, nullptr) << "the product left the hint for the next one";
  EXPECT_EQ(plain, hinted);
}

TEST(FetchAhead, Bf16ProductTakesTheHintAndGivesTheSameResults) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "no AVX512-BF16";
  const std::vector<float> A = normals((size_t)M * K, 6), W = normals((size_t)N * K, 7), W2 = normals((size_t)N * K, 8);
  const PackedB p = pack_b_bf16(W.data(), K, true, K, N), next = pack_b_bf16(W2.data(), K, true, K, N);
  std::vector<float> plain((size_t)M * N), hinted((size_t)M * N);
  gemm_bf16(M, A.data(), K, p, plain.data(), N, false);
  fetch_ahead(next.data.data(), (int64_t)next.data.size() * sizeof(uint16_t));
  gemm_bf16(M, A.data(), K, p, hinted.data(), N, false);
  EXPECT_EQ(take_fetch_ahead(64).p, nullptr) << "the product left the hint for the next one";
  EXPECT_EQ(plain, hinted);
}

}  // namespace
}  // namespace heirloom
