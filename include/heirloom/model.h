// A loaded base model: config, vocabulary, and every weight in one flat fp32 buffer (weight_buffer.h).
// The tensor list below is the single source of truth for names, shapes and order: sizes, loading,
// saving, initialisation, zeroing gradients and the optimizer all walk it.
// Weights are stored [out, in] (PyTorch order); GGUF ne is the reverse. q, k, v of a layer are adjacent,
// so together they are one [(H + 2·Hkv)·D, C] matrix and the engine projects them with one GEMM.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "heirloom/config.h"
#include "heirloom/vocab.h"
#include "heirloom/weight_buffer.h"

namespace heirloom {

enum class TensorRole : uint8_t {
  token_embd, output_norm, output,
  attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm,
  ffn_gate, ffn_up, ffn_down,                               // dense
  ffn_gate_inp, ffn_gate_exps, ffn_up_exps, ffn_down_exps,  // MoE
};

struct TensorSpec {
  std::string name;            // llama.cpp name, e.g. "blk.3.attn_q.weight"
  TensorRole role;
  int layer;                   // -1 for global tensors
  std::vector<int64_t> shape;  // outermost first: [out, in] or [E, out, in]
  int64_t numel = 0;
  int64_t offset = 0;          // in floats, into Model::data
  bool is_norm() const { return role == TensorRole::attn_norm || role == TensorRole::ffn_norm || role == TensorRole::output_norm; }
};

std::vector<TensorSpec> model_tensors(const ModelConfig& c);

struct LayerWeights {
  float *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm;
  float *ffn_gate, *ffn_up, *ffn_down;  // dense [F, C], [F, C], [C, F]; MoE [E, F, C], [E, F, C], [E, C, F]
  float* router;                        // MoE only: [E, C]
};

struct Weights {
  float *token_embd, *output_norm, *output;  // output == token_embd when tied
  std::vector<LayerWeights> layers;
};
// Pointers into any buffer laid out like Model::data (the weights themselves, or their gradients).
Weights bind_weights(const ModelConfig& c, const std::vector<TensorSpec>& specs, float* data);

class Model {
 public:
  ModelConfig config;
  Vocab vocab;
  std::vector<TensorSpec> tensors;
  WeightBuffer data;  // mapped from an F32 file where its layout allows, else owned
  Weights w;

  Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  int64_t n_params() const { return (int64_t)data.size(); }
  const TensorSpec* find(const std::string& name) const;
  // FNV-1a over the tensor bytes: the base fingerprint adapters are bound to. Computed again only when a fast
  // hash of every byte differs from the one it was last computed with.
  std::string fingerprint() const;

 private:
  // FNV-1a takes one multiply per byte, one after another: 150 ms for moe-30m's 120 MB, and a personalize
  // run asked for it twice. The fast hash runs eight independent lanes of 8-byte words.
  struct FingerprintMemo {
    std::mutex mu;
    bool set = false;
    uint64_t quick = 0;
    std::string value;
  };
  std::unique_ptr<FingerprintMemo> fingerprint_memo_ = std::make_unique<FingerprintMemo>();
};

// A model with freshly initialised weights (normal(0, 0.02); residual projections scaled by 1/sqrt(2L);
// norm gains 1), deterministic for a seed.
Model init_model(const ModelConfig& c, const Vocab& vocab, uint64_t seed);

}  // namespace heirloom

namespace heirloom {

// How a file stores matrices (norm gains and other vectors stay F32): q8_0 is llama.cpp's 8-bit blocks of 32
// (models only; a matrix whose rows are not a multiple of 32 falls back to F16).
enum class StorageType { f32, f16, bf16, q8_0 };
StorageType parse_storage(const std::string& name);  // "f32", "f16", "bf16", "q8_0" (Error otherwise)
const char* storage_name(StorageType s);

// Extra metadata written beside the model (string keys under heirloom.*, e.g. training recipe).
using Metadata = std::vector<std::pair<std::string, std::string>>;

// Writes a llama.cpp-loadable "llama" GGUF (Mixtral layout for MoE) with the vocabulary inside,
// atomically (temporary file, then rename). `extra_tensors` (name, data) are appended as F32 —
// used by training checkpoints for optimizer state.
void save_model(const Model& m, const std::string& path, StorageType storage = StorageType::f32,
                const Metadata& meta = {},
                const std::vector<std::pair<std::string, std::span<const float>>>& extra_tensors = {});
// Reads and validates a model file: architecture, every key, every tensor's name, shape and type.
// Throws heirloom::Error with the file name, what was expected and what was found.
Model load_model(const std::string& path);

}  // namespace heirloom
