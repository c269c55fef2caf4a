// ops/vec_math.h: the 16-lane exp clamps with vmaxps/vminps where the compiler targets AVX-512, and must give
// the compare-and-select clamp's numbers bit for bit (NaN, infinities and the clamp's edges included), within
// its stated accuracy of e^x. The row functions take a row's last, partial block of 16 in the vector lanes:
// they must read and write nothing past the row, and give each element the full blocks' arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "ops/vec_math.h"

namespace heirloom {
namespace {

uint32_t bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

TEST(VecMath, ExpClampedEitherWayIsTheSameBitForBit) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> xs = {-inf, inf, nan, -nan, 0.f, -0.f, -87.f, 88.f, -87.0001f, 88.0001f, -86.9999f, 87.9999f,
                           -1e30f, 1e30f, -100.f, 100.f, 1e-40f, -1e-40f};
  Rng rng(3);
  for (int i = 0; i < 100000; ++i) xs.push_back((float)(rng.uniform() * 200.0 - 100.0));
  while (xs.size() % 16) xs.push_back(1.f);
  for (size_t i = 0; i < xs.size(); i += 16) {
    f32x16 x = load16(xs.data() + i);
    const f32x16 fast = exp_poly<f32x16, i32x16, true>(x), plain = exp_poly<f32x16, i32x16, false>(x);
    for (int j = 0; j < 16; ++j) {
      const float v = xs[i + j];
      if (std::isnan(v)) {
        EXPECT_TRUE(std::isnan(fast[j]) && std::isnan(plain[j])) << v;
        continue;
      }
      ASSERT_EQ(bits(fast[j]), bits(plain[j])) << "x = " << v;
      const double want = std::exp(std::min(88.0, std::max(-87.0, (double)v)));
      EXPECT_NEAR(fast[j] / want, 1.0, 3e-7) << "x = " << v;  // ≤ 2 ulp
    }
  }
}

#if defined(__AVX512F__)
// exp_scalef (the 16-lane exp_fast on AVX-512): within 3 ulp of e^x over the range a softmax meets, exactly 0
// far below it, e^88 (not infinity) above it, NaN kept.
TEST(VecMath, ExpScalefIsWithinItsStatedAccuracy) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> xs = {0.f, -0.f, 1.f, -1.f, 0.5f, -0.5f, 0.34657359f, 88.f, -87.f, 87.9999f, -86.9999f};
  Rng rng(5);
  for (int i = 0; i < 200000; ++i) xs.push_back((float)(rng.uniform() * 175.0 - 87.0));
  while (xs.size() % 16) xs.push_back(2.f);
  double worst = 0;
  for (size_t i = 0; i < xs.size(); i += 16) {
    const f32x16 e = exp_scalef(load16(xs.data() + i));
    for (int j = 0; j < 16; ++j) worst = std::max(worst, std::fabs(e[j] / std::exp((double)xs[i + j]) - 1.0));
  }
  std::printf("exp_scalef: worst relative error %.3g over %zu inputs in [-87, 88]\n", worst, xs.size());
  EXPECT_LT(worst, 3.6e-7);  // 3 ulp
  EXPECT_EQ(exp_scalef(f32x16{} + 0.f)[0], 1.f);
  const float edge[16] = {-inf, -1000.f, -200.f, inf, 1000.f, 89.f, nan, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  const f32x16 e = exp_scalef(load16(edge));
  EXPECT_EQ(e[0], 0.f);
  EXPECT_EQ(e[1], 0.f);
  EXPECT_EQ(e[2], 0.f);
  for (int j : {3, 4, 5}) EXPECT_EQ(e[j], exp_scalef(f32x16{} + 88.f)[0]) << j;
  EXPECT_TRUE(std::isfinite(e[3]));
  EXPECT_TRUE(std::isnan(e[6]));
}
#endif

// Row of n values at the front of a buffer whose values past n are poison (NaN, or a huge value for the max):
// a row function that read them would show it in its result.
TEST(VecMath, RowFunctionsReadAndWriteNothingPastTheRow) {
  Rng rng(11);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int n = 1; n <= 49; ++n) {
    std::vector<float> x(64, nan), y(64, nan), big(64, 1e30f);
    for (int i = 0; i < n; ++i) x[i] = big[i] = (float)(rng.uniform() * 8.0 - 4.0), y[i] = (float)(rng.uniform() - 0.5);
    // the max: exactly the largest of the n, whatever lies past them
    EXPECT_EQ(row_max(big.data(), n), *std::max_element(x.begin(), x.begin() + n)) << "n = " << n;
    // a dot product: within float rounding of the exact one, with no NaN from past the row
    double dot = 0;
    for (int i = 0; i < n; ++i) dot += (double)x[i] * y[i];
    EXPECT_NEAR(row_dot(x.data(), y.data(), n), dot, 1e-5 * (1 + std::fabs(dot))) << "n = " << n;
    // exp: each value the 16-lane exp of its own input, the sum theirs, and the output past n untouched
    std::vector<float> e(64, -7.f);
    const float m = 0.75f, scale = 0.5f;
    const float sum = row_exp(e.data(), x.data(), n, m, scale);
    double want_sum = 0;
    for (int i = 0; i < n; ++i) {
      const float lane = exp_fast(f32x16{} + (x[i] * scale - m))[0];
      ASSERT_EQ(bits(e[i]), bits(lane)) << "n = " << n << ", i = " << i;
      want_sum += lane;
    }
    EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum) << "n = " << n;
    for (int i = n; i < 64; ++i) ASSERT_EQ(e[i], -7.f) << "n = " << n << ": wrote past the row at " << i;
    // scaling into bf16 and fp32: each value rounded once, nothing written past n
    std::vector<uint16_t> h(64, 0xABCD);
    std::vector<float> f(64, -7.f);
    scale_row(h.data(), x.data(), 3.f, n);
    scale_row(f.data(), x.data(), 3.f, n);
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(h[i], to_bf16(3.f * x[i])) << "n = " << n << ", i = " << i;
      ASSERT_EQ(f[i], 3.f * x[i]) << "n = " << n << ", i = " << i;
    }
    for (int i = n; i < 64; ++i) {
      ASSERT_EQ(h[i], 0xABCD) << "n = " << n << ": wrote past the row at " << i;
      ASSERT_EQ(f[i], -7.f) << "n = " << n << ": wrote past the row at " << i;
    }
    // bf16 rows read back exactly, the lanes past n holding the fill
    if (n < 16) {
      const f32x16 v = load_first(h.data(), n, -2.f);
      for (int i = 0; i < 16; ++i) ASSERT_EQ(v[i], i < n ? bf16_to_f32(h[i]) : -2.f) << "n = " << n << ", lane " << i;
    }
  }
}

}  // namespace
}  // namespace heirloom
