// Workspace sizing. See workspace.h.
#include "model/workspace.h"

#include <algorithm>

#include "core/huge_pages.h"
#include "ops/attention.h"

namespace heirloom {

void WorkspaceDeleter::operator()(Workspace* w) const { delete w; }
WorkspacePtr make_workspace() { return WorkspacePtr(new Workspace()); }

MoeSaved LayerActs::moe_saved() {
  return MoeSaved{probs.data(), topk.data(), weights.data(), offsets.data(), slot_row.data(), slot_of.data(),
                  xg.data(),    hg.data(),   hu.data(),      h.data(),       y.data(),        logits.data(),
                  cursor.data(), xg_packs.empty() ? nullptr : xg_packs.data(),
                  h_packs.empty() ? nullptr : h_packs.data(), hg16.data(), hu16.data()};
}

const float* Workspace::gain(const Model& m, int seg, int j) const {
  if (!gains[seg].empty()) return gains[seg].data() + (int64_t)j * m.config.n_embd;
  const int L = m.config.n_layer;
  if (j == 2 * L) return m.w.output_norm;
  return j % 2 == 0 ? m.w.layers[j / 2].attn_norm : m.w.layers[j / 2].ffn_norm;
}

namespace {
// resize, not assign: a shorter batch (the last evaluation window) keeps the allocation, so alternating
// shapes cost no reallocation. Nothing relies on a buffer's values when it grows (Buf leaves new values
// unset, and new memory is asked for on huge pages before it is touched): what a step never writes is
// never touched.
template <class Vec>
void fit(Vec& v, size_t n) {
  reserve_on_huge_pages(v, n);
  if (v.size() != n) v.resize(n);
}
}  // namespace

void ensure_shape(Workspace& ws, const Model& m, int B, int T, int S, int lora_rank, bool for_backward) {
  const ModelConfig& c = m.config;
  const int64_t N = (int64_t)B * T, C = c.n_embd, D = c.head_dim(), H = c.n_head, Hkv = c.n_head_kv;
  const int64_t QKV = (H + 2 * Hkv) * D, F = c.n_ff, E = c.n_expert, K = c.n_expert_used;
  const int64_t NF = c.is_moe() ? N * K * F : N * F;
  ws.B = B;
  ws.T = T;
  ws.S = S;
  ws.lora_rmax = lora_rank;
  ws.layers.resize(c.n_layer);
  for (int l = 0; l < (for_backward ? c.n_layer : std::min(c.n_layer, 2)); ++l) {
    LayerActs& a = ws.layers[l];
    fit(a.x, N * C); fit(a.ln1, N * C); fit(a.rstd1, N); fit(a.qkv, N * QKV);
    if (for_backward) {  // backward reads the probabilities, or makes them again from the stats (attention.h)
      fit(a.att_stats, B * H * T * 2);
      fit(a.att_probs, attention_kept_size(B, H, T));  // pages never touched where attention stays in fp32
    }
    fit(a.atty, N * H * D); fit(a.mid, N * C); fit(a.ln2, N * C); fit(a.rstd2, N);
    fit(a.hg, NF); fit(a.hu, NF); fit(a.h, NF);
    if (c.is_moe()) {
      fit(a.probs, N * E); fit(a.weights, N * K); fit(a.xg, N * K * C); fit(a.y, N * K * C);
      fit(a.topk, N * K); fit(a.offsets, E + 1); fit(a.slot_row, N * K); fit(a.slot_of, N * K);
      fit(a.logits, N * E); fit(a.cursor, E); fit(a.hg16, NF); fit(a.hu16, NF);
      if (for_backward) a.xg_packs.resize(E), a.h_packs.resize(E);
    }
    for (int t = 0; t < kLoraTargets; ++t) fit(a.lora_u[t], (is_expert_target(t) ? N * std::max<int64_t>(K, 1) : N) * lora_rank);
  }
  fit(ws.lora_bt, std::max({QKV, C, E}) * lora_rank);
  fit(ws.xf, N * C); fit(ws.lnf, N * C); fit(ws.rstdf, N); fit(ws.losses, N); fit(ws.row_lse, N); fit(ws.targets, N);
  if (!for_backward) return;
  fit(ws.dres, N * C); fit(ws.dln, N * C); fit(ws.dqkv, N * QKV);
  fit(ws.datty, N * H * D); fit(ws.dlnf, N * C); fit(ws.dlogits, N * (int64_t)c.n_vocab); fit(ws.dgain, C);
  if (bf16_amx_available()) fit(ws.dlogits16, N * (int64_t)c.n_vocab);
  // expert LoRA: one row per slot; q, k and v's of one adapter over the batch side by side (model/backward.cpp)
  fit(ws.du, N * std::max<int64_t>(K, 3) * std::max(lora_rank, 1));
  fit(ws.dh, NF); fit(ws.dhg, NF); fit(ws.dhu, NF);
  if (c.is_moe()) { fit(ws.dhu16, NF); fit(ws.ddy, N * K * C); fit(ws.ddxg, N * K * C); fit(ws.ddlogits, N * E); fit(ws.ddw, N * K); fit(ws.dgaux, E); }
}

}  // namespace heirloom

namespace heirloom {

std::vector<MoeLoraPart> moe_lora_parts(const Workspace& ws, int l, const AdapterView* trained, const AdapterGrads* da) {
  std::vector<MoeLoraPart> parts;
  for (const Segment& sg : ws.segments) {
    const AdapterView* a = sg.adapter;
    if (!a || a->lora_a.empty()) continue;
    const auto& la = a->lora_a[l];
    if (!la[kLoraGate] && !la[kLoraUp] && !la[kLoraDown]) continue;
    const bool trains = da && trained && a == trained && !da->lora_a.empty();
    MoeLoraPart p{sg.b0 * ws.T, sg.b1 * ws.T, a->lora_rank, a->lora_scale, {}, {}, {}, {}};
    for (int j = 0; j < 3; ++j) {
      p.a[j] = la[kLoraGate + j];
      p.b[j] = a->lora_b[l][kLoraGate + j];
      p.da[j] = trains ? da->lora_a[l][kLoraGate + j] : nullptr;
      p.db[j] = trains ? da->lora_b[l][kLoraGate + j] : nullptr;
    }
    parts.push_back(p);
  }
  return parts;
}

MoeLora moe_lora(Workspace& ws, int l, const std::vector<MoeLoraPart>& parts) {
  LayerActs& A = ws.acts(l);
  return MoeLora{parts.data(), (int)parts.size(), ws.lora_rmax,
                 {A.lora_u[kLoraGate].data(), A.lora_u[kLoraUp].data(), A.lora_u[kLoraDown].data()}, ws.du.data()};
}

}  // namespace heirloom
