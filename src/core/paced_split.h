// Items split across a team in proportion to each thread's pace on earlier such splits. The products split by
// B's columns (each thread all of A and its own share of B's panels) ran in even shares, and this project's two
// vCPUs run 8–21 % apart, the faster one changing from run to run: the faster thread waited for the slower at the
// end of every such product (bench/omp-waits.sh: the largest single cause of its waiting). Which thread makes
// which items changes with the paces, never what an item is: results do not depend on the split. Trials
// (`heirloom bench --experiment`, twentieth session): the bf16 1x512 forward 0.988–0.995 of its time in four (its
// null trial 0.998–1.012); the bf16 protocol 0.994–1.002, nine of ten below 1; the fp32 protocol 0.997, 0.999.
#pragma once
#include <chrono>
#include <cstdint>

#include "core/thread_team.h"

namespace heirloom {

constexpr int kPacedThreads = 64;  // larger teams split evenly

struct PacedSplit {
  int nt = 1;
  int64_t first[kPacedThreads + 1] = {};  // thread t's items: [first[t], first[t + 1])
};
// n items over nt ≤ kPacedThreads threads by the paces recorded so far (evenly before any), at least one each
// where n ≥ nt.
PacedSplit paced_split(int64_t n, int nt);
// Each thread's time for its items of s: its pace (its share of the team's items per second) moves a quarter of
// the way to what this call showed. Ignored unless every thread had items and a time.
void record_paces(const PacedSplit& s, const double* seconds);

// prepare(t) (not timed: say, each thread's own copy of A) and then body(t, first, last) on each thread t of a
// team of nt, the items split by paced_split and timed for record_paces.
template <class Prepare, class Body>
void run_paced(int64_t n, int nt, Prepare&& prepare, Body&& body) {
  const bool paced = nt <= kPacedThreads;
  const PacedSplit s = paced ? paced_split(n, nt) : PacedSplit{};
  double seconds[kPacedThreads] = {};
  bool timed = paced;
  run_team(nt, [&](int t, int n_team) {
    prepare(t);
    if (!paced || n_team != nt) {  // a large team, or a smaller one than asked for (an OpenMP thread limit)
      if (t == 0) timed = false;
      const TeamShare share = team_share(n, t, n_team);
      return body(t, share.first, share.last);
    }
    const auto start = std::chrono::steady_clock::now();
    body(t, s.first[t], s.first[t + 1]);
    seconds[t] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  });
  if (timed) record_paces(s, seconds);
}

}  // namespace heirloom
