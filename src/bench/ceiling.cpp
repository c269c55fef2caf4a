// Register-only multiply-add loops for the instruction ceiling. See ceiling.h.
#include "bench/ceiling.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/thread_team.h"

namespace heirloom {
namespace {

// Independent accumulators: enough chains to cover the latency of two pipes (4-5 cycles × 2) on every CPU
// we know, so the loop runs at the issue rate.
constexpr int kChains = 12;
constexpr long kIterations = 1 << 23;  // per run: 12·2^23 instructions per thread, about 30 ms

// The sum of a register's 16 lanes (not _mm512_reduce_add_ps, whose gcc 12 expansion warns of an uninitialised
// value).
__attribute__((target("avx512f"))) float lane_sum(__m512 s) {
  alignas(64) float v[16];
  _mm512_store_ps(v, s);
  float sum = 0;
  for (float x : v) sum += x;
  return sum;
}

// FLOPs per instruction: 16 lanes × multiply + add; a bf16 dot product does two of each per lane.
constexpr double kFmaFlop = 32, kDotFlop = 64;

__attribute__((target("avx512f"), noinline)) float fma_loop(long n) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-4f);
  for (long t = 0; t < n; ++t)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(a, acc[i], b);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return lane_sum(s);  // used, so the loop stays
}

__attribute__((target("avx512f,avx512bf16,avx512vl"), noinline)) float dot_loop(long n) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(-1e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  for (long t = 0; t < n; ++t)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return lane_sum(s);
}

// Every thread runs loop(kIterations) at once; GFLOP/s of the best run (the wall time of the slowest thread).
template <class Loop>
double ceiling(int threads, int repeats, double flop_per_instruction, Loop loop) {
  double best = 0;
  volatile float sink = 0;
  std::vector<float> part(threads, 0.f);  // each thread's sum, kept so that its loop is not dropped
  for (int r = 0; r < repeats + 1; ++r) {  // the first run warms the cores up and is not counted
    const auto t0 = std::chrono::steady_clock::now();
    run_team(threads, [&](int t, int) { part[t] = loop(kIterations); });
    float s = 0;
    for (float x : part) s += x;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink + s;
    if (r > 0) best = std::max(best, flop_per_instruction * kChains * kIterations * threads / secs / 1e9);
  }
  return best;
}

}  // namespace

double fma_ceiling_gflops(int threads, int repeats) {
  if (!f32_packed_available()) return 0;
  return ceiling(threads, repeats, kFmaFlop, fma_loop);
}

double bf16_dot_ceiling_gflops(int threads, int repeats) {
  if (!bf16_gemm_available()) return 0;
  return ceiling(threads, repeats, kDotFlop, dot_loop);
}

}  // namespace heirloom
