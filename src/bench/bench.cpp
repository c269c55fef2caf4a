// The benchmark behind `heirloom bench`. Timings are medians of `repeats` runs after a warm-up.
// FLOPs counted: forward = 2·(active parameters, embedding excluded) per token + attention q·k and p·v;
// a full training step = 3× forward (the backward computes activation and weight gradients);
// norm-only = 2× forward + attention once more (activation gradients flow through every frozen matrix, weight
// gradients are skipped, and attention's backward has four products to its forward's two);
// LoRA = the same + the LoRA matmuls (negligible at rank 8).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <tuple>
#include <vector>

#include "bench/ceiling.h"
#include "core/experiment.h"
#include "core/gemm.h"
#include "core/fetch_ahead.h"
#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/op_time.h"
#include "core/product_time.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/thread_team.h"
#include "heirloom/adapter_train.h"
#include "heirloom/bench.h"
#include "heirloom/engine.h"
#include "heirloom/generate.h"
#include "heirloom/train.h"
#include "heirloom/vocab.h"
#include "model/workspace.h"

namespace heirloom {

namespace {

// The middle value, or the mean of the middle two: of two runs, not the slower one.
double median(std::vector<double> t) {
  std::sort(t.begin(), t.end());
  const size_t n = t.size();
  return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

constexpr int kTrialSteps = 40;  // a batch-step trial's steps: 20 pairs, about 10 s for a full step

// A trial's pairs of traced steps into the row's experiment fields. ceilings: the run measured the instruction
// ceiling every kTraceSteps steps (the personalize task's traced run).
void trial_result(BenchRow& row, bool ceilings) {
  std::vector<double> ratios, a, b;
  for (int k = 0; 2 * k + 1 < (int)row.step_ms.size(); ++k) {
    if (ceilings && k > 0 && 2 * k % kTraceSteps == 0) continue;  // its first step came right after a ceiling measurement
    const int on = trial_step_on(2 * k) ? 2 * k : 2 * k + 1;
    a.push_back(row.step_ms[4 * k + 1 - on]);
    b.push_back(row.step_ms[on]);
    ratios.push_back(b.back() / a.back());
  }
  if (ratios.empty()) return;
  row.experiment_ratio = median(ratios);
  row.experiment_pairs = (int)ratios.size();
  row.experiment_a_ms = median(a);
  row.experiment_b_ms = median(b);
  row.experiment_reached = experiment_reached();
}

struct Runs {
  double median = 0, best = 0, worst = 0;  // milliseconds
};

template <class F>
Runs time_runs(int repeats, F&& f) {
  f();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  return {median(t), *std::min_element(t.begin(), t.end()), *std::max_element(t.begin(), t.end())};
}

template <class F>
double median_ms(int repeats, F&& f) {
  return time_runs(repeats, f).median;
}

struct Timing {
  Runs runs;
  ProductTime products;  // of one more run, with the product clock on
  OpTime parts;          // of one more, with the part clock on
  double clocked_ms = 0, parts_ms = 0;
};

// The median of `repeats` runs; then one run more, not in the median, with the product clock on (its
// clock reads cost a little, so the headline timing runs without them), and one with the part clock on.
template <class F>
Timing timing(int repeats, F&& f) {
  Timing t;
  t.runs = time_runs(repeats, f);
  auto clocked = [&](auto& clock) {
    const auto a = std::chrono::steady_clock::now();
    f();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
    return std::pair{ms, clock.read()};
  };
  {
    const ProductClock clock;
    std::tie(t.clocked_ms, t.products) = clocked(clock);
  }
  const OpClock part_clock;
  std::tie(t.parts_ms, t.parts) = clocked(part_clock);
  return t;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

Vocab bench_vocab(int n) {  // a vocabulary of the preset's size: bytes, then filler pieces
  Vocab v = byte_vocab();
  for (int i = v.n_tokens(); i < n; ++i) {
    v.tokens.push_back("tok" + std::to_string(i));
    v.scores.push_back(0.f);
    v.types.push_back(kTokenNormal);
  }
  return v;
}

// The experts' products as a step meets them: every expert of every layer has its own weights (gate, up and
// down: n_layer·n_expert·3 matrices, here all of the ffn_up shape, more than the caches hold), taken in turn,
// one product per thread at once. Reported beside the peak, not in it: what the weights' trip from memory
// costs the expert products.
void streamed_expert_rows(BenchReport& rep, const ModelConfig& c, int M, int repeats, Rng& rng) {
  const int C = c.n_embd, F = c.n_ff, W = c.n_layer * c.n_expert * 3, threads = rep.threads;
  std::vector<float> A((size_t)M * C), B((size_t)F * C);
  for (auto& x : A) x = rng.normal();
  for (auto& x : B) x = rng.normal();
  std::vector<std::vector<float>> out(threads, std::vector<float>((size_t)M * F));
  const std::string shape = "ffn_up " + std::to_string(M) + "x" + std::to_string(F) + "x" + std::to_string(C) +
                            ", " + std::to_string(W) + " weights in turn, one per thread";
  auto row = [&](const std::string& kernel, auto&& product) {  // product(i, out): with weight i
    BenchRow r;
    r.name = kernel + " " + shape;
    r.ms = median_ms(repeats, [&] {
      run_team(threads, [&](int t, int n) {
        for (int i = t; i < W; i += n) product(i, out[t].data());
      });
    });
    r.gflop = 2.0 * M * F * C * W / 1e9;
    r.gflops = r.gflop / (r.ms / 1e3);
    rep.gemm_rows.push_back(r);
  };
  // Each kernel twice: its products as they come, and each also fetching the thread's next weight into L2.
  auto rows = [&](const std::string& kernel, const auto& w, auto&& product) {  // product(weight, out)
    row(kernel, [&](int i, float* y) { product(w[i], y); });
    row(kernel + " fetching ahead", [&](int i, float* y) {
      const int nx = i + threads;  // this thread's next weight (a team of `threads`)
      if (nx < W) fetch_ahead(w[nx].data.data(), (int64_t)(w[nx].data.size() * sizeof(w[nx].data[0])));
      product(w[i], y);
    });
  };
  if (f32_packed_available()) {
    std::vector<PackedF32> w;
    for (int i = 0; i < W; ++i) w.push_back(pack_b_f32(B.data(), C, true, C, F));
    rows("fp32 packed", w, [&](const PackedF32& b, float* y) { gemm_f32_packed(M, A.data(), C, b, y, F, false); });
  }
  if (bf16_gemm_available()) {
    std::vector<PackedB> w;
    for (int i = 0; i < W; ++i) w.push_back(pack_b_bf16(B.data(), C, true, C, F));
    rows("bf16 " + rep.bf16_kernel, w, [&](const PackedB& b, float* y) { gemm_bf16(M, A.data(), C, b, y, F, false); });
  }
}

}  // namespace

BenchReport run_bench(const BenchOptions& o, bool progress) {
  BenchReport rep;
  rep.preset = o.preset;
  rep.cpu = cpu_name();
  rep.threads = num_threads();
  const ModelConfig c = preset_config(o.preset);
  const int N = o.batch * o.seq, C = c.n_embd, D = c.head_dim();
  const int QKV = (c.n_head + 2 * c.n_head_kv) * D, F = c.n_ff;
  const int expert_rows = c.is_moe() ? N * c.n_expert_used / c.n_expert : N;
  auto want = [&](const char* task) {
    return o.only.empty() || std::find(o.only.begin(), o.only.end(), task) != o.only.end();
  };
  int tasks = 0;
  for (const char* t : {"sgemm", "full", "norm", "lora", "personalize", "forward", "generate"}) tasks += want(t);
  Progress bar(tasks, "bench " + o.preset, "task", progress);
  int done = 0;

  // sgemm on the model's own shapes (forward orientation: rows × out, inner = in).
  struct Shape { const char* name; int M, N, K; };
  const Shape shapes[] = {{"qkv", N, QKV, C}, {"attn_out", N, C, c.n_head * D}, {"ffn_up", expert_rows, F, C},
                          {"ffn_down", expert_rows, C, F}, {"head", N, c.n_vocab, C}};
  if (bf16_gemm_available()) rep.bf16_kernel = bf16_gemm_kind();
  rep.blas_kernel = blas_kernel();
  rep.gemm_fp32 = own_fp32_products() ? "heirloom panels" : "OpenBLAS";
  Rng rng(7);
  // The peaks and ceilings are measured before the tasks and again after them, the best of both kept: a slow
  // stretch of the VM during one measurement (a fifth or more here) would put rows over 100 % of it.
  // `keep_rows`: the first measurement's rows are reported.
  auto measure_peaks = [&](bool keep_rows) {
    for (const Shape& s : shapes) {
      std::vector<float> A((size_t)s.M * s.K), B((size_t)s.N * s.K), Cm((size_t)s.M * s.N);
      for (auto& x : A) x = rng.normal();
      for (auto& x : B) x = rng.normal();
      const std::string shape = std::string(s.name) + " " + std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K);
      // One row per kernel; `peak` keeps the best of its arithmetic. Packing of B (once per weight) is not timed.
      // `copies` products run at once (one per thread) count `copies` times the work.
      auto time_row = [&](const std::string& kernel, double& peak, auto&& product, int copies = 1) {
        BenchRow r;
        r.name = kernel + " " + shape;
        r.ms = median_ms(o.repeats * 4, product);
        r.gflop = 2.0 * s.M * s.N * s.K * copies / 1e9;
        r.gflops = r.gflop / (r.ms / 1e3);
        peak = std::max(peak, r.gflops);
        if (keep_rows) rep.gemm_rows.push_back(r);
      };
      time_row("sgemm", rep.sgemm_peak_gflops,
               [&] { gemm(false, true, s.M, s.N, s.K, 1.f, A.data(), s.K, B.data(), s.K, 0.f, Cm.data(), s.N); });
      // heirloom's own kernels also run one product per thread at once, as the experts do in a step (each thread
      // its own rows and output): a small product split across threads pays for the split, so this is often
      // the faster way, and the peak is the best of both.
      const int threads = rep.threads;
      std::vector<std::vector<float>> own_c(threads > 1 ? threads : 0, std::vector<float>(Cm.size()));
      auto per_thread = [&](auto&& product) {
        run_team(threads, [&](int t, int) { product(own_c[t].data()); });
      };
      if (f32_packed_available()) {  // heirloom's own fp32 kernel on panels
        const PackedF32 packed = pack_b_f32(B.data(), s.K, true, s.K, s.N);
        auto product = [&](float* out) { gemm_f32_packed(s.M, A.data(), s.K, packed, out, s.N, false); };
        time_row("fp32 packed", rep.sgemm_peak_gflops, [&] { product(Cm.data()); });
        if (threads > 1)
          time_row("fp32 packed, one per thread,", rep.sgemm_peak_gflops, [&] { per_thread(product); }, threads);
      }
      if (bf16_gemm_available()) {  // bf16 on AMX tiles or AVX512-BF16 dot products
        const PackedB packed = pack_b_bf16(B.data(), s.K, true, s.K, s.N);
        auto product = [&](float* out) { gemm_bf16(s.M, A.data(), s.K, packed, out, s.N, false); };
        const std::string kernel = "bf16 " + rep.bf16_kernel;
        time_row(kernel, rep.bf16_peak_gflops, [&] { product(Cm.data()); });
        if (threads > 1) time_row(kernel + ", one per thread,", rep.bf16_peak_gflops, [&] { per_thread(product); }, threads);
      }
    }
    const double all_threads = fma_ceiling_gflops(rep.threads, 3);
    rep.fp32_ceiling_gflops = std::max(rep.fp32_ceiling_gflops, all_threads);
    if (rep.threads > 1 && all_threads > 0) {
      const double one = fma_ceiling_gflops(1, 3), scaling = all_threads / one;
      rep.fp32_ceiling_one_thread_gflops = std::max(rep.fp32_ceiling_one_thread_gflops, one);
      rep.thread_scaling = rep.thread_scaling > 0 ? std::min(rep.thread_scaling, scaling) : scaling;
    }
    if (!bf16_amx_available())  // AMX: no tile ceiling yet
      rep.bf16_ceiling_gflops = std::max(rep.bf16_ceiling_gflops, bf16_dot_ceiling_gflops(rep.threads, 3));
  };
  if (want("sgemm")) {
    measure_peaks(true);
    if (c.is_moe()) streamed_expert_rows(rep, c, expert_rows, o.repeats, rng);
    bar.update(++done);
  }

  Model m = init_model(c, bench_vocab(c.n_vocab), 1);
  auto ws = make_workspace();
  std::vector<int32_t> tok, tgt;
  std::vector<int32_t> stream(1 << 16);
  for (auto& t : stream) t = (int32_t)rng.below(c.n_vocab);
  sample_windows(stream, o.batch, o.seq, 1, tok, tgt);
  const Batch batch{tok.data(), tgt.data(), o.batch, o.seq};
  const double fwd_flop = forward_flops_per_token(c, o.seq) * N;
  auto adapter_step_flop = [&](int T) { return 2.0 * forward_flops_per_token(c, T) + attention_flops_per_token(c, T); };

  // fp32 always; bf16 (the frozen base's products on AMX or AVX512-BF16) where the CPU has it. Each row's peak
  // fraction (set after the tasks) is against the measured peak of its own arithmetic.
  std::vector<Precision> precisions;
  if (o.precision != "bf16") precisions.push_back(Precision::fp32);
  if (o.precision != "fp32" && bf16_gemm_available()) precisions.push_back(Precision::bf16);
  auto add = [&](const std::string& name, Precision p, const Timing& t, double tokens, double flop) {
    const double ms = t.runs.median;
    BenchRow r;
    r.name = name + " [" + precision_name(p) + "]";
    r.ms = ms;
    r.best_ms = t.runs.best, r.worst_ms = t.runs.worst;
    r.tokens_per_s = tokens / (ms / 1e3);
    r.gflop = flop / 1e9;
    r.gflops = r.gflop / (ms / 1e3);
    const double machine_s = t.clocked_ms / 1e3 * rep.threads;
    auto split = [&](const ProductTime::Part& part, double& share, double& gflops) {
      if (machine_s > 0) share = part.core_seconds / machine_s;
      if (part.core_seconds > 0) gflops = part.flop / 1e9 / part.core_seconds * rep.threads;
    };
    split(t.products.total, r.product_share, r.product_gflops);
    for (int k = 0; k < kProductKinds; ++k) {
      if (t.products.by_kind[k].core_seconds <= 0) continue;
      BenchRow::Products& part = r.products_by_kind.emplace_back();
      part.kind = product_kind_name((ProductKind)k);
      split(t.products.by_kind[k], part.share, part.gflops);
    }
    constexpr size_t kShapesReported = 16;
    for (size_t i = 0; i < std::min(kShapesReported, t.products.by_shape.size()); ++i) {
      const ProductTime::Shape& x = t.products.by_shape[i];
      BenchRow::ShapeProducts& part = r.products_by_shape.emplace_back();
      part.kind = product_kind_name(x.kind);
      part.N = x.N, part.K = x.K, part.calls = x.calls, part.rows = x.rows;
      split(x.part, part.share, part.gflops);
    }
    double parts_s = 0, parts_flop = 0;
    auto add_part = [&](const std::string& part, double seconds, double flop) {
      if (t.parts_ms <= 0) return;
      r.parts.push_back({part, seconds * 1e3, seconds / (t.parts_ms / 1e3), flop / 1e9, seconds > 0 ? flop / 1e9 / seconds : 0});
    };
    for (const OpTime::Part& x : t.parts.parts)
      add_part(x.name, x.seconds, x.flop), parts_s += x.seconds, parts_flop += x.flop;
    if (!t.parts.parts.empty())
      add_part("the rest", std::max(0.0, t.parts_ms / 1e3 - parts_s), std::max(0.0, t.products.total.flop - parts_flop));
    r.precision = precision_name(p);
    rep.rows.push_back(r);
  };
  const std::string shape = std::to_string(o.batch) + "x" + std::to_string(o.seq);

  // A trial on the last row's batch steps (full, norm-only, LoRA) or forward passes: kTrialSteps, alternating.
  auto batch_trial = [&](auto&& step) {
    if (o.experiment.empty()) return;
    BenchRow& row = rep.rows.back();
    for (int s = 0; s < kTrialSteps; ++s) {
      set_experiment(o.experiment, trial_step_on(s));
      const auto s0 = std::chrono::steady_clock::now();
      step();
      row.step_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0).count());
    }
    set_experiment("", false);
    trial_result(row, false);
  };
  if (want("full")) {  // every weight trained; bf16 = mixed precision, the weights repacked every step (timed)
    for (Precision p : precisions) {
      BaseTrainer tr(m, trainable_mask(m, "all"), AdamwConfig{1e-5f}, p);
      add("train step full " + shape, p, timing(o.repeats, [&] { tr.step(m, *ws, batch, 1e-5f, 0.01f); }), N,
          3.0 * fwd_flop);
      batch_trial([&] { tr.step(m, *ws, batch, 1e-5f, 0.01f); });
    }
    bar.update(++done);
  }
  // Adapter training on the frozen base, as `personalize` runs it (AdamW included).
  auto adapter_step = [&](const std::string& name, AdapterKind kind, const LoraShape& ls) {
    for (Precision p : precisions) {
      Adapter a = make_adapter(m, kind, ls);
      AdapterTrainer tr(m, a, AdamwConfig{1e-5f}, p);
      add(name + " " + shape, p, timing(o.repeats, [&] { tr.step(*ws, batch, 1e-5f); }), N, adapter_step_flop(o.seq) * N);
      batch_trial([&] { tr.step(*ws, batch, 1e-5f); });
    }
    bar.update(++done);
  };
  if (want("norm")) adapter_step("train step norm-only", AdapterKind::norm, LoraShape{});
  if (want("lora")) {  // on q, k, v, o of every layer (A random, B zero, as LoRA starts)
    LoraShape ls;
    ls.rank = o.lora_rank;
    adapter_step("train step lora r" + std::to_string(ls.rank) + " q,k,v,o", AdapterKind::lora, ls);
  }
  if (want("personalize")) {  // the Bet 10 job's training: a norm adapter, personal_steps steps of one personal_seq window
    const int T = std::min(o.personal_seq, c.n_ctx);
    std::vector<int32_t> ptok, ptgt;
    auto pws = make_workspace();
    for (Precision p : precisions) {
      // Timed from the adapter's making and the trainer's construction (the one-off packing of the base).
      std::vector<double> setup;
      // after_step(s, ms): called after each step with its time (the traced run's). A trial's run pairs its
      // steps: step s on window 1000 + s rounded down to even, one of the two with the experiment on.
      auto run = [&](bool trial, auto&& after_step) {
        const auto t0 = std::chrono::steady_clock::now();
        Adapter a = make_adapter(m, AdapterKind::norm);
        AdapterTrainer tr(m, a, AdamwConfig{1e-2f}, p);
        setup.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        for (int s = 0; s < o.personal_steps; ++s) {
          sample_windows(stream, 1, T, 1000 + (trial ? s & ~1 : s), ptok, ptgt);
          if (trial) set_experiment(o.experiment, trial_step_on(s));
          const auto s0 = std::chrono::steady_clock::now();
          tr.step(*pws, Batch{ptok.data(), ptgt.data(), 1, T}, 1e-2f);
          after_step(s, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0).count());
        }
        set_experiment("", false);
      };
      const Timing t = timing((o.repeats + 1) / 2, [&] { run(false, [](int, double) {}); });  // 3 of the default 5: a middle run
      add("personalize norm " + std::to_string(o.personal_steps) + " steps x 1x" + std::to_string(T) + " (whole run)", p,
          t, (double)o.personal_steps * T, adapter_step_flop(T) * T * o.personal_steps);
      BenchRow& row = rep.rows.back();
      row.setup_ms = median(setup);
      if (o.trace || !o.experiment.empty()) {
        run(!o.experiment.empty(), [&](int s, double ms) {
          row.step_ms.push_back(ms);
          if ((s + 1) % kTraceSteps == 0)
            row.ceiling_trace.push_back(p == Precision::bf16 ? bf16_dot_ceiling_gflops(rep.threads, 1)
                                                             : fma_ceiling_gflops(rep.threads, 1));
        });
        if (!o.experiment.empty()) trial_result(row, true);
      }
    }
    bar.update(++done);
  }
  // Inference: each precision's rows use the model packed once beforehand (as `generate` does after loading).
  std::map<Precision, std::shared_ptr<const FrozenWeights>> packed;
  if (want("forward") || want("generate"))
    for (Precision p : precisions) packed[p] = pack_frozen(m, p, false);
  if (want("forward")) {
    const int T = std::min(o.forward_len, c.n_ctx);
    std::vector<int32_t> t1(stream.begin(), stream.begin() + T);
    auto fws = make_workspace();
    for (Precision p : precisions) {
      fws->frozen = packed[p];
      auto pass = [&] { forward(m, *fws, Batch{t1.data(), nullptr, 1, T}, {}, ForwardOptions{}); };
      add("forward 1x" + std::to_string(T), p, timing(o.repeats, pass), T, forward_flops_per_token(c, T) * T);
      batch_trial(pass);
    }
    bar.update(++done);
  }
  if (want("generate")) {
    std::vector<int32_t> prompt(stream.begin(), stream.begin() + 16);
    SamplingOptions so;
    so.temperature = 0.f;
    const int n = std::min(o.gen_tokens, c.n_ctx - 17);
    for (Precision p : precisions) {
      const auto pk = packed[p];
      add("generate " + std::to_string(n) + " tokens (KV cache, batch 1)", p,
          timing(std::max(1, o.repeats / 2), [&] { generate(m, prompt, n, so, nullptr, nullptr, pk); }), n,
          forward_flops_per_token(c, 16 + n) * n);
    }
    bar.update(++done);
  }
  if (want("sgemm") && !rep.rows.empty()) measure_peaks(false);
  for (BenchRow& r : rep.rows) {  // against the best peaks and ceilings of both measurements
    const bool bf16 = r.precision == precision_name(Precision::bf16);
    const double peak = bf16 ? rep.bf16_peak_gflops : rep.sgemm_peak_gflops;
    const double ceiling = bf16 ? rep.bf16_ceiling_gflops : rep.fp32_ceiling_gflops;
    r.peak_fraction = peak > 0 ? r.gflops / peak : 0;
    r.ceiling_fraction = ceiling > 0 ? r.gflops / ceiling : 0;
  }
  bar.finish();
  std::vector<std::string> setup_notes;
  for (const BenchRow& r : rep.rows)
    if (r.setup_ms > 0) {
      char line[200];
      std::snprintf(line, sizeof line, "%s: %.0f of its %.0f ms before the first step (making the adapter, packing the base)",
                    r.name.c_str(), r.setup_ms, r.ms);
      setup_notes.push_back(line);
    }
  rep.notes = {
      "ms = the median of --repeats timed runs after a warm-up (the whole-run and generate rows: of (repeats + 1) / 2 "
      "and max(1, repeats / 2); the mean of the middle two for an even count); --json also gives each row's best_ms and "
      "worst_ms",
      "forward FLOPs = 2 x active parameters (embedding excluded) per token + 4 x H x D x (T+1)/2 per token per layer (attention)",
      "train step FLOPs: full = 3 x forward; norm-only and LoRA = 2 x forward (weight gradients skipped) + attention's "
      "4 x H x D x (T+1)/2 per token per layer once more (its backward has four products to the forward's two)",
      "peak fraction = achieved GFLOP/s / best GEMM GFLOP/s measured above (and once more after the tasks, the best of "
      "both kept) on the model's own shapes, in the row's own "
      "arithmetic (fp32: the best of OpenBLAS sgemm and heirloom's packed fp32 kernel; bf16: heirloom's bf16 GEMM, on "
      "AMX tiles or AVX512-BF16 dot products; heirloom's "
      "kernels both as one product split across the threads and as one product per thread at once)",
      "in products = the share of the machine's time (wall x threads) inside matrix products, and products at = their "
      "FLOPs (as issued, masked attention entries included) over that time against the same peak; both from one more "
      "run with a clock on every product. A product called outside a parallel region holds every thread. --json also "
      "gives them by kernel (products_by_kind) and by kernel and shape N x K (products_by_shape, the 16 that took "
      "the most time; rows = the sum of M over the calls)",
      "bf16 = the frozen base's matrix products in bf16 with fp32 accumulation (AMX tiles where the CPU has them, else "
      "AVX512-BF16 dot products; attention's own products too from 256 keys on AMX, 128 on dot products); everything "
      "trained stays fp32 (the full step keeps fp32 master weights and repacks each block in bf16 as AdamW updates it)",
      "instruction ceiling = multiply-adds issued with every operand in a register (12 independent chains of 512-bit "
      "FMA, 32 FLOPs each, or of vdpbf16ps, 64 FLOPs each) on all threads at once, the best of 3 runs: no GEMM can "
      "exceed it (not measured for AMX tiles)",
      "'weights in turn' rows = the ffn_up product with a different weight each time, as many as the model's "
      "experts have (gate, up and down of every layer), one product per thread at once: the expert products as "
      "a step meets them, their weights coming from memory; shown beside the GEMM peak, not part of it. 'fetching "
      "ahead': each product also fetches the thread's next weight into L2 while it multiplies, as a step's expert "
      "products do (core/fetch_ahead.h)",
      "fp32 = the frozen base's matrix products on fp32 panels packed once (AVX-512) for norm, LoRA, personalize, "
      "forward and generate; the full step's products (weights change every step) through gemm(): heirloom's panels "
      "with the weight packed per call on an AVX-512 CPU, else OpenBLAS (gemm_fp32 in --json)"};
  rep.notes.insert(rep.notes.end(), setup_notes.begin(), setup_notes.end());
  return rep;
}

}  // namespace heirloom
