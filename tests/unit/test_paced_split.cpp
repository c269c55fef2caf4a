// paced_split: items shared in proportion to the threads' recorded paces, evenly before any, at least one each;
// run_paced: every item to exactly one thread. (That the products split so keep one thread's bits:
// test_gemm_threads.cpp.)
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/paced_split.h"

namespace heirloom {
namespace {

// Records `times` calls where thread 1 took `slower` times as long per item as thread 0.
void record_skew(int64_t n, double slower, int times) {
  for (int i = 0; i < times; ++i) {
    const PacedSplit s = paced_split(n, 2);
    const double seconds[2] = {1e-6 * (double)(s.first[1] - s.first[0]),
                               slower * 1e-6 * (double)(s.first[2] - s.first[1])};
    record_paces(s, seconds);
  }
}

TEST(PacedSplit, SharesFollowTheRecordedPaces) {
  record_skew(300, 2.0, 40);  // thread 0 twice as fast: two thirds of the items
  PacedSplit s = paced_split(300, 2);
  EXPECT_EQ(s.first[0], 0);
  EXPECT_EQ(s.first[2], 300);
  EXPECT_NEAR((double)s.first[1], 200.0, 2.0);
  record_skew(300, 1.0, 40);  // then alike: halves again
  s = paced_split(300, 2);
  EXPECT_NEAR((double)s.first[1], 150.0, 2.0);
}

TEST(PacedSplit, EveryThreadKeepsAnItem) {
  record_skew(100, 500.0, 40);  // thread 1 far slower
  const PacedSplit few = paced_split(2, 2);
  EXPECT_EQ(few.first[1], 1);
  EXPECT_EQ(few.first[2], 2);
  const PacedSplit many = paced_split(100, 2);
  EXPECT_GE(many.first[1], 98);
  EXPECT_LE(many.first[1], 99);
  record_skew(100, 1.0, 40);
}

TEST(PacedSplit, IgnoresCallsWithoutTimes) {
  record_skew(300, 1.0, 40);
  const PacedSplit s = paced_split(300, 2);
  const double none[2] = {0.0, 1e-3};
  record_paces(s, none);  // thread 0 shows no time: nothing to learn
  EXPECT_EQ(paced_split(300, 2).first[1], s.first[1]);
}

TEST(PacedSplit, RunPacedGivesEachItemToOneThread) {
  record_skew(1000, 3.0, 40);
  std::vector<std::atomic<int>> seen(1000);
  std::atomic<int> prepared{0};
  run_paced(1000, 2, [&](int) { prepared.fetch_add(1); }, [&](int, int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) seen[i].fetch_add(1);
  });
  EXPECT_EQ(prepared.load(), 2);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(seen[i].load(), 1) << "item " << i;
  record_skew(1000, 1.0, 40);
}

}  // namespace
}  // namespace heirloom
