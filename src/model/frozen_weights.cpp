// pack_frozen(). See frozen_weights.h.
#include "model/frozen_weights.h"

#include "heirloom/error.h"
#include "model/workspace.h"

namespace heirloom {

bool bf16_available() { return bf16_gemm_available(); }

Precision resolve_precision(Precision p) {
  if (p != Precision::automatic) return p;
  return bf16_available() ? Precision::bf16 : Precision::fp32;
}

Precision parse_precision(const std::string& name) {
  if (name == "auto") return Precision::automatic;
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  throw Error("unknown precision '" + name + "'", "choose auto, fp32 or bf16");
}

const char* precision_name(Precision p) {
  return p == Precision::bf16 ? "bf16" : p == Precision::fp32 ? "fp32" : "auto";
}

std::shared_ptr<const FrozenWeights> pack_frozen(const Model& m) {
  if (!bf16_gemm_available()) throw Error("bf16 products need a CPU with AMX-BF16; this one has none", "use --precision fp32");
  const ModelConfig& c = m.config;
  const int C = c.n_embd, F = c.n_ff, HD = c.n_head * c.head_dim(), QKV = HD + 2 * c.n_head_kv * c.head_dim();
  auto p = std::make_shared<FrozenWeights>();
  p->source = m.data.data();
  p->layers.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& W = m.w.layers[l];
    FrozenLayer& f = p->layers[l];
    f.wq = pack_weight(W.wq, QKV, C);
    f.wo = pack_weight(W.wo, C, HD);
    if (c.is_moe()) {
      const int64_t fc = (int64_t)F * C;
      for (int e = 0; e < c.n_expert; ++e) {
        f.gate.push_back(pack_weight(W.ffn_gate + e * fc, F, C));
        f.up.push_back(pack_weight(W.ffn_up + e * fc, F, C));
        f.down.push_back(pack_weight(W.ffn_down + e * fc, C, F));
      }
    } else {
      f.ffn_gate = pack_weight(W.ffn_gate, F, C);
      f.ffn_up = pack_weight(W.ffn_up, F, C);
      f.ffn_down = pack_weight(W.ffn_down, C, F);
    }
  }
  p->output = pack_weight(m.w.output, c.n_vocab, C);
  return p;
}

const FrozenWeights* frozen_for(const Workspace& ws, const Model& m) {
  if (!ws.frozen) return nullptr;
  if (ws.frozen->source != m.data.data())
    throw Error("internal: the workspace's bf16 weights were packed from another model", "report this as a bug");
  return ws.frozen.get();
}

}  // namespace heirloom
