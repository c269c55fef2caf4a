#include "core/experiment.h"

#include <atomic>

namespace heirloom {

namespace {
std::string g_name;               // written between steps only, by the thread that runs the trial
std::atomic<bool> g_on{false};
}  // namespace

bool experiment(const char* name) { return g_on.load(std::memory_order_relaxed) && g_name == name; }

void set_experiment(const std::string& name, bool on) {
  g_name = name;
  g_on.store(on && !name.empty(), std::memory_order_relaxed);
}

}  // namespace heirloom
