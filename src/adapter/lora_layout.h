// Where each LoRA pair lives inside a flat parameter buffer (shared by the adapter, its file and merging).
#pragma once
#include <cstdint>
#include <vector>

#include "heirloom/adapter.h"

namespace heirloom {

struct LoraBlock {
  int layer, target;  // a LoraTarget
  int in, out;        // the projection's input and output widths
  int copies;         // 1, or E for expert targets (one pair per expert)
  int64_t a_offset;   // A [copies, R, in]
  int64_t b_offset;   // B [copies, out, R]
};
// Blocks in file order: layer by layer, targets in LoraTarget order (only the enabled ones). Router and
// expert targets need an MoE base (Error otherwise).
std::vector<LoraBlock> lora_blocks(const ModelConfig& c, const LoraShape& s);

// The base weight a LoRA target adapts ([copies, out, in], inside Model::data).
inline float* lora_base_weight(LayerWeights& w, int target) {
  float* const weights[kLoraTargets] = {w.wq, w.wk, w.wv, w.wo, w.router, w.ffn_gate, w.ffn_up, w.ffn_down};
  return weights[target];
}
// llama.cpp's tensor name stem ("blk.N.<stem>.weight") and heirloom's short name (--targets).
inline const char* lora_base_name(int target) {
  static const char* names[kLoraTargets] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                            "ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
  return names[target];
}
inline const char* lora_short_name(int target) {
  static const char* names[kLoraTargets] = {"q", "k", "v", "o", "router", "gate", "up", "down"};
  return names[target];
}

}  // namespace heirloom
