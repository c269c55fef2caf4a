// The one tensor list, weight binding, initialisation and fingerprint. See include/heirloom/model.h.
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/rng.h"
#include "heirloom/model.h"

namespace heirloom {

std::vector<TensorSpec> model_tensors(const ModelConfig& c) {
  const int64_t C = c.n_embd, V = c.n_vocab, F = c.n_ff, E = c.n_expert;
  const int64_t HD = (int64_t)c.n_head * c.head_dim(), KD = (int64_t)c.n_head_kv * c.head_dim();
  std::vector<TensorSpec> t;
  auto add = [&](std::string name, TensorRole role, int layer, std::vector<int64_t> shape) {
    TensorSpec s{std::move(name), role, layer, std::move(shape)};
    s.numel = 1;
    for (auto d : s.shape) s.numel *= d;
    s.offset = t.empty() ? 0 : t.back().offset + t.back().numel;
    t.push_back(std::move(s));
  };
  using R = TensorRole;
  add("token_embd.weight", R::token_embd, -1, {V, C});
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", R::attn_norm, l, {C});
    add(p + "attn_q.weight", R::attn_q, l, {HD, C});
    add(p + "attn_k.weight", R::attn_k, l, {KD, C});
    add(p + "attn_v.weight", R::attn_v, l, {KD, C});
    add(p + "attn_output.weight", R::attn_output, l, {C, HD});
    add(p + "ffn_norm.weight", R::ffn_norm, l, {C});
    if (c.is_moe()) {
      add(p + "ffn_gate_inp.weight", R::ffn_gate_inp, l, {E, C});
      add(p + "ffn_gate_exps.weight", R::ffn_gate_exps, l, {E, F, C});
      add(p + "ffn_up_exps.weight", R::ffn_up_exps, l, {E, F, C});
      add(p + "ffn_down_exps.weight", R::ffn_down_exps, l, {E, C, F});
    } else {
      add(p + "ffn_gate.weight", R::ffn_gate, l, {F, C});
      add(p + "ffn_up.weight", R::ffn_up, l, {F, C});
      add(p + "ffn_down.weight", R::ffn_down, l, {C, F});
    }
  }
  add("output_norm.weight", R::output_norm, -1, {C});
  if (!c.tied_output) add("output.weight", R::output, -1, {V, C});
  return t;
}

Weights bind_weights(const ModelConfig& c, const std::vector<TensorSpec>& specs, float* data) {
  Weights w{};
  w.layers.assign(c.n_layer, LayerWeights{});
  for (const auto& s : specs) {
    float* p = data + s.offset;
    LayerWeights* L = s.layer >= 0 ? &w.layers[s.layer] : nullptr;
    switch (s.role) {
      case TensorRole::token_embd: w.token_embd = p; break;
      case TensorRole::output_norm: w.output_norm = p; break;
      case TensorRole::output: w.output = p; break;
      case TensorRole::attn_norm: L->attn_norm = p; break;
      case TensorRole::attn_q: L->wq = p; break;
      case TensorRole::attn_k: L->wk = p; break;
      case TensorRole::attn_v: L->wv = p; break;
      case TensorRole::attn_output: L->wo = p; break;
      case TensorRole::ffn_norm: L->ffn_norm = p; break;
      case TensorRole::ffn_gate: case TensorRole::ffn_gate_exps: L->ffn_gate = p; break;
      case TensorRole::ffn_up: case TensorRole::ffn_up_exps: L->ffn_up = p; break;
      case TensorRole::ffn_down: case TensorRole::ffn_down_exps: L->ffn_down = p; break;
      case TensorRole::ffn_gate_inp: L->router = p; break;
    }
  }
  if (c.tied_output) w.output = w.token_embd;
  return w;
}

const TensorSpec* Model::find(const std::string& name) const {
  for (const auto& s : tensors)
    if (s.name == name) return &s;
  return nullptr;
}

namespace {
constexpr uint64_t kFnvOffset = 1469598103934665603ull, kFnvPrime = 1099511628211ull;

uint64_t fnv1a(uint64_t h, const void* p, size_t bytes) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ b[i]) * kFnvPrime;
  return h;
}

// Eight lanes, each h = (h ^ word) · prime over every eighth 8-byte word: a changed word changes its lane's
// value (the step is a bijection of h for any word, and of the word for any h) and every step after it.
uint64_t quick_hash(uint64_t seed, const void* p, size_t bytes) {
  const auto* b = static_cast<const unsigned char*>(p);
  uint64_t lane[8];
  for (int i = 0; i < 8; ++i) lane[i] = seed + (uint64_t)i * 0x9e3779b97f4a7c15ull;
  size_t i = 0;
  for (; i + 64 <= bytes; i += 64)
    for (int l = 0; l < 8; ++l) {
      uint64_t w;
      std::memcpy(&w, b + i + 8 * l, 8);
      lane[l] = (lane[l] ^ w) * kFnvPrime;
    }
  uint64_t h = fnv1a(kFnvOffset ^ bytes, b + i, bytes - i);
  for (int l = 0; l < 8; ++l) h = (h ^ lane[l]) * kFnvPrime;
  return h;
}
}  // namespace

std::string Model::fingerprint() const {
  // RoPE frequency factors change what the weights mean; hashed only when present, so other models keep theirs.
  const size_t weight_bytes = data.size() * sizeof(float), rope_bytes = config.rope_freqs.size() * sizeof(float);
  const uint64_t quick = quick_hash(quick_hash(0, data.data(), weight_bytes), config.rope_freqs.data(), rope_bytes);
  std::unique_lock<std::mutex> lock;
  if (fingerprint_memo_) {
    lock = std::unique_lock<std::mutex>(fingerprint_memo_->mu);
    if (fingerprint_memo_->set && fingerprint_memo_->quick == quick) return fingerprint_memo_->value;
  }
  const uint64_t h = fnv1a(fnv1a(kFnvOffset, data.data(), weight_bytes), config.rope_freqs.data(), rope_bytes);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  if (fingerprint_memo_) {
    fingerprint_memo_->set = true;
    fingerprint_memo_->quick = quick;
    fingerprint_memo_->value = buf;
  }
  return buf;
}

Model init_model(const ModelConfig& c, const Vocab& vocab, uint64_t seed) {
  c.validate();
  Model m;
  m.config = c;
  m.vocab = vocab;
  m.tensors = model_tensors(c);
  m.data.assign(m.tensors.back().offset + m.tensors.back().numel, 0.f);
  Rng rng(seed);
  const float resid_scale = 1.0f / std::sqrt(2.0f * c.n_layer);
  for (const auto& s : m.tensors) {
    float* p = m.data.data() + s.offset;
    if (s.is_norm()) {
      for (int64_t i = 0; i < s.numel; ++i) p[i] = 1.f;
      continue;
    }
    const bool resid = s.role == TensorRole::attn_output || s.role == TensorRole::ffn_down ||
                       s.role == TensorRole::ffn_down_exps;
    const float std = 0.02f * (resid ? resid_scale : 1.f);
    for (int64_t i = 0; i < s.numel; ++i) p[i] = std * rng.normal();
  }
  m.w = bind_weights(c, m.tensors, m.data.data());
  return m;
}

}  // namespace heirloom
