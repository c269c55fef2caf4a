// Training an adapter on a frozen base: AdamW over the adapter's values only. The base's weights get
// no gradient work (backward skips every frozen weight gradient); activation gradients still flow.
// A full adapter trains a private copy of the base and keeps the difference.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "heirloom/adapter.h"
#include "heirloom/train.h"

namespace heirloom {

struct FrozenWeights;

// Precision (engine.h) while an adapter trains: bf16 packs the base once; the adapter's own values, their
// gradients and the optimizer stay fp32. A full adapter trains every weight: in bf16 it repacks its copy of
// the base every step (BaseTrainer's mixed precision) and is evaluated in fp32.
class AdapterTrainer {
 public:
  AdapterTrainer(const Model& base, Adapter& adapter, AdamwConfig cfg, Precision precision = Precision::automatic);
  // One step on `batch` (targets required) at learning rate lr; returns the mean training loss.
  double step(Workspace& ws, const Batch& batch, float lr);
  // What to evaluate the adapter as it is now: a model and an optional view.
  const Model& model() const { return tuned_ ? *tuned_ : base_; }
  const AdapterView* view() const { return tuned_ ? nullptr : &view_; }
  // Writes the trained state into the adapter (full: the delta from the base). Call before saving.
  void finish();
  // The precision in use (fp32 or bf16, never automatic).
  Precision precision() const { return full_ ? full_->precision() : precision_; }
  // The base packed once (bf16 tiles or fp32 panels; null for fp32 without AVX-512, or for a full adapter): set
  // on an evaluation workspace to score in the same arithmetic.
  std::shared_ptr<const FrozenWeights> frozen_weights() const { return frozen_w_; }

 private:
  const Model& base_;
  Adapter& a_;
  AdamwConfig cfg_;
  AdapterView view_;
  AdapterGrads gview_;
  std::vector<float> g_, m1_, m2_;
  std::vector<bool> frozen_;             // every base tensor frozen
  std::optional<Model> tuned_;           // full only
  std::optional<BaseTrainer> full_;      // full only
  Precision precision_ = Precision::fp32;
  std::shared_ptr<const FrozenWeights> frozen_w_;  // the base packed once (bf16 tiles or fp32 panels)
  int steps_ = 0;
};

}  // namespace heirloom
