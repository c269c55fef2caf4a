// AdapterTrainer. See include/heirloom/adapter_train.h.
#include "heirloom/adapter_train.h"

#include <algorithm>
#include <cmath>

#include "core/op_time.h"
#include "model/frozen_weights.h"
#include "ops/adamw.h"

namespace heirloom {

AdapterTrainer::AdapterTrainer(const Model& base, Adapter& adapter, AdamwConfig cfg, Precision precision)
    : base_(base), a_(adapter), cfg_(cfg) {
  if (a_.kind == AdapterKind::full) {
    tuned_ = clone_model(base);
    for (size_t i = 0; i < a_.params.size(); ++i) tuned_->data[i] += a_.params[i];
    full_.emplace(*tuned_, trainable_mask(*tuned_, "all"), cfg, precision);  // mixed precision in bf16
    return;
  }
  frozen_.assign(base.tensors.size(), false);
  view_ = a_.view(base.config);
  g_.assign(a_.params.size(), 0.f);
  m1_.assign(a_.params.size(), 0.f);
  m2_.assign(a_.params.size(), 0.f);
  gview_ = a_.grads(base.config, g_.data());
  precision_ = resolve_precision(precision);
  frozen_w_ = pack_frozen(base, precision_);
}

double AdapterTrainer::step(Workspace& ws, const Batch& batch, float lr) {
  if (full_) return full_->step(*tuned_, ws, batch, lr, 0.f).loss;
  std::fill(g_.begin(), g_.end(), 0.f);
  ForwardOptions fo;
  fo.for_backward = true;
  const AdapterView* views[1] = {&view_};
  const ForwardResult r = [&] {
    const ScopedPacks packs(ws, frozen_w_);
    const ForwardResult f = forward(base_, ws, batch, views, fo);
    backward(base_, ws, views, frozen_, nullptr, &view_, &gview_, 0.f);
    return f;
  }();
  const TimedOp timed("optimizer");
  // Block 0's steering vector stays zero: llama.cpp's control vectors cannot express it.
  if (a_.kind == AdapterKind::steer) std::fill_n(g_.begin(), base_.config.n_embd, 0.f);
  const double norm = std::sqrt(sum_squares(g_.data(), (int64_t)g_.size()));
  if (cfg_.clip > 0 && norm > cfg_.clip) scale_inplace(g_.data(), (int64_t)g_.size(), (float)(cfg_.clip / norm));
  ++steps_;
  // No weight decay: a delta decays towards the base, which is what freezing already anchors.
  const AdamwHparams h{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, 0.f};
  adamw_update(a_.params.data(), g_.data(), m1_.data(), m2_.data(), (int64_t)a_.params.size(), h, steps_, lr);
  return r.mean_loss();
}

void AdapterTrainer::finish() {
  if (!tuned_) return;
  for (size_t i = 0; i < a_.params.size(); ++i) a_.params[i] = tuned_->data[i] - base_.data[i];
}

}  // namespace heirloom
