// run_team: each t once, at once, on distinct threads; a team nested in a team runs on its caller; OpenMP counts
// one thread inside a team; the barrier holds every thread until all arrive; an exception on any thread reaches
// the caller and the team still works; callers on two threads take turns; a forked child runs teams of its own
// (heirloom's threads; not OpenMP's).
#include <gtest/gtest.h>
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/thread_team.h"

namespace heirloom {
namespace {

TEST(ThreadTeam, EachThreadRunsOnceAtOnceAndNestedTeamsRunOnTheirCaller) {
  const int nt = 2;
  EXPECT_FALSE(in_team());
  std::vector<std::thread::id> ids(nt);
  std::vector<int> calls(nt, 0), teams(nt, 0), nested(nt, 0);
  std::atomic<int> arrived{0};
  run_team(nt, [&](int t, int n) {
    ASSERT_EQ(n, nt);
    ids[t] = std::this_thread::get_id();
    calls[t]++;
    EXPECT_TRUE(in_team());
    EXPECT_EQ(team_thread(), t);
    arrived++;
    while (arrived.load() < nt) std::this_thread::yield();  // returns only if the threads run at once
    run_team(nt, [&](int u, int m) {
      EXPECT_EQ(u, 0);
      EXPECT_EQ(m, 1);
      EXPECT_EQ(std::this_thread::get_id(), ids[t]);
      nested[t]++;
    });
  });
  EXPECT_FALSE(in_team());
  for (int t = 0; t < nt; ++t) EXPECT_EQ(calls[t], 1) << t;
  for (int t = 0; t < nt; ++t) EXPECT_EQ(nested[t], 1) << t;
  EXPECT_EQ(ids[0], std::this_thread::get_id());
  EXPECT_NE(ids[0], ids[1]);
}

// What asks OpenMP for its thread count inside a team (OpenBLAS's OpenMP build) hears 1 on every thread, as in
// an OpenMP region; the caller's count is back after.
TEST(ThreadTeam, OpenMpSeesOneThreadInsideATeam) {
  const int before = omp_get_max_threads();
  std::vector<int> seen(2, -1);
  // OpenBLAS's count: 1 inside an OpenMP region, else the calling thread's omp_get_max_threads()
  run_team(2, [&](int t, int) { seen[t] = omp_in_parallel() ? 1 : omp_get_max_threads(); });
  EXPECT_EQ(seen[0], 1);
  EXPECT_EQ(seen[1], 1);
  EXPECT_EQ(omp_get_max_threads(), before);
}

TEST(ThreadTeam, TheBarrierHoldsEveryThreadUntilAllArrive) {
  const int nt = 2, rounds = 2000;
  std::vector<int> value(nt, 0);
  std::atomic<int> wrong{0};
  run_team(nt, [&](int t, int n) {
    for (int r = 1; r <= rounds; ++r) {
      value[t] = r;
      team_barrier();
      for (int u = 0; u < n; ++u) wrong += value[u] != r;
      team_barrier();
    }
  });
  EXPECT_EQ(wrong.load(), 0);
}

TEST(ThreadTeam, AnExceptionOnAnyThreadReachesTheCallerAndTheTeamStillWorks) {
  for (int thrower : {0, 1}) {
    EXPECT_THROW(run_team(2, [&](int t, int) {
      if (t == thrower) throw std::runtime_error("from the team");
    }), std::runtime_error) << "thrown on thread " << thrower;
    std::atomic<int> ran{0};
    run_team(2, [&](int, int) { ran++; });
    EXPECT_EQ(ran.load(), 2);
  }
}

TEST(ThreadTeam, CallersOnTwoThreadsTakeTurns) {
  std::atomic<int> sum{0}, inside{0}, most{0};
  auto caller = [&] {
    for (int i = 0; i < 200; ++i)
      run_team(2, [&](int t, int) {
        const int now = ++inside;
        int m = most.load();
        while (now > m && !most.compare_exchange_weak(m, now)) {
        }
        sum += t + 1;
        --inside;
      });
  };
  std::thread a(caller), b(caller);
  a.join(), b.join();
  EXPECT_EQ(sum.load(), 2 * 200 * 3);
  if (own_teams()) {
    EXPECT_LE(most.load(), 2) << "two teams on the shared threads at once";
  }
}

TEST(ThreadTeam, AForkedChildRunsTeamsOfItsOwn) {
  if (!own_teams()) GTEST_SKIP() << "OpenMP's teams here: libgomp's threads do not survive a fork";
  run_team(2, [](int, int) {});  // the parent's threads exist
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(20);  // a child whose team waits for threads it has not got ends, not hangs
    std::atomic<int> ran{0};
    run_team(2, [&](int, int) { ran++; });
    _exit(ran.load() == 2 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child's team did not run";
}

}  // namespace
}  // namespace heirloom
