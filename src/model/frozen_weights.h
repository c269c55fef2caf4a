// A model's matrices packed once for training against a frozen base (adapters) and for inference. Set on a
// Workspace, forward and backward run those matrices' products on the packs: bf16 (AMX tiles or AVX512-BF16
// dot products) with fp32 accumulation, or fp32 panels (no per-call packing); everything else (norms,
// attention, the router, what is trained) stays fp32 as before.
#pragma once
#include <memory>
#include <vector>

#include "heirloom/engine.h"
#include "heirloom/model.h"
#include "ops/matmul.h"
#include "ops/moe.h"

namespace heirloom {

struct FrozenLayer {
  PackedWeight wq, wo;                      // q|k|v as one [QKV, C] matrix; output projection
  PackedWeight ffn_gate, ffn_up, ffn_down;  // dense FFN
  std::vector<PackedWeight> gate, up, down; // MoE: one per expert
};

struct FrozenWeights {
  const float* source = nullptr;  // the model's data these were packed from (checked on use)
  std::vector<FrozenLayer> layers;
  PackedWeight output;
};

// Packs m's current values into p in place (p was packed from m): for weights that change every step.
void repack_frozen(FrozenWeights& p, const Model& m);

// Every matrix the packs cover: its pack, where its weight starts in m.data, its shape [O, I]; in a fixed
// order (the packs' own), so an index into the list names the same matrix on every call.
struct PackedMatrix {
  PackedWeight* pack;
  int64_t offset;
  int O, I;
};
std::vector<PackedMatrix> packed_matrices(FrozenWeights& p, const Model& m);

struct Workspace;
// The workspace's packs if it has any (null otherwise); throws if they were packed from another model.
const FrozenWeights* frozen_for(const Workspace& ws, const Model& m);

// Sets the packs on a workspace for one training step and puts back the ones it had, so the caller may
// evaluate with the same workspace afterwards, in the arithmetic it chose.
class ScopedPacks {
 public:
  ScopedPacks(Workspace& ws, std::shared_ptr<const FrozenWeights> packs);
  ~ScopedPacks();
  ScopedPacks(const ScopedPacks&) = delete;
  ScopedPacks& operator=(const ScopedPacks&) = delete;

 private:
  Workspace& ws_;
  std::shared_ptr<const FrozenWeights> before_;
};

// A layer's MoE weights, with its per-expert packs when there are any.
MoeWeights moe_weights(const LayerWeights& w, const FrozenLayer* packs);

}  // namespace heirloom
