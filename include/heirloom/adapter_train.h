// Training an adapter on a frozen base: AdamW over the adapter's values only. The base's weights get
// no gradient work (backward skips every frozen weight gradient); activation gradients still flow.
// A full adapter trains a private copy of the base and keeps the difference.
#pragma once
#include <optional>

#include "heirloom/adapter.h"
#include "heirloom/train.h"

namespace heirloom {

class AdapterTrainer {
 public:
  AdapterTrainer(const Model& base, Adapter& adapter, AdamwConfig cfg);
  // One step on `batch` (targets required) at learning rate lr; returns the mean training loss.
  double step(Workspace& ws, const Batch& batch, float lr);
  // What to evaluate the adapter as it is now: a model and an optional view.
  const Model& model() const { return tuned_ ? *tuned_ : base_; }
  const AdapterView* view() const { return tuned_ ? nullptr : &view_; }
  // Writes the trained state into the adapter (full: the delta from the base). Call before saving.
  void finish();

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
  int steps_ = 0;
};

}  // namespace heirloom
