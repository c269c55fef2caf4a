// Whole-model behaviour: overfitting one batch, KV-cache generation equal to a full forward, per-sequence
// adapters equal to running each sequence alone, zero-initialised LoRA equal to the base, save → load
// round trips, and bad input answered by heirloom::Error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/half.h"
#include "core/rng.h"
#include "heirloom/adapter.h"
#include "heirloom/engine.h"
#include "heirloom/error.h"
#include "heirloom/generate.h"
#include "heirloom/threads.h"
#include "heirloom/train.h"
#include "heirloom/vocab.h"
#include "model/frozen_weights.h"
#include "model/workspace.h"
#include "ops/xent.h"

namespace heirloom {
namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("heirloom_test_" + std::to_string(getpid()) + "_" + name)).string();
}

std::vector<int32_t> some_tokens(int n, int V, uint64_t seed) {
  Rng r(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)r.below(V);
  return t;
}

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TEST(Model, PresetSizesMatchTheIssue) {
  const ModelConfig moe = preset_config("moe-30m");
  // 2·V·C + C + L·(2C + 4C² + E·(3·C·F + C)), by hand: 31,478,016 — "about 31.5M"
  EXPECT_EQ(count_params(moe), 31'478'016);
  // head V·C + C + L·(2C + 4C² + K·3·C·F + E·C) = 10,506,496 — "about 10.5M active" (embedding is a lookup)
  EXPECT_EQ(count_active_params(moe), 10'506'496);
  // The bench's FLOPs: attention L·2·2·H·D·(T+1)/2 per token = 8·4·8·32·64.5 = 528,384 at T = 128, and the
  // forward pass 2 per multiply-add of every active weight on top.
  EXPECT_EQ(attention_flops_per_token(moe, 128), 528'384.0);
  EXPECT_EQ(forward_flops_per_token(moe, 128), 2.0 * 10'506'496 + 528'384);
  EXPECT_EQ(2 * moe.n_layer * moe.n_embd + moe.n_embd, 4352);  // norm gains: the 9 KB adapter
  EXPECT_NEAR(count_params(preset_config("dense-30m")), 30e6, 0.5e6);
  EXPECT_LT(count_params(preset_config("tiny")), 1'000'000);
  EXPECT_EQ(preset_config("tiny").n_expert, 4);
  EXPECT_EQ(preset_config("tiny").n_expert_used, 2);
  EXPECT_THROW(preset_config("huge"), Error);
}

TEST(Model, OverfitsOneRepeatedBatch) {
  Model m = init_model(preset_config("tiny"), byte_vocab(), 3);
  BaseTrainer tr(m, trainable_mask(m, "all"), AdamwConfig{3e-3f});
  auto ws = make_workspace();
  const int B = 2, T = 32;
  const std::vector<int32_t> seq = some_tokens(B * (T + 1), 259, 4);
  std::vector<int32_t> tok, tgt;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      tok.push_back(seq[b * (T + 1) + t]);
      tgt.push_back(seq[b * (T + 1) + t + 1]);
    }
  double first = 0, last = 0;
  for (int i = 0; i < 200; ++i) {
    last = tr.step(m, *ws, Batch{tok.data(), tgt.data(), B, T}, 3e-3f, 0.01f).loss;
    if (i == 0) first = last;
  }
  EXPECT_NEAR(first, std::log(259.0), 0.2);  // random init predicts ~uniformly
  EXPECT_LT(last, 0.05);                      // memorised
}

TEST(Model, KvCacheGenerationMatchesFullForward) {
  for (const char* preset : {"tiny", "tiny-dense"}) {
    Model m = init_model(preset_config(preset), byte_vocab(), 5);
    const int T = 20, V = m.config.n_vocab;
    const std::vector<int32_t> toks = some_tokens(T, V, 6);
    auto full = make_workspace();
    forward(m, *full, Batch{toks.data(), nullptr, 1, T}, {}, ForwardOptions{});
    auto inc = make_workspace();
    KvCache cache = make_kv_cache(m.config, 1, m.config.n_ctx);
    ForwardOptions fo;
    fo.cache = &cache;
    fo.last_logits_only = true;
    forward(m, *inc, Batch{toks.data(), nullptr, 1, 7}, {}, fo);  // a 7-token prompt, then one at a time
    EXPECT_LT(max_abs_diff(logits(*inc), logits(*full) + 6 * V, V), 1e-4f) << preset;
    for (int t = 7; t < T; ++t) {
      forward(m, *inc, Batch{&toks[t], nullptr, 1, 1}, {}, fo);
      EXPECT_LT(max_abs_diff(logits(*inc), logits(*full) + (size_t)t * V, V), 1e-4f) << preset << " t=" << t;
    }
    EXPECT_EQ(cache.n_pos, T);
  }
}

TEST(Model, GreedyGenerationIsDeterministicAndSamplingFollowsTheSeed) {
  Model m = init_model(preset_config("tiny"), byte_vocab(), 8);
  const std::vector<int32_t> prompt = encode(m.vocab, "hello", true);
  SamplingOptions g;
  g.temperature = 0;
  EXPECT_EQ(generate(m, prompt, 10, g), generate(m, prompt, 10, g));
  SamplingOptions s1, s2;
  s1.seed = 1; s2.seed = 2;
  s1.temperature = s2.temperature = 1.5f;
  s1.top_k = s2.top_k = 0;
  EXPECT_EQ(generate(m, prompt, 30, s1), generate(m, prompt, 30, s1));
  EXPECT_NE(generate(m, prompt, 30, s1), generate(m, prompt, 30, s2));
}

TEST(Model, SamplingRespectsTopKAndTopP) {
  const float lg[5] = {0.f, 3.f, 2.f, 1.f, -1.f};
  SamplingOptions o;
  o.temperature = 1.f;
  o.top_k = 1;
  for (float u : {0.f, 0.5f, 0.999f}) EXPECT_EQ(sample_token(lg, 5, o, u), 1);
  o.top_k = 0;
  o.top_p = 0.5f;  // p(1) ≈ 0.64 ≥ 0.5: only token 1 survives
  for (float u : {0.f, 0.5f, 0.999f}) EXPECT_EQ(sample_token(lg, 5, o, u), 1);
  o.top_p = 1.f;
  EXPECT_EQ(sample_token(lg, 5, o, 0.999f), 4);  // the least likely token sits at the top of the CDF
  o.temperature = 0.f;
  EXPECT_EQ(sample_token(lg, 5, o, 0.9f), 1);
}

// The sampler sorts only what top_k and top_p need; it must pick what a plain full sort picks: the CDF runs
// over the kept tokens in descending probability (in token order when neither limit is set).
TEST(Model, SamplingPicksWhatAFullSortPicks) {
  const int V = 3000;
  Rng r(7);
  std::vector<float> lg(V);
  for (float& x : lg) x = 2.f * r.normal();
  lg[5] = lg[9];  // a tie: the lower token id comes first
  auto reference = [&](const SamplingOptions& o, float u) {
    std::vector<int32_t> idx(V);
    std::iota(idx.begin(), idx.end(), 0);
    const bool sorted = o.top_k > 0 || o.top_p < 1.f;
    if (sorted) std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return lg[a] > lg[b]; });
    const int k = o.top_k > 0 ? o.top_k : V;
    const float mx = *std::max_element(lg.begin(), lg.end());
    std::vector<double> p(k);
    double sum = 0;
    for (int i = 0; i < k; ++i) sum += (p[i] = std::exp((double)(lg[idx[i]] - mx) / o.temperature));
    int keep = k;
    double acc = 0;
    for (int i = 0; i < k && o.top_p < 1.f; ++i)
      if ((acc += p[i]) / sum >= o.top_p) { keep = i + 1; break; }
    double kept = 0;
    for (int i = 0; i < keep; ++i) kept += p[i];
    double x = u * kept;
    for (int i = 0; i < keep; ++i)
      if ((x -= p[i]) < 0) return idx[i];
    return idx[keep - 1];
  };
  int checked = 0;
  for (int top_k : {0, 1, 40, 500})
    for (float top_p : {1.f, 0.95f, 0.5f, 0.01f})
      for (float temp : {0.7f, 1.5f}) {
        SamplingOptions o;
        o.top_k = top_k, o.top_p = top_p, o.temperature = temp;
        for (int i = 0; i < 50; ++i) {
          const float u = r.uniform();
          ASSERT_EQ(sample_token(lg.data(), V, o, u), reference(o, u)) << top_k << " " << top_p << " " << temp << " u=" << u;
          ++checked;
        }
      }
  EXPECT_EQ(checked, 1600);
}

// Builds a rank-2 LoRA + norm + steer adapter for m with random values (B zero if zero_b).
struct TestAdapter {
  std::vector<std::vector<float>> mats;
  std::vector<float> norm, steer;
  AdapterView view;
  TestAdapter(const ModelConfig& c, uint64_t seed, bool zero_b, bool with_norm_steer, int R = 2) {
    Rng r(seed);
    const int L = c.n_layer, C = c.n_embd, HD = c.n_head * c.head_dim(), KD = c.n_head_kv * c.head_dim();
    const int in[4] = {C, C, C, HD}, out[4] = {HD, KD, KD, C};
    view.lora_rank = R;
    view.lora_scale = 1.5f;
    view.lora_a.resize(L);
    view.lora_b.resize(L);
    mats.reserve(8 * L);
    for (int l = 0; l < L; ++l)
      for (int t = 0; t < 4; ++t) {
        auto& a = mats.emplace_back(R * in[t]);
        for (auto& x : a) x = 0.1f * r.normal();
        auto& b = mats.emplace_back(out[t] * R);
        for (auto& x : b) x = zero_b ? 0.f : 0.1f * r.normal();
        view.lora_a[l][t] = a.data();
        view.lora_b[l][t] = b.data();
      }
    if (with_norm_steer) {
      norm.resize((2 * L + 1) * C);
      steer.resize(L * C);
      for (auto& x : norm) x = 0.1f * r.normal();
      for (auto& x : steer) x = 0.1f * r.normal();
      view.norm_delta = norm.data();
      view.steer = steer.data();
    }
  }
};

TEST(Model, ZeroInitialisedLoraGivesTheBaseLogits) {
  Model m = init_model(preset_config("tiny"), byte_vocab(), 9);
  const std::vector<int32_t> toks = some_tokens(2 * 16, 259, 10);
  TestAdapter a(m.config, 11, true, false);
  const AdapterView* ads[1] = {&a.view};
  auto w1 = make_workspace(), w2 = make_workspace();
  forward(m, *w1, Batch{toks.data(), nullptr, 2, 16}, {}, ForwardOptions{});
  forward(m, *w2, Batch{toks.data(), nullptr, 2, 16}, ads, ForwardOptions{});
  EXPECT_EQ(max_abs_diff(logits(*w1), logits(*w2), 2 * 16 * 259), 0.f);
}

TEST(Model, PerSequenceAdaptersEqualEachSequenceAlone) {
  Model m = init_model(preset_config("tiny"), byte_vocab(), 12);
  const int T = 16, V = 259;
  const std::vector<int32_t> toks = some_tokens(3 * T, V, 13);
  TestAdapter a(m.config, 14, false, true), b(m.config, 15, false, true);
  const AdapterView* mixed[3] = {&a.view, nullptr, &b.view};
  auto ws = make_workspace();
  forward(m, *ws, Batch{toks.data(), nullptr, 3, T}, mixed, ForwardOptions{});
  const std::vector<float> batched(logits(*ws), logits(*ws) + 3 * T * V);
  for (int s = 0; s < 3; ++s) {
    auto one = make_workspace();
    const AdapterView* ad[1] = {mixed[s]};
    forward(m, *one, Batch{toks.data() + s * T, nullptr, 1, T}, mixed[s] ? std::span<const AdapterView* const>(ad, 1) : std::span<const AdapterView* const>(), ForwardOptions{});
    // The MoE groups tokens by expert across the batch, so sums happen in another order: allow float noise.
    EXPECT_LT(max_abs_diff(batched.data() + s * T * V, logits(*one), T * V), 2e-5f) << "sequence " << s;
  }
  // And the adapter really changes the output.
  auto base = make_workspace();
  forward(m, *base, Batch{toks.data(), nullptr, 1, T}, {}, ForwardOptions{});
  EXPECT_GT(max_abs_diff(batched.data(), logits(*base), T * V), 1e-3f);
}

// Continuous batching: sequences with different adapters, started at different times (each with its own
// cache at its own position), decode together with exactly the logits each gets alone. Six sequences: more
// rows than the small-batch kernels take at once.
TEST(Model, RaggedBatchedDecodingEqualsEachSequenceAloneBitForBit) {
  constexpr int NS = 6;
  // Unpacked fp32 (the BLAS under RowExact), fp32 panels, bf16 tiles.
  for (const char* preset : {"tiny", "tiny-dense", "tiny/fp32", "tiny-dense/fp32", "tiny/bf16", "tiny-dense/bf16"}) {
    const std::string name = preset;
    const bool bf16 = name.ends_with("/bf16"), packs = name.find('/') != std::string::npos;
    if (bf16 && !bf16_available()) continue;  // fp32 only on CPUs without AVX512-BF16
    Model m = init_model(preset_config(name.substr(0, name.find('/'))), byte_vocab(), 21);
    std::shared_ptr<FrozenWeights> packed = packs ? pack_frozen(m, bf16 ? Precision::bf16 : Precision::fp32) : nullptr;
    auto make_ws = [&] {
      auto w = make_workspace();
      w->frozen = packed;
      return w;
    };
    const int V = m.config.n_vocab, steps = 6;
    TestAdapter a(m.config, 22, false, true), b(m.config, 23, false, true);
    const AdapterView* who[NS] = {&a.view, nullptr, &b.view, &b.view, &a.view, nullptr};
    const int prompt_len[NS] = {9, 3, 14, 1, 20, 7};
    std::vector<std::vector<int32_t>> toks;
    for (int s = 0; s < NS; ++s) toks.push_back(some_tokens(prompt_len[s] + steps, V, 30 + s));
    // Alone: prompt, then one token at a time (a batch of one).
    std::vector<std::vector<float>> alone(NS);
    for (int s = 0; s < NS; ++s) {
      auto ws = make_ws();
      KvCache kv = make_kv_cache(m.config, 1, m.config.n_ctx);
      ForwardOptions fo;
      fo.cache = &kv;
      fo.last_logits_only = true;
      const AdapterView* const ad = who[s];
      forward(m, *ws, Batch{toks[s].data(), nullptr, 1, prompt_len[s]}, one_adapter(ad), fo);
      KvCache plain = kv;  // the same steps through the shared-position cache agree to float noise
      auto ws_plain = make_ws();
      KvCache* mine[1] = {&kv};
      ForwardOptions ragged;
      ragged.caches = mine;
      ragged.last_logits_only = true;
      fo.cache = &plain;
      for (int i = 0; i < steps; ++i) {
        forward(m, *ws, Batch{&toks[s][prompt_len[s] + i], nullptr, 1, 1}, one_adapter(ad), ragged);
        alone[s].insert(alone[s].end(), logits(*ws), logits(*ws) + V);
        forward(m, *ws_plain, Batch{&toks[s][prompt_len[s] + i], nullptr, 1, 1}, one_adapter(ad), fo);
        EXPECT_LT(max_abs_diff(logits(*ws_plain), logits(*ws), V), 1e-4f);
      }
    }
    // Together: each prompt alone into its own cache, then every step as one batch of all sequences.
    std::vector<KvCache> kvs;
    for (int s = 0; s < NS; ++s) kvs.push_back(make_kv_cache(m.config, 1, m.config.n_ctx));
    for (int s = 0; s < NS; ++s) {
      auto ws = make_ws();
      ForwardOptions fo;
      fo.cache = &kvs[s];
      fo.last_logits_only = true;
      const AdapterView* const ad = who[s];
      forward(m, *ws, Batch{toks[s].data(), nullptr, 1, prompt_len[s]}, one_adapter(ad), fo);
    }
    KvCache* caches[NS];
    for (int s = 0; s < NS; ++s) caches[s] = &kvs[s];
    ForwardOptions fo;
    fo.caches = caches;
    fo.last_logits_only = true;
    auto ws = make_ws();
    for (int i = 0; i < steps; ++i) {
      int32_t step[NS];
      for (int s = 0; s < NS; ++s) step[s] = toks[s][prompt_len[s] + i];
      forward(m, *ws, Batch{step, nullptr, NS, 1}, who, fo);
      for (int s = 0; s < NS; ++s)
        EXPECT_EQ(0, std::memcmp(logits(*ws) + (size_t)s * V, alone[s].data() + (size_t)i * V, sizeof(float) * V))
            << preset << " sequence " << s << " step " << i << " differs by "
            << max_abs_diff(logits(*ws) + (size_t)s * V, alone[s].data() + (size_t)i * V, V);
    }
    for (int s = 0; s < NS; ++s) EXPECT_EQ(kvs[s].n_pos, prompt_len[s] + steps);
    // A shared or missing cache is refused.
    caches[1] = nullptr;
    int32_t step[NS] = {1, 2, 3, 4, 5, 6};
    EXPECT_THROW(forward(m, *ws, Batch{step, nullptr, NS, 1}, who, fo), Error);
  }
}

// Packs for inference only (generation, serving) hold half the memory, give the same forward pass bit for
// bit as the packs a trainer keeps, and backward refuses them.
TEST(Model, InferencePacksForwardTheSameAndRefuseBackward) {
  Model m = init_model(preset_config("tiny"), byte_vocab(), 27);
  const int T = 20, V = 259;
  const std::vector<int32_t> tok = some_tokens(2 * T, V, 28), tgt = some_tokens(2 * T, V, 29);
  for (Precision p : {Precision::fp32, Precision::bf16}) {
    if (p == Precision::bf16 && !bf16_available()) continue;
    SCOPED_TRACE(precision_name(p));
    const auto train = pack_frozen(m, p), infer = pack_frozen(m, p, false);
    if (!train) continue;  // fp32 without AVX-512: nothing is packed
    auto ws_train = make_workspace(), ws_infer = make_workspace();
    ws_train->frozen = train;
    ws_infer->frozen = infer;
    forward(m, *ws_train, Batch{tok.data(), tgt.data(), 2, T}, {}, ForwardOptions{});
    forward(m, *ws_infer, Batch{tok.data(), tgt.data(), 2, T}, {}, ForwardOptions{});
    EXPECT_EQ(max_abs_diff(logits(*ws_train), logits(*ws_infer), 2 * T * V), 0.f);
    ForwardOptions fo;
    fo.for_backward = true;
    forward(m, *ws_infer, Batch{tok.data(), tgt.data(), 2, T}, {}, fo);
    EXPECT_THROW(backward(m, *ws_infer, {}, std::vector<bool>(m.tensors.size(), false), nullptr, nullptr, nullptr, 0.f),
                 Error);
  }
}

// A forward that no backward follows keeps two layers' activations in turn, and runs the head on the rows that
// have a target only: every row's loss and logits are the numbers of a training forward, on any workspace
// history (training, evaluation, evaluation with ignored targets, training again).
TEST(Model, AForwardWithoutBackwardScoresEachRowAsTrainingDoes) {
  ModelConfig c = preset_config("tiny");
  c.n_layer = 5;  // odd, more than two: the last layer's output goes to the head from either buffer
  Model m = init_model(c, byte_vocab(), 31);
  const int B = 2, T = 24, V = 259, N = B * T;
  const std::vector<int32_t> tok = some_tokens(N, V, 32), tgt = some_tokens(N, V, 33);
  std::vector<int32_t> half = tgt;
  for (int r = 0; r < N; ++r)
    if (r % T < T / 2) half[r] = kIgnoreIndex;  // a sliding window's first half
  for (Precision p : {Precision::fp32, Precision::bf16}) {
    if (p == Precision::bf16 && !bf16_available()) continue;
    SCOPED_TRACE(precision_name(p));
    auto ws = make_workspace();
    ws->frozen = pack_frozen(m, p);  // null for fp32 without AVX-512: the BLAS
    ForwardOptions train;
    train.for_backward = true;
    const ForwardResult rt = forward(m, *ws, Batch{tok.data(), tgt.data(), B, T}, {}, train);
    const std::vector<float> loss_t(token_losses(*ws), token_losses(*ws) + N), logit_t(logits(*ws), logits(*ws) + (size_t)N * V);
    const ForwardResult re = forward(m, *ws, Batch{tok.data(), tgt.data(), B, T}, {}, ForwardOptions{});
    EXPECT_EQ(re.n_scored, N);
    EXPECT_EQ(max_abs_diff(token_losses(*ws), loss_t.data(), N), 0.f);
    EXPECT_EQ(max_abs_diff(logits(*ws), logit_t.data(), (size_t)N * V), 0.f);
    const ForwardResult rh = forward(m, *ws, Batch{tok.data(), half.data(), B, T}, {}, ForwardOptions{});
    EXPECT_EQ(rh.n_scored, N / 2);
    double sum = 0;
    for (int r = 0, i = 0; r < N; ++r) {
      if (half[r] == kIgnoreIndex) {
        EXPECT_EQ(token_losses(*ws)[r], 0.f) << r;
        continue;
      }
      EXPECT_EQ(token_losses(*ws)[r], loss_t[r]) << r;
      EXPECT_EQ(max_abs_diff(logits(*ws) + (size_t)i * V, logit_t.data() + (size_t)r * V, V), 0.f) << r;
      sum += loss_t[r], ++i;
    }
    EXPECT_NEAR(rh.loss_sum, sum, 1e-9 * sum);
    const ForwardResult rt2 = forward(m, *ws, Batch{tok.data(), tgt.data(), B, T}, {}, train);
    EXPECT_EQ(rt2.loss_sum, rt.loss_sum);
    EXPECT_EQ(max_abs_diff(token_losses(*ws), loss_t.data(), N), 0.f);
  }
}

// Training one adapter inside a batch that mixes adapters of different LoRA ranks gives the same
// gradient as training it on its sequence alone.
TEST(Model, AdapterGradientsInAMixedBatchEqualTheSequenceAlone) {
  Model m = init_model(preset_config("tiny-dense"), byte_vocab(), 22);
  const int T = 12, V = 259, L = m.config.n_layer;
  const std::vector<int32_t> tok = some_tokens(2 * T, V, 23), tgt = some_tokens(2 * T, V, 24);
  TestAdapter a(m.config, 25, false, true, 5), b(m.config, 26, false, true, 2);
  std::shared_ptr<const FrozenWeights> frozen;  // null: fp32 products; else the base's bf16 packs
  auto grads_of = [&](std::span<const AdapterView* const> ads, const int32_t* tk, const int32_t* tg, int B) {
    std::vector<std::vector<float>> g;
    AdapterGrads ag;
    ag.lora_a.resize(L);
    ag.lora_b.resize(L);
    g.reserve(8 * L);
    for (int l = 0; l < L; ++l)
      for (int t = 0; t < 4; ++t) {
        ag.lora_a[l][t] = g.emplace_back(a.mats[(l * 4 + t) * 2].size()).data();
        ag.lora_b[l][t] = g.emplace_back(a.mats[(l * 4 + t) * 2 + 1].size()).data();
      }
    auto ws = make_workspace();
    ws->frozen = frozen;
    ForwardOptions fo;
    fo.for_backward = true;
    forward(m, *ws, Batch{tk, tg, B, T}, ads, fo);
    backward(m, *ws, ads, std::vector<bool>(m.tensors.size(), false), nullptr, &a.view, &ag, 0.f);
    return g;
  };
  // Alone: targets of sequence 0 only. Mixed: sequence 1 (adapter b) has no targets, so the loss is the same.
  // Alone, the one adapter's LoRA goes into the base's products (on bf16 packs, inside them: core/rank_update.h);
  // mixed, each sequence's is added to its own rows after them.
  std::vector<int32_t> tgt_mixed(tgt.begin(), tgt.begin() + T);
  tgt_mixed.resize(2 * T, -1);
  const AdapterView* one[1] = {&a.view};
  const AdapterView* mixed[2] = {&a.view, &b.view};
  for (Precision p : {Precision::fp32, Precision::bf16}) {
    if (p == Precision::bf16 && !bf16_available()) continue;
    SCOPED_TRACE(precision_name(p));
    frozen = p == Precision::bf16 ? pack_frozen(m, p) : nullptr;
    const auto alone = grads_of(one, tok.data(), tgt.data(), 1);
    const auto together = grads_of(mixed, tok.data(), tgt_mixed.data(), 2);
    for (size_t i = 0; i < alone.size(); ++i)
      EXPECT_LT(max_abs_diff(alone[i].data(), together[i].data(), alone[i].size()), 1e-5f) << "tensor " << i;
  }
}

TEST(Model, SaveLoadRoundTripsBitExactly) {
  for (const char* preset : {"tiny", "tiny-dense"}) {
    Model m = init_model(preset_config(preset), byte_vocab(), 16);
    const std::string p = tmp_path(std::string(preset) + ".gguf");
    save_model(m, p, StorageType::f32);
    Model r = load_model(p);
    EXPECT_EQ(r.data, m.data);
    EXPECT_TRUE(r.data.mapped()) << "an F32 file in the model's own order is used where it is mapped";
    EXPECT_EQ(r.fingerprint(), m.fingerprint());
    r.data[0] += 1.f;  // a private mapping: the change stays in this process
    EXPECT_EQ(load_model(p).data, m.data);
    EXPECT_FALSE(clone_model(r).data.mapped());
    EXPECT_EQ(r.config.n_expert, m.config.n_expert);
    EXPECT_EQ(r.vocab.tokens, m.vocab.tokens);
    EXPECT_FALSE(std::filesystem::exists(p + ".tmp." + std::to_string(getpid())));
    save_model(m, p, StorageType::f16);  // F16 matrices: each value is the nearest half
    Model h = load_model(p);
    EXPECT_FALSE(h.data.mapped());  // converted on load
    for (const auto& s : m.tensors)
      for (int64_t i = 0; i < s.numel; i += 97) {
        const float v = m.data[s.offset + i];
        const bool f32 = s.is_norm() || s.role == TensorRole::ffn_gate_inp;  // router stays F32, as in llama.cpp
        EXPECT_EQ(h.data[s.offset + i], f32 ? v : f16_to_f32(f32_to_f16(v))) << s.name;
      }
    std::filesystem::remove(p);
  }
}

// The fingerprint is FNV-1a over the weights' bytes (adapters in the world carry it), remembered between calls
// only while every byte is the same: a change anywhere, or a change undone, gives the value of the bytes now.
TEST(Model, FingerprintIsFnv1aOfTheBytesNowHoweverOftenAsked) {
  Model m = init_model(preset_config("tiny"), Vocab{}, 3);
  auto fnv = [&] {
    uint64_t h = 1469598103934665603ull;
    const auto* b = reinterpret_cast<const unsigned char*>(m.data.data());
    for (size_t i = 0; i < m.data.size() * sizeof(float); ++i) h = (h ^ b[i]) * 1099511628211ull;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
    return std::string(buf);
  };
  const std::string first = m.fingerprint();
  EXPECT_EQ(first, fnv());
  EXPECT_EQ(m.fingerprint(), first);
  for (size_t i : {size_t{0}, m.data.size() / 2 + 3, m.data.size() - 1}) {  // a word's first, middle, last
    const float was = m.data[i];
    m.data[i] = std::nextafter(was, 2.f);  // the smallest change a weight can make
    EXPECT_NE(m.fingerprint(), first) << "weight " << i;
    EXPECT_EQ(m.fingerprint(), fnv()) << "weight " << i;
    m.data[i] = was;
    EXPECT_EQ(m.fingerprint(), first) << "weight " << i;
  }
  Model moved = std::move(m);
  EXPECT_EQ(moved.fingerprint(), first);
}

TEST(Model, BadFilesAreClearErrors) {
  Model m = init_model(preset_config("tiny"), byte_vocab(), 17);
  const std::string p = tmp_path("bad.gguf");
  save_model(m, p, StorageType::f32);
  std::vector<char> bytes(std::filesystem::file_size(p));
  std::ifstream(p, std::ios::binary).read(bytes.data(), bytes.size());
  auto write = [&](const std::vector<char>& b) { std::ofstream(p, std::ios::binary).write(b.data(), b.size()); };
  for (size_t cut : {size_t(0), size_t(3), size_t(100), bytes.size() / 2, bytes.size() - 1}) {
    write(std::vector<char>(bytes.begin(), bytes.begin() + cut));
    EXPECT_THROW(load_model(p), Error) << "truncated at " << cut;
  }
  Rng r(1);
  for (int i = 0; i < 200; ++i) {  // corrupt header bytes: an error or a valid load, never a crash
    std::vector<char> b = bytes;
    for (int k = 0; k < 3; ++k) b[r.below(4096)] ^= (char)(1 + r.below(255));
    write(b);
    try { load_model(p); } catch (const Error&) {}
  }
  EXPECT_THROW(load_model(tmp_path("does_not_exist.gguf")), Error);
  std::filesystem::remove(p);
}

TEST(Model, BadInputsToForwardAreErrors) {
  Model m = init_model(preset_config("tiny"), byte_vocab(), 18);
  auto ws = make_workspace();
  std::vector<int32_t> toks(8, 5);
  toks[3] = 259;  // out of range
  EXPECT_THROW(forward(m, *ws, Batch{toks.data(), nullptr, 1, 8}, {}, ForwardOptions{}), Error);
  toks[3] = -2;
  EXPECT_THROW(forward(m, *ws, Batch{toks.data(), nullptr, 1, 8}, {}, ForwardOptions{}), Error);
  std::vector<int32_t> longer(m.config.n_ctx + 1, 5);
  EXPECT_THROW(forward(m, *ws, Batch{longer.data(), nullptr, 1, (int)longer.size()}, {}, ForwardOptions{}), Error);
  ModelConfig bad = preset_config("tiny");
  bad.n_head = 5;  // does not divide 64
  EXPECT_THROW(bad.validate(), Error);
}

}  // namespace
}  // namespace heirloom

namespace heirloom {
namespace {

TEST(Model, DeterministicForAGivenThreadCount) {
  Model m = init_model(preset_config("tiny"), byte_vocab(), 19);
  const std::vector<int32_t> tok = some_tokens(4 * 32, 259, 20), tgt = some_tokens(4 * 32, 259, 21);
  const int before = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    std::vector<std::vector<float>> grads;
    for (int run = 0; run < 2; ++run) {
      auto ws = make_workspace();
      ForwardOptions fo;
      fo.for_backward = true;
      forward(m, *ws, Batch{tok.data(), tgt.data(), 4, 32}, {}, fo);
      grads.emplace_back(m.data.size(), 0.f);
      backward(m, *ws, {}, std::vector<bool>(m.tensors.size(), true), grads.back().data(), nullptr, nullptr, 0.01f);
    }
    EXPECT_EQ(grads[0], grads[1]) << threads << " threads";
  }
  set_num_threads(before);
}

}  // namespace
}  // namespace heirloom
