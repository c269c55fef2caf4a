// Loops split across the threads (core/thread_team.h) only when worth it: a team costs a wake-up and a join even
// with one thread to run (an OpenMP `parallel ... if (false)` built one every call, and attention packed its small
// per-head operands that way thousands of times a step), so a loop not worth splitting here makes no call at all.
#pragma once
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

#include "core/thread_team.h"
#include "heirloom/error.h"

namespace heirloom {

constexpr int64_t kMaxShareUnits = int64_t{1} << 31;  // a share's ends are 32-bit

// Element-wise loops over fewer values than this run on the calling thread (parallel_blocks' `worth`, or
// `#pragma omp parallel for if (n >= kSplitValues)`): waking the other thread costs more than it saves, and
// generation at batch 1 runs such loops on one row, dozens of times a token.
constexpr int64_t kSplitValues = int64_t{1} << 14;

// One share of a parallel_shares loop: its units not yet taken, [front, back), in one word so that its owner
// (from the front) and another thread (from the back) never take the same one.
struct alignas(64) UnitShare {
  std::atomic<uint64_t> front_back{0};
  std::atomic<bool> prepared{false};
  void set(int64_t front, int64_t back) { front_back.store((uint64_t)back << 32 | (uint64_t)front); }
  int64_t take(bool from_back) {
    uint64_t v = front_back.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t f = (uint32_t)v, b = (uint32_t)(v >> 32);
      if (f >= b) return -1;
      if (front_back.compare_exchange_weak(v, from_back ? v - (uint64_t{1} << 32) : v + 1, std::memory_order_relaxed))
        return from_back ? b - 1 : f;
    }
  }
};

// Units [0, n_groups · per_group) on all threads, from inside no parallel region. Thread t owns the groups
// [n_groups·t/nt, n_groups·(t+1)/nt) (nt = omp_get_max_threads()): it calls prepare(t, nt) (say, to convert the
// rows its units read), then runs its own units in order from the front. Having finished, it takes what is
// left of the other shares from their backs, once their owners have prepared them, or, with
// `prepare_all_first`, once every thread has. Fixed shares keep each thread on the same rows from one call to
// the next (threads handing out every unit from one counter lost that and were slower); taking the rest
// evens out cores that do not run at one speed (on this machine's two vCPUs, with equal shares, one thread
// waited in up to a quarter of its samples while the other hardly did, and which one changes from run to
// run: bench/omp-waits.sh).
template <class Prepare, class Unit>
void parallel_shares(int64_t n_groups, int64_t per_group, bool prepare_all_first, Prepare&& prepare, Unit&& unit) {
  if (n_groups * per_group >= kMaxShareUnits)
    throw Error("internal: parallel_shares takes fewer than 2^31 units, not " + std::to_string(n_groups * per_group),
                "report this as a bug");
  const int nt = omp_get_max_threads();
  std::unique_ptr<UnitShare[]> shares(new UnitShare[nt]);
  for (int t = 0; t < nt; ++t) shares[t].set(n_groups * t / nt * per_group, n_groups * (t + 1) / nt * per_group);
  run_team(nt, [&](int t, int n) {
    if (n != nt) {  // a smaller team than asked for (an OpenMP thread limit): one thread does it all
      if (t == 0)
        for (int s = 0; s < nt; ++s) {
          prepare(s, nt);
          for (int64_t u; (u = shares[s].take(false)) >= 0;) unit(u);
        }
      return;
    }
    prepare(t, nt);
    // The owner claims its first unit before others may take from its share: it always starts at its front.
    const int64_t first = shares[t].take(false);
    shares[t].prepared.store(true, std::memory_order_release);
    if (prepare_all_first) team_barrier();
    for (int64_t u = first; u >= 0; u = shares[t].take(false)) unit(u);
    for (int k = 1; k < nt; ++k) {
      UnitShare& other = shares[(t + k) % nt];
      while (!other.prepared.load(std::memory_order_acquire)) spin_pause();
      for (int64_t u; (u = other.take(true)) >= 0;) unit(u);
    }
  });
}

// body(i) for i in [0, n): across the threads (in parallel_shares: a share each, the rest taken by whichever
// finishes first) when `worth` holds, there is more than one thread and the caller is not already inside a
// parallel region; else in order on the calling thread.
template <class Body>
void parallel_for(int64_t n, bool worth, Body&& body) {
  if (worth && n > 1 && omp_get_max_threads() > 1 && !in_team()) {
    if (n < kMaxShareUnits) return parallel_shares(n, 1, false, [](int, int) {}, body);
    run_team(omp_get_max_threads(), [&](int t, int nt) {
      for (auto [i, last] = team_share(n, t, nt); i < last; ++i) body(i);
    });
    return;
  }
  for (int64_t i = 0; i < n; ++i) body(i);
}

// body(i0, i1) for consecutive blocks [i0, i1) of [0, n), `block` indices each, through parallel_for: a share
// of blocks per thread, the rest taken by whichever finishes first. For element-wise loops over rows or
// values: as static OpenMP halves they left this machine's faster vCPU waiting at their end (bench/omp-waits.sh:
// a third of one thread's waiting in a norm step). Each index is still computed alone, so results do not
// depend on which thread ran it.
template <class Body>
void parallel_blocks(int64_t n, int64_t block, bool worth, Body&& body) {
  if (n <= 0) return;
  parallel_for((n + block - 1) / block, worth, [&](int64_t b) { body(b * block, std::min(n, (b + 1) * block)); });
}

}  // namespace heirloom
