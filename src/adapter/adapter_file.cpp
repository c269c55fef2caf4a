// Adapter files (GGUF, general.type = "adapter") and llama.cpp control vectors.
// Keys: general.architecture "llama" (llama.cpp requires the base's), general.type "adapter",
// adapter.type = the kind ("lora" is what llama.cpp applies; it refuses the others, which it could not
// apply anyway), adapter.lora.alpha for LoRA, and heirloom.* for provenance and the checksum.
// Tensors: norm "heirloom.norm_delta" [C, 2L+1]; steer "heirloom.steer" [C, L]; LoRA with llama.cpp's
// names "<base tensor>.lora_a" [in, R] and ".lora_b" [R, out] ([in, R, E], [R, out, E] for the experts);
// full: the base's tensor names, as deltas.
// The checksum is the sha256 of the data section's tensor bytes, so any flipped byte is caught.
#include <cmath>
#include <ctime>

#include "adapter/lora_layout.h"
#include "core/half.h"
#include "core/sha256.h"
#include "heirloom/adapter.h"
#include "core/clock.h"
#include "heirloom/error.h"
#include "io/gguf.h"

namespace heirloom {

namespace {

struct Part {
  std::string name;
  std::vector<int64_t> ne;
  int64_t offset, numel;  // into Adapter::params
};

std::vector<Part> file_parts(const Adapter& a, const ModelConfig& c) {
  const int64_t C = c.n_embd, L = c.n_layer;
  switch (a.kind) {
    case AdapterKind::norm: return {{"heirloom.norm_delta", {C, 2 * L + 1}, 0, (2 * L + 1) * C}};
    case AdapterKind::steer: return {{"heirloom.steer", {C, L}, 0, L * C}};
    case AdapterKind::lora: {
      std::vector<Part> parts;
      const int64_t R = a.lora.rank;
      for (const LoraBlock& b : lora_blocks(c, a.lora)) {
        const std::string base = "blk." + std::to_string(b.layer) + "." + lora_base_name(b.target) + ".weight";
        // Expert targets are 3-D, as llama.cpp lays them out: [in, R, E] and [R, out, E].
        std::vector<int64_t> na{b.in, R}, nb{R, b.out};
        if (is_expert_target(b.target)) na.push_back(b.copies), nb.push_back(b.copies);
        parts.push_back({base + ".lora_a", na, b.a_offset, b.copies * R * b.in});
        parts.push_back({base + ".lora_b", nb, b.b_offset, b.copies * R * b.out});
      }
      return parts;
    }
    case AdapterKind::full: {
      std::vector<Part> parts;
      for (const TensorSpec& s : model_tensors(c)) parts.push_back({s.name, {s.shape.rbegin(), s.shape.rend()}, s.offset, s.numel});
      return parts;
    }
  }
  return {};
}

std::string ne_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

}  // namespace

namespace {

// The tensors of an adapter, converted to the storage type: a plain adapter's parts, or each branch's
// parts under "branch.N." for a concatenated heir. The checksum covers every byte in file order.
struct Encoded {
  std::vector<Part> parts;
  std::vector<std::vector<uint8_t>> bytes;
  TensorType type;
  std::string sha256;
};

Encoded encode(const Adapter& a, const ModelConfig& c, StorageType storage) {
  Encoded e;
  e.type = storage == StorageType::f16 ? TensorType::F16 : TensorType::F32;
  const size_t esize = storage == StorageType::f16 ? 2 : 4;
  Sha256 sha;
  const bool routed = a.routed();
  const size_t n_bodies = routed ? a.branches.size() : 1;
  for (size_t br = 0; br < n_bodies; ++br) {
    const Adapter& body = routed ? a.branches[br] : a;
    if (body.kind != a.kind || (int64_t)body.params.size() != adapter_size(c, a.kind, a.lora))
      throw Error("adapter has " + std::to_string(body.params.size()) + " values, expected " +
                  std::to_string(adapter_size(c, a.kind, a.lora)) + " for a " + kind_name(a.kind) + " adapter of this base");
    for (float x : body.params)
      if (!std::isfinite(x)) throw Error("refusing to save an adapter with a NaN or infinite value", "training diverged; lower --lr");
    for (Part p : file_parts(a, c)) {
      auto& b = e.bytes.emplace_back((size_t)p.numel * esize);
      quantize_row(e.type, body.params.data() + p.offset, b.data(), p.numel);
      sha.update(b.data(), b.size());
      if (routed) p.name = "branch." + std::to_string(br) + "." + p.name;
      e.parts.push_back(p);
    }
  }
  e.sha256 = sha.hex();
  return e;
}

void write_lineage(gguf::Writer& w, const Lineage& l) {
  w.set_u32("heirloom.generation", (uint32_t)l.generation);
  if (l.generation == 0) return;
  w.set_string("heirloom.lineage.scheme", l.scheme);
  w.set_string("heirloom.lineage.params", l.params);
  w.set_string("heirloom.lineage.parent", l.parent_sha256);
  w.set_string("heirloom.lineage.child", l.child_sha256);
  w.set_string("heirloom.lineage.parent_owner", l.parent_owner);
  w.set_string("heirloom.lineage.child_owner", l.child_owner);
  w.set_u32("heirloom.lineage.parent_generation", (uint32_t)l.parent_generation);
  w.set_f32("heirloom.lineage.overlap_cosine", (float)l.overlap_cosine);
  w.set_string("heirloom.lineage.regime", l.regime);
}

Lineage read_lineage(const gguf::File& f) {
  Lineage l;
  l.generation = (int)f.get_u32("heirloom.generation", 0);
  if (l.generation == 0) return l;
  l.scheme = f.get_string("heirloom.lineage.scheme", "");
  l.params = f.get_string("heirloom.lineage.params", "");
  l.parent_sha256 = f.get_string("heirloom.lineage.parent", "");
  l.child_sha256 = f.get_string("heirloom.lineage.child", "");
  l.parent_owner = f.get_string("heirloom.lineage.parent_owner", "");
  l.child_owner = f.get_string("heirloom.lineage.child_owner", "");
  l.parent_generation = (int)f.get_u32("heirloom.lineage.parent_generation", 0);
  l.overlap_cosine = f.get_f32("heirloom.lineage.overlap_cosine", 0.f);
  l.regime = f.get_string("heirloom.lineage.regime", "");
  return l;
}

}  // namespace

std::string adapter_checksum(const Adapter& a, const ModelConfig& c, StorageType storage) { return encode(a, c, storage).sha256; }

std::string save_adapter(const Adapter& a, const ModelConfig& c, const std::string& path, StorageType storage) {
  const Encoded e = encode(a, c, storage);
  gguf::Writer w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.type", "adapter");
  w.set_string("adapter.type", kind_name(a.kind));
  if (a.kind == AdapterKind::lora) w.set_f32("adapter.lora.alpha", a.lora.alpha);
  w.set_string("heirloom.base", a.info.base_fingerprint);
  w.set_string("heirloom.owner", a.info.owner);
  w.set_string("heirloom.created", a.info.created.empty() ? utc_now_iso8601() : a.info.created);
  w.set_u32("heirloom.steps", (uint32_t)a.info.steps);
  w.set_u32("heirloom.batch", (uint32_t)a.info.batch);
  w.set_u32("heirloom.seq", (uint32_t)a.info.seq);
  w.set_f32("heirloom.lr", a.info.lr);
  w.set_u64("heirloom.tokens", (uint64_t)a.info.tokens);
  w.set_u64("heirloom.seed", a.info.seed);
  write_lineage(w, a.lineage);
  if (a.routed()) {
    w.set_u32("heirloom.branches", (uint32_t)a.branches.size());
    w.set_string("heirloom.router", "lowest perplexity on the prompt so far");
    for (size_t b = 0; b < a.branches.size(); ++b) w.set_string("heirloom.branch." + std::to_string(b) + ".owner", a.branches[b].info.owner);
  }
  w.set_string("heirloom.sha256", e.sha256);
  for (size_t i = 0; i < e.parts.size(); ++i)
    w.add_tensor(e.parts[i].name, e.parts[i].ne, e.type, e.bytes[i].data(), e.bytes[i].size());
  w.write(path);
  return e.sha256;
}

namespace {

void require_adapter_type(const gguf::File& f) {
  const std::string& path = f.path;
  const std::string type = f.get_string("general.type", "model");
  if (type != "adapter")
    throw Error(path + ": general.type is '" + type + "', expected 'adapter'",
                "this looks like a model file; pass it as --base, and an adapter made by `heirloom personalize` as --adapter");
}

AdapterInfo read_info(const gguf::File& f) {
  AdapterInfo i;
  i.base_fingerprint = f.get_string("heirloom.base");
  i.owner = f.get_string("heirloom.owner", "");
  i.created = f.get_string("heirloom.created", "");
  i.steps = (int)f.get_u32("heirloom.steps", 0);
  i.batch = (int)f.get_u32("heirloom.batch", 0);
  i.seq = (int)f.get_u32("heirloom.seq", 0);
  i.lr = f.get_f32("heirloom.lr", 0.f);
  i.tokens = (int64_t)f.get_u64("heirloom.tokens", 0);
  i.seed = f.get_u64("heirloom.seed", 0);
  return i;
}

Adapter adapter_from_file(const gguf::File& f, const Model& base) {
  const std::string& path = f.path;
  require_adapter_type(f);
  Adapter a;
  a.kind = parse_adapter_kind(f.get_string("adapter.type"));
  a.info = read_info(f);
  const std::string want = base.fingerprint();
  if (a.info.base_fingerprint != want)
    throw Error(path + " was trained on the base with fingerprint " + a.info.base_fingerprint +
                    ", but the loaded base has fingerprint " + want,
                "an adapter only means something on its own base; pass that base with --base");
  a.lineage = read_lineage(f);
  const ModelConfig& c = base.config;
  if (a.kind == AdapterKind::lora) {
    a.lora.alpha = f.get_f32("adapter.lora.alpha");
    a.lora.targets = {};
    a.lora.rank = 0;
    for (const auto& t : f.tensors)
      for (int k = 0; k < kLoraTargets; ++k)
        if (t.name.ends_with(std::string(".") + lora_base_name(k) + ".weight.lora_a")) {
          a.lora.targets[k] = true;
          if (t.ne.size() >= 2) a.lora.rank = (int)t.ne[1];
        }
    if (a.lora.rank < 1 || a.lora.rank > 256) throw Error(path + ": no usable LoRA tensors (rank " + std::to_string(a.lora.rank) + ")");
  }
  const uint32_t n_branches = f.get_u32("heirloom.branches", 0);
  if (n_branches > 16) throw Error(path + ": " + std::to_string(n_branches) + " branches; a concatenated heir has a few");
  const std::vector<Part> parts = file_parts(a, c);
  const size_t n_bodies = n_branches ? n_branches : 1;
  if (f.tensors.size() != parts.size() * n_bodies)
    throw Error(path + ": has " + std::to_string(f.tensors.size()) + " tensors, expected " + std::to_string(parts.size() * n_bodies) +
                " for a " + kind_name(a.kind) + " adapter of this base");
  Sha256 sha;
  for (size_t br = 0; br < n_bodies; ++br) {
    Adapter& body = n_branches ? a.branches.emplace_back() : a;
    if (n_branches) {
      body.kind = a.kind, body.lora = a.lora, body.info = a.info;
      body.info.owner = f.get_string("heirloom.branch." + std::to_string(br) + ".owner", "");
    }
    body.params.assign(adapter_size(c, a.kind, a.lora), 0.f);
    const std::string prefix = n_branches ? "branch." + std::to_string(br) + "." : "";
    for (const Part& p : parts) {
      const gguf::TensorInfo* t = f.find_tensor(prefix + p.name);
      if (!t) throw Error(path + ": tensor '" + prefix + p.name + "' is missing");
      if (t->ne != p.ne) throw Error(path + ": tensor '" + t->name + "' has shape " + ne_str(t->ne) + ", expected " + ne_str(p.ne));
      sha.update(f.tensor_data(*t), t->nbytes());
      dequantize_row(t->type, f.tensor_data(*t), body.params.data() + p.offset, p.numel);
    }
    for (float x : body.params)
      if (!std::isfinite(x)) throw Error(path + ": contains NaN or infinite values", "the adapter is unusable; train it again");
  }
  const std::string sum = sha.hex(), stored = f.get_string("heirloom.sha256");
  if (sum != stored)
    throw Error(path + ": content checksum does not match (stored " + stored.substr(0, 12) + "…, computed " +
                    sum.substr(0, 12) + "…)",
                "the file is damaged; train or copy it again");
  a.info.sha256 = sum;
  for (Adapter& b : a.branches) b.info.sha256 = sum;
  return a;
}

}  // namespace

Adapter load_adapter(const std::string& path, const Model& base) { return adapter_from_file(gguf::read_file(path), base); }

Adapter load_adapter_bytes(std::vector<uint8_t> bytes, const std::string& name, const Model& base) {
  return adapter_from_file(gguf::read_bytes(std::move(bytes), name), base);
}

AdapterHeader read_adapter_header(std::vector<uint8_t> bytes, const std::string& name) {
  const gguf::File f = gguf::read_bytes(std::move(bytes), name);
  require_adapter_type(f);
  AdapterHeader h;
  h.kind = parse_adapter_kind(f.get_string("adapter.type"));
  h.info = read_info(f);
  h.lineage = read_lineage(f);
  h.branches = (int)f.get_u32("heirloom.branches", 0);
  h.info.sha256 = f.get_string("heirloom.sha256");
  Sha256 sha;  // the tensors in file order are the order save_adapter hashed them in
  for (const auto& t : f.tensors) sha.update(f.tensor_data(t), t.nbytes());
  h.checksum_ok = sha.hex() == h.info.sha256;
  return h;
}

void save_control_vector(const Adapter& a, const ModelConfig& c, const std::string& path) {
  if (a.kind != AdapterKind::steer)
    throw Error(std::string("only a steering adapter can be written as a control vector (this one is ") + kind_name(a.kind) + ")");
  gguf::Writer w;
  w.set_string("general.architecture", "controlvector");
  w.set_string("controlvector.model_hint", "llama");
  w.set_i32("controlvector.layer_count", c.n_layer - 1);
  // llama.cpp adds direction.N after block N for N >= 1; heirloom keeps block 0's vector at zero.
  for (int l = 1; l < c.n_layer; ++l)
    w.add_tensor("direction." + std::to_string(l), {c.n_embd}, TensorType::F32, a.params.data() + (int64_t)l * c.n_embd,
                 (size_t)c.n_embd * sizeof(float));
  w.write(path);
}

}  // namespace heirloom
