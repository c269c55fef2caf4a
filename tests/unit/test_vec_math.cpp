// ops/vec_math.h: the 16-lane exp clamps with vmaxps/vminps where the compiler targets AVX-512, and must give
// the compare-and-select clamp's numbers bit for bit (NaN, infinities and the clamp's edges included), within
// its stated accuracy of e^x.
#include <gtest/gtest.h>

#include <cmath>
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

}  // namespace
}  // namespace heirloom
