// Exports for the llama.cpp ecosystem, each checked by reading back what was written: a model with adapters
// merged (F32, F16 or Q8_0), a LoRA adapter as a llama.cpp LoRA file, a steering adapter as a control vector.
// The check runs the same probe tokens through what was read back and through the in-memory model with the
// adapters applied at run time, and compares the logits; a failed check removes the file and throws.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "heirloom/adapter.h"
#include "heirloom/model.h"

namespace heirloom {

struct ExportCheck {
  std::string path, what;  // what was written ("model F16", "LoRA adapter", "control vector")
  int probe_tokens = 0;
  // Largest |logit difference| between the file read back and the values meant to be stored (the in-memory
  // model rounded through the storage type): 0 unless the file is wrong.
  double stored_diff = 0;
  // Largest |logit difference| between the file read back and the base with the adapters applied at run
  // time in fp32: the cost of merging and of the storage type.
  double runtime_diff = 0;
  double max_logit = 0;  // largest |logit| of the run-time reference, for scale
};

// The values a model holds after a save in `storage` and a load: each matrix rounded through that format.
Model round_trip_storage(const Model& m, StorageType storage);

// Merges the adapters (each with its scale) into a copy of the base and writes it as a plain model file.
ExportCheck export_merged(const Model& base, const std::vector<std::pair<const Adapter*, float>>& adapters,
                          StorageType storage, const std::string& path, const Metadata& meta = {});
// A LoRA adapter (not a concatenated heir) as llama.cpp reads it; storage f32 or f16.
ExportCheck export_lora(const Model& base, const Adapter& a, StorageType storage, const std::string& path);
// A steering adapter as a llama.cpp control vector (direction.1 .. direction.L-1).
ExportCheck export_control_vector(const Model& base, const Adapter& a, const std::string& path);

}  // namespace heirloom
