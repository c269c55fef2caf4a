// Pieces of model-file reading shared with checkpoints and adapters.
#pragma once
#include "heirloom/model.h"
#include "io/gguf.h"

namespace heirloom {

void write_model_keys(gguf::Writer& w, const Model& m, StorageType storage);
ModelConfig read_model_config(const gguf::File& f);
// Converts each spec'd tensor of f (any supported type) to f32 at dst + spec.offset, checking shapes.
void load_tensors_into(const gguf::File& f, const std::vector<TensorSpec>& specs, float* dst);

}  // namespace heirloom
