// The engine: one forward pass for training, evaluation and generation, and the backward pass.
//
// Adapters are applied per call and per sequence: forward takes, for each sequence of the batch, the
// adapter view (or null) that applies to it, and never modifies the base weights, so one loaded base
// serves many people in one batch. Consecutive sequences with the same adapter form one segment; only
// the adapter-dependent work (norm gains, LoRA, steering) is split by segment.
//
// backward() computes weight gradients only for what is trainable: base tensors flagged in
// `base_trainable` and, for segments that use `trained`, that adapter's tensors. Activation gradients
// still flow through every frozen layer.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "heirloom/model.h"

namespace heirloom {

// LoRA targets: the attention projections, and for MoE bases the router and the experts' FFNs.
enum LoraTarget { kLoraQ = 0, kLoraK, kLoraV, kLoraO, kLoraRouter, kLoraGate, kLoraUp, kLoraDown, kLoraTargets };
constexpr bool is_expert_target(int t) { return t >= kLoraGate; }

// Deltas from the base, read during forward. Every part is optional (null / empty).
struct AdapterView {
  const float* norm_delta = nullptr;  // [L·2·C + C]: per layer attn_norm then ffn_norm, then output_norm
  const float* steer = nullptr;       // [L, C] added to the residual stream after each layer
  int lora_rank = 0;                  // R
  float lora_scale = 1.f;             // alpha / R
  // Per layer and target: A [R, in], B [out, R]; for expert targets one pair per expert, A [E, R, in] and
  // B [E, out, R]. Null pointers = no LoRA on that projection.
  std::vector<std::array<const float*, kLoraTargets>> lora_a, lora_b;
};

// Gradient buffers shaped like the AdapterView parts they train (null = that part is frozen).
struct AdapterGrads {
  float* norm_delta = nullptr;
  float* steer = nullptr;
  std::vector<std::array<float*, kLoraTargets>> lora_a, lora_b;
};

// Keys and values of every layer for B sequences up to n_ctx positions: [L][B, n_ctx, Hkv·D].
struct KvCache {
  int B = 0, n_ctx = 0, n_pos = 0;  // n_pos: positions filled so far (same for every sequence)
  std::vector<std::vector<float>> k, v;
};
KvCache make_kv_cache(const ModelConfig& c, int B, int n_ctx);

struct Batch {
  const int32_t* tokens = nullptr;   // [B, T]
  const int32_t* targets = nullptr;  // [B, T] or null; kIgnoreIndex (-1) = not scored
  int B = 0, T = 0;
};

struct ForwardOptions {
  bool for_backward = false;    // keep what backward needs
  bool base_grads = false;      // and what only the base's weight gradients need (the experts' SwiGLU outputs
                                // and gathered input rows): a backward asking for the experts' gate and up
                                // gradients on bf16 packs needs it
  bool fixed_routing = false;   // reuse the expert choice of the previous forward (gradient checks)
  bool last_logits_only = false;  // compute logits for each sequence's last row only (generation)
  float aux_coef = 0.f;         // weight of the MoE load-balancing loss in the returned loss
  KvCache* cache = nullptr;     // attend over the cache; the new rows start at cache->n_pos
  // Or one single-sequence cache per sequence, each at its own position (continuous batching: sequences
  // that started at different times decode together). Every sequence's rows are computed exactly as if it
  // ran alone. Mutually exclusive with `cache`.
  std::span<KvCache* const> caches;
};

struct ForwardResult {
  double loss_sum = 0;  // sum of token cross-entropies (nats) over scored rows
  int n_scored = 0;
  double aux = 0;       // mean over layers of the MoE load-balancing loss (0 for dense)
  double mean_loss() const { return n_scored ? loss_sum / n_scored : 0.0; }
  // What backward differentiates: mean cross-entropy + aux_coef · aux.
  double objective(float aux_coef) const { return mean_loss() + aux_coef * aux; }
};

struct Workspace;  // activations and gradient scratch, sized on demand (see src/model/workspace.h)

// A model's matrices packed once (src/model/frozen_weights.h): as bf16 (AMX tiles or AVX512-BF16 pairs),
// products against them run in bf16 with fp32 accumulation; as fp32 panels, in fp32 without per-call
// packing. Valid only while the model's weights do not change.
struct FrozenWeights;
// The arithmetic of a frozen base's matrix products: automatic = bf16 where bf16_available(), else fp32.
enum class Precision { automatic, fp32, bf16 };
Precision parse_precision(const std::string& name);  // "auto", "fp32", "bf16"; throws heirloom::Error
const char* precision_name(Precision p);
bool bf16_available();  // this CPU has AVX512-BF16 (AMX tiles too where it has them and the kernel grants them)
// automatic → what this CPU runs (bf16 or fp32); bf16 on a CPU without it is an Error naming --precision.
Precision resolve_precision(Precision p);
// Packs in the resolved precision; null for fp32 on a CPU without AVX-512 (its products then go to the BLAS
// unpacked). Throws heirloom::Error for bf16 without AVX512-BF16. for_backward = false packs only what the forward
// pass multiplies by (generation, serving): half the memory, and backward refuses those packs.
std::shared_ptr<FrozenWeights> pack_frozen(const Model& m, Precision precision, bool for_backward = true);
struct WorkspaceDeleter { void operator()(Workspace*) const; };
using WorkspacePtr = std::unique_ptr<Workspace, WorkspaceDeleter>;
WorkspacePtr make_workspace();

// Runs the model; validates token ids and lengths (throws heirloom::Error). adapters: empty, one
// entry (applies to all sequences) or B entries.
ForwardResult forward(const Model& m, Workspace& ws, const Batch& batch,
                      std::span<const AdapterView* const> adapters, const ForwardOptions& opt);
// forward's adapters for "this one for every sequence, or none": a span over the pointer itself, so the
// pointer variable (never a temporary) must outlive the span.
inline std::span<const AdapterView* const> one_adapter(const AdapterView* const& a) {
  return a ? std::span<const AdapterView* const>(&a, 1) : std::span<const AdapterView* const>();
}
// Logits of the last forward: [B·T, V], or [B, V] with last_logits_only; a forward with targets and without
// for_backward keeps only the rows that have a target, in order, when some have none.
const float* logits(const Workspace& ws);
// Per-row cross-entropy of the last forward: [B·T] nats, 0 where the target was ignored.
const float* token_losses(const Workspace& ws);

// Gradient of ForwardResult::objective(aux_coef) for the last forward (run with for_backward).
// dbase: laid out like Model::data (may be null when nothing in the base is trainable); accumulates (+=).
// dbase_write: the trainable tensors' gradients are written into dbase instead, whatever it held (its old values
// are never read: a trainer need not clear it between steps): the weight matrices' each by the one product
// that makes it, the gradients that are sums of several parts (gains, the router, the embedding, an expert no
// row reached) cleared first. The same values as adding to a zero dbase.
void backward(const Model& m, Workspace& ws, std::span<const AdapterView* const> adapters,
              const std::vector<bool>& base_trainable, float* dbase, const AdapterView* trained,
              const AdapterGrads* dadapter, float aux_coef, bool dbase_write = false);

}  // namespace heirloom
