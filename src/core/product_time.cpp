// See product_time.h. Each thread adds into its own slot (no shared cache line written per product); the
// slots live until exit, as OpenMP's pool threads do.
#include "core/product_time.h"
#include "core/op_time.h"
#include "core/thread_team.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <tuple>

namespace heirloom {

namespace {

using ShapeKey = std::tuple<int, int64_t, int64_t>;  // kind, N, K

struct alignas(64) Slot {
  std::atomic<double> core_seconds[kProductKinds] = {}, flop[kProductKinds] = {};
  std::map<ShapeKey, ProductTime::Shape> shapes;  // written by its own thread only, read while no product runs
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

const char* product_kind_name(ProductKind k) {
  static const char* const names[kProductKinds] = {"blas",          "f32_packed",       "f32_produced", "f32_panel",
                                                   "bf16",          "bf16_produced",    "bf16_weight_grad", "bf16_small"};
  return names[(int)k];
}

ProductClock::ProductClock() {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (Slot& s : g_slots) {
    for (int k = 0; k < kProductKinds; ++k) s.core_seconds[k] = s.flop[k] = 0;
    s.shapes.clear();
  }
  g_on = true;
}

ProductClock::~ProductClock() { g_on = false; }

ProductTime ProductClock::read() const {
  std::lock_guard<std::mutex> lock(g_mutex);
  ProductTime t;
  std::map<ShapeKey, ProductTime::Shape> shapes;
  for (const Slot& s : g_slots) {
    for (int k = 0; k < kProductKinds; ++k) {
      t.by_kind[k].core_seconds += s.core_seconds[k].load(std::memory_order_relaxed);
      t.by_kind[k].flop += s.flop[k].load(std::memory_order_relaxed);
    }
    for (const auto& [key, x] : s.shapes) {
      ProductTime::Shape& y = shapes[key];
      y.kind = x.kind, y.N = x.N, y.K = x.K;
      y.calls += x.calls, y.rows += x.rows;
      y.part.core_seconds += x.part.core_seconds, y.part.flop += x.part.flop;
    }
  }
  for (const auto& [key, x] : shapes) t.by_shape.push_back(x);
  std::sort(t.by_shape.begin(), t.by_shape.end(),
            [](const auto& a, const auto& b) { return a.part.core_seconds > b.part.core_seconds; });
  for (const ProductTime::Part& p : t.by_kind) {
    t.total.core_seconds += p.core_seconds;
    t.total.flop += p.flop;
  }
  return t;
}

PartOfProduct::PartOfProduct() { ++t_depth; }
PartOfProduct::~PartOfProduct() { --t_depth; }

TimedProduct::TimedProduct(ProductKind kind, int64_t M, int64_t N, int64_t K) {
  const bool clock = g_on.load(std::memory_order_relaxed);
  if (!clock && !op_clock_on()) return;
  entered_ = true;
  if (t_depth++ > 0) return;
  add_op_flop(2.0 * (double)M * (double)N * (double)K);  // to the step's part running now (core/op_time.h)
  if (!clock) return;  // parts only: their FLOPs, no clock read (tiny products would pay for two)
  counting_ = true;
  kind_ = kind;
  threads_ = in_team() ? 1 : omp_get_max_threads();
  M_ = M, N_ = N, K_ = K;
  flop_ = 2.0 * (double)M * (double)N * (double)K;
  start_ = std::chrono::steady_clock::now();
}

TimedProduct::~TimedProduct() {
  if (!entered_) return;
  --t_depth;
  if (!counting_) return;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  Slot& slot = my_slot();
  add(slot.core_seconds[(int)kind_], s * threads_);
  add(slot.flop[(int)kind_], flop_);
  ProductTime::Shape& shape = slot.shapes[{(int)kind_, N_, K_}];
  shape.kind = kind_, shape.N = N_, shape.K = K_;
  ++shape.calls, shape.rows += M_;
  shape.part.core_seconds += s * threads_, shape.part.flop += flop_;
}

}  // namespace heirloom
