// parallel_for: every index once; split across the threads at the top level, in order on the caller when
// nested inside a parallel region or not worth splitting.
#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

#include "core/parallel.h"

namespace heirloom {
namespace {

TEST(ParallelFor, TopLevelCoversEveryIndexOnceAcrossTheThreads) {
  if (omp_get_max_threads() < 2) GTEST_SKIP() << "needs 2 threads";
  const int n = 64;
  std::vector<int> hits(n, 0), thread_of(n, -1);
  parallel_for(n, true, [&](int64_t i) {
    hits[i]++;
    thread_of[i] = omp_get_thread_num();
  });
  for (int i = 0; i < n; ++i) EXPECT_EQ(hits[i], 1) << i;
  EXPECT_EQ(thread_of.front(), 0);
  EXPECT_NE(thread_of.back(), 0);  // a static schedule gives the last indices to the last thread
}

TEST(ParallelFor, NestedOrNotWorthItRunsInOrderOnTheCaller) {
  if (omp_get_max_threads() < 2) GTEST_SKIP() << "needs 2 threads";
  std::vector<std::vector<int>> order(2);
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    parallel_for(10, true, [&](int64_t i) {
      EXPECT_EQ(omp_get_thread_num(), t);
      EXPECT_FALSE(omp_get_level() > 1);  // no nested team was opened
      order[t].push_back((int)i);
    });
  }
  for (const auto& o : order) {
    ASSERT_EQ(o.size(), 10u);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(o[i], i);
  }
  std::vector<int> serial;
  parallel_for(10, false, [&](int64_t i) {
    EXPECT_EQ(omp_get_level(), 0);
    serial.push_back((int)i);
  });
  ASSERT_EQ(serial.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(serial[i], i);
}

}  // namespace
}  // namespace heirloom
