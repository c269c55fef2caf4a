// Adapter layout, views, combination and merging. See include/heirloom/adapter.h.
// Layout of Adapter::params:
//   norm  [2L+1, C]: per layer attn_norm then ffn_norm deltas, then output_norm (AdapterView::norm_delta);
//   steer [L, C];
//   lora  for each layer, for each enabled target in q, k, v, o order: A [R, in] then B [out, R];
//   full  laid out like Model::data.
#include <cmath>

#include "adapter/lora_layout.h"
#include "core/rng.h"
#include "heirloom/adapter.h"
#include "heirloom/error.h"

namespace heirloom {

const char* kind_name(AdapterKind k) {
  switch (k) {
    case AdapterKind::norm: return "norm";
    case AdapterKind::lora: return "lora";
    case AdapterKind::steer: return "steer";
    case AdapterKind::full: return "full";
  }
  return "?";
}

AdapterKind parse_adapter_kind(const std::string& s) {
  for (AdapterKind k : {AdapterKind::norm, AdapterKind::lora, AdapterKind::steer, AdapterKind::full})
    if (s == kind_name(k)) return k;
  throw Error("unknown adapter kind '" + s + "'", "use norm, lora, steer or full");
}

std::array<bool, kLoraTargets> parse_lora_targets(const std::string& s) {
  std::array<bool, kLoraTargets> t{};
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(',', start), s.size());
    const std::string name = s.substr(start, end - start);
    int i = -1;
    for (int k = 0; k < kLoraTargets; ++k)
      if (name == lora_short_name(k)) i = k;
    if (i < 0)
      throw Error("unknown LoRA target '" + name + "' in '" + s + "'",
                  "use a comma-separated list of q, k, v, o, router, gate, up, down");
    t[i] = true;
    start = end + 1;
  }
  return t;
}

std::vector<LoraBlock> lora_blocks(const ModelConfig& c, const LoraShape& s) {
  const int C = c.n_embd, HD = c.n_head * c.head_dim(), KD = c.n_head_kv * c.head_dim(), F = c.n_ff, E = c.n_expert;
  const int in[kLoraTargets] = {C, C, C, HD, C, C, C, F}, out[kLoraTargets] = {HD, KD, KD, C, E, F, F, C};
  for (int t = kLoraRouter; t < kLoraTargets; ++t)
    if (s.targets[t] && !c.is_moe())
      throw Error(std::string("LoRA target '") + lora_short_name(t) + "' needs a mixture-of-experts base; this base is dense",
                  "use q, k, v, o");
  std::vector<LoraBlock> blocks;
  int64_t off = 0;
  for (int l = 0; l < c.n_layer; ++l)
    for (int t = 0; t < kLoraTargets; ++t) {
      if (!s.targets[t]) continue;
      const int copies = is_expert_target(t) ? E : 1;
      LoraBlock b{l, t, in[t], out[t], copies, off, off + (int64_t)copies * s.rank * in[t]};
      off = b.b_offset + (int64_t)copies * out[t] * s.rank;
      blocks.push_back(b);
    }
  return blocks;
}

int64_t adapter_size(const ModelConfig& c, AdapterKind kind, const LoraShape& lora) {
  switch (kind) {
    case AdapterKind::norm: return (int64_t)(2 * c.n_layer + 1) * c.n_embd;
    case AdapterKind::steer: return (int64_t)c.n_layer * c.n_embd;
    case AdapterKind::full: return count_params(c);
    case AdapterKind::lora: {
      const auto blocks = lora_blocks(c, lora);
      return blocks.empty() ? 0 : blocks.back().b_offset + (int64_t)blocks.back().copies * blocks.back().out * lora.rank;
    }
  }
  return 0;
}

Adapter make_adapter(const Model& base, AdapterKind kind, const LoraShape& lora, uint64_t seed) {
  Adapter a;
  a.kind = kind;
  a.lora = lora;
  a.info.base_fingerprint = base.fingerprint();
  if (kind == AdapterKind::lora && (lora.rank < 1 || lora.rank > 256))
    throw Error("LoRA rank " + std::to_string(lora.rank) + " is out of range", "use a rank from 1 to 256");
  a.params.assign(adapter_size(base.config, kind, lora), 0.f);
  if (kind == AdapterKind::lora) {
    Rng rng(seed);
    for (const LoraBlock& b : lora_blocks(base.config, lora)) {
      const float std = 1.f / std::sqrt((float)b.in);  // B = 0 keeps the start exactly the base
      for (int64_t i = 0; i < (int64_t)b.copies * lora.rank * b.in; ++i) a.params[b.a_offset + i] = std * rng.normal();
    }
  }
  return a;
}

namespace {
template <class V, class P>
V make_view(const Adapter& a, const ModelConfig& c, P* p) {
  V v;
  switch (a.kind) {
    case AdapterKind::norm: v.norm_delta = p; break;
    case AdapterKind::steer: v.steer = p; break;
    case AdapterKind::full: break;
    case AdapterKind::lora:
      v.lora_a.assign(c.n_layer, {});
      v.lora_b.assign(c.n_layer, {});
      for (const LoraBlock& b : lora_blocks(c, a.lora)) {
        v.lora_a[b.layer][b.target] = p + b.a_offset;
        v.lora_b[b.layer][b.target] = p + b.b_offset;
      }
      break;
  }
  return v;
}
}  // namespace

AdapterView Adapter::view(const ModelConfig& c) const {
  AdapterView v = make_view<AdapterView>(*this, c, params.data());
  if (kind == AdapterKind::lora) {
    v.lora_rank = lora.rank;
    v.lora_scale = lora.scale();
  }
  return v;
}

AdapterGrads Adapter::grads(const ModelConfig& c, float* g) const { return make_view<AdapterGrads>(*this, c, g); }

Model clone_model(const Model& m) {
  Model c;
  c.config = m.config;
  c.vocab = m.vocab;
  c.tensors = m.tensors;
  c.data = m.data;
  c.w = bind_weights(c.config, c.tensors, c.data.data());
  return c;
}

}  // namespace heirloom
