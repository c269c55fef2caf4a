// BaseTrainer: AdamW on the base model's own trainable tensors (pretraining, full fine-tuning,
// norm-only fine-tuning). Gradients are zeroed and clipped only over trainable tensors, so a norm-only
// step touches a few thousand values, not the whole model. See include/heirloom/train.h.
#include <cmath>

#include "core/rng.h"
#include "heirloom/error.h"
#include "heirloom/train.h"
#include "model/frozen_weights.h"
#include "model/workspace.h"
#include "ops/adamw.h"

namespace heirloom {

std::vector<bool> trainable_mask(const Model& m, const std::string& regime) {
  std::vector<bool> t(m.tensors.size(), false);
  for (size_t i = 0; i < t.size(); ++i) {
    if (regime == "all") t[i] = true;
    else if (regime == "norm") t[i] = m.tensors[i].is_norm();
    else if (regime == "none") t[i] = false;
    else throw Error("unknown trainable regime '" + regime + "'", "use all, norm or none");
  }
  return t;
}

BaseTrainer::BaseTrainer(const Model& m, std::vector<bool> trainable, AdamwConfig cfg, Precision precision)
    : grads(m.data.size(), 0.f), m1(m.data.size(), 0.f), m2(m.data.size(), 0.f), trainable_(std::move(trainable)),
      cfg_(cfg) {
  if (resolve_precision(precision) == Precision::bf16) packs_ = pack_frozen(m, Precision::bf16);
}

BaseTrainer::StepStats BaseTrainer::step(Model& m, Workspace& ws, const Batch& batch, float lr, float aux_coef) {
  for (size_t i = 0; i < m.tensors.size(); ++i)
    if (trainable_[i]) std::fill_n(grads.data() + m.tensors[i].offset, m.tensors[i].numel, 0.f);
  ForwardOptions fo;
  fo.for_backward = true;
  fo.aux_coef = aux_coef;
  if (packs_) repack_frozen(*packs_, m);  // the weights changed in the last step
  const ForwardResult r = [&] {
    const ScopedPacks packs(ws, packs_);
    const ForwardResult f = forward(m, ws, batch, {}, fo);
    backward(m, ws, {}, trainable_, grads.data(), nullptr, nullptr, aux_coef);
    return f;
  }();
  double ss = 0;
  for (size_t i = 0; i < m.tensors.size(); ++i)
    if (trainable_[i]) ss += sum_squares(grads.data() + m.tensors[i].offset, m.tensors[i].numel);
  const double norm = std::sqrt(ss);
  const float scale = cfg_.clip > 0 && norm > cfg_.clip ? (float)(cfg_.clip / norm) : 1.f;
  ++steps_done;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    if (!trainable_[i]) continue;
    const TensorSpec& s = m.tensors[i];
    // No weight decay on gains: decaying them pulls the norms towards zero, not towards "simpler".
    AdamwHparams h{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, s.is_norm() ? 0.f : cfg_.weight_decay, scale};
    adamw_update(m.data.data() + s.offset, grads.data() + s.offset, m1.data() + s.offset, m2.data() + s.offset,
                 s.numel, h, steps_done, lr);
  }
  return {r.mean_loss(), r.aux, norm, lr};
}

void sample_windows(const std::vector<int32_t>& stream, int B, int T, uint64_t seed, std::vector<int32_t>& tokens,
                    std::vector<int32_t>& targets) {
  if ((int64_t)stream.size() < T + 1)
    throw Error("the text has " + std::to_string(stream.size()) + " tokens, fewer than one training window of " +
                    std::to_string(T + 1),
                "give more text or a shorter --seq");
  Rng rng(seed);
  tokens.resize((size_t)B * T);
  targets.resize((size_t)B * T);
  for (int b = 0; b < B; ++b) {
    const uint64_t off = rng.below(stream.size() - T);
    for (int t = 0; t < T; ++t) {
      tokens[(size_t)b * T + t] = stream[off + t];
      targets[(size_t)b * T + t] = stream[off + t + 1];
    }
  }
}

}  // namespace heirloom
