// Loops split across the threads only when worth it. An OpenMP `parallel ... if (false)` still builds a
// one-thread team on every call (a GOMP_parallel each time); attention packed its small per-head operands
// that way thousands of times a step, so a loop not worth splitting here makes no OpenMP call at all.
#pragma once
#include <omp.h>

#include <cstdint>

namespace heirloom {

// body(i) for i in [0, n): across the threads (static schedule) when `worth` holds, there is more than one
// thread and the caller is not already inside a parallel region; else in order on the calling thread.
template <class Body>
void parallel_for(int64_t n, bool worth, Body&& body) {
  if (worth && n > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  for (int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace heirloom
