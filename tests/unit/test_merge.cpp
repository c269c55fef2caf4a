// Delta-space merges: an average of a vector with itself is the vector; blend at λ = 1 / 0 returns the
// parent / child; task-vector extrapolation at α = 0 / 1 likewise; TIES at density 1 without sign
// conflicts equals the linear average, and trims and elects signs otherwise; DARE is unbiased on average.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "heirloom/error.h"
#include "inherit/merge.h"

namespace heirloom::merge {
namespace {

Vec random_vec(size_t n, uint64_t seed, float shift = 0.f) {
  Rng r(seed);
  Vec v(n);
  for (auto& x : v) x = r.normal() + shift;
  return v;
}

TEST(Merge, SelfMergesAndEndpointsReturnTheInputs) {
  const Vec p = random_vec(300, 1), c = random_vec(300, 2);
  for (const Vec& m : {linear({&p, &p}), ties({&p, &p}, 1.f), ties({&p, &p}, 0.3f) /* both trim alike */})
    for (size_t i = 0; i < p.size(); ++i) EXPECT_FLOAT_EQ(m[i], std::abs(m[i]) > 0 ? p[i] : m[i]);
  EXPECT_EQ(linear({&p, &p}), p);
  EXPECT_EQ(blend(p, c, 1.f), p);
  EXPECT_EQ(blend(p, c, 0.f), c);
  EXPECT_EQ(task_vector(p, c, 0.f), p);
  const Vec t1 = task_vector(p, c, 1.f);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(t1[i], c[i], 1e-6f);
  const Vec half = blend(p, c, 0.5f), avg = linear({&p, &c});
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(half[i], avg[i], 1e-6f);
}

TEST(Merge, TiesAtFullDensityWithoutConflictsIsTheAverage) {
  const Vec a = random_vec(200, 3, 5.f), b = random_vec(200, 4, 5.f);  // all positive: no sign conflict
  for (size_t i = 0; i < a.size(); ++i) ASSERT_GT(a[i] * b[i], 0.f);
  const Vec t = ties({&a, &b}, 1.f), l = linear({&a, &b});
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(t[i], l[i], 1e-5f);
  // A conflict: the elected sign's side wins, the other abstains.
  const Vec x{3.f, 1.f, -2.f}, y{-1.f, 1.f, -2.f};
  EXPECT_EQ(ties({&x, &y}, 1.f), (Vec{3.f, 1.f, -2.f}));
  // Trimming to density 1/3 keeps only each vector's largest entry.
  const Vec u{5.f, 1.f, 0.5f}, w{0.1f, 0.2f, 4.f};
  EXPECT_EQ(ties({&u, &w}, 1.f / 3.f), (Vec{5.f, 0.f, 4.f}));
}

TEST(Merge, DareIsUnbiasedAndRefusesBadInput) {
  const Vec a = random_vec(20000, 5), b = random_vec(20000, 6);
  const Vec d = dare({&a, &b}, 0.5f, 7), l = linear({&a, &b});
  double sd = 0, sl = 0;
  for (size_t i = 0; i < a.size(); ++i) sd += d[i] * a[i], sl += l[i] * a[i];
  EXPECT_NEAR(sd / sl, 1.0, 0.05);  // E[dare] = average
  EXPECT_EQ(dare({&a, &b}, 1.f, 7), linear({&a, &b}));
  const Vec short_vec(5, 1.f);
  EXPECT_THROW(linear({&a, &short_vec}), Error);
  EXPECT_THROW(ties({&a, &b}, 0.f), Error);
  EXPECT_THROW(dare({&a, &b}, 1.5f, 1), Error);
}

}  // namespace
}  // namespace heirloom::merge
