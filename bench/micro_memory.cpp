// Google Benchmark micro-benchmarks of the machine's memory as a two-thread step meets it: what it costs a
// core to read data the other core has just written, and how much memory bandwidth one and two threads get.
// They say which of a split step's costs are worth attacking (bench/RESULTS.md). Run:
//   ./build/heirloom_microbench --benchmark_filter='BM_rows_from_other_core|BM_memory_read'
#include <benchmark/benchmark.h>

#include <omp.h>

#include <chrono>
#include <vector>

#include "heirloom/cache_line.h"

namespace heirloom {
namespace {

// One thread writes range(0) KB (as an op writes its output rows), then a thread reads it all (as the next op
// reads its input rows): range(1) 1 = the other thread reads (its rows came from the other core's caches),
// 0 = the writer reads them back itself. The time is the read alone.
void BM_rows_from_other_core(benchmark::State& st) {
  if (omp_get_max_threads() < 2) return st.SkipWithError("needs two threads");
  const size_t n = (size_t)st.range(0) * 1024 / sizeof(float);
  const int reader = st.range(1) != 0 ? 1 : 0;
  std::vector<float, CacheLineAllocator<float>> rows(n, 1.f);
  float value = 0, sink = 0;
  for (auto _ : st) {
    double seconds = 0;
    value += 1;
#pragma omp parallel num_threads(2)
    {
      const int t = omp_get_thread_num();
      if (t == 0)
        for (size_t i = 0; i < n; ++i) rows[i] = value + (float)i;
#pragma omp barrier
      if (t == reader) {
        const auto t0 = std::chrono::steady_clock::now();
        float s = 0;
        for (size_t i = 0; i < n; i += 16) s += rows[i];  // one value per cache line: the lines' transfer only
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        sink += s;
      }
    }
    st.SetIterationTime(seconds);
  }
  benchmark::DoNotOptimize(sink);
  st.counters["GB/s"] = benchmark::Counter((double)n * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_rows_from_other_core)->ArgsProduct({{64, 256, 1024}, {0, 1}})->UseManualTime()->Unit(benchmark::kMicrosecond);

// 512 MB (far beyond the caches) read by range(0) threads, each its own contiguous half: the bandwidth the
// step's weights and streamed activations share.
void BM_memory_read(benchmark::State& st) {
  const int threads = (int)st.range(0);
  if (omp_get_max_threads() < threads) return st.SkipWithError("not that many threads");
  const size_t n = (size_t)512 << 20 >> 2;
  std::vector<float, CacheLineAllocator<float>> data(n, 1.f);
  float sink = 0;
  for (auto _ : st) {
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      const size_t t = omp_get_thread_num(), share = n / threads;
      float s[16] = {};
      for (size_t i = t * share; i < (t + 1) * share; i += 16)
#pragma omp simd
        for (int j = 0; j < 16; ++j) s[j] += data[i + j];
      for (float v : s) sink += v;
    }
  }
  benchmark::DoNotOptimize(sink);
  st.counters["GB/s"] = benchmark::Counter((double)n * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_memory_read)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace heirloom
