#include "core/paced_split.h"

#include <algorithm>
#include <atomic>
#include <cmath>

namespace heirloom {

namespace {
std::atomic<float> g_pace[kPacedThreads];  // each team thread's share of the items per second; 0: not yet known
}

PacedSplit paced_split(int64_t n, int nt) {
  PacedSplit s;
  s.nt = nt = std::clamp(nt, 1, kPacedThreads);
  float pace[kPacedThreads];
  double total = 0;
  bool known = true;
  for (int t = 0; t < nt; ++t) {
    pace[t] = g_pace[t].load(std::memory_order_relaxed);
    known = known && pace[t] > 0;
    total += pace[t];
  }
  double before = 0;
  for (int t = 0; t < nt; ++t) {
    s.first[t] = known ? std::llround((double)n * before / total) : n * t / nt;
    before += pace[t];
  }
  s.first[nt] = n;
  if (n >= nt)
    for (int t = 1; t < nt; ++t) s.first[t] = std::clamp(s.first[t], s.first[t - 1] + 1, n - (nt - t));
  return s;
}

void record_paces(const PacedSplit& s, const double* seconds) {
  if (s.nt < 2) return;
  double rate[kPacedThreads], total = 0;
  for (int t = 0; t < s.nt; ++t) {
    const int64_t items = s.first[t + 1] - s.first[t];
    if (items <= 0 || !(seconds[t] > 0)) return;
    total += rate[t] = (double)items / seconds[t];
  }
  for (int t = 0; t < s.nt; ++t) {
    const float share = (float)(rate[t] / total), old = g_pace[t].load(std::memory_order_relaxed);
    g_pace[t].store(old > 0 ? 0.75f * old + 0.25f * share : share, std::memory_order_relaxed);
  }
}

}  // namespace heirloom
