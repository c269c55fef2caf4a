#include "core/experiment.h"

#include <atomic>

namespace heirloom {

namespace {
std::string g_name;               // written between steps only, by the thread that runs the trial
std::atomic<bool> g_on{false};
std::atomic<bool> g_reached{false};
}  // namespace

bool experiment(const char* name) {
  if (!g_on.load(std::memory_order_relaxed) || g_name != name) return false;
  // Written once: every tile of a B step may ask, and a write each time would move the line between the cores.
  if (!g_reached.load(std::memory_order_relaxed)) g_reached.store(true, std::memory_order_relaxed);
  return true;
}

bool experiment_reached() { return g_reached.load(std::memory_order_relaxed); }

void set_experiment(const std::string& name, bool on) {
  if (!name.empty() && name != g_name) g_reached.store(false, std::memory_order_relaxed);  // a new trial
  g_name = name;
  g_on.store(on && !name.empty(), std::memory_order_relaxed);
}

}  // namespace heirloom
