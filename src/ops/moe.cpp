// MoE forward/backward. See moe.h.
// Router gradient: with w = softmax over the kept logits, dlogit_j = w_j (dw_j − Σ_k w_k dw_k) for kept j;
// the load-balancing term adds p ⊙ (g − Σ p g) with g_e = aux_coef · E · f_e / N.
#include "ops/moe.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "core/gemm.h"
#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/op_time.h"
#include "core/parallel.h"
#include "core/thread_team.h"
#include "ops/matmul.h"
#include "ops/swiglu.h"
#include "ops/vec_math.h"

namespace heirloom {

void top_k_experts(int32_t* idx, const float* p, int E, int K) {
  for (int k = 0; k < K; ++k) {
    int best = -1;
    for (int e = 0; e < E; ++e) {
      bool used = false;
      for (int j = 0; j < k; ++j) used |= idx[j] == e;
      if (!used && (best < 0 || p[e] > p[best])) best = e;
    }
    idx[k] = best;
  }
}

namespace {

void softmax_row(float* p, const float* x, int E) {
  float mx = -INFINITY, sum = 0.f;
  for (int e = 0; e < E; ++e) mx = std::max(mx, x[e]);
  for (int e = 0; e < E; ++e) sum += (p[e] = std::exp(x[e] - mx));
  for (int e = 0; e < E; ++e) p[e] /= sum;
}

// Route every row: probabilities, kept experts, renormalised weights; returns the aux loss.
float route(const MoeSaved& s, const float* logits, const MoeShape& sh, bool fixed_routing) {
  const int N = sh.N, E = sh.E, K = sh.K;
  parallel_blocks(N, 16, (int64_t)N * E * 8 >= kSplitValues, [&](int64_t r0, int64_t r1) {
    for (int n = (int)r0; n < (int)r1; ++n) {
      float* p = s.probs + (int64_t)n * E;
      softmax_row(p, logits + (int64_t)n * E, E);
      int32_t* idx = s.topk + (int64_t)n * K;
      if (!fixed_routing) top_k_experts(idx, p, E, K);
      float sum = 0.f;
      for (int k = 0; k < K; ++k) sum += p[idx[k]];
      for (int k = 0; k < K; ++k) s.weights[(int64_t)n * K + k] = p[idx[k]] / sum;
    }
  });
  // Group the slots by expert (counting sort, rows ascending within an expert: deterministic).
  std::fill(s.offsets, s.offsets + E + 1, 0);
  for (int i = 0; i < N * K; ++i) s.offsets[s.topk[i] + 1]++;
  for (int e = 0; e < E; ++e) s.offsets[e + 1] += s.offsets[e];
  std::copy(s.offsets, s.offsets + E, s.cursor);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) {
      const int slot = s.cursor[s.topk[n * K + k]]++;
      s.slot_row[slot] = n;
      s.slot_of[n * K + k] = slot;
    }
  double aux = 0;
  for (int e = 0; e < E; ++e) {
    double pe = 0;
    for (int n = 0; n < N; ++n) pe += s.probs[(int64_t)n * E + e];
    aux += (double)(s.offsets[e + 1] - s.offsets[e]) / (N * K) * (pe / N);
  }
  return (float)(aux * E);
}

// Slots [i0, i1) of expert e that belong to rows [row0, row1): slots are sorted by row within an expert.
std::pair<int, int> slot_range(const MoeSaved& s, int o, int n_e, int row0, int row1) {
  const int32_t* first = s.slot_row + o;
  const int i0 = (int)(std::lower_bound(first, first + n_e, row0) - s.slot_row);
  const int i1 = (int)(std::lower_bound(first, first + n_e, row1) - s.slot_row);
  return {i0, i1};
}

// out[slots, O] += scale · (inp[slots, I] · A_eᵀ) · B_eᵀ for projection j of every LoRA part; u keeps inp · A_eᵀ.
void expert_lora_forward(const MoeLora* lora, int j, const MoeSaved& s, int e, int o, int n_e, const float* inp, int I,
                         float* out, int O) {
  for (int p = 0; lora && p < lora->n_parts; ++p) {
    const MoeLoraPart& part = lora->parts[p];
    if (!part.a[j]) continue;
    const auto [i0, i1] = slot_range(s, o, n_e, part.row0, part.row1);
    if (i1 == i0) continue;
    const int R = part.R, rm = lora->rmax;
    float* u = lora->u[j] + (int64_t)i0 * rm;
    gemm(false, true, i1 - i0, R, I, 1.f, inp + (int64_t)i0 * I, I, part.a[j] + (int64_t)e * R * I, I, 0.f, u, rm);
    gemm(false, true, i1 - i0, O, R, part.scale, u, rm, part.b[j] + (int64_t)e * O * R, R, 1.f, out + (int64_t)i0 * O, O);
  }
}

// The backward of expert_lora_forward: dinp[slots, I] += scale · (dout · B_e) · A_e, and the A, B gradients.
void expert_lora_backward(const MoeLora* lora, int j, const MoeSaved& s, int e, int o, int n_e, const float* inp, int I,
                          const float* dout, int O, float* dinp) {
  for (int p = 0; lora && p < lora->n_parts; ++p) {
    const MoeLoraPart& part = lora->parts[p];
    if (!part.a[j]) continue;
    const auto [i0, i1] = slot_range(s, o, n_e, part.row0, part.row1);
    if (i1 == i0) continue;
    const int R = part.R, rm = lora->rmax, n = i1 - i0;
    const float* A = part.a[j] + (int64_t)e * R * I;
    const float* B = part.b[j] + (int64_t)e * O * R;
    const float* u = lora->u[j] + (int64_t)i0 * rm;
    float* du = lora->du + (int64_t)i0 * rm;
    gemm(false, false, n, R, O, part.scale, dout + (int64_t)i0 * O, O, B, R, 0.f, du, rm);
    if (part.db[j]) gemm(true, false, O, R, n, part.scale, dout + (int64_t)i0 * O, O, u, rm, 1.f, part.db[j] + (int64_t)e * O * R, R);
    if (part.da[j]) gemm(true, false, R, I, n, 1.f, du, rm, inp + (int64_t)i0 * I, I, 1.f, part.da[j] + (int64_t)e * R * I, I);
    gemm(false, false, n, I, R, 1.f, du, rm, A, I, 1.f, dinp + (int64_t)i0 * I, I);
  }
}

// dW[M, N] += doutᵀ · inp (write: dW = …) for dout [K, M], inp [K, N]: in bf16 (fp32 accumulation) or fp32.
void weight_grad(int M, int N, int K, const float* dout, int ldd, const float* inp, int ldi, float* dw, bool bf16,
                 bool write) {
  if (bf16) gemm_bf16_tn(M, N, K, dout, ldd, inp, ldi, dw, N, !write);
  else gemm(true, false, M, N, K, 1.f, dout, ldd, inp, ldi, write ? 0.f : 1.f, dw, N);
}

// Expert e's pack among an array of E, or null when the experts are not packed.
const PackedWeight* pack(const PackedWeight* p, int e) { return p ? p + e : nullptr; }

// Whether any LoRA part adapts projection j (0 gate, 1 up, 2 down) of the experts.
bool adapts(const MoeLora* lora, int j) {
  for (int p = 0; lora && p < lora->n_parts; ++p)
    if (lora->parts[p].a[j]) return true;
  return false;
}

bool on_bf16_packs(const MoeWeights& w) { return w.packed_gate && w.packed_gate->bf16(); }

// Whether a trainer's forward (keep_h) keeps the gate and up gradients' B, the experts' input rows, packed
// (s.xg_packs): on bf16 packs, where no LoRA on gate or up reads xg.
bool packs_xg(const MoeWeights& w, const MoeLora* lora, bool keep_h, const MoeSaved& s) {
  return keep_h && s.xg_packs && on_bf16_packs(w) && !adapts(lora, 0) && !adapts(lora, 1);
}
// The same for the down gradient's B, h (s.h_packs), where no LoRA on down reads h.
bool packs_h(const MoeWeights& w, const MoeLora* lora, bool keep_h, const MoeSaved& s) {
  return keep_h && s.h_packs && on_bf16_packs(w) && w.packed_down && !adapts(lora, 2);
}

// Whether the forward gathers the experts' input rows into bf16 only (no s.xg): on bf16 packs, where no LoRA on
// gate or up reads xg after it, and no gate or up gradient (keep_h) unless it keeps them packed.
bool gathers_bf16(const MoeWeights& w, const MoeLora* lora, bool keep_h, const MoeSaved& s) {
  return on_bf16_packs(w) && !adapts(lora, 0) && !adapts(lora, 1) && (!keep_h || packs_xg(w, lora, keep_h, s));
}

// Whether the gate and up products write hg and hu in bf16 (s.hg16, s.hu16) in their place: on bf16 packs
// where no LoRA adds to them. The SwiGLU after reads them once in the forward and once in the backward, from
// memory both times (written around the caches), and rounds what it makes to bf16 for the next product.
bool keeps_h16(const MoeWeights& w, const MoeLora* lora, const MoeSaved& s) {
  return on_bf16_packs(w) && s.hg16 && s.hu16 && !adapts(lora, 0) && !adapts(lora, 1);
}

// f(hg, hu) on the slots from o: in bf16 where keeps_h16, else in fp32.
template <class Fn>
void on_h(bool h16, const MoeSaved& s, int64_t o, int64_t F, Fn&& f) {
  if (h16) f(s.hg16 + o * F, s.hu16 + o * F);
  else f(s.hg + o * F, s.hu + o * F);
}

// On packs, the products after SwiGLU make their input rows as they go (packed_product_of_rows, ops/matmul.h):
// the down projection's h = silu(hg) ⊙ hu, and in the backward the gate's dhg and the down's wk · dout (below).
// Those rows then never go to memory and back; the values are the same bits as stored ones. The forward keeps
// h for a LoRA on the down projection (its input) and when asked to (keep_h: a trainer of the base's weights,
// whose backward reads h for the down weight's gradient); a backward that needs h when it was not kept makes
// it again from hg and hu.
bool makes_h(const PackedWeight* down, const MoeLora* lora) { return down && !adapts(lora, 2); }

// The next product on this thread multiplies by expert e's weight (one of gate, up, down: fc values each, raw or
// packed): fetched into L2 meanwhile (ops/matmul.h). e < 0 (no expert) clears the hint.
void fetch_expert_ahead(const PackedWeight* packs, const float* raw, int e, int64_t fc, bool backward) {
  if (e < 0) return fetch_weight_ahead(nullptr, nullptr, 0, backward);
  fetch_weight_ahead(pack(packs, e), raw + e * fc, fc, backward);
}

// Rows per task of the experts' products: bf16's here, or the packed fp32 kernel's.
int expert_task_rows(bool bf16) { return bf16 ? bf16_task_rows() : f32_task_rows(); }

// body(e, i0, i1, claim_next) for slots [i0, i1) of every expert with rows, experts in parallel, each on one
// thread, taken from a queue in decreasing load (the largest first leave the shortest tail). The body calls
// claim_next() once, before its last product: it takes the thread's next unit from the queue then and returns
// its expert (−1 when none is left), so the body can fetch that expert's weights while it multiplies by the
// current one's (core/fetch_ahead.h). With task_rows > 0, the last experts in the queue, one per thread, go as
// two halves of their slots, in whole product tasks of task_rows rows, that either thread may take: the loop
// then ends within about half an expert's time of both threads (the faster vCPU waited up to a whole expert).
// Only for bodies whose outputs are the slots' own (no weight gradients, which both halves would write).
template <class Body>
void for_each_expert(const int32_t* offsets, int E, int task_rows, Body&& body) {
  std::vector<int> order;
  for (int e = 0; e < E; ++e)
    if (offsets[e + 1] > offsets[e]) order.push_back(e);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return offsets[a + 1] - offsets[a] > offsets[b + 1] - offsets[b]; });
  struct Unit {
    int e, i0, i1;
  };
  const int halved = task_rows > 0 ? std::min((int)order.size(), omp_get_max_threads()) : 0;
  std::vector<Unit> units;
  for (size_t k = 0; k < order.size(); ++k) {
    const int e = order[k], i0 = offsets[e], i1 = offsets[e + 1];
    const int h = task_rows > 0 ? (i1 - i0 + task_rows) / (2 * task_rows) * task_rows : 0;  // half, in whole tasks
    if ((int)k >= (int)order.size() - halved && h > 0 && i0 + h < i1) {
      units.push_back({e, i0, i0 + h});
      units.push_back({e, i0 + h, i1});
    } else {
      units.push_back({e, i0, i1});
    }
  }
  const int n = (int)units.size();
  std::atomic<int> queue{0};
  auto take = [&] { return queue.fetch_add(1, std::memory_order_relaxed); };
  run_team(n > 1 ? omp_get_max_threads() : 1, [&](int, int) {
    for (int u = take(); u < n;) {
      int next = n;
      bool claimed = false;
      body(units[u].e, units[u].i0, units[u].i1, [&] {
        if (!claimed) next = take(), claimed = true;
        return next < n ? units[next].e : -1;
      });
      u = claimed ? next : take();
    }
  });
}

}  // namespace

float moe_forward(float* out, const MoeSaved& s, const float* x, const MoeWeights& w, const MoeShape& sh,
                  bool fixed_routing, const MoeLora* lora, bool logits_ready, bool keep_h, const float* residual) {
  const int N = sh.N, C = sh.C, F = sh.F, E = sh.E, K = sh.K;
  std::optional<TimedOp> part(std::in_place, "routing");  // a step's parts (core/op_time.h), one after another
  if (!logits_ready) gemm(false, true, N, E, C, 1.f, x, C, w.router, C, 0.f, s.logits, E);
  const float aux = route(s, s.logits, sh, fixed_routing);
  part.reset(), part.emplace("experts");
  // Experts run in parallel, each with single-threaded GEMMs: a few hundred rows per expert are too few
  // to split one GEMM across threads efficiently. Each expert writes only its own slots: no races.
  const bool exact = row_exact();
  // On bf16 packs each expert gathers its rows into bf16 once for both products, and into fp32 (xg) only where
  // something after the forward reads them in fp32 (a LoRA on gate or up; the base's gate and up gradients
  // where s has no packs to keep them in). Where a trainer keeps h packed, h's rows are made in bf16 first, put
  // into the pack (whole lines, around the caches) and multiplied as they are: the bits the backward reads.
  const bool bf16 = on_bf16_packs(w), keep_xg = !gathers_bf16(w, lora, keep_h, s);
  const bool xg_packed = packs_xg(w, lora, keep_h, s), h_packed = packs_h(w, lora, keep_h, s);
  const bool make_h = !keep_h && makes_h(w.packed_down, lora), h16 = keeps_h16(w, lora, s);
  for (int e = 0; e < E; ++e) {  // sized before the experts: both halves of an expert put rows into its packs
    if (xg_packed) size_b_rows(s.xg_packs[e], s.offsets[e + 1] - s.offsets[e], C);
    if (h_packed) size_b_rows(s.h_packs[e], s.offsets[e + 1] - s.offsets[e], F);
  }
  for_each_expert(s.offsets, E, expert_task_rows(bf16), [&](int e, int o, int o_end, auto&& claim_next) {
    const int n_e = o_end - o;
    RowExact mode(exact);
    const int64_t fc = (int64_t)F * C;
    thread_local std::vector<uint16_t> rows;  // per expert's thread: its bf16 rows (gathered, then h's)
    auto rows_at = [&](int64_t ld) {
      if ((int64_t)rows.size() < n_e * ld) rows.resize(n_e * ld);
      return rows.data();
    };
    // The expert's thread gathers its own rows: they are then in its core's cache for the products.
    if (keep_xg)
      for (int i = o; i < o + n_e; ++i) std::memcpy(s.xg + (int64_t)i * C, x + (int64_t)s.slot_row[i] * C, sizeof(float) * C);
    if (bf16) {
      const PackedB& gate = w.packed_gate[e].fwd;
      const int64_t ld = bf16_rows_stride(n_e, gate);
      uint16_t* xr = rows_at(ld);
      gather_bf16_rows(x, C, s.slot_row + o, n_e, gate, xr, ld);
      if (xg_packed) put_b_rows(s.xg_packs[e], o - s.offsets[e], n_e, xr, ld);
      fetch_expert_ahead(w.packed_up, w.up, e, fc, false);
      if (h16) gemm_bf16_on_rows(xr, ld, n_e, gate, s.hg16 + (int64_t)o * F, F);
      else gemm_bf16_on_rows(xr, ld, n_e, gate, s.hg + (int64_t)o * F, F, false);
      fetch_expert_ahead(w.packed_down, w.down, e, fc, false);
      if (h16) gemm_bf16_on_rows(xr, ld, n_e, w.packed_up[e].fwd, s.hu16 + (int64_t)o * F, F);
      else gemm_bf16_on_rows(xr, ld, n_e, w.packed_up[e].fwd, s.hu + (int64_t)o * F, F, false);
    } else {
      fetch_expert_ahead(w.packed_up, w.up, e, fc, false);
      matmul_forward(s.hg + (int64_t)o * F, F, s.xg + (int64_t)o * C, C, w.gate + e * fc, n_e, C, F, false,
                     pack(w.packed_gate, e));
      fetch_expert_ahead(w.packed_down, w.down, e, fc, false);
      matmul_forward(s.hu + (int64_t)o * F, F, s.xg + (int64_t)o * C, C, w.up + e * fc, n_e, C, F, false,
                     pack(w.packed_up, e));
    }
    expert_lora_forward(lora, 0, s, e, o, n_e, s.xg, C, s.hg, F);
    expert_lora_forward(lora, 1, s, e, o, n_e, s.xg, C, s.hu, F);
    on_h(h16, s, o, F, [&](const auto* hg, const auto* hu) {
      if (!make_h && !h_packed) swiglu_forward(s.h + (int64_t)o * F, hg, hu, n_e, F);
      const int next = claim_next();
      fetch_expert_ahead(w.packed_gate, w.gate, next, fc, false);
      if (h_packed) {  // h's rows made in bf16, put into its pack, then multiplied as they are
        const PackedB& down = w.packed_down[e].fwd;
        const int64_t ld = bf16_rows_stride(n_e, down);
        uint16_t* hr = rows_at(ld);  // the gathered rows are done with
        for (int r = 0; r < n_e; ++r) {
          uint16_t* row = hr + r * ld;
          swiglu_forward_row(row, hg + (int64_t)r * F, hu + (int64_t)r * F, F);
          std::fill(row + F, row + down.Kp, (uint16_t)0);
        }
        put_b_rows(s.h_packs[e], o - s.offsets[e], n_e, hr, ld);
        gemm_bf16_on_rows(hr, ld, n_e, down, s.y + (int64_t)o * C, C, false);
      } else if (make_h)
        packed_product_of_rows(w.packed_down[e], false, n_e,
                               [&](int r, auto* row) { swiglu_forward_row(row, hg + (int64_t)r * F, hu + (int64_t)r * F, F); },
                               s.y + (int64_t)o * C, C, false);
      else
        matmul_forward(s.y + (int64_t)o * C, C, s.h + (int64_t)o * F, F, w.down + e * fc, n_e, F, C, false,
                       pack(w.packed_down, e));
    });
    expert_lora_forward(lora, 2, s, e, o, n_e, s.h, F, s.y, C);
    fetch_expert_ahead(nullptr, nullptr, -1, 0, false);  // a hint no product took is not left for the next caller's
  });
  part.reset(), part.emplace("mixing");
  parallel_blocks(N, 16, (int64_t)N * C * K >= kSplitValues, [&](int64_t r0, int64_t r1) {
    for (int n = (int)r0; n < (int)r1; ++n) {
      float* o = out + (int64_t)n * C;
      std::fill(o, o + C, 0.f);
      for (int k = 0; k < K; ++k) {
        const float wk = s.weights[n * K + k];
        const float* y = s.y + (int64_t)s.slot_of[n * K + k] * C;
        for (int c = 0; c < C; ++c) o[c] += wk * y[c];
      }
      if (residual)
        for (int c = 0; c < C; ++c) o[c] += residual[(int64_t)n * C + c];
    }
  });
  return aux;
}

void moe_backward(float* dx, const MoeGrads& g, const MoeScratch& sc, const float* dout, float aux_coef,
                  const MoeSaved& s, const float* x, const MoeWeights& w, const MoeShape& sh, const MoeLora* lora,
                  bool h_kept, bool write_dx) {
  const int N = sh.N, C = sh.C, F = sh.F, E = sh.E, K = sh.K;
  const int64_t fc = (int64_t)F * C;
  const bool bf16 = w.packed_down && w.packed_down->bf16();
  // The weight gradients' B as the forward kept them: packed, or xg and h in fp32.
  const bool xg_packed = packs_xg(w, lora, h_kept, s), h_packed = packs_h(w, lora, h_kept, s);
  // As in forward: experts in parallel, disjoint outputs; halves of experts only with no expert's weight or
  // LoRA gradient to write.
  const bool split = !g.gate && !g.up && !g.down && !adapts(lora, 0) && !adapts(lora, 1) && !adapts(lora, 2);
  // Where dy feeds only the down projection's input gradient (no down gradient, no LoRA on it), that product
  // makes its rows wk · dout as it goes (packed_product_of_rows) and dy stays unwritten; dhg likewise for the
  // gate's (below); h is made again only for a down gradient the forward did not keep it for.
  // On bf16 packs where the weight gradients' dot products take their doutᵀ in pairs of rows (tn_takes_pairs),
  // the rows made for the input-gradient products also go into those pairs (put_pair_row), in bf16 as they are:
  // the down gradient's dy, and the gate and up gradients' dhg and dhu (both, or neither), never in fp32.
  const bool pairs = bf16 && tn_takes_pairs();
  const bool dy_pairs = pairs && g.down && !adapts(lora, 2);
  const bool dh_pairs = pairs && sc.dhu16 && g.gate && g.up && !adapts(lora, 0) && !adapts(lora, 1);
  const bool make_dy = w.packed_down && (!g.down || dy_pairs) && !adapts(lora, 2);
  const bool make_dh = w.packed_gate && (!g.gate || dh_pairs) && !adapts(lora, 0);
  // Those rows write dhu beside them; where only the up product reads it (no up gradient, no LoRA on up) and
  // the packs are bf16, they write it in bf16, and the up product copies its rows instead of converting them.
  const bool dhu_bf16 = make_dh && bf16 && sc.dhu16 && (!g.up || dh_pairs) && !adapts(lora, 1);
  const bool remake_h = g.down && !h_kept && makes_h(w.packed_down, lora), h16 = keeps_h16(w, lora, s);
  if ((g.gate || g.up) && gathers_bf16(w, lora, h_kept, s) && !xg_packed)
    throw Error("backward: the experts' gate and up weight gradients need the rows their forward gathered, and it "
                "did not keep them",
                "run the forward with ForwardOptions::base_grads (moe_forward's keep_h) before asking for them");
  std::optional<TimedOp> part(std::in_place, "experts");  // a step's parts (core/op_time.h)
  for_each_expert(s.offsets, E, split ? expert_task_rows(bf16) : 0, [&](int e, int o, int o_end, auto&& claim_next) {
    const int n_e = o_end - o;
    // The gradient reaching each of the expert's slots, and its routing weight's, on the expert's own thread.
    thread_local std::vector<float> slot_weights;  // per expert's thread: read below by whichever makes the rows
    slot_weights.resize(n_e);
    float* slot_weight = slot_weights.data();
    for (int i = o; i < o + n_e; ++i) {
      const int n = s.slot_row[i];
      int nk = n * K;
      while (s.slot_of[nk] != i) ++nk;
      const float wk = slot_weight[i - o] = s.weights[nk];
      const float* go = dout + (int64_t)n * C;
      if (!make_dy)
        for (int c = 0; c < C; ++c) sc.dy[(int64_t)i * C + c] = wk * go[c];
      sc.dw[nk] = row_dot(go, s.y + (int64_t)i * C, C);
    }
    const float* dy = sc.dy + (int64_t)o * C;
    float* dh = sc.dh + (int64_t)o * F;
    float* dhg = sc.dhg + (int64_t)o * F;
    float* dhu = sc.dhu + (int64_t)o * F;
    const float* xg = s.xg + (int64_t)o * C;
    float* h = s.h + (int64_t)o * F;
    // Input gradients through matmul_backward (on the packs when there are any). Weight gradients (full
    // training) in bf16 with fp32 accumulation when the packs are bf16, as the other matrices' are.
    fetch_expert_ahead(w.packed_gate, w.gate, e, fc, true);
    thread_local PairRows dy_rows, dhg_rows, dhu_rows;  // per expert's thread
    if (dy_pairs) size_pair_rows(dy_rows, n_e, C);
    if (make_dy)
      packed_product_of_rows(w.packed_down[e], true, n_e, [&](int r, auto* row) {
        scale_row(row, dout + (int64_t)s.slot_row[o + r] * C, slot_weight[r], C);
        if constexpr (std::is_same_v<decltype(row), uint16_t*>)
          if (dy_pairs) put_pair_row(dy_rows, r, row);
      }, dh, F, false);
    else
      matmul_backward(dh, F, nullptr, dy, C, nullptr, F, w.down + e * fc, n_e, F, C, pack(w.packed_down, e), true);
    if (remake_h) on_h(h16, s, o, F, [&](const auto* hg, const auto* hu) { swiglu_forward(h, hg, hu, n_e, F); });
    if (g.down) {
      const PairProduct paired{&dy_rows, g.down + e * fc};
      const BfProduct stored{dy, g.down + e * fc};
      if (dy_pairs && h_packed) gemm_bf16_tn(&paired, 1, s.h_packs[e], F, !g.write);
      else if (dy_pairs) gemm_bf16_tn(dy_rows, F, h, F, g.down + e * fc, F, !g.write);
      else if (h_packed) gemm_bf16_tn(C, &stored, 1, C, s.h_packs[e], F, !g.write);
      else weight_grad(C, F, n_e, dy, C, h, F, g.down + e * fc, bf16, g.write);
    }
    expert_lora_backward(lora, 2, s, e, o, n_e, s.h, F, sc.dy, C, sc.dh);
    float* dxg = sc.dxg + (int64_t)o * C;
    // dhg is needed whole only for the gate's weight gradient or LoRA; else, on packs, the gate's
    // input-gradient product makes its rows as it goes, writing dhu's beside them for the up product (one
    // sigmoid for both).
    if (!make_dh) on_h(h16, s, o, F, [&](const auto* hg, const auto* hu) { swiglu_backward(dhg, dhu, dh, hg, hu, n_e, F); });
    uint16_t* dhu16 = dhu_bf16 ? sc.dhu16 + (int64_t)o * F : nullptr;
    if (dh_pairs) size_pair_rows(dhg_rows, n_e, F), size_pair_rows(dhu_rows, n_e, F);
    auto dgate_row = [&](int r, auto* row) {
      const int64_t i = (int64_t)r * F;
      on_h(h16, s, o + r, F, [&](const auto* hg, const auto* hu) {
        if constexpr (std::is_same_v<decltype(row), uint16_t*>)
          if (dhu16) {
            swiglu_backward_row(row, dhu16 + i, dh + i, hg, hu, F);
            if (dh_pairs) put_pair_row(dhg_rows, r, row), put_pair_row(dhu_rows, r, dhu16 + i);
            return;
          }
        swiglu_backward_row(row, dhu + i, dh + i, hg, hu, F);
      });
    };
    fetch_expert_ahead(w.packed_up, w.up, e, fc, true);
    {
      CachedOutputs read_next;  // dxg: the up product adds to it right away
      if (make_dh) packed_product_of_rows(w.packed_gate[e], true, n_e, dgate_row, dxg, C, false);
      else matmul_backward(dxg, C, nullptr, dhg, F, nullptr, C, w.gate + e * fc, n_e, C, F, pack(w.packed_gate, e), true);
    }
    const int next = claim_next();
    fetch_expert_ahead(w.packed_down, w.down, next, fc, true);
    if (dhu16)
      gemm_bf16_produced(n_e, [&](int r, uint16_t* row) { std::memcpy(row, dhu16 + (int64_t)r * F, sizeof(uint16_t) * F); },
                         w.packed_up[e].bwd, dxg, C, true);
    else
      matmul_backward(dxg, C, nullptr, dhu, F, nullptr, C, w.up + e * fc, n_e, C, F, pack(w.packed_up, e));
    expert_lora_backward(lora, 0, s, e, o, n_e, s.xg, C, sc.dhg, F, sc.dxg);
    expert_lora_backward(lora, 1, s, e, o, n_e, s.xg, C, sc.dhu, F, sc.dxg);
    if (dh_pairs) {  // both against xg, packed once
      const PairProduct both[2] = {{&dhg_rows, g.gate + e * fc}, {&dhu_rows, g.up + e * fc}};
      if (xg_packed) gemm_bf16_tn(both, 2, s.xg_packs[e], C, !g.write);
      else gemm_bf16_tn(both, 2, C, xg, C, C, !g.write);
    } else if (xg_packed) {
      const BfProduct both[2] = {{dhg, g.gate ? g.gate + e * fc : nullptr}, {dhu, g.up ? g.up + e * fc : nullptr}};
      const BfProduct* first = g.gate ? both : both + 1;
      gemm_bf16_tn(F, first, (int)(g.gate != nullptr) + (int)(g.up != nullptr), F, s.xg_packs[e], C, !g.write);
    } else if (bf16 && g.gate && g.up) {
      const BfProduct both[2] = {{dhg, g.gate + e * fc}, {dhu, g.up + e * fc}};
      gemm_bf16_tn(F, C, n_e, both, 2, F, xg, C, C, !g.write);
    } else {
      if (g.gate) weight_grad(F, C, n_e, dhg, F, xg, C, g.gate + e * fc, bf16, g.write);
      if (g.up) weight_grad(F, C, n_e, dhu, F, xg, C, g.up + e * fc, bf16, g.write);
    }
    fetch_expert_ahead(nullptr, nullptr, -1, 0, true);
  });
  part.reset(), part.emplace("mixing and routing");
  // Load-balancing gradient per expert, then the router logits' gradient.
  float* gaux = sc.gaux;
  for (int e = 0; e < E; ++e) gaux[e] = 0.f;
  if (aux_coef != 0.f)
    for (int e = 0; e < E; ++e) gaux[e] = aux_coef * E * (float)(s.offsets[e + 1] - s.offsets[e]) / (N * K) / N;
  parallel_blocks(N, 16, (int64_t)N * C * K >= kSplitValues, [&](int64_t r0, int64_t r1) {
    for (int n = (int)r0; n < (int)r1; ++n) {
      const float* src = sc.dxg;
      float* d = dx + (int64_t)n * C;
      for (int k = 0; k < K; ++k) {
        const float* r = src + (int64_t)s.slot_of[n * K + k] * C;
        if (k == 0 && write_dx) std::copy(r, r + C, d);
        else
          for (int c = 0; c < C; ++c) d[c] += r[c];
      }
      float* dl = sc.dlogits + (int64_t)n * E;
      const float* wn = s.weights + (int64_t)n * K;
      const float* dwn = sc.dw + (int64_t)n * K;
      float wdw = 0.f;
      for (int k = 0; k < K; ++k) wdw += wn[k] * dwn[k];
      const float* p = s.probs + (int64_t)n * E;
      float pg = 0.f;
      for (int e = 0; e < E; ++e) pg += p[e] * gaux[e];
      for (int e = 0; e < E; ++e) dl[e] = p[e] * (gaux[e] - pg);
      for (int k = 0; k < K; ++k) dl[s.topk[n * K + k]] += wn[k] * (dwn[k] - wdw);
    }
  });
  gemm(false, false, N, C, E, 1.f, sc.dlogits, E, w.router, C, 1.f, dx, C);
  if (g.router) gemm(true, false, E, C, N, 1.f, sc.dlogits, E, x, C, g.write ? 0.f : 1.f, g.router, C);
  for (int e = 0; e < E && g.write; ++e)  // the loop above wrote only the experts that rows reached
    if (s.offsets[e + 1] == s.offsets[e])
      for (float* w : {g.gate, g.up, g.down})
        if (w) std::fill_n(w + e * fc, fc, 0.f);
}

}  // namespace heirloom
