// The benchmark behind `heirloom bench`. Timings are medians of `repeats` runs after a warm-up.
// FLOPs counted: forward = 2·(active parameters, embedding excluded) per token + attention q·k and p·v;
// a full training step = 3× forward (the backward computes activation and weight gradients);
// norm-only = 2× forward (activation gradients flow through every frozen matrix, weight gradients are skipped);
// LoRA = 2× forward + the LoRA matmuls (negligible at rank 8).
#include <algorithm>
#include <chrono>
#include <fstream>
#include <vector>

#include "core/gemm.h"
#include "core/progress.h"
#include "core/rng.h"
#include "heirloom/bench.h"
#include "heirloom/engine.h"
#include "heirloom/generate.h"
#include "heirloom/train.h"
#include "heirloom/vocab.h"

namespace heirloom {

namespace {

template <class F>
double median_ms(int repeats, F&& f) {
  f();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
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
  Progress bar(4 + 7, "bench " + o.preset, "task", progress);
  int done = 0;

  // sgemm on the model's own shapes (forward orientation: rows × out, inner = in).
  struct Shape { const char* name; int M, N, K; };
  const Shape shapes[] = {{"qkv", N, QKV, C}, {"attn_out", N, C, c.n_head * D}, {"ffn_up", expert_rows, F, C},
                          {"ffn_down", expert_rows, C, F}, {"head", N, c.n_vocab, C}};
  Rng rng(7);
  for (const Shape& s : shapes) {
    std::vector<float> A((size_t)s.M * s.K), B((size_t)s.N * s.K), Cm((size_t)s.M * s.N);
    for (auto& x : A) x = rng.normal();
    for (auto& x : B) x = rng.normal();
    BenchRow r;
    r.name = std::string("sgemm ") + s.name + " " + std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K);
    r.ms = median_ms(o.repeats * 4, [&] { gemm(false, true, s.M, s.N, s.K, 1.f, A.data(), s.K, B.data(), s.K, 0.f, Cm.data(), s.N); });
    r.gflop = 2.0 * s.M * s.N * s.K / 1e9;
    r.gflops = r.gflop / (r.ms / 1e3);
    rep.sgemm_peak_gflops = std::max(rep.sgemm_peak_gflops, r.gflops);
    rep.gemm_rows.push_back(r);
  }
  bar.update(++done);

  Model m = init_model(c, bench_vocab(c.n_vocab), 1);
  auto ws = make_workspace();
  std::vector<int32_t> tok, tgt;
  std::vector<int32_t> stream(1 << 16);
  for (auto& t : stream) t = (int32_t)rng.below(c.n_vocab);
  sample_windows(stream, o.batch, o.seq, 1, tok, tgt);
  const Batch batch{tok.data(), tgt.data(), o.batch, o.seq};
  const double fwd_flop = forward_flops_per_token(c, o.seq) * N;

  auto add = [&](const std::string& name, double ms, double tokens, double flop) {
    BenchRow r{name, ms, tokens / (ms / 1e3), flop / 1e9, flop / 1e9 / (ms / 1e3), 0};
    r.peak_fraction = r.gflops / rep.sgemm_peak_gflops;
    rep.rows.push_back(r);
    bar.update(++done);
  };

  for (const char* regime : {"all", "norm"}) {
    BaseTrainer tr(m, trainable_mask(m, regime), AdamwConfig{1e-5f});
    const double ms = median_ms(o.repeats, [&] { tr.step(m, *ws, batch, 1e-5f, 0.01f); });
    add(std::string("train step ") + (std::string(regime) == "all" ? "full" : "norm-only") + " " +
            std::to_string(o.batch) + "x" + std::to_string(o.seq),
        ms, N, (std::string(regime) == "all" ? 3.0 : 2.0) * fwd_flop);
  }
  {  // LoRA-shaped trainables on q, k, v, o of every layer (A random, B zero, as LoRA starts)
    const int R = o.lora_rank, HD = c.n_head * D, KD = c.n_head_kv * D;
    const int in[4] = {C, C, C, HD}, out[4] = {HD, KD, KD, C};
    std::vector<std::vector<float>> As, Bs, dAs, dBs;
    AdapterView av;
    AdapterGrads ag;
    av.lora_rank = R;
    av.lora_scale = 2.0f;
    av.lora_a.resize(c.n_layer); av.lora_b.resize(c.n_layer); ag.lora_a.resize(c.n_layer); ag.lora_b.resize(c.n_layer);
    As.reserve(4 * c.n_layer); Bs.reserve(4 * c.n_layer); dAs.reserve(4 * c.n_layer); dBs.reserve(4 * c.n_layer);
    for (int l = 0; l < c.n_layer; ++l)
      for (int t = 0; t < 4; ++t) {
        auto& a = As.emplace_back((size_t)R * in[t]);
        for (auto& x : a) x = 0.01f * rng.normal();
        auto& b = Bs.emplace_back((size_t)out[t] * R, 0.f);
        av.lora_a[l][t] = a.data(); av.lora_b[l][t] = b.data();
        ag.lora_a[l][t] = dAs.emplace_back(a.size()).data(); ag.lora_b[l][t] = dBs.emplace_back(b.size()).data();
      }
    const AdapterView* ads[1] = {&av};
    const std::vector<bool> frozen = trainable_mask(m, "none");
    const double ms = median_ms(o.repeats, [&] {
      ForwardOptions fo;
      fo.for_backward = true;
      forward(m, *ws, batch, ads, fo);
      backward(m, *ws, ads, frozen, nullptr, &av, &ag, 0.f);
    });
    add("train step lora r" + std::to_string(R) + " q,k,v,o " + std::to_string(o.batch) + "x" + std::to_string(o.seq),
        ms, N, 2.0 * fwd_flop);
  }
  {
    const int T = std::min(o.forward_len, c.n_ctx);
    std::vector<int32_t> t1(stream.begin(), stream.begin() + T);
    auto fws = make_workspace();
    const double ms = median_ms(o.repeats, [&] { forward(m, *fws, Batch{t1.data(), nullptr, 1, T}, {}, ForwardOptions{}); });
    add("forward 1x" + std::to_string(T), ms, T, forward_flops_per_token(c, T) * T);
  }
  {
    std::vector<int32_t> prompt(stream.begin(), stream.begin() + 16);
    SamplingOptions so;
    so.temperature = 0.f;
    const int n = std::min(o.gen_tokens, c.n_ctx - 17);
    const double ms = median_ms(std::max(1, o.repeats / 2), [&] { generate(m, prompt, n, so); });
    add("generate " + std::to_string(n) + " tokens (KV cache, batch 1)", ms, n,
        forward_flops_per_token(c, 16 + n) * n);
  }
  bar.finish();
  rep.notes = {
      "forward FLOPs = 2 x active parameters (embedding excluded) per token + 4 x H x D x (T+1)/2 per token per layer (attention)",
      "train step FLOPs: full = 3 x forward; norm-only = 2 x forward (weight gradients skipped); LoRA = 2 x forward",
      "peak fraction = achieved GFLOP/s / best sgemm GFLOP/s measured above on the model's own shapes"};
  return rep;
}

}  // namespace heirloom
