// Where each LoRA pair lives inside a flat parameter buffer (shared by the adapter, its file and merging).
#pragma once
#include <cstdint>
#include <vector>

#include "heirloom/adapter.h"

namespace heirloom {

struct LoraBlock {
  int layer, target;  // target: kLoraQ .. kLoraO
  int in, out;        // the projection's input and output widths
  int64_t a_offset;   // A [R, in]
  int64_t b_offset;   // B [out, R]
};
// Blocks in file order: layer by layer, targets q, k, v, o (only the enabled ones).
std::vector<LoraBlock> lora_blocks(const ModelConfig& c, const LoraShape& s);

// The base weight a LoRA target adapts ([out, in], inside Model::data).
inline float* lora_base_weight(LayerWeights& w, int target) {
  return target == kLoraQ ? w.wq : target == kLoraK ? w.wk : target == kLoraV ? w.wv : w.wo;
}
inline const char* lora_base_name(int target) {
  static const char* names[kLoraTargets] = {"attn_q", "attn_k", "attn_v", "attn_output"};
  return names[target];
}

}  // namespace heirloom
