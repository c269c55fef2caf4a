// Google Benchmark micro-benchmarks of the ops at moe-30m training shapes (B·T = 8·128 rows), and of
// whole forward/backward passes, to see where a training step's time goes.
// Run: ./build/heirloom_microbench [--benchmark_filter=REGEX]
#include <benchmark/benchmark.h>

#include <omp.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "heirloom/cache_line.h"
#include "core/fetch_ahead.h"
#include "core/gemm.h"
#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/thread_team.h"
#include "heirloom/engine.h"
#include "heirloom/train.h"
#include "ops/attention.h"
#include "micro_common.h"
#include "ops/moe.h"
#include "ops/swiglu.h"
#include "ops/vec_math.h"
#include "ops/xent.h"

namespace heirloom {
namespace {

// One team of the machine's threads doing nothing, opened and joined: heirloom's own (Arg 1, core/thread_team.h),
// then an OpenMP parallel region (Arg 0), in that order: OpenMP's threads spin for a while after their last
// region, and heirloom's sleep 0.5 ms after theirs.
void BM_team_fork_join(benchmark::State& st) {
  const int nt = omp_get_max_threads();
  std::atomic<int> sink{0};
  for (auto _ : st) {
    if (st.range(0) == 1) {
      run_team(nt, [&](int t, int) { sink.fetch_add(t, std::memory_order_relaxed); });
    } else {
#pragma omp parallel num_threads(nt)
      sink.fetch_add(omp_get_thread_num(), std::memory_order_relaxed);
    }
  }
}
BENCHMARK(BM_team_fork_join)->Arg(1)->Arg(0)->Unit(benchmark::kMicrosecond)->UseRealTime();

// range(0): forward + backward; range(1): bf16 products; range(2): layers whose buffers are taken in turn
// (16: out of cache as in a step, 1: kept in cache); range(3): sequence length (N tokens in all: 8 x 128 as in
// the step, 4 x 256 as in the Bet 10 protocol's sequences).
void BM_attention(benchmark::State& st) {
  trial_from_env();
  const int QKV = 3 * H * D, L = (int)st.range(2), Ts = (int)st.range(3), Bs = N / Ts;
  const size_t n_qkv = (size_t)N * QKV, n_out = (size_t)N * H * D, n_stats = (size_t)Bs * H * Ts * 2;  // two per row
  auto qkv = randn(n_qkv * L, 0.3f), out = randn(n_out * L), stats = randn(n_stats * L);
  // range(1): products in bf16 (the base in bf16), where the CPU has bf16 products and attention takes them
  AttnShape s{Bs, Ts, H, H, D, 0, QKV, QKV, (int64_t)Ts * QKV, st.range(1) != 0};
  const bool bwd = st.range(0);
  auto dqkv = randn(n_qkv * L), dout = randn(n_out * L);
  const size_t n_probs = (size_t)attention_kept_size(Bs, H, Ts);  // the bf16 probabilities a bf16 forward keeps
  std::vector<uint16_t> probs(n_probs * L);
  int l = 0;
  for (auto _ : st) {
    l = (l + 1) % L;
    const float* x = qkv.data() + n_qkv * l;
    float* dx = dqkv.data() + n_qkv * l;
    uint16_t* p = probs.data() + n_probs * l;
    attention_forward(out.data() + n_out * l, stats.data() + n_stats * l, x, x + H * D, x + 2 * H * D, s, p);
    if (bwd)
      attention_backward(dx, dx + H * D, dx + 2 * H * D, dout.data() + n_out * l, stats.data() + n_stats * l, x,
                         x + H * D, x + 2 * H * D, s, false, nullptr, p);
  }
}
BENCHMARK(BM_attention)->ArgsProduct({{0, 1}, {0, 1}, {1, 16}, {T, 2 * T}})->Unit(benchmark::kMillisecond);

// One head's forward products at 256 keys, as attention runs them on bf16 (D = 32, blocks of 32 query rows,
// each against the keys up to its last row), on one core: range(0) 0 = scores q·kᵀ (K = D = 32), 1 = p·v
// (N = D = 32, K = the block's keys). GFLOP/s as issued (whole blocks, masked entries included).
void BM_head_products(benchmark::State& st) {
  if (!bf16_gemm_available()) return st.SkipWithError("this CPU has no AVX512-BF16");
  constexpr int S = 256, R = 32;
  const bool pv = st.range(0) == 1;
  const auto k = randn((size_t)S * D), a = randn((size_t)R * S);
  const PackedB b = pv ? pack_b_bf16(k.data(), D, false, S, D) : pack_b_bf16(k.data(), D, true, D, S);
  const int lda = pv ? S : 32;
  std::vector<uint16_t> rows((size_t)R * S);
  to_bf16_rows(a.data(), S, false, R, pv ? S : D, rows.data(), lda);
  AlignedFloats c((size_t)R * S);
  double flops = 0;
  for (int nk = R; nk <= S; nk += R) flops += 2.0 * R * nk * D;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  for (auto _ : st)
    for (int nk = R; nk <= S; nk += R) {
      if (pv) gemm_bf16_small(R, D, nk, rows.data(), lda, b, c.data(), S, false);
      else gemm_bf16_small(R, nk, D, rows.data(), lda, b, c.data(), S, false);
      benchmark::DoNotOptimize(c.data());
    }
  omp_set_num_threads(threads);
  st.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_head_products)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// An expert's product (M x 512 x 256), one per thread at once as the experts run in a step, with its
// operands in cache or not: range(0) 0 fp32 panels, 1 bf16 (AMX or dot products); range(1) 0 all in cache, 1 the weights cycled
// through 64 copies (never cached), 2 the outputs cycled through 256 buffers, 3 inputs and outputs cycled, 4 the
// weights cycled as in 1, each product fetching its thread's next weight into L2 as a step's do (core/fetch_ahead.h);
// range(2) M, the expert's rows: 250 (8x128 steps), 64 (the personalize protocol's 1x256 windows), 60 (whole
// micro-tiles in both kernels: beside 64, the cost of the rows past them).
void BM_expert_product_cache(benchmark::State& st) {
  trial_from_env();
  const bool bf16 = st.range(0) != 0;
  const int cold = (int)st.range(1);
  if (bf16 && !bf16_gemm_available()) return st.SkipWithError("this CPU has no AVX512-BF16");
  if (!bf16 && !f32_packed_available()) return st.SkipWithError("this CPU has no AVX-512F");
  const int M = (int)st.range(2);
  constexpr int Nw = 512, Kw = 256, kWeights = 64, kBufs = 256;
  const auto w = randn((size_t)Kw * Nw), a = randn((size_t)M * Kw * kBufs);
  AlignedFloats c((size_t)M * Nw * kBufs);  // rows 64-byte aligned, as a step's
  std::vector<PackedF32> w32;
  std::vector<PackedB> w16;
  for (int i = 0; i < kWeights; ++i)
    if (bf16) w16.push_back(pack_b_bf16(w.data(), Nw, false, Kw, Nw));
    else w32.push_back(pack_b_f32(w.data(), Nw, false, Kw, Nw));
  auto product = [&](int i, int wi, int t) {
    const float* in = a.data() + (size_t)(cold == 3 ? i : t) * M * Kw;
    float* out = c.data() + (size_t)(cold == 2 || cold == 3 ? i : t) * M * Nw;
    if (bf16) gemm_bf16(M, in, Kw, w16[wi], out, Nw, false);
    else gemm_f32_packed(M, in, Kw, w32[wi], out, Nw, false);
  };
  for (auto _ : st) {
    if (cold == 4) {
#pragma omp parallel
      {  // thread t takes weights t, t + n, ...: its next product's weight is known, and fetched ahead
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        for (int i = t; i < kBufs; i += n) {
          const int next = (i + n) % kWeights;
          if (bf16) fetch_ahead(w16[next].data.data(), (int64_t)(w16[next].data.size() * sizeof(uint16_t)));
          else fetch_ahead(w32[next].data.data(), (int64_t)(w32[next].data.size() * sizeof(float)));
          product(i, i % kWeights, t);
        }
      }
      continue;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < kBufs; ++i) {
      const int t = omp_get_thread_num();
      product(i, cold == 1 ? i % kWeights : t % kWeights, t);
    }
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * Nw * Kw * kBufs, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_expert_product_cache)->ArgsProduct({{0, 1}, {0, 1, 2, 3, 4}, {250, 64, 60}})->Unit(benchmark::kMillisecond)->UseRealTime();

// A dense bf16 product of the protocol's 1x256 step (M = 256 rows, both threads on one product, as the step's
// qkv and attention-output products run): range(0) N, range(1) K (768 x 256 the qkv forward, 256 x 768 its
// input gradient, 256 x 256 the attention output); range(2) 1 = the weight cycled through 128 copies, more
// than L3 holds (as a step meets each layer's weight after the other layers'), 0 = the same weight every call.
void BM_dense_product_256(benchmark::State& st) {
  if (!bf16_gemm_available()) return st.SkipWithError("this CPU has no AVX512-BF16");
  const int M = 256, Nw = (int)st.range(0), Kw = (int)st.range(1), copies = st.range(2) ? 128 : 1;
  const auto w = randn((size_t)Kw * Nw), a = randn((size_t)M * Kw);
  AlignedFloats c((size_t)M * Nw);
  std::vector<PackedB> packs;
  for (int i = 0; i < copies; ++i) packs.push_back(pack_b_bf16(w.data(), Nw, false, Kw, Nw));
  int i = 0;
  for (auto _ : st) gemm_bf16(M, a.data(), Kw, packs[i++ % copies], c.data(), Nw, false);
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * Nw * Kw, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_dense_product_256)->ArgsProduct({{768}, {256}, {0, 1}})->ArgsProduct({{256}, {768, 256}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();

// The micro-tiles' pace against K, on one core: M = 60 rows times a packed B [K, 512] (in L2), range(0) = K;
// range(1) 0 = bf16 (rows stored in bf16 as a product takes them: one row task, four 15-row tiles), 1 = fp32
// panels (five 12-row tiles). A tile's fixed cost (its accumulators, its stores, its call) is paid once per K:
// the attention's per-head products have K = 32 (D) and the experts' K = 256 and 512.
void BM_tile_depth(benchmark::State& st) {
  const int M = 60, Nw = 512, Kw = (int)st.range(0);
  const auto w = randn((size_t)Kw * Nw), a = randn((size_t)M * Kw);
  AlignedFloats c((size_t)M * Nw);
  auto on_one_core = [&](auto&& product) {
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    for (auto _ : st) product();
    omp_set_num_threads(threads);
    st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * Nw * Kw, benchmark::Counter::kIsIterationInvariantRate);
  };
  if (st.range(1) == 1) {
    if (!f32_packed_available()) return st.SkipWithError("this CPU has no AVX-512");
    const PackedF32 b = pack_b_f32(w.data(), Nw, false, Kw, Nw);
    return on_one_core([&] { gemm_f32_packed(M, a.data(), Kw, b, c.data(), Nw, false); });
  }
  if (!bf16_gemm_available()) return st.SkipWithError("this CPU has no AVX512-BF16");
  const PackedB b = pack_b_bf16(w.data(), Nw, false, Kw, Nw);
  const int64_t ld = bf16_rows_stride(M, b);
  std::vector<uint16_t> rows((size_t)(M + 32) * ld, 0);  // to_bf16_rows writes whole blocks of 32 rows
  to_bf16_rows(a.data(), Kw, false, M, Kw, rows.data(), (int)ld);
  on_one_core([&] { gemm_bf16_on_rows(rows.data(), ld, M, b, c.data(), Nw, false); });
}
BENCHMARK(BM_tile_depth)->ArgsProduct({{32, 64, 128, 256, 512, 1024}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();

// An expert's products of shape M x 256 x 512 on bf16 packs, one per thread at once: range(0) 0 the down
// projection on h stored in fp32 (gemm_bf16), 1 making h = silu(hg)·hu row by row as it goes
// (gemm_bf16_produced, what the step's forward does), 2 the SwiGLU rows alone (swiglu_forward); the backward's
// input gradients as the step runs them: 3 the gate's, making dhg's rows (and dhu's beside them, in bf16) from dh
// and the bf16 hg and hu, 4 the up's, copying dhu's bf16 rows; range(1) M.
void BM_expert_down_produced(benchmark::State& st) {
  trial_from_env();
  if (!bf16_gemm_available()) return st.SkipWithError("this CPU has no AVX512-BF16");
  const int how = (int)st.range(0), M = (int)st.range(1), threads = omp_get_max_threads();
  constexpr int Nw = 256, Kw = 512, kCalls = 64;
  const auto w = randn((size_t)Kw * Nw, 0.05f), hg = randn((size_t)M * Kw * threads), hu = randn((size_t)M * Kw * threads);
  const PackedB w16 = pack_b_bf16(w.data(), Nw, false, Kw, Nw);
  AlignedFloats h((size_t)M * Kw * threads), c((size_t)M * Nw * threads);
  std::vector<uint16_t> hg16(hg.size()), hu16(hu.size());  // hg and hu in bf16, as a step keeps them for the backward
  for (size_t i = 0; i < hg.size(); ++i) hg16[i] = to_bf16(hg[i]), hu16[i] = to_bf16(hu[i]);
  for (int t = 0; t < threads; ++t)
    swiglu_forward(h.data() + (size_t)t * M * Kw, hg.data() + (size_t)t * M * Kw, hu.data() + (size_t)t * M * Kw, M, Kw);
  for (auto _ : st) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < kCalls; ++i) {
      const size_t t = omp_get_thread_num();
      const float *g = hg.data() + t * M * Kw, *u = hu.data() + t * M * Kw;
      const uint16_t *g16 = hg16.data() + t * M * Kw, *u16 = hu16.data() + t * M * Kw;
      float* out = c.data() + t * M * Nw;
      if (how == 0) gemm_bf16(M, h.data() + t * M * Kw, Kw, w16, out, Nw, false);
      else if (how == 1)
        gemm_bf16_produced(M, [&](int r, uint16_t* row) { swiglu_forward_row(row, g + (size_t)r * Kw, u + (size_t)r * Kw, Kw); },
                           w16, out, Nw, false);
      else if (how == 2)
        swiglu_forward(h.data() + t * M * Kw, g, u, M, Kw);
      else if (how == 3)  // dh in h's place; dhu's rows into hu16 (read by how 4)
        gemm_bf16_produced(M, [&](int r, uint16_t* row) {
          swiglu_backward_row(row, hu16.data() + (t * M + r) * Kw, h.data() + (t * M + r) * Kw, g16 + (size_t)r * Kw,
                              u16 + (size_t)r * Kw, Kw);
        }, w16, out, Nw, true);
      else
        gemm_bf16_produced(M, [&](int r, uint16_t* row) {
          std::memcpy(row, hu16.data() + (t * M + r) * Kw, sizeof(uint16_t) * Kw);
        }, w16, out, Nw, true);
    }
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * Nw * Kw * kCalls, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_expert_down_produced)->ArgsProduct({{0, 1, 2, 3, 4}, {250, 64}})->Unit(benchmark::kMillisecond)->UseRealTime();

// The head's input gradient, dX[M, 256] = dlogits[M, 8192] · W[8192, 256] on a weight packed once, both threads
// on one product, with dlogits and W cycled through 4 copies so that neither is cached: range(0) M, the step's rows
// (256 for the personalize protocol's 1x256 windows, 1024 for 8x128); range(1) 0 fp32 panels, 1 bf16 with dlogits
// given as the product's bf16 rows (not made as it goes from the logits, as a step's backward makes them).
void BM_head_input_grad(benchmark::State& st) {
  const int M = (int)st.range(0);
  const bool bf16 = st.range(1) == 1;
  if (bf16 ? !bf16_gemm_available() : !f32_packed_available()) return st.SkipWithError("this CPU lacks the kernel");
  constexpr int V = 8192, C = 256, kCopies = 4;
  const auto w = randn((size_t)V * C), d = randn((size_t)M * V * kCopies, 0.01f);
  std::vector<float> dx((size_t)M * C);
  int i = 0;
  if (bf16) {
    std::vector<PackedB> packs;
    for (int c = 0; c < kCopies; ++c) packs.push_back(pack_b_bf16(w.data(), C, false, V, C));
    const int64_t ld = bf16_rows_stride(M, packs[0]);
    const size_t copy = (size_t)(M + 32) * ld;  // to_bf16_rows writes whole blocks of 32 rows
    std::vector<uint16_t> rows(copy * kCopies, 0);
    for (int c = 0; c < kCopies; ++c) to_bf16_rows(d.data() + (size_t)c * M * V, V, false, M, V, rows.data() + c * copy, (int)ld);
    for (auto _ : st) {
      gemm_bf16_on_rows(rows.data() + (i % kCopies) * copy, ld, M, packs[i % kCopies], dx.data(), C, false);
      ++i;
    }
  } else {
    std::vector<PackedF32> packs;
    for (int c = 0; c < kCopies; ++c) packs.push_back(pack_b_f32(w.data(), C, false, V, C));
    for (auto _ : st) {
      gemm_f32_packed(M, d.data() + (size_t)(i % kCopies) * M * V, V, packs[i % kCopies], dx.data(), C, false);
      ++i;
    }
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * V * C, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_head_input_grad)->ArgsProduct({{256, 1024}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();

// Packing an expert's fp32 weight [512, 256] per call, as the full fp32 step does (its weights change every
// step), one weight per thread at once: range(0) 1 = transposed (the forward's B = Wᵀ), 0 = as stored (the
// backward's B = W); range(1) 1 = each pack reads another of 64 weights (from memory, as in a step), 0 = one.
void BM_pack_f32(benchmark::State& st) {
  if (!f32_packed_available()) return st.SkipWithError("this CPU has no AVX-512F");
  const bool trans = st.range(0) != 0, cold = st.range(1) != 0;
  constexpr int O = 512, I = 256, kWeights = 64, kPacks = 256;
  const auto w = randn((size_t)O * I * kWeights);
  std::vector<PackedF32> packs(omp_get_max_threads());
  for (auto _ : st) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < kPacks; ++i) {
      const float* src = w.data() + (size_t)(cold ? i % kWeights : omp_get_thread_num()) * O * I;
      PackedF32& p = packs[omp_get_thread_num()];
      if (trans) pack_b_f32_into(p, src, I, true, I, O, 1.f);  // B = Wᵀ [I, O]
      else pack_b_f32_into(p, src, I, false, O, I, 1.f);       // B = W [O, I]
    }
  }
  st.counters["GB/s"] = benchmark::Counter(4.0 * O * I * kPacks, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_pack_f32)->ArgsProduct({{0, 1}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();

// An expert's weight gradient in the bf16 full step, dW[512, 256] = dhᵀ · x for dh [250, 512] and x [250, 256]
// (both converted per call, core/gemm_bf16.h), one per thread at once; range(1) 1 = added to dW, 0 = written
// over it (as the full step does). range(0) says what comes from memory, as in a step (cycled through 64
// copies), a sum of: 1 dh, 2 x, 4 dW; 0 = one set per thread, all in cache.
void BM_weight_grad_bf16(benchmark::State& st) {
  if (!bf16_gemm_available()) return st.SkipWithError("this CPU has no AVX512-BF16");
  const int cold = (int)st.range(0);
  const bool add = st.range(1) != 0;
  constexpr int M = 512, Nw = 256, Kr = 250, kCopies = 64, kProducts = 256;
  const auto dh = randn((size_t)Kr * M * kCopies), x = randn((size_t)Kr * Nw * kCopies);
  AlignedFloats dw((size_t)M * Nw * kCopies);  // aligned, as a step's gradients
  for (auto _ : st) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < kProducts; ++i) {
      auto copy = [&](int bit) { return (size_t)(cold & bit ? i % kCopies : omp_get_thread_num()); };
      gemm_bf16_tn(M, Nw, Kr, dh.data() + copy(1) * Kr * M, M, x.data() + copy(2) * Kr * Nw, Nw,
                   dw.data() + copy(4) * M * Nw, Nw, add);
    }
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * Nw * Kr * kProducts, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_weight_grad_bf16)->ArgsProduct({{0, 1, 2, 4, 7}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();

// The weight gradients of the step's whole-batch products in bf16, dW[M, 256] = doutᵀ · inp for dout [1024, M]
// and inp [1024, 256], both threads on one product, written over dW (as the full step does): range(0) M, 256 for
// wo, 768 for wq·k·v, 8192 for the head. dout and inp are cycled through copies of 64 MB or more, so that they
// come from memory, as a step's do.
void BM_weight_grad_whole_batch(benchmark::State& st) {
  if (!bf16_gemm_available()) return st.SkipWithError("this CPU has no AVX512-BF16");
  const int M = (int)st.range(0);
  constexpr int N = 256, K = 1024;
  const int copies = std::max(2, (int)((64ll << 20) / ((int64_t)K * (M + N) * 4)));
  const auto dout = randn((size_t)K * M * copies, 0.01f), inp = randn((size_t)K * N * copies);
  AlignedFloats dw((size_t)M * N);
  int i = 0;
  for (auto _ : st) {
    const size_t c = (size_t)(i++ % copies);
    gemm_bf16_tn(M, N, K, dout.data() + c * K * M, M, inp.data() + c * K * N, N, dw.data(), N, false);
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_weight_grad_whole_batch)->Arg(256)->Arg(768)->Arg(8192)->Unit(benchmark::kMillisecond)->UseRealTime();

// The trained head's backward in the bf16 full step at 8x128 (dlnf = dlogits · W and dW = dlogitsᵀ · lnf), the
// logits cycled through two copies (64 MB, from memory as in a step): range(0) 0 = dlogits stored in fp32 and
// converted by each product, 1 = made in bf16 as the first product takes its rows, stored for the second, 2 = the
// same rows put into the pairs the second product's dot products take (PairRows; the step's path without AMX).
void BM_head_backward_bf16(benchmark::State& st) {
  if (!bf16_gemm_available()) return st.SkipWithError("this CPU has no AVX512-BF16");
  const int kind = (int)st.range(0);
  const bool in_bf16 = kind != 0, in_pairs = kind == 2;
  if (in_pairs && !tn_takes_pairs()) return st.SkipWithError("this CPU's weight gradients do not take pair rows");
  PairRows pairs;
  constexpr int kCopies = 2;
  const auto logits = randn((size_t)N * V * kCopies), lnf = randn((size_t)N * C), w = randn((size_t)V * C, 0.02f);
  std::vector<int32_t> targets(N);
  for (int n = 0; n < N; ++n) targets[n] = (n * 7919) % V;
  std::vector<float> lse((size_t)N * kCopies), losses(N), dlogits((size_t)N * V), dlnf((size_t)N * C);
  std::vector<uint16_t> d16((size_t)N * V);
  for (int c = 0; c < kCopies; ++c)
    xent_forward(losses.data(), logits.data() + (size_t)c * N * V, targets.data(), N, V, nullptr, lse.data() + c * N);
  const PackedB wp = pack_b_bf16(w.data(), C, false, V, C);
  AlignedFloats dw((size_t)V * C);
  const float scale = 1.f / N;
  int i = 0;
  for (auto _ : st) {
    const float* x = logits.data() + (size_t)(i % kCopies) * N * V;
    const float* rl = lse.data() + (size_t)(i++ % kCopies) * N;
    if (in_pairs) {
      size_pair_rows(pairs, N, V);
      gemm_bf16_produced(N, [&](int r, uint16_t* row) {
        xent_backward_row(row, x + (int64_t)r * V, targets[r], scale, V, rl[r]);
        put_pair_row(pairs, r, row);
      }, wp, dlnf.data(), C, false);
      gemm_bf16_tn(pairs, C, lnf.data(), C, dw.data(), C, false);
    } else if (in_bf16) {
      gemm_bf16_produced(N, [&](int r, uint16_t* row) {
        uint16_t* d = d16.data() + (int64_t)r * V;
        xent_backward_row(d, x + (int64_t)r * V, targets[r], scale, V, rl[r]);
        std::memcpy(row, d, sizeof(uint16_t) * V);
      }, wp, dlnf.data(), C, false);
      gemm_bf16_tn(V, C, N, d16.data(), V, lnf.data(), C, dw.data(), C, false);
    } else {
      xent_backward_write(dlogits.data(), x, targets.data(), scale, N, V, rl);
      gemm_bf16(N, dlogits.data(), V, wp, dlnf.data(), C, false);
      gemm_bf16_tn(V, C, N, dlogits.data(), V, lnf.data(), C, dw.data(), C, false);
    }
  }
  st.counters["GFLOP/s"] = benchmark::Counter(4.0 * N * V * C, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_head_backward_bf16)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// LoRA's rank-8 products on one projection at the step's 1024 rows (the forward's u = x·Aᵀ and out += s·u·Bᵀ,
// the backward's du = s·dout·B, dB += s·doutᵀ·u, dA += duᵀ·x and dx += du·A), through gemm() as the adapter
// calls them: range(0) picks the product, in that order.
void BM_lora_thin(benchmark::State& st) {
  trial_from_env();
  constexpr int R = 8;
  const int which = (int)st.range(0);
  const auto x = randn((size_t)N * C), dout = randn((size_t)N * C), a = randn((size_t)R * C, 0.1f),
             b = randn((size_t)C * R, 0.1f), u = randn((size_t)N * R);
  std::vector<float> out((size_t)N * C), du((size_t)N * R), da((size_t)R * C), db((size_t)C * R);
  for (auto _ : st) {
    switch (which) {
      case 0: gemm(false, true, N, R, C, 1.f, x.data(), C, a.data(), C, 0.f, du.data(), R); break;
      case 1: gemm(false, true, N, C, R, 0.5f, u.data(), R, b.data(), R, 1.f, out.data(), C); break;
      case 2: gemm(false, false, N, R, C, 0.5f, dout.data(), C, b.data(), R, 0.f, du.data(), R); break;
      case 3: gemm(true, false, C, R, N, 0.5f, dout.data(), C, u.data(), R, 1.f, db.data(), R); break;
      case 4: gemm(true, false, R, C, N, 1.f, u.data(), R, x.data(), C, 1.f, da.data(), C); break;
      default: gemm(false, false, N, C, R, 1.f, u.data(), R, a.data(), C, 1.f, out.data(), C); break;
    }
    benchmark::ClobberMemory();
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * N * C * R, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_lora_thin)->DenseRange(0, 5)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Two of them with their wide operand from memory, as in a step (cycled through 32 copies): range(0) 0 = u = x·Aᵀ,
// 1 = out += s·u·Bᵀ.
void BM_lora_thin_cold(benchmark::State& st) {
  constexpr int R = 8, kCopies = 32;
  const int which = (int)st.range(0);
  const auto x = randn((size_t)N * C * kCopies), b = randn((size_t)C * R, 0.1f), u = randn((size_t)N * R * kCopies);
  AlignedFloats out((size_t)N * C * kCopies), du((size_t)N * R * kCopies);
  int i = 0;
  for (auto _ : st) {
    const size_t c = (size_t)(i++ % kCopies);
    switch (which) {
      case 0: gemm(false, true, N, R, C, 1.f, x.data() + c * N * C, C, b.data(), C, 0.f, du.data() + c * N * R, R); break;
      default: gemm(false, true, N, C, R, 0.5f, u.data() + c * N * R, R, b.data(), R, 1.f, out.data() + c * N * C, C); break;
    }
    benchmark::ClobberMemory();
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * N * C * R, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_lora_thin_cold)->DenseRange(0, 1)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Whole model: forward only, and forward + backward for the norm-only regime.
struct ModelFixture {
  Model m = init_model(preset_config("moe-30m", 8192), [] {
    Vocab v = byte_vocab();
    for (int i = v.n_tokens(); i < 8192; ++i) {
      std::string token = "t";  // (not "t" + to_string(i): gcc 12 warns falsely of an overlapping memcpy there)
      token += std::to_string(i);
      v.tokens.push_back(token), v.scores.push_back(0), v.types.push_back(1);
    }
    return v;
  }(), 1);
  std::vector<int32_t> tok, tgt;
  ModelFixture() {
    std::vector<int32_t> stream(1 << 15);
    Rng r(2);
    for (auto& t : stream) t = (int32_t)r.below(8192);
    sample_windows(stream, B, T, 3, tok, tgt);
  }
};

void BM_model_forward_8x128(benchmark::State& st) {
  static ModelFixture f;
  auto ws = make_workspace();
  ForwardOptions fo;
  fo.for_backward = true;
  for (auto _ : st) forward(f.m, *ws, Batch{f.tok.data(), f.tgt.data(), B, T}, {}, fo);
}
BENCHMARK(BM_model_forward_8x128)->Unit(benchmark::kMillisecond);

void BM_model_forward_1x512(benchmark::State& st) {
  static ModelFixture f;
  auto ws = make_workspace();
  std::vector<int32_t> tok(f.tok.begin(), f.tok.begin() + 512);
  for (auto _ : st) forward(f.m, *ws, Batch{tok.data(), nullptr, 1, 512}, {}, ForwardOptions{});
}
BENCHMARK(BM_model_forward_1x512)->Unit(benchmark::kMillisecond);

void BM_model_backward_norm_8x128(benchmark::State& st) {
  static ModelFixture f;
  auto ws = make_workspace();
  ForwardOptions fo;
  fo.for_backward = true;
  const std::vector<bool> mask = trainable_mask(f.m, "norm");
  std::vector<float> grads(f.m.data.size());
  forward(f.m, *ws, Batch{f.tok.data(), f.tgt.data(), B, T}, {}, fo);
  for (auto _ : st) backward(f.m, *ws, {}, mask, grads.data(), nullptr, nullptr, 0.01f);
}
BENCHMARK(BM_model_backward_norm_8x128)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace heirloom

BENCHMARK_MAIN();
