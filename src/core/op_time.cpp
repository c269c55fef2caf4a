// See op_time.h. The parts live in a fixed table: a step has about ten, met in the same order every time.
#include "core/op_time.h"

#include <array>
#include <atomic>
#include <cstring>

#include "core/thread_team.h"

namespace heirloom {

namespace {

constexpr int kMaxParts = 32;

struct Slot {
  const char* name = nullptr;
  std::atomic<double> seconds{0}, flop{0};
  std::atomic<int64_t> calls{0};
};

std::array<Slot, kMaxParts> g_parts;
std::atomic<int> g_used{0};
std::atomic<bool> g_on{false};
std::atomic<int> g_current{-1};    // the innermost part alive (on the step's thread), or -1
thread_local TimedOp* t_innermost = nullptr;

// The slot of the part called `name` (by address, then by text), added at its first use; -1 when the table is full.
int slot_of(const char* name) {
  const int used = g_used.load(std::memory_order_relaxed);
  for (int i = 0; i < used; ++i)
    if (g_parts[i].name == name || std::strcmp(g_parts[i].name, name) == 0) return i;
  if (used == kMaxParts) return -1;
  g_parts[used].name = name;  // parts are added only on the step's thread (outside the teams)
  g_used.store(used + 1, std::memory_order_relaxed);
  return used;
}

double in_seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

OpClock::OpClock() {
  for (Slot& s : g_parts) s.seconds = 0, s.flop = 0, s.calls = 0;
  g_current = -1;
  g_on = true;
}

OpClock::~OpClock() { g_on = false; }

OpTime OpClock::read() const {
  OpTime t;
  const int used = g_used.load(std::memory_order_relaxed);
  for (int i = 0; i < used; ++i) {
    const Slot& s = g_parts[i];
    if (s.calls.load(std::memory_order_relaxed) == 0) continue;
    t.parts.push_back({s.name, s.seconds.load(std::memory_order_relaxed), s.flop.load(std::memory_order_relaxed),
                       s.calls.load(std::memory_order_relaxed)});
  }
  return t;
}

TimedOp::TimedOp(const char* name) {
  if (!g_on.load(std::memory_order_relaxed) || in_team()) return;
  index_ = slot_of(name);
  if (index_ < 0) return;
  const auto now = std::chrono::steady_clock::now();
  outer_ = t_innermost;
  if (outer_) g_parts[outer_->index_].seconds.fetch_add(in_seconds(now - outer_->start_), std::memory_order_relaxed);
  t_innermost = this;
  g_current.store(index_, std::memory_order_relaxed);
  start_ = now;
}

TimedOp::~TimedOp() {
  if (index_ < 0) return;
  g_parts[index_].seconds.fetch_add(in_seconds(std::chrono::steady_clock::now() - start_), std::memory_order_relaxed);
  g_parts[index_].calls.fetch_add(1, std::memory_order_relaxed);
  t_innermost = outer_;
  if (outer_) outer_->start_ = std::chrono::steady_clock::now();  // the outer part's time goes on from here
  g_current.store(outer_ ? outer_->index_ : -1, std::memory_order_relaxed);
}

bool op_clock_on() { return g_on.load(std::memory_order_relaxed); }

void add_op_flop(double flop) {
  if (!g_on.load(std::memory_order_relaxed)) return;
  const int i = g_current.load(std::memory_order_relaxed);
  if (i >= 0) g_parts[i].flop.fetch_add(flop, std::memory_order_relaxed);  // from any thread of a product
}

}  // namespace heirloom
