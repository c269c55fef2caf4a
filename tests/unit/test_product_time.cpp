// The product clock behind `heirloom bench`'s "in products" column: exact FLOPs per product under its
// kernel's kind, nothing counted while no clock is alive, a product inside another counted once (as the
// outer one's kind), and a product's machine time taken as wall × every thread outside a parallel region
// but × 1 inside one.
#include <gtest/gtest.h>
#include <omp.h>

#include <chrono>
#include <vector>

#include "core/gemm.h"
#include "core/product_time.h"
#include "core/rng.h"

namespace heirloom {
namespace {

struct Operands {
  int M, N, K;
  std::vector<float> A, B, C;
  Operands(int m, int n, int k) : M(m), N(n), K(k), A((size_t)m * k), B((size_t)n * k), C((size_t)m * n) {
    Rng rng(3);
    for (auto& x : A) x = rng.normal();
    for (auto& x : B) x = rng.normal();
  }
  void multiply() { gemm(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, C.data(), N); }
  double flop() const { return 2.0 * M * N * K; }
};

double seconds_since(std::chrono::steady_clock::time_point a) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
}

TEST(ProductTime, CountsExactFlopsOnlyWhileAClockIsAlive) {
  Operands p(64, 48, 32);
  p.multiply();  // no clock: not counted anywhere
  const ProductClock clock;
  EXPECT_EQ(clock.read().total.flop, 0.0);
  EXPECT_EQ(clock.read().total.core_seconds, 0.0);
  p.multiply();
  p.multiply();
  const ProductTime t = clock.read();
  EXPECT_EQ(t.total.flop, 2 * p.flop());
  EXPECT_GT(t.total.core_seconds, 0.0);
  // all of it under gemm()'s kind
  EXPECT_EQ(t.by_kind[(int)ProductKind::blas].flop, 2 * p.flop());
  EXPECT_EQ(t.by_kind[(int)ProductKind::blas].core_seconds, t.total.core_seconds);
}

TEST(ProductTime, AProductInsideAnotherCountsOnce) {
  Operands p(32, 32, 32);
  const ProductClock clock;
  {
    const TimedProduct outer(ProductKind::f32_packed, 10, 10, 10);
    p.multiply();
  }
  EXPECT_EQ(clock.read().total.flop, 2000.0);
  EXPECT_EQ(clock.read().by_kind[(int)ProductKind::f32_packed].flop, 2000.0);  // as the outer one's kind
  EXPECT_EQ(clock.read().by_kind[(int)ProductKind::blas].flop, 0.0);
  p.multiply();  // and the depth came back: the next product counts again
  EXPECT_EQ(clock.read().total.flop, 2000.0 + p.flop());
}

TEST(ProductTime, OutsideAParallelRegionEveryThreadIsHeld) {
  Operands p(384, 384, 384);
  p.multiply();  // warm
  const int threads = omp_get_max_threads();
  const ProductClock clock;
  const auto a = std::chrono::steady_clock::now();
  p.multiply();
  const double wall = seconds_since(a);
  const double held = clock.read().total.core_seconds / threads;  // the product's own wall time
  EXPECT_LE(held, wall);
  EXPECT_GT(held, 0.5 * wall);
}

TEST(ProductTime, InsideAParallelRegionEachThreadHoldsOnlyItself) {
  const int threads = omp_get_max_threads();
  std::vector<Operands> ps;
  for (int t = 0; t < threads; ++t) ps.emplace_back(256, 256, 256);
  const ProductClock clock;
  const auto a = std::chrono::steady_clock::now();
#pragma omp parallel for num_threads(threads)
  for (int t = 0; t < threads; ++t) ps[t].multiply();
  const double wall = seconds_since(a);
  const ProductTime got = clock.read();
  EXPECT_EQ(got.total.flop, threads * ps[0].flop());
  // Each thread adds its own time once: at most every thread busy for the whole region. Counting a
  // nested product as holding all threads would exceed this whenever there is more than one.
  EXPECT_LE(got.total.core_seconds, threads * wall);
  EXPECT_GT(got.total.core_seconds, 0.0);
}

// products_by_shape: products of one kernel with the same N and K add up (calls, Σ M, FLOPs) whatever M is and
// whichever thread ran them; other shapes and kinds stay apart; most time first; and the shapes add to the total.
TEST(ProductTime, ShapesAddUpByKindNAndK) {
  Operands a(64, 48, 32), b(16, 48, 32), c(64, 40, 32);
  const ProductClock clock;
  a.multiply();
  b.multiply();
  c.multiply();
#pragma omp parallel for num_threads(2)
  for (int t = 0; t < 2; ++t) a.multiply();
  { const TimedProduct other(ProductKind::f32_panel, 5, 48, 32); }
  const ProductTime t = clock.read();
  ASSERT_EQ(t.by_shape.size(), 3u);
  double flop = 0, seconds = 0;
  for (size_t i = 0; i < t.by_shape.size(); ++i) {
    const ProductTime::Shape& x = t.by_shape[i];
    flop += x.part.flop, seconds += x.part.core_seconds;
    if (i > 0) {
      EXPECT_GE(t.by_shape[i - 1].part.core_seconds, x.part.core_seconds);
    }
    if (x.kind == ProductKind::blas && x.N == 48) {
      EXPECT_EQ(x.K, 32);
      EXPECT_EQ(x.calls, 4);
      EXPECT_EQ(x.rows, 64 + 16 + 2 * 64);
      EXPECT_EQ(x.part.flop, 3 * a.flop() + b.flop());
    } else if (x.kind == ProductKind::blas) {
      EXPECT_EQ(x.N, 40);
      EXPECT_EQ(x.calls, 1);
      EXPECT_EQ(x.part.flop, c.flop());
    } else {
      EXPECT_EQ(x.kind, ProductKind::f32_panel);
      EXPECT_EQ(x.rows, 5);
    }
  }
  EXPECT_EQ(flop, t.total.flop);
  EXPECT_NEAR(seconds, t.total.core_seconds, 1e-12);
}

}  // namespace
}  // namespace heirloom
