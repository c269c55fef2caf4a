// Model presets and config validation. See include/heirloom/config.h.
#include "heirloom/config.h"

#include "heirloom/error.h"

namespace heirloom {

namespace {
void require(bool ok, const std::string& what, const std::string& found) {
  if (!ok) throw Error("invalid model config: expected " + what + ", found " + found,
                       "the model file may be corrupt, or the preset/flags are inconsistent");
}
}  // namespace

void ModelConfig::validate() const {
  auto s = [](long long v) { return std::to_string(v); };
  require(n_vocab >= 3 && n_vocab <= (1 << 22), "vocab size in [3, 4194304]", s(n_vocab));
  require(n_embd >= 2 && n_embd <= 65536, "embedding width in [2, 65536]", s(n_embd));
  require(n_layer >= 1 && n_layer <= 1024, "layer count in [1, 1024]", s(n_layer));
  require(n_head >= 1 && n_head <= n_embd && n_embd % n_head == 0, "head count dividing the width " + s(n_embd), s(n_head));
  require(head_dim() % 2 == 0, "an even head dimension (RoPE rotates pairs)", s(head_dim()));
  require(n_head_kv >= 1 && n_head % n_head_kv == 0, "kv head count dividing the head count " + s(n_head), s(n_head_kv));
  require(n_ff >= 1 && n_ff <= (1 << 20), "feed-forward width in [1, 1048576]", s(n_ff));
  require(n_expert >= 0 && n_expert <= 1024, "expert count in [0, 1024]", s(n_expert));
  if (n_expert > 0)
    require(n_expert_used >= 1 && n_expert_used <= n_expert, "experts used in [1, " + s(n_expert) + "]", s(n_expert_used));
  require(n_ctx >= 2 && n_ctx <= (1 << 20), "context length in [2, 1048576]", s(n_ctx));
  require(rope_base > 0.f, "a positive RoPE base", std::to_string(rope_base));
  if (!rope_freqs.empty()) {
    require((int)rope_freqs.size() == head_dim() / 2, "one RoPE frequency factor per rotated pair (" + s(head_dim() / 2) + ")",
            s((long long)rope_freqs.size()));
    for (float f : rope_freqs) require(f > 0.f && f < 1e30f, "positive, finite RoPE frequency factors", std::to_string(f));
  }
  require(norm_eps > 0.f && norm_eps < 1.f, "RMSNorm epsilon in (0, 1)", std::to_string(norm_eps));
}

ModelConfig preset_config(const std::string& name, int n_vocab) {
  ModelConfig c;
  c.preset = name;
  if (name == "tiny" || name == "tiny-dense") {
    c.n_vocab = 259; c.n_embd = 64; c.n_layer = 2; c.n_head = 4; c.n_head_kv = 2; c.n_ctx = 128;
    if (name == "tiny") { c.n_ff = 128; c.n_expert = 4; c.n_expert_used = 2; }
    else { c.n_ff = 256; }
  } else if (name == "moe-30m" || name == "dense-30m") {
    c.n_vocab = 8192; c.n_embd = 256; c.n_layer = 8; c.n_head = 8; c.n_head_kv = 8; c.n_ctx = 512;
    if (name == "moe-30m") { c.n_ff = 512; c.n_expert = 8; c.n_expert_used = 2; }
    else { c.n_ff = 3840; }  // 29.9M parameters: the MoE's total, spent on one dense SwiGLU
  } else {
    std::string names;
    for (auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error("unknown model preset '" + name + "'", "choose one of: " + names);
  }
  if (n_vocab > 0) c.n_vocab = n_vocab;
  return c;
}

std::vector<std::string> preset_names() { return {"tiny", "tiny-dense", "moe-30m", "dense-30m"}; }

namespace {
int64_t layer_attn(const ModelConfig& c) {
  const int64_t C = c.n_embd, HD = (int64_t)c.n_head * c.head_dim(), KD = (int64_t)c.n_head_kv * c.head_dim();
  return C * HD + 2 * C * KD + HD * C;
}
int64_t ffn_one(const ModelConfig& c) { return 3LL * c.n_embd * c.n_ff; }
}  // namespace

int64_t count_params(const ModelConfig& c) {
  const int64_t C = c.n_embd, V = c.n_vocab;
  int64_t per_layer = 2 * C + layer_attn(c) + (c.is_moe() ? c.n_expert * (ffn_one(c) + C) : ffn_one(c));
  return V * C * (c.tied_output ? 1 : 2) + C + c.n_layer * per_layer;
}

int64_t count_active_params(const ModelConfig& c) {
  const int64_t C = c.n_embd;
  int64_t per_layer = 2 * C + layer_attn(c) + (c.is_moe() ? c.n_expert_used * ffn_one(c) + c.n_expert * C : ffn_one(c));
  return (int64_t)c.n_vocab * C + C + c.n_layer * per_layer;
}

double attention_flops_per_token(const ModelConfig& c, int T) {
  // q·k and p·v over on average (T + 1) / 2 keys, every layer.
  return c.n_layer * 2.0 * 2.0 * c.n_head * c.head_dim() * (T + 1) / 2.0;
}

double forward_flops_per_token(const ModelConfig& c, int T) {
  // 2 flops per multiply-add of every active weight, plus attention's products.
  return 2.0 * (double)count_active_params(c) + attention_flops_per_token(c, T);
}

}  // namespace heirloom
