// The forward pass: embedding → L × (RMSNorm → GQA attention with RoPE → residual → RMSNorm →
// SwiGLU or MoE → residual [+ steering]) → RMSNorm → head → cross-entropy. See include/heirloom/engine.h.
// Adapter-dependent work (norm gains, LoRA, steering) runs per segment of sequences sharing an adapter;
// everything else runs once over the whole batch.
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
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "ops/xent.h"

namespace heirloom {

KvCache make_kv_cache(const ModelConfig& c, int B, int n_ctx) {
  KvCache kv;
  kv.B = B;
  kv.n_ctx = n_ctx;
  const size_t n = (size_t)B * n_ctx * c.n_head_kv * c.head_dim();
  kv.k.assign(c.n_layer, std::vector<float>(n));
  kv.v.assign(c.n_layer, std::vector<float>(n));
  return kv;
}

const float* logits(const Workspace& ws) { return ws.logits.data(); }
const float* token_losses(const Workspace& ws) { return ws.losses.data(); }

namespace {
// The head and the cross-entropy on the rows that have a target only, when some have none and no backward
// follows: a sliding window scores only its second half, and the head is a fifth of the forward's work.
// Each row's logits and loss are the same numbers as with every row: on the frozen packs a product's element
// does not depend on the other rows. Without packs (fp32 on a CPU without AVX-512) the head goes to OpenBLAS,
// whose Haswell kernels (an AVX2 CPU's) sum a row differently with other rows beside it: there every row goes
// through the head, and the scored rows' logits are then moved together.
// Returns false, having done nothing, when every row is scored.
bool head_scored_rows(Workspace& ws, const Model& m, const int32_t* targets, int N, const FrozenWeights* fz,
                      ForwardResult& res) {
  const int C = m.config.n_embd, V = m.config.n_vocab;
  std::vector<int32_t> rows, tgt;
  for (int r = 0; r < N; ++r)
    if (targets[r] >= 0) rows.push_back(r), tgt.push_back(targets[r]);
  const int n = (int)rows.size();
  if (n == N) return false;
  std::copy(targets, targets + N, ws.targets.begin());
  std::fill(ws.losses.begin(), ws.losses.begin() + N, 0.f);
  if (n == 0) return ws.logits.clear(), true;
  if (fz) {
    ws.logits.resize((size_t)n * V);
    ws.last_rows.resize((size_t)n * C);
    for (int i = 0; i < n; ++i)
      std::memcpy(ws.last_rows.data() + (size_t)i * C, ws.lnf.data() + (int64_t)rows[i] * C, sizeof(float) * C);
    matmul_forward(ws.logits.data(), V, ws.last_rows.data(), C, m.w.output, n, C, V, false, &fz->output);
  } else {
    ws.logits.resize((size_t)N * V);
    matmul_forward(ws.logits.data(), V, ws.lnf.data(), C, m.w.output, N, C, V, false, nullptr);
    for (int i = 0; i < n; ++i)  // rows[i] >= i: each row moves towards the front, never over one not yet moved
      std::memmove(ws.logits.data() + (size_t)i * V, ws.logits.data() + (size_t)rows[i] * V, sizeof(float) * V);
    ws.logits.resize((size_t)n * V);
  }
  std::vector<float> loss(n);
  res.loss_sum = xent_forward(loss.data(), ws.logits.data(), tgt.data(), n, V, &res.n_scored);
  for (int i = 0; i < n; ++i) ws.losses[rows[i]] = loss[i];
  return true;
}

void build_segments(Workspace& ws, const Model& m, std::span<const AdapterView* const> adapters, int B) {
  if (!adapters.empty() && adapters.size() != 1 && (int)adapters.size() != B)
    throw Error("forward: expected 0, 1 or " + std::to_string(B) + " adapters, found " + std::to_string(adapters.size()));
  ws.segments.clear();
  for (int b = 0; b < B; ++b) {
    const AdapterView* a = adapters.empty() ? nullptr : adapters[adapters.size() == 1 ? 0 : b];
    if (!ws.segments.empty() && ws.segments.back().adapter == a) ws.segments.back().b1 = b + 1;
    else ws.segments.push_back({b, b + 1, a});
  }
  const int C = m.config.n_embd, n_norm = 2 * m.config.n_layer + 1;
  ws.gains.resize(ws.segments.size());
  for (size_t s = 0; s < ws.segments.size(); ++s) {
    const AdapterView* a = ws.segments[s].adapter;
    if (!a || !a->norm_delta) { ws.gains[s].clear(); continue; }
    ws.gains[s].resize((size_t)n_norm * C);
    for (int j = 0; j < n_norm; ++j) {
      const float* base = j == 2 * m.config.n_layer ? m.w.output_norm
                          : j % 2 == 0 ? m.w.layers[j / 2].attn_norm : m.w.layers[j / 2].ffn_norm;
      for (int c = 0; c < C; ++c) ws.gains[s][(size_t)j * C + c] = base[c] + a->norm_delta[(size_t)j * C + c];
    }
  }
}

int max_lora_rank(std::span<const AdapterView* const> adapters) {
  int r = 0;
  for (auto* a : adapters)
    if (a) r = std::max(r, a->lora_rank);
  return r;
}

// y[0, n) += x[0, n) (the residual adds), in blocks shared between the threads.
void add_into(float* y, const float* x, int64_t n) {
  parallel_blocks(n, 4096, n >= kSplitValues, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) y[i] += x[i];
  });
}

// A LoRA's out[n, O] += scale · (inp · Aᵀ) · Bᵀ as a part of a rank update (core/rank_update.h) on the columns
// [c0, c0 + O) of its product's output: u[n, R] = inp · Aᵀ now (kept for the backward), scale · Bᵀ into those
// columns of bt [R, ldbt].
void add_lora_part(RankUpdate& ru, float* u, const float* inp, int ldi, const float* A, const float* Bm, int n, int I,
                   int O, int R, float scale, float* bt, int ldbt, int c0) {
  gemm(false, true, n, R, I, 1.f, inp, ldi, A, I, 0.f, u, R);
  for (int k = 0; k < R; ++k)
    for (int j = 0; j < O; ++j) bt[(int64_t)k * ldbt + c0 + j] = scale * Bm[(int64_t)j * R + k];
  ru.add({c0, c0 + O, R, u, R, bt + c0, ldbt});
}

// A layer product out = inp · Wᵀ (matmul_forward) and each segment's LoRA on its targets (their outputs at
// columns off[i] of out, width[i] wide). Where one adapter covers the whole batch the product adds its LoRA as
// it stores out; else each segment's is added after, on its own rows. The same sums in the same order.
void product_forward(Workspace& ws, LayerActs& A, int l, std::initializer_list<int> targets, const int* off,
                     const int* width, float* out, int ldo, const float* inp, int ldi, const float* W, int I, int O,
                     const PackedWeight* packed) {
  const int N = ws.N();
  const bool whole = ws.one_segment();
  auto lora_of = [&](const Segment& sg, int t) { return has_lora(sg.adapter, l, t) ? sg.adapter : nullptr; };
  RankUpdate whole_ru;
  int i = 0;
  for (int t : targets) {
    if (const AdapterView* a = whole ? lora_of(ws.segments[0], t) : nullptr)
      add_lora_part(whole_ru, A.lora_u[t].data(), inp, ldi, a->lora_a[l][t], a->lora_b[l][t], N, I, width[i],
                    a->lora_rank, a->lora_scale, ws.lora_bt.data(), O, off[i]);
    ++i;
  }
  matmul_forward(out, ldo, inp, ldi, W, N, I, O, false, packed, whole_ru.n ? &whole_ru : nullptr);
  if (whole) return;
  for (const Segment& sg : ws.segments) {
    const int64_t r0 = (int64_t)sg.b0 * ws.T, n = (int64_t)(sg.b1 - sg.b0) * ws.T;
    i = 0;
    for (int t : targets) {
      if (const AdapterView* a = lora_of(sg, t)) {
        RankUpdate ru;
        add_lora_part(ru, A.lora_u[t].data() + r0 * ws.lora_rmax, inp + r0 * ldi, ldi, a->lora_a[l][t],
                      a->lora_b[l][t], (int)n, I, width[i], a->lora_rank, a->lora_scale, ws.lora_bt.data(), O, off[i]);
        apply_rank_update(ru, out + r0 * ldo, ldo, (int)n);
      }
      ++i;
    }
  }
}

// Attention for B sequences at one position pos0, over their own rows or a shared B-sequence cache.
void batch_attention(LayerActs& A, KvCache* cache, int l, const RopeTable& rope, int B, int T, int H, int Hkv, int D,
                     int pos0, bool keep_att, bool bf16) {
  const int HD = H * D, KD = Hkv * D, QKV = HD + 2 * KD;
  AttnShape shape{B, T, H, Hkv, D, pos0, QKV, QKV, (int64_t)T * QKV, bf16};
  float* stats = keep_att ? A.att_stats.data() : nullptr;
  uint16_t* probs = keep_att ? A.att_probs.data() : nullptr;
  if (!cache && H == Hkv && pos0 == 0)  // each head rotated by the unit that reads it
    return attention_forward_rotating(A.atty.data(), stats, A.qkv.data(), A.qkv.data() + HD, A.qkv.data() + HD + KD,
                                      shape, rope, probs);
  rope_forward(A.qkv.data(), QKV, rope, B, T, H + Hkv, D, pos0);  // q's heads then k's, adjacent in a row
  const float *k = A.qkv.data() + HD, *v = A.qkv.data() + HD + KD;
  if (cache) {
    KvCache& kv = *cache;
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < T; ++t) {
        const float* row = A.qkv.data() + ((int64_t)b * T + t) * QKV;
        const int64_t dst = ((int64_t)b * kv.n_ctx + pos0 + t) * KD;
        std::memcpy(kv.k[l].data() + dst, row + HD, sizeof(float) * KD);
        std::memcpy(kv.v[l].data() + dst, row + HD + KD, sizeof(float) * KD);
      }
    k = kv.k[l].data();
    v = kv.v[l].data();
    shape.ldkv = KD;
    shape.kv_bstride = (int64_t)kv.n_ctx * KD;
  }
  attention_forward(A.atty.data(), stats, A.qkv.data(), k, v, shape, probs);
}

// Attention for sequences each at its own position with its own cache: every sequence runs as a batch of
// one (the arithmetic a solo run does). Never for backward: no probabilities are kept.
void ragged_attention(LayerActs& A, std::span<KvCache* const> caches, int l, const RopeTable& rope, int T, int H,
                      int Hkv, int D, bool bf16) {
  const int HD = H * D, KD = Hkv * D, QKV = HD + 2 * KD;
  for (size_t b = 0; b < caches.size(); ++b) {
    KvCache& kv = *caches[b];
    float* q = A.qkv.data() + (int64_t)b * T * QKV;
    rope_forward(q, QKV, rope, 1, T, H + Hkv, D, kv.n_pos);  // q's heads then k's
    for (int t = 0; t < T; ++t) {
      const int64_t dst = (int64_t)(kv.n_pos + t) * KD;
      std::memcpy(kv.k[l].data() + dst, q + (int64_t)t * QKV + HD, sizeof(float) * KD);
      std::memcpy(kv.v[l].data() + dst, q + (int64_t)t * QKV + HD + KD, sizeof(float) * KD);
    }
    AttnShape shape{1, T, H, Hkv, D, kv.n_pos, QKV, KD, (int64_t)kv.n_ctx * KD, bf16};
    attention_forward(A.atty.data() + (int64_t)b * T * HD, nullptr, q, kv.k[l].data(),
                      kv.v[l].data(), shape);
  }
}

}  // namespace

ForwardResult forward(const Model& m, Workspace& ws, const Batch& batch,
                      std::span<const AdapterView* const> adapters, const ForwardOptions& opt) {
  const ModelConfig& c = m.config;
  const int B = batch.B, T = batch.T, C = c.n_embd, L = c.n_layer, V = c.n_vocab, D = c.head_dim();
  const int H = c.n_head, Hkv = c.n_head_kv, HD = H * D, KD = Hkv * D, QKV = HD + 2 * KD;
  if (!opt.caches.empty()) {
    if (opt.cache || (int)opt.caches.size() != B)
      throw Error("forward: expected one KV cache per sequence (" + std::to_string(B) + "), found " +
                  std::to_string(opt.caches.size()));
    for (const KvCache* kv : opt.caches)
      if (!kv || kv->B != 1 || kv->n_pos + T > kv->n_ctx || kv->n_pos + T > c.n_ctx)
        throw Error("forward: a sequence's KV cache is missing, shared or full");
  }
  const bool ragged = !opt.caches.empty();
  int pos0 = opt.cache ? opt.cache->n_pos : 0;
  for (const KvCache* kv : opt.caches) pos0 = std::max(pos0, kv->n_pos);  // the longest sequence sizes the workspace
  if (B < 1 || T < 1) throw Error("forward: expected a non-empty batch, found B=" + std::to_string(B) + " T=" + std::to_string(T));
  if (pos0 + T > c.n_ctx)
    throw Error("sequence of " + std::to_string(pos0 + T) + " tokens is longer than the model's context of " +
                    std::to_string(c.n_ctx),
                "use a shorter text window (e.g. --ctx " + std::to_string(c.n_ctx) + ")");
  if (opt.cache && (opt.cache->B != B || pos0 + T > opt.cache->n_ctx))
    throw Error("forward: KV cache shape does not match the batch");
  const int64_t N = (int64_t)B * T;
  for (int64_t i = 0; i < N; ++i)
    if (batch.tokens[i] < 0 || batch.tokens[i] >= V)
      throw Error("token id " + std::to_string(batch.tokens[i]) + " at position " + std::to_string(i) +
                      " is out of range: the vocabulary has " + std::to_string(V) + " tokens",
                  "the text was tokenized for another model");
  if (batch.targets)
    for (int64_t i = 0; i < N; ++i)
      if (batch.targets[i] >= V || batch.targets[i] < kIgnoreIndex)
        throw Error("target id " + std::to_string(batch.targets[i]) + " is out of range for a vocabulary of " +
                    std::to_string(V));
  if (opt.for_backward && (opt.cache || ragged || opt.last_logits_only))
    throw Error("forward: backward needs a full forward without KV cache");

  const int S = pos0 + T, R = max_lora_rank(adapters);
  // Sequences decoding together must each get the numbers they get alone, whatever the batch.
  std::optional<RowExact> row_exact;
  if (ragged) row_exact.emplace();
  ensure_shape(ws, m, B, T, S, R, opt.for_backward);
  ws.pos0 = pos0;
  ws.has_backward_state = opt.for_backward;
  ws.moe_h_kept = opt.for_backward && opt.base_grads;
  ws.last_only = opt.last_logits_only;
  if (!ws.rope.matches(c.n_ctx, D, c.rope_base, c.rope_freqs)) ws.rope = make_rope_table(c.n_ctx, D, c.rope_base, c.rope_freqs);
  build_segments(ws, m, adapters, B);
  const float eps = c.norm_eps;
  const FrozenWeights* fz = frozen_for(ws, m);
  const bool bf16 = fz && fz->output.bf16();  // attention's products follow the base's arithmetic

  {
    const TimedOp part("embedding");
    embed_forward(ws.acts(0).x.data(), batch.tokens, m.w.token_embd, (int)N, C);
  }
  double aux_total = 0;
  for (int l = 0; l < L; ++l) {
    LayerActs& A = ws.acts(l);
    const LayerWeights& W = m.w.layers[l];
    float* xout = l + 1 < L ? ws.acts(l + 1).x.data() : ws.xf.data();
    // --- attention block
    for (size_t s = 0; s < ws.segments.size(); ++s) {
      const TimedOp part("norms");
      const int64_t r0 = (int64_t)ws.segments[s].b0 * T, n = (int64_t)(ws.segments[s].b1 - ws.segments[s].b0) * T;
      rmsnorm_forward(A.ln1.data() + r0 * C, A.rstd1.data() + r0, A.x.data() + r0 * C, ws.gain(m, s, 2 * l), (int)n, C, eps);
    }
    const FrozenLayer* P = fz ? &fz->layers[l] : nullptr;
    const int off[3] = {0, HD, HD + KD}, width[3] = {HD, KD, KD};  // q|k|v adjacent
    {
      const TimedOp part("q, k, v product");
      // q, k and v through the caches: attention reads them right away, each head's 32 columns of every row (a
      // stride the prefetchers did not follow when they came from memory). The protocol's steps took 0.988–0.992
      // of their time (`heirloom bench --experiment`, seventeenth session); the output product's and the
      // experts' outputs, read in whole rows, gained nothing so.
      CachedOutputs read_next;
      product_forward(ws, A, l, {kLoraQ, kLoraK, kLoraV}, off, width, A.qkv.data(), QKV, A.ln1.data(), C, W.wq, C,
                      QKV, P ? &P->wq : nullptr);
    }
    {
      const TimedOp part("attention");
      if (ragged) ragged_attention(A, opt.caches, l, ws.rope, T, H, Hkv, D, bf16);
      else batch_attention(A, opt.cache, l, ws.rope, B, T, H, Hkv, D, pos0, opt.for_backward, bf16);
    }
    const int o_off[1] = {0}, o_width[1] = {C};
    {
      const TimedOp part("output product");
      product_forward(ws, A, l, {kLoraO}, o_off, o_width, A.mid.data(), C, A.atty.data(), HD, W.wo, HD, C,
                      P ? &P->wo : nullptr);
    }
    // --- feed-forward block (mid = x + attention, normed in the same pass)
    for (size_t s = 0; s < ws.segments.size(); ++s) {
      const TimedOp part("norms");
      const int64_t r0 = (int64_t)ws.segments[s].b0 * T, n = (int64_t)(ws.segments[s].b1 - ws.segments[s].b0) * T;
      add_rmsnorm_forward(A.mid.data() + r0 * C, A.x.data() + r0 * C, A.ln2.data() + r0 * C, A.rstd2.data() + r0,
                          ws.gain(m, s, 2 * l + 1), (int)n, C, eps);
    }
    const TimedOp ffn_part("feed-forward");  // a MoE's routing, experts and mixing are parts of their own (ops/moe.cpp)
    if (c.is_moe()) {
      MoeShape ms{(int)N, C, c.n_ff, c.n_expert, c.n_expert_used};
      const MoeWeights mw = moe_weights(W, P);
      // A router LoRA adds to the logits before routing, per segment.
      bool router_lora = false;
      for (const Segment& sg : ws.segments)
        router_lora |= has_lora(sg.adapter, l, kLoraRouter);
      if (router_lora) {
        const int E = c.n_expert, r_off[1] = {0}, r_width[1] = {E};
        product_forward(ws, A, l, {kLoraRouter}, r_off, r_width, A.logits.data(), E, A.ln2.data(), C, W.router, C, E,
                        nullptr);
      }
      const std::vector<MoeLoraPart> parts = moe_lora_parts(ws, l, nullptr, nullptr);
      const MoeLora ml = moe_lora(ws, l, parts);
      aux_total += moe_forward(xout, A.moe_saved(), A.ln2.data(), mw, ms, opt.fixed_routing, parts.empty() ? nullptr : &ml,
                               router_lora, ws.moe_h_kept, A.mid.data());  // xout = mid + the experts'
    } else {
      const int F = c.n_ff;
      matmul_forward(A.hg.data(), F, A.ln2.data(), C, W.ffn_gate, (int)N, C, F, false, P ? &P->ffn_gate : nullptr);
      matmul_forward(A.hu.data(), F, A.ln2.data(), C, W.ffn_up, (int)N, C, F, false, P ? &P->ffn_up : nullptr);
      swiglu_forward(A.h.data(), A.hg.data(), A.hu.data(), (int)N, F);
      matmul_forward(xout, C, A.h.data(), F, W.ffn_down, (int)N, F, C, false, P ? &P->ffn_down : nullptr);
      add_into(xout, A.mid.data(), N * C);
    }
    for (const Segment& sg : ws.segments) {
      if (!sg.adapter || !sg.adapter->steer) continue;
      const float* dir = sg.adapter->steer + (int64_t)l * C;
      for (int64_t r = (int64_t)sg.b0 * T; r < (int64_t)sg.b1 * T; ++r)
        for (int ch = 0; ch < C; ++ch) xout[r * C + ch] += dir[ch];
    }
  }
  if (opt.cache) opt.cache->n_pos += T;
  for (KvCache* kv : opt.caches) kv->n_pos += T;
  if (opt.for_backward) ws.tokens.assign(batch.tokens, batch.tokens + N);
  // --- head
  for (size_t s = 0; s < ws.segments.size(); ++s) {
    const TimedOp part("norms");
    const int64_t r0 = (int64_t)ws.segments[s].b0 * T, n = (int64_t)(ws.segments[s].b1 - ws.segments[s].b0) * T;
    rmsnorm_forward(ws.lnf.data() + r0 * C, ws.rstdf.data() + r0, ws.xf.data() + r0 * C, ws.gain(m, s, 2 * L), (int)n, C, eps);
  }
  ForwardResult res;
  res.aux = c.is_moe() ? aux_total / L : 0.0;
  if (opt.last_logits_only) {
    ws.last_rows.resize((size_t)B * C);
    for (int b = 0; b < B; ++b)
      std::memcpy(ws.last_rows.data() + (size_t)b * C, ws.lnf.data() + ((int64_t)b * T + T - 1) * C, sizeof(float) * C);
    ws.logits.resize((size_t)B * V);
    matmul_forward(ws.logits.data(), V, ws.last_rows.data(), C, m.w.output, B, C, V, false, fz ? &fz->output : nullptr);
    return res;
  }
  if (batch.targets && !opt.for_backward && head_scored_rows(ws, m, batch.targets, (int)N, fz, res)) return res;
  ws.logits.resize((size_t)N * V);
  {
    const TimedOp part("head");
    matmul_forward(ws.logits.data(), V, ws.lnf.data(), C, m.w.output, (int)N, C, V, false, fz ? &fz->output : nullptr);
  }
  const TimedOp xent_part("cross-entropy");
  if (batch.targets) {
    std::copy(batch.targets, batch.targets + N, ws.targets.begin());
    res.loss_sum = xent_forward(ws.losses.data(), ws.logits.data(), batch.targets, (int)N, V, &res.n_scored, ws.row_lse.data());
  } else {
    std::fill(ws.targets.begin(), ws.targets.end(), kIgnoreIndex);
  }
  return res;
}

}  // namespace heirloom
