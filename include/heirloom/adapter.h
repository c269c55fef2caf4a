// Adapters: a person's specialist as a small set of deltas on a frozen base.
//
// Kinds (all trained with AdamW while the base stays frozen):
//   norm  — a delta to every RMSNorm gain ([2L+1, C]; 4352 values for moe-30m), the production default;
//   lora  — rank-R A/B pairs on chosen attention projections (q, k, v, o), y += (alpha/R)·B(A x);
//   steer — one vector per layer added to the residual stream after that layer (a control vector).
//           Layer 0 stays zero: llama.cpp's control vectors start after layer 1, and a steering adapter
//           must mean the same thing in both;
//   full  — every weight, stored as a delta (the seeds' original Bet 10 primitive).
// norm, lora and steer are applied per call through an AdapterView; a full adapter is applied by
// building a private merged copy (merge_adapters), never by modifying the loaded base.
//
// The file (adapter_file.cpp) is a GGUF with general.type = "adapter", bound to its base by the base's
// fingerprint, with a sha256 over the tensor data so a damaged file is refused.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "heirloom/engine.h"
#include "heirloom/model.h"

namespace heirloom {

enum class AdapterKind { norm, lora, steer, full };
const char* kind_name(AdapterKind k);
AdapterKind parse_adapter_kind(const std::string& s);  // Error names the valid kinds

struct LoraShape {
  int rank = 8;
  float alpha = 16.f;
  std::array<bool, kLoraTargets> targets{true, true, true, true};  // q, k, v, o
  float scale() const { return rank > 0 ? alpha / (float)rank : 0.f; }
};
// "q,k,v,o" → targets; Error on anything else.
std::array<bool, kLoraTargets> parse_lora_targets(const std::string& s);

// Where an adapter came from: written into its file.
struct AdapterInfo {
  std::string owner;             // who it belongs to (free text)
  std::string created;           // ISO 8601 UTC
  std::string base_fingerprint;  // Model::fingerprint() of the base it was trained on
  int steps = 0, seq = 0, batch = 0;
  float lr = 0;
  int64_t tokens = 0;            // training tokens seen (steps · batch · seq)
  uint64_t seed = 0;
  std::string sha256;            // the file's content checksum (set by load and save): the adapter's identity
};

// How an inherited adapter (an heir, issue 6) was made; generation 0 = trained on a person's own text.
struct Lineage {
  int generation = 0;
  std::string scheme, params;             // e.g. "blend", "lambda=0.7 (parent weight)"
  std::string parent_sha256, child_sha256;  // the two adapters merged (their content checksums)
  std::string parent_owner, child_owner;
  int parent_generation = 0;
  double overlap_cosine = 0;
  std::string regime;                     // orthogonal, partial or aligned
};

struct Adapter {
  AdapterKind kind = AdapterKind::norm;
  AdapterInfo info;
  LoraShape lora;            // lora only
  std::vector<float> params;  // every trainable value, laid out as below (offsets from part_offsets)
  Lineage lineage;
  // A concatenated heir keeps both adapters (same kind and shape; params empty) and routes each input to
  // the one with the lower perplexity on the prompt so far: eval and generate route it, nothing merges it.
  std::vector<Adapter> branches;
  bool routed() const { return !branches.empty(); }

  // Views into params (or into any buffer of params.size() laid out the same way, e.g. gradients).
  // For kind full the view is empty: use merge_adapters.
  AdapterView view(const ModelConfig& c) const;
  AdapterGrads grads(const ModelConfig& c, float* g) const;
};

// Number of trainable values of a kind for a base (lora: with the given shape).
int64_t adapter_size(const ModelConfig& c, AdapterKind kind, const LoraShape& lora = {});
// A fresh adapter whose effect is exactly zero: zero deltas; LoRA A ~ normal(0, 1/sqrt(in)), B = 0.
Adapter make_adapter(const Model& base, AdapterKind kind, const LoraShape& lora = {}, uint64_t seed = 1);

// Several adapters with a user scale each, combined into one view (norm and steer deltas add; LoRA
// pairs are stacked into one larger rank with each scale folded into B). Full adapters, and anything
// else when `merge_all` is set, are merged into a private copy of the base instead.
struct AppliedAdapters {
  std::optional<Model> merged;  // set when some adapter had to be merged
  std::vector<float> buffer;    // storage behind `view`
  AdapterView view;
  bool has_view = false;
  const Model& model(const Model& base) const { return merged ? *merged : base; }
  const AdapterView* view_ptr() const { return has_view ? &view : nullptr; }
};
AppliedAdapters apply_adapters(const Model& base, const std::vector<std::pair<const Adapter*, float>>& adapters,
                               bool merge_all = false);

// A deep copy of a model (the base itself is never modified).
Model clone_model(const Model& m);

// File I/O. save is atomic; storage f16 halves the size (the default for norm: ~9 KB for moe-30m).
// Returns the content checksum written (heirloom.sha256).
std::string save_adapter(const Adapter& a, const ModelConfig& c, const std::string& path, StorageType storage);
// The checksum save_adapter would write, without writing.
std::string adapter_checksum(const Adapter& a, const ModelConfig& c, StorageType storage);
// Reads and checks an adapter file: structure, checksum, finite values, and that it was made for `base`
// (refused with both fingerprints otherwise).
Adapter load_adapter(const std::string& path, const Model& base);
// The same from a file's bytes (`name` for messages), e.g. an adapter kept in the estate registry.
Adapter load_adapter_bytes(std::vector<uint8_t> bytes, const std::string& name, const Model& base);

// What an adapter file says about itself, read without its base: kind, origin, lineage, and whether the
// tensor data still matches the checksum stored in it (info.sha256 is the stored one).
struct AdapterHeader {
  AdapterKind kind = AdapterKind::norm;
  AdapterInfo info;
  Lineage lineage;
  int branches = 0;  // a concatenated heir's
  bool checksum_ok = false;
};
// Error when the bytes are not an adapter file.
AdapterHeader read_adapter_header(std::vector<uint8_t> bytes, const std::string& name);
// A steering adapter as a llama.cpp control vector (direction.1 .. direction.L-1).
void save_control_vector(const Adapter& a, const ModelConfig& c, const std::string& path);

}  // namespace heirloom
