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

// pack(W) packs a weight; product(pack, A, C) multiplies by it. The product with the next weight as its hint
// must take the hint and give the same numbers as without.
template <class Pack, class Product>
void expect_hint_taken_without_effect(uint64_t seed, Pack pack, Product product) {
  const std::vector<float> A = normals((size_t)M * K, seed), W = normals((size_t)N * K, seed + 1),
                           W2 = normals((size_t)N * K, seed + 2);
  const auto p = pack(W), next = pack(W2);
  std::vector<float> plain((size_t)M * N), hinted((size_t)M * N);
  product(p, A, plain);
  fetch_ahead(next.data.data(), (int64_t)(next.data.size() * sizeof(next.data[0])));
  product(p, A, hinted);
  EXPECT_EQ(take_fetch_ahead(64).p, nullptr) << "the product left the hint for the next one";
  EXPECT_EQ(plain, hinted);
}

TEST(FetchAhead, Fp32ProductTakesTheHintAndGivesTheSameResults) {
  if (!f32_packed_available()) GTEST_SKIP() << "no AVX-512F";
  expect_hint_taken_without_effect(
      3, [](const std::vector<float>& W) { return pack_b_f32(W.data(), K, true, K, N); },
      [](const PackedF32& p, const std::vector<float>& A, std::vector<float>& C) {
        gemm_f32_packed(M, A.data(), K, p, C.data(), N, false);
      });
}

TEST(FetchAhead, Bf16ProductTakesTheHintAndGivesTheSameResults) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "no AVX512-BF16";
  expect_hint_taken_without_effect(
      6, [](const std::vector<float>& W) { return pack_b_bf16(W.data(), K, true, K, N); },
      [](const PackedB& p, const std::vector<float>& A, std::vector<float>& C) {
        gemm_bf16(M, A.data(), K, p, C.data(), N, false);
      });
}

}  // namespace
}  // namespace heirloom
