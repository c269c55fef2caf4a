// Model files: the "llama" architecture in GGUF, as llama.cpp reads it (see shared/GGUF-NOTES.md).
// Config ⇄ llama.* keys; tensors in the order of model_tensors(); ne is the reverse of our shape.
// Loading checks every key and every tensor against the config before touching the weights.
#include <cstring>

#include "core/half.h"
#include "heirloom/error.h"
#include "heirloom/model.h"
#include "io/gguf.h"
#include "io/model_file.h"
#include "heirloom/vocab.h"

namespace heirloom {

namespace {
std::vector<int64_t> reversed(const std::vector<int64_t>& v) { return {v.rbegin(), v.rend()}; }

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}
}  // namespace

void write_model_keys(gguf::Writer& w, const Model& m, StorageType storage) {
  const ModelConfig& c = m.config;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "heirloom-" + c.preset);
  // llama_ftype: 0 all F32, 1 mostly F16, 7 mostly Q8_0, 32 mostly BF16
  const uint32_t ftype[] = {0, 1, 32, 7};
  w.set_u32("general.file_type", ftype[(int)storage]);
  if (storage == StorageType::q8_0) w.set_u32("general.quantization_version", 2);  // ggml's GGML_QNT_VERSION
  w.set_u32("llama.context_length", c.n_ctx);
  w.set_u32("llama.embedding_length", c.n_embd);
  w.set_u32("llama.block_count", c.n_layer);
  w.set_u32("llama.feed_forward_length", c.n_ff);
  w.set_u32("llama.attention.head_count", c.n_head);
  w.set_u32("llama.attention.head_count_kv", c.n_head_kv);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  w.set_f32("llama.rope.freq_base", c.rope_base);
  w.set_u32("llama.rope.dimension_count", c.head_dim());
  w.set_u32("llama.vocab_size", c.n_vocab);
  if (c.is_moe()) {
    w.set_u32("llama.expert_count", c.n_expert);
    w.set_u32("llama.expert_used_count", c.n_expert_used);
  }
  w.set_string("heirloom.preset", c.preset);
  write_vocab(w, m.vocab);
}

StorageType parse_storage(const std::string& name) {
  if (name == "f32" || name == "F32") return StorageType::f32;
  if (name == "f16" || name == "F16") return StorageType::f16;
  if (name == "bf16" || name == "BF16") return StorageType::bf16;
  if (name == "q8_0" || name == "Q8_0") return StorageType::q8_0;
  throw Error("unknown tensor type '" + name + "'", "choose f32, f16, bf16 or q8_0");
}

const char* storage_name(StorageType s) {
  switch (s) {
    case StorageType::f16: return "f16";
    case StorageType::bf16: return "bf16";
    case StorageType::q8_0: return "q8_0";
    default: return "f32";
  }
}

TensorType stored_type(const TensorSpec& s, StorageType storage) {
  // The MoE router stays F32 too, as llama.cpp's converter and llama-quantize keep it.
  if (storage == StorageType::f32 || s.is_norm() || s.shape.size() < 2 || s.role == TensorRole::ffn_gate_inp)
    return TensorType::F32;
  if (storage == StorageType::q8_0 && s.shape.back() % kQ8_0Block == 0) return TensorType::Q8_0;
  if (storage == StorageType::bf16) return TensorType::BF16;
  return TensorType::F16;
}

void save_model(const Model& m, const std::string& path, StorageType storage, const Metadata& meta,
                const std::vector<std::pair<std::string, std::span<const float>>>& extra_tensors) {
  gguf::Writer w;
  write_model_keys(w, m, storage);
  for (const auto& [k, v] : meta) w.set_string("heirloom." + k, v);
  std::vector<std::vector<uint8_t>> stored;  // keeps converted data alive until write()
  stored.reserve(m.tensors.size());
  for (const auto& s : m.tensors) {
    const float* p = m.data.data() + s.offset;
    const TensorType t = stored_type(s, storage);
    if (t == TensorType::F32) {
      w.add_tensor(s.name, reversed(s.shape), TensorType::F32, p, s.numel * sizeof(float));
      continue;
    }
    auto& b = stored.emplace_back(row_bytes(t, s.numel));
    quantize_row(t, p, b.data(), s.numel);
    w.add_tensor(s.name, reversed(s.shape), t, b.data(), b.size());
  }
  if (!m.config.rope_freqs.empty())
    w.add_tensor("rope_freqs.weight", {(int64_t)m.config.rope_freqs.size()}, TensorType::F32, m.config.rope_freqs.data(),
                 m.config.rope_freqs.size() * sizeof(float));
  for (const auto& [name, vec] : extra_tensors)
    w.add_tensor(name, {(int64_t)vec.size()}, TensorType::F32, vec.data(), vec.size() * sizeof(float));
  w.write(path);
}

ModelConfig read_model_config(const gguf::File& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama")
    throw Error(f.path + ": architecture '" + arch + "' is not supported",
                "heirloom reads the llama.cpp \"llama\" architecture (dense or Mixtral-style MoE)");
  ModelConfig c;
  c.preset = f.get_string("heirloom.preset", "imported");
  c.n_ctx = (int)f.get_u32("llama.context_length");
  c.n_embd = (int)f.get_u32("llama.embedding_length");
  c.n_layer = (int)f.get_u32("llama.block_count");
  c.n_ff = (int)f.get_u32("llama.feed_forward_length");
  c.n_head = (int)f.get_u32("llama.attention.head_count");
  c.n_head_kv = (int)f.get_u32("llama.attention.head_count_kv", (uint32_t)c.n_head);
  c.norm_eps = f.get_f32("llama.attention.layer_norm_rms_epsilon");
  c.rope_base = f.get_f32("llama.rope.freq_base", 10000.f);
  c.n_expert = (int)f.get_u32("llama.expert_count", 0);
  c.n_expert_used = (int)f.get_u32("llama.expert_used_count", 0);
  const std::vector<std::string> toks = f.get_string_array("tokenizer.ggml.tokens");
  c.n_vocab = (int)f.get_u32("llama.vocab_size", (uint32_t)toks.size());
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  if (const gguf::TensorInfo* t = f.find_tensor("rope_freqs.weight")) {  // Llama 3.1+: read as config, not a weight
    if (t->ne.size() != 1 || t->ne[0] > 65536)
      throw Error(f.path + ": tensor 'rope_freqs.weight' has shape " + shape_str(t->ne) + ", expected [head dim / 2]");
    c.rope_freqs.resize((size_t)t->ne[0]);
    dequantize_row(t->type, f.tensor_data(*t), c.rope_freqs.data(), t->ne[0]);
  }
  c.validate();
  if (c.n_head > 0 && c.n_embd % c.n_head == 0 && f.find("llama.rope.dimension_count") &&
      (int)f.get_u32("llama.rope.dimension_count") != c.head_dim())
    throw Error(f.path + ": llama.rope.dimension_count is " + std::to_string(f.get_u32("llama.rope.dimension_count")) +
                ", expected the head dimension " + std::to_string(c.head_dim()),
                "partial rotary embeddings are not supported");
  if ((int)toks.size() != c.n_vocab)
    throw Error(f.path + ": the vocabulary has " + std::to_string(toks.size()) + " tokens but llama.vocab_size is " +
                std::to_string(c.n_vocab));
  return c;
}

void load_tensors_into(const gguf::File& f, const std::vector<TensorSpec>& specs, float* dst) {
  for (const auto& s : specs) {
    const gguf::TensorInfo* t = f.find_tensor(s.name);
    if (!t) throw Error(f.path + ": tensor '" + s.name + "' is missing", "the file is not a complete model of this shape");
    if (t->ne != reversed(s.shape))
      throw Error(f.path + ": tensor '" + s.name + "' has shape " + shape_str(t->ne) + ", expected " +
                  shape_str(reversed(s.shape)) + " from the model's keys");
    dequantize_row(t->type, f.tensor_data(*t), dst + s.offset, s.numel);
  }
}

// Where a mapped file holds every tensor as F32, back to back in the model's own order (as save_model writes
// them when each tensor's size is a multiple of the alignment), the weights are used where they lie.
static float* f32_in_place(const gguf::File& f, const std::vector<TensorSpec>& specs) {
  if (!f.bytes.mapped()) return nullptr;
  const uint8_t* first = f.tensor_data(*f.find_tensor(specs.front().name));
  if (reinterpret_cast<uintptr_t>(first) % alignof(float) != 0) return nullptr;
  for (const auto& s : specs) {
    const gguf::TensorInfo* t = f.find_tensor(s.name);
    if (t->type != gguf::TensorType::F32 || f.tensor_data(*t) != first + s.offset * (int64_t)sizeof(float))
      return nullptr;
  }
  return const_cast<float*>(reinterpret_cast<const float*>(first));  // a private, writable mapping
}

Model model_from_file(const gguf::File& f) {
  Model m;
  m.config = read_model_config(f);
  m.vocab = read_vocab(f);
  m.tensors = model_tensors(m.config);
  for (const auto& t : f.tensors) {
    bool known = false;
    for (const auto& s : m.tensors) known |= s.name == t.name;
    if (!known && t.name.rfind("heirloom.", 0) != 0 && t.name != "rope_freqs.weight")
      throw Error(f.path + ": unexpected tensor '" + t.name + "'", "the file has tensors this architecture does not use");
  }
  // Every tensor is present with its shape before anything is allocated: keys alone cannot ask for gigabytes.
  for (const auto& s : m.tensors) {
    const gguf::TensorInfo* t = f.find_tensor(s.name);
    if (!t) throw Error(f.path + ": tensor '" + s.name + "' is missing", "the file is not a complete model of this shape");
    if (t->ne != reversed(s.shape))
      throw Error(f.path + ": tensor '" + s.name + "' has shape " + shape_str(t->ne) + ", expected " +
                  shape_str(reversed(s.shape)) + " from the model's keys");
  }
  const size_t n = m.tensors.back().offset + m.tensors.back().numel;
  if (float* in_place = f32_in_place(f, m.tensors)) {
    m.data = WeightBuffer::view(f.bytes.keeper(), in_place, n);
  } else {
    m.data.assign(n, 0.f);
    load_tensors_into(f, m.tensors, m.data.data());
  }
  m.w = bind_weights(m.config, m.tensors, m.data.data());
  return m;
}

Model load_model(const std::string& path) { return model_from_file(gguf::read_file(path)); }

}  // namespace heirloom
