// Training: AdamW over a chosen set of trainable tensors, one step = forward + backward + update;
// and `pretrain`, the recipe behind `heirloom pretrain` (progress, held-out evaluation, checkpoints,
// resume, deterministic for a fixed seed and thread count).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "heirloom/cache_line.h"
#include "heirloom/engine.h"

namespace heirloom {

struct AdamwConfig {
  float lr = 3e-4f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.0f;
  float clip = 1.0f;  // global gradient-norm clip; 0 = off
};

// Which base tensors train. Named regimes: "all", "norm" (RMSNorm gains only), "none".
std::vector<bool> trainable_mask(const Model& m, const std::string& regime);

// Gradients and AdamW moments for the trainable tensors of a model (stored like Model::data).
class BaseTrainer {
 public:
  // precision bf16: each step packs the current weights as bf16 for the products' forward and
  // input-gradient passes, and the weight gradients of attention, dense FFNs and the head run in bf16 too
  // (mixed precision); the MoE experts' weight gradients, the master weights and AdamW stay fp32.
  BaseTrainer(const Model& m, std::vector<bool> trainable, AdamwConfig cfg, Precision precision = Precision::fp32);
  Precision precision() const { return packs_ ? Precision::bf16 : Precision::fp32; }
  struct StepStats { double loss, aux, grad_norm; float lr; };
  // One optimisation step on `batch` (targets required) at learning rate lr. The update clears the gradients
  // it reads (grads holds zeros between steps) and, in bf16, repacks each block of weights as it updates it.
  StepStats step(Model& m, Workspace& ws, const Batch& batch, float lr, float aux_coef);
  // Call after changing m's weights other than through step(): the next step packs them again.
  void weights_changed() { packs_current_ = false; }
  const std::vector<bool>& trainable() const { return trainable_; }
  const FrozenWeights* packs() const { return packs_.get(); }  // bf16: the packs the next step will use
  int steps_done = 0;
  AlignedFloats grads, m1, m2;  // on cache lines, as the weights are: AdamW reads all four

 private:
  // A piece of the update: n values of tensor `tensor` from `offset`; for a block of a packed matrix's rows,
  // that matrix (an index into packed_matrices()) and its rows [r0, r1), repacked right after the update.
  struct Piece {
    int64_t offset, n;
    int tensor, matrix, r0, r1;
  };
  void plan_update(const Model& m);  // fills pieces_
  std::vector<bool> trainable_;
  AdamwConfig cfg_;
  std::shared_ptr<FrozenWeights> packs_;  // bf16 only: kept in step with the weights
  std::vector<Piece> pieces_;             // every trainable value, once
  bool packs_current_ = false;            // the packs hold m's weights (false: repack at the next step)
};

struct PretrainOptions {
  std::string preset = "tiny";
  // Training text: either files (with the byte-level vocabulary) or, when none are given, a built corpus
  // directory (its tokenizer, its `corpus` training split, and that corpus's held-out split for evaluation).
  std::vector<std::string> texts;
  std::string corpus_dir;            // empty: default_corpus_dir()
  std::string corpus = "general";
  std::string out = "model.gguf";
  int steps = 200, batch = 8, seq = 128, warmup = 20;
  float lr = 1e-3f, min_lr = 1e-4f, weight_decay = 0.1f, clip = 1.0f, aux_coef = 0.01f;
  int eval_every = 50, checkpoint_every = 100;
  uint64_t seed = 1;
  int stop_at = 0;  // stop after this step with a checkpoint, as if interrupted (0 = run to the end)
  bool resume = false, f16 = false, progress = true;
};

struct PretrainReport {
  int steps = 0;      // steps done in all, including those of a resumed checkpoint
  int steps_run = 0;  // steps run by this call
  int64_t n_params = 0, train_tokens = 0, heldout_tokens = 0;
  double final_train_loss = 0, heldout_loss = 0, seconds = 0, tokens_per_second = 0;
  std::vector<std::pair<int, double>> heldout_curve;  // (step, held-out loss)
};

PretrainReport pretrain(const PretrainOptions& opt);

// Options from a recipe file (recipes/*.json): preset, corpus, steps, batch, seq, lr, min_lr, warmup,
// weight_decay, clip, aux, eval_every, checkpoint_every, seed. Unknown keys are an Error (a typo would
// otherwise silently train another model); "about" is free text.
PretrainOptions pretrain_options_from_recipe(const std::string& json_text, const std::string& source_name);

// Byte windows for language modelling: B windows of T+1 tokens from `stream` at offsets drawn from rng.
void sample_windows(const std::vector<int32_t>& stream, int B, int T, uint64_t seed, std::vector<int32_t>& tokens,
                    std::vector<int32_t>& targets);

}  // namespace heirloom
