// Teams of threads for the step's parallel loops, on heirloom's own threads. An OpenMP parallel region that does
// nothing took 2.9 µs to open and join on this project's VM, a team of these threads 1.0 µs (heirloom_microbench
// --benchmark_filter=BM_team_fork_join; libgomp makes two futex calls a region, strace shows, even while its
// threads spin), and a training step opens about 150. On CPUs without AVX-512, where the fp32 products are OpenBLAS's
// (which opens OpenMP regions of its own), the teams stay OpenMP's: two kinds of spinning threads on the same
// cores would take turns at each other's expense. HEIRLOOM_TEAMS=openmp asks for OpenMP's anywhere.
#pragma once
#include <cstdint>
#include <type_traits>

namespace heirloom {

namespace detail {
void run_team_erased(int nt, void* fn, void (*call)(void*, int, int));
}

// fn(t, n) for t in [0, n) at once, each on its own thread, the caller's as t = 0; returns when every call has
// returned. n is nt, or smaller where OpenMP's team is (a thread limit): the callers check. Inside the calls,
// in_team() is true, and a nested run_team runs fn(0, 1) on the calling thread.
template <class Fn>
void run_team(int nt, Fn&& fn) {
  using F = std::remove_reference_t<Fn>;
  detail::run_team_erased(nt, const_cast<void*>(static_cast<const void*>(&fn)),
                          [](void* f, int t, int n) { (*static_cast<F*>(f))(t, n); });
}

// Whether the calling thread is inside a team's call or an OpenMP parallel region: a loop there runs on the
// calling thread alone.
bool in_team();

// The calling thread's t in its team (0 outside one; OpenMP's thread number in an OpenMP region).
int team_thread();

// Inside a team's call: waits until every thread of the team has called it (the same number of times).
void team_barrier();

// Whether teams run on heirloom's threads here (AVX-512), or as OpenMP's.
bool own_teams();

// Thread t's share [first, last) of n items split evenly in order across a team of nt.
struct TeamShare {
  int64_t first, last;
};
inline TeamShare team_share(int64_t n, int t, int nt) { return {n * t / nt, n * (t + 1) / nt}; }

// What a thread does on each turn of a loop that waits for another thread.
inline void spin_pause() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

}  // namespace heirloom
