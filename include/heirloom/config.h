// Model configuration: the llama.cpp "llama" architecture, dense or Mixtral-style MoE.
// Config is data: it is written into (and read back from) every model file's GGUF keys.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace heirloom {

struct ModelConfig {
  std::string preset = "custom";
  int n_vocab = 0;
  int n_embd = 0;         // C
  int n_layer = 0;        // L
  int n_head = 0;         // H
  int n_head_kv = 0;      // Hkv (grouped-query attention when < H)
  int n_ff = 0;           // F: dense hidden width, or each expert's hidden width
  int n_expert = 0;       // E; 0 = dense SwiGLU feed-forward
  int n_expert_used = 0;  // K
  int n_ctx = 0;          // longest sequence the model accepts
  float rope_base = 10000.f;
  // Per rotated pair i, a divisor of its angle (llama.cpp's rope_freqs.weight: Llama 3.1's long-context
  // scaling baked into the file); empty = none.
  std::vector<float> rope_freqs;
  float norm_eps = 1e-5f;
  bool tied_output = false;  // output head shares token_embd

  int head_dim() const { return n_embd / n_head; }  // D
  bool is_moe() const { return n_expert > 0; }
  // Throws heirloom::Error naming the first inconsistent or absurd field.
  void validate() const;
};

// Named presets: "tiny" (tests, MoE), "tiny-dense", "moe-30m", "dense-30m".
ModelConfig preset_config(const std::string& name, int n_vocab = 0);
std::vector<std::string> preset_names();

int64_t count_params(const ModelConfig& c);
// Parameters touched per token: excludes the embedding table (a lookup) and unused experts.
int64_t count_active_params(const ModelConfig& c);
// Multiply-adds ×2 per token for a forward pass at context length T (matmuls + attention scores).
double forward_flops_per_token(const ModelConfig& c, int T);
// The attention part of it (no weights): its backward has four products to the forward's two.
double attention_flops_per_token(const ModelConfig& c, int T);

}  // namespace heirloom
