// parallel_for: every index once; split across the threads at the top level, in order on the caller when
// nested inside a parallel region or not worth splitting. parallel_shares: every unit once, each share's units
// only after its preparation, and a slow thread's units taken by the other.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/parallel.h"
#include "core/thread_team.h"
#include "heirloom/error.h"

namespace heirloom {
namespace {

TEST(ParallelFor, TopLevelCoversEveryIndexOnceAcrossTheThreads) {
  if (omp_get_max_threads() < 2) GTEST_SKIP() << "needs 2 threads";
  const int n = 64;
  std::vector<int> hits(n, 0), thread_of(n, -1);
  parallel_for(n, true, [&](int64_t i) {
    hits[i]++;
    thread_of[i] = team_thread();
  });
  for (int i = 0; i < n; ++i) EXPECT_EQ(hits[i], 1) << i;
  EXPECT_EQ(thread_of.front(), 0);  // each thread starts at the front of its own share
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

// Thread 1 sleeps in its first unit: thread 0 finishes its share and takes the rest of thread 1's, from the back.
TEST(ParallelShares, AThreadThatFinishesTakesTheSlowThreadsUnits) {
  if (omp_get_max_threads() != 2) GTEST_SKIP() << "written for 2 threads";
  const int groups = 8, per_group = 4, n = groups * per_group;
  std::vector<int> hits(n, 0), thread_of(n, -1);
  parallel_shares(groups, per_group, false, [](int, int) {}, [&](int64_t u) {
    const int t = team_thread();
    if (u == n / 2 && t == 1) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    hits[u]++;
    thread_of[u] = t;
  });
  int taken = 0;
  for (int u = 0; u < n; ++u) {
    EXPECT_EQ(hits[u], 1) << u;
    if (u < n / 2) EXPECT_EQ(thread_of[u], 0) << u;  // thread 1 only ever took its own first unit
    else taken += thread_of[u] == 0;
  }
  EXPECT_EQ(thread_of[n / 2], 1);
  EXPECT_EQ(taken, n / 2 - 1);
}

// A share's units run only once its owner has prepared it (or, with prepare_all_first, once every share is),
// whichever thread runs them; thread 1's preparation is slow, so thread 0 waits for it before taking its units.
TEST(ParallelShares, UnitsRunOnlyAfterTheirSharesPreparation) {
  const int nt = omp_get_max_threads();
  for (bool all_first : {false, true})
    for (int groups : {1, 2, 3, 7, 40}) {
      const int per_group = 3, n = groups * per_group;
      std::vector<std::atomic<int>> prepared(nt);
      std::vector<int> hits(n, 0), calls(nt, 0);
      std::atomic<int> early{0};
      parallel_shares(groups, per_group, all_first, [&](int t, int shares) {
        EXPECT_EQ(shares, nt);
        if (t == 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        calls[t]++;
        prepared[t].store(1);
      }, [&](int64_t u) {
        const int g = (int)u / per_group;
        int owner = 0;  // the t whose share [groups·t/nt, groups·(t+1)/nt) holds g
        while (g >= groups * (owner + 1) / nt) ++owner;
        int first = owner, last = owner;
        if (all_first) first = 0, last = nt - 1;
        for (int t = first; t <= last; ++t) early += prepared[t].load() == 0;
        hits[u]++;
      });
      EXPECT_EQ(early.load(), 0) << groups << (all_first ? " all first" : "");
      for (int t = 0; t < nt; ++t) EXPECT_EQ(calls[t], 1) << t;
      for (int u = 0; u < n; ++u) EXPECT_EQ(hits[u], 1) << groups << " " << u;
    }
}

// A share's ends are 32-bit: parallel_shares refuses 2^31 units or more, and parallel_for then splits such a
// loop in fixed shares (every index once, the last ones included).
TEST(ParallelShares, LoopsBeyondThirtyTwoBitsAreRefusedOrSplitInFixedShares) {
  bool ran = false;
  EXPECT_THROW(parallel_shares(kMaxShareUnits / 4, 4, false, [&](int, int) { ran = true; }, [&](int64_t) { ran = true; }),
               Error);
  EXPECT_FALSE(ran);
  if (omp_get_max_threads() < 2) GTEST_SKIP() << "needs 2 threads";
  const int64_t n = kMaxShareUnits + 10;
  std::atomic<int64_t> marks{0};
  parallel_for(n, true, [&](int64_t i) {
    if (i == 0 || i == kMaxShareUnits - 1 || i >= n - 3) marks += i == n - 1 ? 100 : 1;
  });
  EXPECT_EQ(marks.load(), 1 + 1 + 2 + 100);  // 0, 2^31 − 1, n − 3, n − 2, and n − 1
}

}  // namespace
}  // namespace heirloom
