// What the micro-benchmark files share: moe-30m's training shapes (B·T = 8·128 rows), random inputs, and the
// trial switch.
#pragma once
#include <cstdlib>
#include <vector>

#include "core/experiment.h"
#include "core/rng.h"

namespace heirloom {
namespace {

constexpr int B = 8, T = 128, N = B * T, C = 256, H = 8, D = 32, F = 512, E = 8, K = 2, V = 8192;

// HEIRLOOM_EXPERIMENT=NAME runs a benchmark that calls this with the trial `NAME` on (core/experiment.h): an A/B of a
// local change in two runs of this program. (Called by the benchmark, not at static initialisation, which may run
// before the trial's own name is constructed.)
void trial_from_env() {
  static const bool once = [] {
    if (const char* name = std::getenv("HEIRLOOM_EXPERIMENT")) set_experiment(name, true);
    return true;
  }();
  (void)once;
}

std::vector<float> randn(size_t n, float s = 1.f) {
  static Rng rng(1);
  std::vector<float> v(n);
  for (auto& x : v) x = s * rng.normal();
  return v;
}

}  // namespace
}  // namespace heirloom
