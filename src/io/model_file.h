// Pieces of model-file reading shared with checkpoints and adapters.
#pragma once
#include "heirloom/model.h"
#include "io/gguf.h"

namespace heirloom {

void write_model_keys(gguf::Writer& w, const Model& m, StorageType storage);
ModelConfig read_model_config(const gguf::File& f);
// Converts each spec'd tensor of f (any supported type) to f32 at dst + spec.offset, checking shapes.
void load_tensors_into(const gguf::File& f, const std::vector<TensorSpec>& specs, float* dst);
// load_model on a file already read (the fuzzer's entry point): every key, tensor name and shape checked.
Model model_from_file(const gguf::File& f);
// How save_model stores a tensor: vectors (norm gains) always F32, as llama.cpp keeps them; q8_0 falls back
// to F16 for a matrix whose rows are not a multiple of 32.
TensorType stored_type(const TensorSpec& s, StorageType storage);

}  // namespace heirloom
