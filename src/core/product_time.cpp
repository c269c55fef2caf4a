// See product_time.h. Each thread adds into its own slot (no shared cache line written per product); the
// slots live until exit, as OpenMP's pool threads do.
#include "core/product_time.h"

#include <omp.h>

#include <atomic>
#include <deque>
#include <mutex>

namespace heirloom {

namespace {

struct alignas(64) Slot {
  std::atomic<double> core_seconds{0}, flop{0};
};

std::atomic<bool> g_on{false};
std::mutex g_mutex;
std::deque<Slot> g_slots;  // a deque: slots never move as threads add theirs

Slot& my_slot() {
  thread_local Slot* slot = [] {
    std::lock_guard<std::mutex> lock(g_mutex);
    return &g_slots.emplace_back();
  }();
  return *slot;
}

thread_local int t_depth = 0;  // products entered on this thread and not yet left

void add(std::atomic<double>& a, double v) { a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_relaxed); }

}  // namespace

ProductClock::ProductClock() {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (Slot& s : g_slots) s.core_seconds = s.flop = 0;
  g_on = true;
}

ProductClock::~ProductClock() { g_on = false; }

ProductTime ProductClock::read() const {
  std::lock_guard<std::mutex> lock(g_mutex);
  ProductTime t;
  for (const Slot& s : g_slots) {
    t.core_seconds += s.core_seconds.load(std::memory_order_relaxed);
    t.flop += s.flop.load(std::memory_order_relaxed);
  }
  return t;
}

TimedProduct::TimedProduct(int64_t M, int64_t N, int64_t K) {
  if (!g_on.load(std::memory_order_relaxed)) return;
  entered_ = true;
  if (t_depth++ > 0) return;
  counting_ = true;
  threads_ = omp_in_parallel() ? 1 : omp_get_max_threads();
  flop_ = 2.0 * (double)M * (double)N * (double)K;
  start_ = std::chrono::steady_clock::now();
}

TimedProduct::~TimedProduct() {
  if (!entered_) return;
  --t_depth;
  if (!counting_) return;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  Slot& slot = my_slot();
  add(slot.core_seconds, s * threads_);
  add(slot.flop, flop_);
}

}  // namespace heirloom
