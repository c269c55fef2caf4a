// The backward pass of forward.cpp, layer by layer in reverse. Weight gradients are computed only for
// trainable tensors (null gradient pointers skip that work inside the ops); activation gradients flow
// through every layer. Norm-gain gradients go to the base gain and/or the trained adapter's delta
// (d gain = d delta, since gain = base + delta). See include/heirloom/engine.h.
#include <algorithm>
#include <cstring>
#include <optional>

#include "core/gemm.h"
#include "core/op_time.h"
#include "core/parallel.h"
#include "heirloom/engine.h"
#include "heirloom/error.h"
#include "model/workspace.h"
#include "ops/attention.h"
#include "ops/embed.h"
#include "model/frozen_weights.h"
#include "ops/matmul.h"
#include "ops/moe.h"
#include "ops/rmsnorm.h"
#include "ops/swiglu.h"
#include "ops/xent.h"

namespace heirloom {

namespace {

// In parallel: a serial clear of these megabytes once cost more than a small GEMM.
template <class Vec>
void zero(Vec& v) {
  const int64_t n = (int64_t)v.size(), chunk = 16384;
  parallel_for((n + chunk - 1) / chunk, n > 4 * chunk,
               [&](int64_t c) { std::fill(v.data() + c * chunk, v.data() + std::min(n, (c + 1) * chunk), 0); });
}

// Gradient pointers for the base, null where frozen (or everywhere when dbase is null).
Weights trainable_grads(const Model& m, const std::vector<bool>& trainable, float* dbase) {
  Weights g{};
  g.layers.assign(m.config.n_layer, LayerWeights{});
  if (!dbase) return g;
  if (trainable.size() != m.tensors.size()) throw Error("backward: trainable mask does not match the model's tensor list");
  Weights all = bind_weights(m.config, m.tensors, dbase);
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    if (!trainable[i]) continue;
    const TensorSpec& s = m.tensors[i];
    const LayerWeights* a = s.layer >= 0 ? &all.layers[s.layer] : nullptr;
    LayerWeights* L = s.layer >= 0 ? &g.layers[s.layer] : nullptr;
    switch (s.role) {
      case TensorRole::token_embd: g.token_embd = all.token_embd; if (m.config.tied_output) g.output = all.token_embd; break;
      case TensorRole::output_norm: g.output_norm = all.output_norm; break;
      case TensorRole::output: g.output = all.output; break;
      case TensorRole::attn_norm: L->attn_norm = a->attn_norm; break;
      case TensorRole::attn_q: case TensorRole::attn_k: case TensorRole::attn_v:
        L->wq = a->wq; break;  // q|k|v share one fused gradient GEMM
      case TensorRole::attn_output: L->wo = a->wo; break;
      case TensorRole::ffn_norm: L->ffn_norm = a->ffn_norm; break;
      case TensorRole::ffn_gate: case TensorRole::ffn_gate_exps: L->ffn_gate = a->ffn_gate; break;
      case TensorRole::ffn_up: case TensorRole::ffn_up_exps: L->ffn_up = a->ffn_up; break;
      case TensorRole::ffn_down: case TensorRole::ffn_down_exps: L->ffn_down = a->ffn_down; break;
      case TensorRole::ffn_gate_inp: L->router = a->router; break;
    }
  }
  return g;
}

struct Ctx {
  const Model& m;
  Workspace& ws;
  const AdapterView* trained;
  const AdapterGrads* da;
  int T, C;
  bool trains(const Segment& sg) const { return da && sg.adapter == trained && trained; }
};

// RMSNorm backward per segment: dinp += ...; gain gradient to the base slot and/or the adapter delta.
void norm_backward(const Ctx& x, int j, float* dinp, const float* dout, const float* inp, const float* rstd,
                   float* dbase_gain) {
  const TimedOp part("norms");
  for (size_t s = 0; s < x.ws.segments.size(); ++s) {
    const Segment& sg = x.ws.segments[s];
    const int64_t r0 = (int64_t)sg.b0 * x.T, n = (int64_t)(sg.b1 - sg.b0) * x.T;
    float* dad = x.trains(sg) && x.da->norm_delta ? x.da->norm_delta + (int64_t)j * x.C : nullptr;
    float* dg = nullptr;
    if (dad || dbase_gain) { zero(x.ws.dgain); dg = x.ws.dgain.data(); }
    rmsnorm_backward(dinp + r0 * x.C, dg, dout + r0 * x.C, inp + r0 * x.C, x.ws.gain(x.m, s, j), rstd + r0, (int)n, x.C);
    for (int c = 0; dg && c < x.C; ++c) {
      if (dad) dad[c] += dg[c];
      if (dbase_gain) dbase_gain[c] += dg[c];
    }
  }
}

// LoRA backward for one target (out += s·(inp·Aᵀ)·Bᵀ) on a segment's n rows from r0: du = s·(dout·B), and,
// where the adapter trains, dB += s·doutᵀ·u and dA += duᵀ·inp. The input's gradient dinp += du·A is the caller's.
void lora_grads(const Ctx& x, const Segment& sg, int l, int t, float* du, const float* dout, int ldo,
                const float* inp, int ldi, int I, int O) {
  const AdapterView* a = sg.adapter;
  const int64_t r0 = (int64_t)sg.b0 * x.T, n = (int64_t)(sg.b1 - sg.b0) * x.T;
  const int R = a->lora_rank;
  const float* u = x.ws.layers[l].lora_u[t].data() + r0 * x.ws.lora_rmax;
  gemm(false, false, (int)n, R, O, a->lora_scale, dout + r0 * ldo, ldo, a->lora_b[l][t], R, 0.f, du, R);
  if (x.trains(sg) && !x.da->lora_b.empty() && x.da->lora_b[l][t])
    gemm(true, false, O, R, (int)n, a->lora_scale, dout + r0 * ldo, ldo, u, R, 1.f, x.da->lora_b[l][t], R);
  if (x.trains(sg) && !x.da->lora_a.empty() && x.da->lora_a[l][t])
    gemm(true, false, R, I, (int)n, 1.f, du, R, inp + r0 * ldi, ldi, 1.f, x.da->lora_a[l][t], I);
}

// Each segment's LoRA on target t: lora_grads, then dinp += du·A on the segment's rows.
void lora_backward(const Ctx& x, int l, int t, float* dinp, int ldi_d, const float* dout, int ldo, const float* inp,
                   int ldi, int I, int O) {
  for (const Segment& sg : x.ws.segments) {
    if (!has_lora(sg.adapter, l, t)) continue;
    const int64_t r0 = (int64_t)sg.b0 * x.T, n = (int64_t)(sg.b1 - sg.b0) * x.T;
    float* du = x.ws.du.data();
    lora_grads(x, sg, l, t, du, dout, ldo, inp, ldi, I, O);
    gemm(false, false, (int)n, I, sg.adapter->lora_rank, 1.f, du, sg.adapter->lora_rank, sg.adapter->lora_a[l][t], I,
         1.f, dinp + r0 * ldi_d, ldi_d);
  }
}

// A layer product's input gradient dinp = dout · W (matmul_backward, written), then each segment's LoRA on the
// product's targets (their outputs at columns off[i] of dout). Where one adapter covers the whole batch, its
// dinp += du·A go into the product as a rank update (core/rank_update.h), the same sums in the same order.
void product_backward(const Ctx& x, int l, std::initializer_list<int> targets, const int* off, const int* width,
                      float* dinp, int ldi_d, float* dweight, const float* dout, int ldo, const float* inp, int ldi,
                      const float* weight, int I, int O, const PackedWeight* packed, bool write_dweight) {
  const std::vector<Segment>& segs = x.ws.segments;
  const int N = x.ws.N();
  const bool whole = x.ws.one_segment();
  RankUpdate ru;
  int i = 0;
  for (int t : targets) {
    if (whole && has_lora(segs[0].adapter, l, t)) {
      const AdapterView* a = segs[0].adapter;
      float* du = x.ws.du.data() + (int64_t)i * N * a->lora_rank;
      lora_grads(x, segs[0], l, t, du, dout + off[i], ldo, inp, ldi, I, width[i]);
      ru.add({0, I, a->lora_rank, du, a->lora_rank, a->lora_a[l][t], I});
    }
    ++i;
  }
  matmul_backward(dinp, ldi_d, dweight, dout, ldo, inp, ldi, weight, N, I, O, packed, true, write_dweight,
                  ru.n ? &ru : nullptr);
  i = 0;
  for (int t : targets) {
    if (!whole) lora_backward(x, l, t, dinp, ldi_d, dout + off[i], ldo, inp, ldi, I, width[i]);
    ++i;
  }
}

}  // namespace

void backward(const Model& m, Workspace& ws, std::span<const AdapterView* const> adapters,
              const std::vector<bool>& base_trainable, float* dbase, const AdapterView* trained,
              const AdapterGrads* dadapter, float aux_coef, bool dbase_write) {
  if (!ws.has_backward_state) throw Error("backward: the last forward did not keep activations (for_backward)");
  const ModelConfig& c = m.config;
  const int B = ws.B, T = ws.T, C = c.n_embd, L = c.n_layer, V = c.n_vocab, D = c.head_dim();
  const int H = c.n_head, Hkv = c.n_head_kv, HD = H * D, KD = Hkv * D, QKV = HD + 2 * KD;
  const int64_t N = (int64_t)B * T;
  const Weights g = trainable_grads(m, base_trainable, dbase);
  const Ctx x{m, ws, trained, dadapter, T, C};
  const FrozenWeights* fz = frozen_for(ws, m);
  if (fz && !fz->output.has_backward())  // every product below (some bypass matmul_backward) needs bwd
    throw Error("internal: backward with weights packed for inference only (pack_frozen for_backward)", "report this as a bug");

  if (dbase_write) {  // the gradients made as sums of parts start from zero; the rest are written whole below
    auto clear = [&](float* t, int64_t n) { if (t) std::fill_n(t, n, 0.f); };
    if (!c.tied_output) clear(g.token_embd, (int64_t)V * C);  // tied: added to the head's, which is written
    clear(g.output_norm, C);
    for (const LayerWeights& G : g.layers) clear(G.attn_norm, C), clear(G.ffn_norm, C);
  }

  // --- head: d objective / d logits = (softmax − onehot) / n_scored
  int n_scored = 0;
  for (int64_t i = 0; i < N; ++i) n_scored += ws.targets[i] >= 0;
  std::optional<TimedOp> head_part(std::in_place, "head");  // with the cross-entropy's gradient rows, made in its product
  if (fz && fz->output.bf16() && n_scored > 0) {
    // A bf16 head: dlogits is made in bf16, a row at a time as dlnf = dlogits · W needs it, and never in fp32.
    // A frozen head's rows are not stored; a trained head's are (16 MB, not 32), for its gradient dlogitsᵀ · lnf.
    // The same numbers as the stored path below; a tied embedding's gradient is added after it, at the end.
    // Where the gradient's dot products take dlogitsᵀ in pairs of tokens, the rows go straight into those.
    const float scale = 1.0f / n_scored;
    const bool pairs = g.output && tn_takes_pairs();
    uint16_t* kept = g.output && !pairs ? ws.dlogits16.data() : nullptr;
    if (pairs) size_pair_rows(ws.dlogits_pairs, (int)N, V);
    gemm_bf16_produced((int)N, [&](int r, uint16_t* row) {
      uint16_t* d = kept ? kept + (int64_t)r * V : row;
      xent_backward_row(d, ws.logits.data() + (int64_t)r * V, ws.targets[r], scale, V, ws.row_lse[r]);
      if (kept) std::memcpy(row, d, sizeof(uint16_t) * V);
      if (pairs) put_pair_row(ws.dlogits_pairs, r, row);
    }, fz->output.bwd, ws.dlnf.data(), C, false);
    if (pairs) gemm_bf16_tn(ws.dlogits_pairs, C, ws.lnf.data(), C, g.output, C, !dbase_write);
    if (kept) gemm_bf16_tn(V, C, (int)N, kept, V, ws.lnf.data(), C, g.output, C, !dbase_write);
  } else {
    if (n_scored > 0) xent_backward_write(ws.dlogits.data(), ws.logits.data(), ws.targets.data(), 1.0f / n_scored, (int)N, V, ws.row_lse.data());
    else zero(ws.dlogits);
    // (written under dbase_write: a tied embedding's gradient is added after it, at the end)
    matmul_backward(ws.dlnf.data(), C, g.output, ws.dlogits.data(), V, ws.lnf.data(), C, m.w.output, (int)N, C, V,
                    fz ? &fz->output : nullptr, true, dbase_write);
  }
  head_part.reset();
  zero(ws.dres);
  norm_backward(x, 2 * L, ws.dres.data(), ws.dlnf.data(), ws.xf.data(), ws.rstdf.data(), g.output_norm);

  for (int l = L - 1; l >= 0; --l) {
    LayerActs& A = ws.layers[l];
    const LayerWeights& W = m.w.layers[l];
    const LayerWeights& G = g.layers[l];
    const FrozenLayer* P = fz ? &fz->layers[l] : nullptr;
    // steering: x_{l+1} += dir_l
    for (const Segment& sg : ws.segments) {
      if (!x.trains(sg) || !dadapter->steer) continue;
      float* ds = dadapter->steer + (int64_t)l * C;
      for (int64_t r = (int64_t)sg.b0 * T; r < (int64_t)sg.b1 * T; ++r)
        for (int ch = 0; ch < C; ++ch) ds[ch] += ws.dres[r * C + ch];
    }
    // --- feed-forward block: x_{l+1} = mid + ffn(ln2(mid)); its first product writes dln
    std::optional<TimedOp> ffn_part(std::in_place, "feed-forward");  // with parts of its own in a MoE (ops/moe.cpp)
    if (c.is_moe()) {
      MoeShape ms{(int)N, C, c.n_ff, c.n_expert, c.n_expert_used};
      const MoeWeights mw = moe_weights(W, P);
      MoeGrads mg{G.router, G.ffn_gate, G.ffn_up, G.ffn_down, dbase_write};
      MoeScratch sc{ws.ddy.data(), ws.dh.data(), ws.dhg.data(), ws.dhu.data(), ws.ddxg.data(), ws.ddlogits.data(),
                    ws.ddw.data(), ws.dgaux.data(), ws.dhu16.data()};
      const std::vector<MoeLoraPart> parts = moe_lora_parts(ws, l, trained, dadapter);
      const MoeLora ml = moe_lora(ws, l, parts);
      moe_backward(ws.dln.data(), mg, sc, ws.dres.data(), aux_coef / L, A.moe_saved(), A.ln2.data(), mw, ms,
                   parts.empty() ? nullptr : &ml, ws.moe_h_kept, true);
      lora_backward(x, l, kLoraRouter, ws.dln.data(), C, ws.ddlogits.data(), c.n_expert, A.ln2.data(), C, C, c.n_expert);
    } else {
      const int F = c.n_ff;
      matmul_backward(ws.dh.data(), F, G.ffn_down, ws.dres.data(), C, A.h.data(), F, W.ffn_down, (int)N, F, C,
                      P ? &P->ffn_down : nullptr, true, dbase_write);
      swiglu_backward(ws.dhg.data(), ws.dhu.data(), ws.dh.data(), A.hg.data(), A.hu.data(), (int)N, F);
      matmul_backward(ws.dln.data(), C, G.ffn_gate, ws.dhg.data(), F, A.ln2.data(), C, W.ffn_gate, (int)N, C, F,
                      P ? &P->ffn_gate : nullptr, true, dbase_write);
      matmul_backward(ws.dln.data(), C, G.ffn_up, ws.dhu.data(), F, A.ln2.data(), C, W.ffn_up, (int)N, C, F,
                      P ? &P->ffn_up : nullptr, false, dbase_write);
    }
    ffn_part.reset();
    norm_backward(x, 2 * l + 1, ws.dres.data(), ws.dln.data(), A.mid.data(), A.rstd2.data(), G.ffn_norm);
    // --- attention block: mid = x + wo(attn(rope(qkv(ln1(x)))))
    const int o_off[1] = {0}, o_width[1] = {C};
    {
      const TimedOp part("output product");
      CachedOutputs read_next;  // datty: attention's backward reads it right away
      product_backward(x, l, {kLoraO}, o_off, o_width, ws.datty.data(), HD, G.wo, ws.dres.data(), C, A.atty.data(),
                       HD, W.wo, HD, C, P ? &P->wo : nullptr, dbase_write);
    }
    AttnShape shape{B, T, H, Hkv, D, 0, QKV, QKV, (int64_t)T * QKV, fz && fz->output.bf16()};
    float* dq = ws.dqkv.data();
    std::optional<TimedOp> attention_part(std::in_place, "attention");
    attention_backward(dq, dq + HD, dq + HD + KD, ws.datty.data(), A.att_stats.data(), A.qkv.data(),
                       A.qkv.data() + HD, A.qkv.data() + HD + KD, shape, true, &ws.rope,
                       A.att_probs.data());  // written, and rotated back
    attention_part.reset();
    const int off[3] = {0, HD, HD + KD}, width[3] = {HD, KD, KD};
    {
      const TimedOp part("q, k, v product");
      CachedOutputs read_next;  // dln: the norm's backward reads it right away
      product_backward(x, l, {kLoraQ, kLoraK, kLoraV}, off, width, ws.dln.data(), C, G.wq, ws.dqkv.data(), QKV,
                       A.ln1.data(), C, W.wq, C, QKV, P ? &P->wq : nullptr, dbase_write);
    }
    norm_backward(x, 2 * l, ws.dres.data(), ws.dln.data(), A.x.data(), A.rstd1.data(), G.attn_norm);
  }
  const TimedOp embed_part("embedding");
  if (g.token_embd) embed_backward(g.token_embd, ws.dres.data(), ws.tokens.data(), (int)N, C);
}

}  // namespace heirloom
