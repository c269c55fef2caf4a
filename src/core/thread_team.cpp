// Teams on heirloom's own threads. See thread_team.h.
#include "core/thread_team.h"

#include <omp.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "core/gemm_f32.h"

namespace heirloom {

namespace {

// How long an idle thread spins before it sleeps: a step's serial stretches are shorter, so a team rarely
// waits for a thread to wake; a process that stops computing gives its cores back within this.
constexpr auto kSpin = std::chrono::microseconds(500);

// Inside a team, what asks OpenMP how many threads it may use (OpenBLAS's OpenMP build, called by a product
// inside an expert's loop) hears 1, as it would inside an OpenMP region: else each team thread's call opened a
// team of its own, two threads per core. The caller's own count is put back after.
class OneThreadForOpenMP {
 public:
  OneThreadForOpenMP() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneThreadForOpenMP() { omp_set_num_threads(saved_); }
  OneThreadForOpenMP(const OneThreadForOpenMP&) = delete;
  OneThreadForOpenMP& operator=(const OneThreadForOpenMP&) = delete;

 private:
  int saved_;
};

enum class Kind { none, own, openmp };
thread_local Kind t_kind = Kind::none;
thread_local int t_index = 0;  // in a team of Kind::own

// The first exception a team's threads threw (none may leave a thread, nor an OpenMP region), for the caller.
class FirstError {
 public:
  template <class F>
  void run(F&& f) {
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!first_) first_ = std::current_exception();
    }
  }
  void rethrow() {  // and forget it: the next team starts with none
    std::exception_ptr e;
    std::swap(e, first_);
    if (e) std::rethrow_exception(e);
  }

 private:
  std::mutex mu_;
  std::exception_ptr first_;
};

// One thread's part of a team: fn(index, n) as thread `index` of a team of `kind`, its exception into errors.
void take_part(Kind kind, int index, int n, void* fn, void (*call)(void*, int, int), FirstError& errors) {
  t_kind = kind, t_index = index;
  errors.run([&] { call(fn, index, n); });
  t_kind = Kind::none;
}

struct Barrier {  // a counter and a phase; a thread reads the phase before it arrives
  alignas(64) std::atomic<int> arrived{0};
  alignas(64) std::atomic<int> phase{0};
  void wait(int n) {
    const int ph = phase.load(std::memory_order_acquire);
    if (arrived.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      arrived.store(0, std::memory_order_relaxed);
      phase.fetch_add(1, std::memory_order_release);
      return;
    }
    while (phase.load(std::memory_order_acquire) == ph) spin_pause();
  }
};

struct Pool {
  std::mutex use;   // one team at a time (callers on several threads take turns)
  int workers = 0;  // threads 1..workers
  alignas(64) std::atomic<uint32_t> generation{0};  // a new team's work: its fields below are set before it moves
  alignas(64) std::atomic<int> done{0};             // workers finished with this generation
  alignas(64) std::atomic<int> sleepers{0};
  void* fn = nullptr;
  void (*call)(void*, int, int) = nullptr;
  int nt = 0;
  FirstError errors;  // of this generation, the caller's included
  Barrier barrier;
};
Pool* g_pool = new Pool;  // never freed: workers outlive static destruction

// Waits until the generation moves on from `seen`: spinning for kSpin, then asleep (a futex) until woken. Not
// inlined: a profile then names a worker's idle time (bench/omp-waits.sh).
__attribute__((noinline)) uint32_t next_generation(Pool& p, uint32_t seen) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 1;; ++i) {
    const uint32_t g = p.generation.load(std::memory_order_acquire);
    if (g != seen) return g;
    spin_pause();
    if (i % 256 == 0 && std::chrono::steady_clock::now() - start > kSpin) break;
  }
  for (;;) {
    p.sleepers.fetch_add(1, std::memory_order_seq_cst);
    p.generation.wait(seen, std::memory_order_seq_cst);
    p.sleepers.fetch_sub(1, std::memory_order_seq_cst);
    const uint32_t g = p.generation.load(std::memory_order_acquire);
    if (g != seen) return g;
  }
}

void work(Pool* p, int index, uint32_t seen) {
  omp_set_num_threads(1);  // what this thread calls runs on it alone (see OneThreadForOpenMP)
  for (;;) {
    seen = next_generation(*p, seen);
    if (index < p->nt) take_part(Kind::own, index, p->nt, p->fn, p->call, p->errors);
    p->done.fetch_add(1, std::memory_order_release);
  }
}

// A forked child has none of the parent's workers: it starts a pool of its own (the old one's memory is left).
void after_fork_in_child() { g_pool = new Pool; }
[[maybe_unused]] const int g_atfork = pthread_atfork(nullptr, nullptr, after_fork_in_child);

}  // namespace

bool own_teams() {
  static const bool own = [] {
    const char* e = std::getenv("HEIRLOOM_TEAMS");
    return f32_packed_available() && !(e && std::strcmp(e, "openmp") == 0);
  }();
  return own;
}

int team_thread() { return t_kind == Kind::own ? t_index : omp_get_thread_num(); }

bool in_team() { return t_kind != Kind::none || omp_in_parallel(); }

void team_barrier() {
  if (t_kind == Kind::own) return g_pool->barrier.wait(g_pool->nt);
  if (t_kind == Kind::openmp) {
#pragma omp barrier
  }
}

namespace detail {

void run_team_erased(int nt, void* fn, void (*call)(void*, int, int)) {
  if (nt <= 1 || in_team()) return call(fn, 0, 1);
  if (!own_teams()) {
    FirstError errors;
#pragma omp parallel num_threads(nt)
    take_part(Kind::openmp, omp_get_thread_num(), omp_get_num_threads(), fn, call, errors);
    return errors.rethrow();
  }
  Pool& p = *g_pool;
  std::lock_guard<std::mutex> lock(p.use);
  const uint32_t before = p.generation.load(std::memory_order_relaxed);
  for (; p.workers < nt - 1; ++p.workers) std::thread(work, &p, p.workers + 1, before).detach();
  p.fn = fn, p.call = call, p.nt = nt;
  p.done.store(0, std::memory_order_relaxed);
  p.generation.fetch_add(1, std::memory_order_seq_cst);
  if (p.sleepers.load(std::memory_order_seq_cst) > 0) p.generation.notify_all();
  {
    const OneThreadForOpenMP alone;
    take_part(Kind::own, 0, nt, fn, call, p.errors);
  }
  while (p.done.load(std::memory_order_acquire) != p.workers) spin_pause();  // every worker, in the team or not
  p.errors.rethrow();
}

}  // namespace detail

}  // namespace heirloom
