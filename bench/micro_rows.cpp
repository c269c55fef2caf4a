// Google Benchmark micro-benchmarks of the row-wise ops between a step's products (norms, RoPE, SwiGLU, the
// cross-entropy) at moe-30m training shapes. Run: ./build/heirloom_microbench --benchmark_filter='BM_(rmsnorm|rope|swiglu|xent)'
#include <benchmark/benchmark.h>

#include <vector>

#include "micro_common.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "ops/xent.h"

namespace heirloom {
namespace {

void BM_rmsnorm_fwd_bwd(benchmark::State& st) {
  auto x = randn(N * C), w = randn(C), out = randn(N * C), dx = randn(N * C), dw = randn(C);
  std::vector<float> rstd(N);
  for (auto _ : st) {
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
    rmsnorm_backward(dx.data(), dw.data(), out.data(), x.data(), w.data(), rstd.data(), N, C);
  }
}
BENCHMARK(BM_rmsnorm_fwd_bwd)->Unit(benchmark::kMillisecond);

// RoPE as attention's units run it: one head of 32 (q's or k's) over a sequence's rows, in place in the q, k, v
// rows (stride 3 x 8 x 32 values), forward then backward; range(0) = the sequence's rows (128: the 8x128 step,
// 256: the Bet 10 protocol's windows), one unit on one thread.
void BM_rope_unit(benchmark::State& st) {
  const int rows = (int)st.range(0), ld = 3 * H * D;
  const RopeTable tab = make_rope_table(512, D, 10000.f);
  auto qkv = randn((size_t)rows * ld);
  for (auto _ : st) {
    rope_forward(qkv.data(), ld, tab, 1, rows, 1, D, 0);
    rope_backward(qkv.data(), ld, tab, 1, rows, 1, D, 0);
    benchmark::DoNotOptimize(qkv.data());
  }
}
BENCHMARK(BM_rope_unit)->Arg(128)->Arg(256)->Unit(benchmark::kMicrosecond);

void BM_xent(benchmark::State& st) {
  auto logits = randn((size_t)N * V), dl = randn((size_t)N * V);
  std::vector<float> losses(N);
  std::vector<int32_t> tgt(N, 5);
  int n;
  for (auto _ : st) {
    xent_forward(losses.data(), logits.data(), tgt.data(), N, V, &n);
    xent_backward(dl.data(), logits.data(), tgt.data(), 1.f / N, N, V);
  }
}
BENCHMARK(BM_xent)->Unit(benchmark::kMillisecond);

void BM_swiglu(benchmark::State& st) {
  trial_from_env();
  auto g = randn(N * K * F), u = randn(N * K * F), o = randn(N * K * F), dg = randn(N * K * F), du = randn(N * K * F);
  for (auto _ : st) {
    swiglu_forward(o.data(), g.data(), u.data(), N * K, F);
    swiglu_backward(dg.data(), du.data(), o.data(), g.data(), u.data(), N * K, F);
  }
}
BENCHMARK(BM_swiglu)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace heirloom
