// BaseTrainer's fused update: AdamW and (bf16) repacking each block of rows right
// after it changes. Checked against the plain pieces: adamw_update per tensor and a fresh pack of the weights.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"
#include "heirloom/adapter.h"
#include "heirloom/engine.h"
#include "heirloom/error.h"
#include "heirloom/train.h"
#include "heirloom/vocab.h"
#include "model/frozen_weights.h"
#include "model/workspace.h"
#include "ops/adamw.h"

namespace heirloom {
namespace {

struct Data {
  std::vector<int32_t> tok, tgt;
  Batch batch(int B, int T) const { return Batch{tok.data(), tgt.data(), B, T}; }
};

Data some_batch(int n, int V, uint64_t seed) {
  Rng r(seed);
  Data d;
  for (int i = 0; i < n; ++i) d.tok.push_back((int32_t)r.below(V)), d.tgt.push_back((int32_t)r.below(V));
  return d;
}

bool same(const PackedWeight& a, const PackedWeight& b) {
  return a.fwd.data == b.fwd.data && a.bwd.data == b.bwd.data && a.fwd.K == b.fwd.K && a.fwd.N == b.fwd.N;
}

// How many of the packed matrices differ from a fresh pack of m (every field of every layer, and the head).
int stale_packs(const FrozenWeights& p, const Model& m) {
  const auto fresh = pack_frozen(m, Precision::bf16);
  int stale = !same(p.output, fresh->output);
  for (size_t l = 0; l < p.layers.size(); ++l) {
    const FrozenLayer &a = p.layers[l], &b = fresh->layers[l];
    stale += !same(a.wq, b.wq) + !same(a.wo, b.wo) + !same(a.ffn_gate, b.ffn_gate) + !same(a.ffn_up, b.ffn_up) +
             !same(a.ffn_down, b.ffn_down);
    for (size_t e = 0; e < a.gate.size(); ++e) stale += !same(a.gate[e], b.gate[e]) + !same(a.up[e], b.up[e]) + !same(a.down[e], b.down[e]);
  }
  return stale;
}

// The step's update equals adamw_update on each trainable tensor, from the gradients backward gives, clipped
// by their norm. The gradients are written over the last step's (never cleared): afterwards they are this
// step's, and the frozen tensors' stay zero. (fp32 and bf16; all and norm-only.)
TEST(BaseTrainer, UpdateIsAdamwPerTensorOnTheGradientsWrittenOverTheLast) {
  for (Precision p : {Precision::fp32, Precision::bf16}) {
    if (p == Precision::bf16 && !bf16_available()) continue;
    for (const char* regime : {"all", "norm"}) {
      SCOPED_TRACE(std::string(precision_name(p)) + " " + regime);
      Model m = init_model(preset_config("tiny"), byte_vocab(), 41);
      const AdamwConfig cfg{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f};  // clipping at 0.5 bites on a random model
      BaseTrainer tr(m, trainable_mask(m, regime), cfg, p);
      const Data d = some_batch(2 * 32, 259, 42);
      auto ws = make_workspace();
      tr.step(m, *ws, d.batch(2, 32), 1e-2f, 0.01f);  // moments not zero, so the second step tests them too
      // The second step by hand: the same forward and backward on the same packs, then adamw_update per tensor.
      Model want = clone_model(m);
      AlignedFloats g(m.data.size(), 0.f), m1 = tr.m1, m2 = tr.m2;
      {
        ForwardOptions fo;
        fo.for_backward = true;
        fo.base_grads = true;  // as the trainer's step
        fo.aux_coef = 0.01f;
        const ScopedPacks packs(*ws, p == Precision::bf16 ? pack_frozen(want, p) : nullptr);
        forward(want, *ws, d.batch(2, 32), {}, fo);
        backward(want, *ws, {}, tr.trainable(), g.data(), nullptr, nullptr, 0.01f);
      }
      double ss = 0;
      for (size_t i = 0; i < m.tensors.size(); ++i)
        if (tr.trainable()[i]) ss += sum_squares(g.data() + m.tensors[i].offset, m.tensors[i].numel);
      const float scale = std::sqrt(ss) > cfg.clip ? (float)(cfg.clip / std::sqrt(ss)) : 1.f;
      for (size_t i = 0; i < m.tensors.size(); ++i) {
        if (!tr.trainable()[i]) continue;
        const TensorSpec& s = m.tensors[i];
        const AdamwHparams h{1e-2f, cfg.beta1, cfg.beta2, cfg.eps, s.is_norm() ? 0.f : cfg.weight_decay, scale};
        adamw_update(want.data.data() + s.offset, g.data() + s.offset, m1.data() + s.offset, m2.data() + s.offset,
                     s.numel, h, 2, 1e-2f);
      }
      const BaseTrainer::StepStats st = tr.step(m, *ws, d.batch(2, 32), 1e-2f, 0.01f);
      EXPECT_NEAR(st.grad_norm, std::sqrt(ss), 1e-9 * std::sqrt(ss));
      EXPECT_EQ(m.data, want.data);
      EXPECT_EQ(tr.m1, m1);
      EXPECT_EQ(tr.m2, m2);
      for (size_t i = 0; i < m.tensors.size(); ++i)
        for (int64_t j = m.tensors[i].offset; j < m.tensors[i].offset + m.tensors[i].numel; ++j)
          ASSERT_EQ(tr.grads[j], tr.trainable()[i] ? g[j] : 0.f) << m.tensors[i].name;
      if (p == Precision::bf16) {
        EXPECT_EQ(stale_packs(*tr.packs(), m), 0);
      }
    }
  }
}

// The packs follow the weights through steps; after the weights change outside step(), weights_changed()
// makes the next step pack them again, so its loss is the loss on a fresh pack.
TEST(BaseTrainer, Bf16PacksFollowTheWeights) {
  if (!bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  Model m = init_model(preset_config("tiny"), byte_vocab(), 43);  // vocabulary 259: the head's last rows are a partial block
  BaseTrainer tr(m, trainable_mask(m, "all"), AdamwConfig{1e-2f}, Precision::bf16);
  const Data d = some_batch(2 * 32, 259, 44);
  auto ws = make_workspace();
  for (int s = 0; s < 3; ++s) {
    tr.step(m, *ws, d.batch(2, 32), 1e-2f, 0.f);
    EXPECT_EQ(stale_packs(*tr.packs(), m), 0) << "after step " << s;
  }
  for (float& x : m.data) x *= 1.25f;
  EXPECT_GT(stale_packs(*tr.packs(), m), 0);  // the test would see packs left behind
  tr.weights_changed();
  double want = 0;
  {
    const ScopedPacks packs(*ws, pack_frozen(m, Precision::bf16));
    want = forward(m, *ws, d.batch(2, 32), {}, ForwardOptions{}).mean_loss();
  }
  EXPECT_EQ(tr.step(m, *ws, d.batch(2, 32), 1e-2f, 0.f).loss, want);
}

// On bf16 packs a forward for no trainer of the base gathers the experts' rows into bf16 only: a backward asking for
// the base's gradients then says which forward option it needed, and with that option it runs.
TEST(BaseTrainer, BaseGradientsOnBf16PacksAskForTheirForwardOption) {
  if (!bf16_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  Model m = init_model(preset_config("tiny"), byte_vocab(), 31);
  const Data d = some_batch(2 * 20, 259, 32);
  auto ws = make_workspace();
  ws->frozen = pack_frozen(m, Precision::bf16);
  const std::vector<bool> all(m.tensors.size(), true);
  std::vector<float> g(m.data.size(), 0.f);
  ForwardOptions fo;
  fo.for_backward = true;
  forward(m, *ws, d.batch(2, 20), {}, fo);
  try {
    backward(m, *ws, {}, all, g.data(), nullptr, nullptr, 0.f);
    ADD_FAILURE() << "backward took the base's gradients from a forward without base_grads";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gathered"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("base_grads"), std::string::npos) << e.hint();
  }
  fo.base_grads = true;
  forward(m, *ws, d.batch(2, 20), {}, fo);
  backward(m, *ws, {}, all, g.data(), nullptr, nullptr, 0.f);
  double ss = 0;
  for (float v : g) ss += (double)v * v;
  EXPECT_TRUE(std::isfinite(ss) && ss > 0) << ss;
}

}  // namespace
}  // namespace heirloom
