// The part clock behind `heirloom bench --ops`: a part's FLOPs are those of the products run while it is the
// innermost part (on any thread), its time leaves out the parts timed inside it, nothing is counted while no
// clock is alive, and a part opened inside a team is not a part.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "core/op_time.h"
#include "core/product_time.h"
#include "core/thread_team.h"

namespace heirloom {
namespace {

std::map<std::string, OpTime::Part> by_name(const OpTime& t) {
  std::map<std::string, OpTime::Part> m;
  for (const OpTime::Part& p : t.parts) m[p.name] = p;
  return m;
}

double seconds_since(std::chrono::steady_clock::time_point a) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
}

void busy(double seconds) {  // wall time that is no product's
  const auto a = std::chrono::steady_clock::now();
  while (seconds_since(a) < seconds) {
  }
}

TEST(OpTime, ProductsGoToTheInnermostPartAndItsTimeLeavesTheOuterOne) {
  const ProductClock products;
  const OpClock clock;
  const auto a = std::chrono::steady_clock::now();
  double inner_wall = 0;
  {
    const TimedOp outer("outer part");
    { const TimedProduct p(ProductKind::bf16, 10, 20, 30); }  // 12,000 FLOPs to the outer part
    busy(2e-3);
    const auto b = std::chrono::steady_clock::now();
    {
      const TimedOp inner("inner part");
      { const TimedProduct p(ProductKind::bf16, 1, 2, 3); }  // 12 to the inner one
      busy(3e-3);
    }
    inner_wall = seconds_since(b);
    { const TimedProduct p(ProductKind::bf16, 5, 5, 5); }  // the outer part is the innermost again: 250
  }
  const double wall = seconds_since(a);
  auto parts = by_name(clock.read());
  ASSERT_EQ(parts.size(), 2u);
  const OpTime::Part &outer = parts["outer part"], &inner = parts["inner part"];
  EXPECT_EQ(outer.flop, 12000.0 + 250.0);
  EXPECT_EQ(inner.flop, 12.0);
  EXPECT_EQ(outer.calls, 1);
  EXPECT_EQ(inner.calls, 1);
  EXPECT_GE(inner.seconds, 3e-3);
  EXPECT_LE(inner.seconds, inner_wall);
  EXPECT_GE(outer.seconds, 2e-3);
  EXPECT_LE(outer.seconds + inner.seconds, wall);  // the inner part's time is not the outer's too
  EXPECT_LE(outer.seconds, wall - 3e-3);
}

// Without the product clock the parts still get their products' FLOPs (one product inside another once), and
// no product time is counted.
TEST(OpTime, PartsCountFlopsWithoutTheProductClock) {
  const OpClock clock;
  {
    const TimedOp part("no product clock");
    const TimedProduct outer(ProductKind::bf16, 2, 3, 4);  // 48
    const TimedProduct inner(ProductKind::bf16, 100, 100, 100);  // inside the first: not counted again
  }
  auto parts = by_name(clock.read());
  EXPECT_EQ(parts["no product clock"].flop, 48.0);
  const ProductClock products;  // made after: it starts from zero, and nothing ran since
  EXPECT_EQ(products.read().total.flop, 0.0);
}

TEST(OpTime, ThePartsInTheirFirstOrderAndCalledAgainAddUp) {
  const ProductClock products;
  const OpClock clock;
  for (int i = 0; i < 3; ++i) {
    { const TimedOp p("second"); (void)p; }
    const TimedOp p("met second");
    const TimedProduct x(ProductKind::bf16, 1, 1, 1);
  }
  const OpTime t = clock.read();
  ASSERT_EQ(t.parts.size(), 2u);
  EXPECT_EQ(t.parts[0].name, "second");
  EXPECT_EQ(t.parts[1].name, "met second");
  EXPECT_EQ(t.parts[0].calls, 3);
  EXPECT_EQ(t.parts[1].calls, 3);
  EXPECT_EQ(t.parts[1].flop, 6.0);
}

TEST(OpTime, NothingIsCountedWithoutAClockNorInsideATeam) {
  {
    const TimedOp before("before the clock");
    const TimedProduct x(ProductKind::bf16, 4, 4, 4);
  }
  const ProductClock products;
  const OpClock clock;
  EXPECT_TRUE(clock.read().parts.empty());
  std::atomic<int> ran{0};
  {
    const TimedOp step("the step");
    run_team(2, [&](int, int) {
      const TimedOp ignored("inside a team");  // a worker's part would race the step's: not a part
      const TimedProduct x(ProductKind::bf16, 2, 2, 2);  // 16 per thread, to the step's part
      ran.fetch_add(1);
    });
  }
  auto parts = by_name(clock.read());
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts.count("inside a team"), 0u);
  ASSERT_GE(ran.load(), 1);
  EXPECT_EQ(parts["the step"].flop, 16.0 * ran.load());
}

}  // namespace
}  // namespace heirloom
