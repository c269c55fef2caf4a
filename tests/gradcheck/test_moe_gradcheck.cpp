// Mixture of experts: optimised vs reference routing and outputs, gradients vs double-precision finite differences
// (with and without the load-balancing loss, fixed routing with an idle expert), written gradients, and the rows
// the packed products make as they go against the same rows stored.
// The harness and its tolerance reasoning are in gradcheck.h.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/rng.h"
#include "gradcheck.h"
#include "heirloom/threads.h"
#include "ops/matmul.h"
#include "ops/moe.h"
#include "ops/vec_math.h"

namespace heirloom {
namespace {

using namespace gradcheck;

// ---------------------------------------------------------------------------------------------
// moe

struct MoeBuffers {
  std::vector<float> probs, weights, xg, hg, hu, h, y, logits;
  std::vector<int32_t> topk, offsets, slot_row, slot_of, cursor;
  std::vector<float> dy, dh, dhg, dhu, dxg, dlogits, dw, gaux;
  std::vector<uint16_t> dhu16;
  std::vector<uint16_t> hg16, hu16;        // where the buffers offer hg and hu in bf16
  std::vector<PackedB> xg_packs, h_packs;  // E each where the buffers offer packs to a trainer's forward
  explicit MoeBuffers(const MoeShape& sh, bool packs = false, bool h16 = false) {
    if (packs) xg_packs.resize(sh.E), h_packs.resize(sh.E);
    if (h16) hg16.assign((size_t)sh.N * sh.K * sh.F, 0x7fc1), hu16.assign(hg16.size(), 0x7fc1);
    const size_t N = sh.N, NK = (size_t)sh.N * sh.K;
    probs.assign(N * sh.E, kNaN), weights.assign(NK, kNaN);
    xg.assign(NK * sh.C, kNaN), hg.assign(NK * sh.F, kNaN), hu.assign(NK * sh.F, kNaN), h.assign(NK * sh.F, kNaN);
    y.assign(NK * sh.C, kNaN);
    topk.assign(NK, -1), offsets.assign(sh.E + 1, -1), slot_row.assign(NK, -1), slot_of.assign(NK, -1);
    dy.assign(NK * sh.C, kNaN), dh.assign(NK * sh.F, kNaN), dhg.assign(NK * sh.F, kNaN), dhu.assign(NK * sh.F, kNaN);
    dxg.assign(NK * sh.C, kNaN), dlogits.assign(N * sh.E, kNaN), dw.assign(NK, kNaN);
    logits.assign(N * sh.E, kNaN), cursor.assign(sh.E, -1), gaux.assign(sh.E, kNaN);
    dhu16.assign(NK * sh.F, 0x7fc1);  // bf16 NaN
  }
  MoeSaved saved() {
    return {probs.data(), topk.data(), weights.data(), offsets.data(), slot_row.data(), slot_of.data(),
            xg.data(),    hg.data(),   hu.data(),      h.data(),       y.data(),        logits.data(), cursor.data(),
            xg_packs.empty() ? nullptr : xg_packs.data(), h_packs.empty() ? nullptr : h_packs.data(),
            hg16.empty() ? nullptr : hg16.data(), hu16.empty() ? nullptr : hu16.data()};
  }
  MoeScratch scratch() {
    return {dy.data(), dh.data(), dhg.data(), dhu.data(), dxg.data(), dlogits.data(), dw.data(), gaux.data(), dhu16.data()};
  }
};

struct MoeGradBufs {
  Vec dx, router, gate, up, down;
  explicit MoeGradBufs(const MoeShape& sh)
      : dx((size_t)sh.N * sh.C, 0.f), router((size_t)sh.E * sh.C, 0.f), gate((size_t)sh.E * sh.F * sh.C, 0.f),
        up(gate.size(), 0.f), down(gate.size(), 0.f) {}
  MoeGrads grads() { return {router.data(), gate.data(), up.data(), down.data()}; }
};

// MoeGrads::write: every gradient written whatever the buffers held (NaN here), the same bits as added to zeros,
// the router's too, and zeros for the experts no row reached (3 tokens, 2 experts each, of 8: at least 2 idle).
TEST(OpMoe, WrittenGradientsEqualGradientsAddedToZeros) {
  const MoeShape sh{3, 16, 8, 8, 2};
  const int N = sh.N, C = sh.C, F = sh.F, E = sh.E;
  Rng rng(63);
  Vec x = randn((size_t)N * C, rng), router = randn((size_t)E * C, rng, 0.5f), dout = randn((size_t)N * C, rng);
  Vec gate = randn((size_t)E * F * C, rng, 0.3f), up = randn(gate.size(), rng, 0.3f), down = randn(gate.size(), rng, 0.3f);
  const MoeWeights w{router.data(), gate.data(), up.data(), down.data()};
  MoeBuffers b(sh);
  Vec out((size_t)N * C);
  moe_forward(out.data(), b.saved(), x.data(), w, sh, false);
  MoeGradBufs added(sh), written(sh);
  for (Vec* v : {&written.router, &written.gate, &written.up, &written.down}) std::fill(v->begin(), v->end(), kNaN);
  moe_backward(added.dx.data(), added.grads(), b.scratch(), dout.data(), 0.01f, b.saved(), x.data(), w, sh);
  MoeGrads g = written.grads();
  g.write = true;
  moe_backward(written.dx.data(), g, b.scratch(), dout.data(), 0.01f, b.saved(), x.data(), w, sh);
  int idle = 0;
  for (int e = 0; e < E; ++e) idle += b.offsets[e + 1] == b.offsets[e];
  ASSERT_GE(idle, 2);
  for (auto [name, a, wr] : {std::tuple{"router", &added.router, &written.router}, {"gate", &added.gate, &written.gate},
                             {"up", &added.up, &written.up}, {"down", &added.down, &written.down}})
    for (size_t i = 0; i < a->size(); ++i) ASSERT_EQ((*wr)[i], (*a)[i]) << name << " [" << i << "]";
}

// forced_topk empty: route by the router (first forward), else use the given experts (fixed routing).
void run_moe_case(float aux_coef, const std::vector<int32_t>& forced_topk) {
  SCOPED_TRACE("aux_coef=" + std::to_string(aux_coef) + (forced_topk.empty() ? " routed" : " forced routing"));
  const MoeShape sh{7, 13, 11, 4, 2};
  const int N = sh.N, C = sh.C, F = sh.F, E = sh.E, K = sh.K;
  Rng rng(61);
  Vec x = randn((size_t)N * C, rng), router = randn((size_t)E * C, rng, 0.5f);
  Vec gate = randn((size_t)E * F * C, rng, 1.f / std::sqrt((float)C)), up = randn(gate.size(), rng, 1.f / std::sqrt((float)C));
  Vec down = randn((size_t)E * C * F, rng, 1.f / std::sqrt((float)F)), r = randn((size_t)N * C, rng);
  MoeWeights w{router.data(), gate.data(), up.data(), down.data()};
  const bool fixed = !forced_topk.empty();

  MoeBuffers bo(sh), br(sh);
  if (fixed) bo.topk = forced_topk, br.topk = forced_topk;
  Vec out(N * C, kNaN), out_ref(N * C, kNaN);
  const float aux = moe_forward(out.data(), bo.saved(), x.data(), w, sh, fixed);
  const float aux_ref = moe_forward_ref(out_ref.data(), br.saved(), x.data(), w, sh, fixed);
  ASSERT_EQ(bo.topk, br.topk) << "optimised and reference routing differ";
  if (fixed) {
    ASSERT_EQ(bo.topk, forced_topk) << "fixed routing changed the experts";
  }
  EXPECT_TRUE(all_close("moe out vs ref", out, out_ref, 1e-6, 1e-5));
  EXPECT_TRUE(all_close("moe probs vs ref", bo.probs, br.probs, 1e-7, 1e-5));
  EXPECT_TRUE(all_close("moe weights vs ref", bo.weights, br.weights, 1e-7, 1e-5));
  EXPECT_NEAR(aux, aux_ref, 1e-6);
  // Routing semantics, independently: the kept experts are the K most probable (not fixed), weights sum to 1
  // and are proportional to the kept probabilities; aux = E Σ_e f_e P_e.
  std::vector<double> f(E, 0), P(E, 0);
  for (int n = 0; n < N; ++n) {
    const float* p = bo.probs.data() + n * E;
    double ws = 0;
    for (int kk = 0; kk < K; ++kk) {
      const int e = bo.topk[n * K + kk];
      ws += bo.weights[n * K + kk];
      EXPECT_NEAR(bo.weights[n * K + kk] / bo.weights[n * K], p[e] / p[bo.topk[n * K]], 1e-5);
      f[e] += 1.0 / (N * K);
      if (!fixed)
        for (int e2 = 0; e2 < E; ++e2) {
          bool kept = false;
          for (int j = 0; j < K; ++j) kept |= bo.topk[n * K + j] == e2;
          if (!kept) {
            EXPECT_LE(p[e2], p[e]) << "row " << n << ": dropped expert " << e2 << " beats kept " << e;
          }
        }
    }
    EXPECT_NEAR(ws, 1.0, 1e-6);
    for (int e = 0; e < E; ++e) P[e] += p[e] / N;
  }
  double aux_def = 0;
  for (int e = 0; e < E; ++e) aux_def += E * f[e] * P[e];
  EXPECT_NEAR(aux, aux_def, 1e-6);

  // Backward: optimised and reference, all weight gradients on.
  MoeGradBufs go(sh), gr(sh);
  moe_backward(go.dx.data(), go.grads(), bo.scratch(), r.data(), aux_coef, bo.saved(), x.data(), w, sh);
  moe_backward_ref(gr.dx.data(), gr.grads(), r.data(), aux_coef, br.saved(), x.data(), w, sh);
  EXPECT_TRUE(all_close("moe dx vs ref", go.dx, gr.dx, 1e-6, 1e-5));
  {  // dx written (as the model's backward asks): over NaN, the same as added to zeros
    MoeGradBufs gw(sh);
    std::fill(gw.dx.begin(), gw.dx.end(), kNaN);
    moe_backward(gw.dx.data(), gw.grads(), bo.scratch(), r.data(), aux_coef, bo.saved(), x.data(), w, sh, nullptr,
                 false, true);
    EXPECT_TRUE(identical("moe dx written over NaN", gw.dx, go.dx));
  }
  EXPECT_TRUE(all_close("moe drouter vs ref", go.router, gr.router, 1e-6, 1e-5));
  EXPECT_TRUE(all_close("moe dgate vs ref", go.gate, gr.gate, 1e-6, 1e-5));
  EXPECT_TRUE(all_close("moe dup vs ref", go.up, gr.up, 1e-6, 1e-5));
  EXPECT_TRUE(all_close("moe ddown vs ref", go.down, gr.down, 1e-6, 1e-5));

  // Finite differences with routing held fixed at the first forward's experts.
  MoeBuffers bp(sh);
  bp.topk = bo.topk;
  Vec tmp(N * C);
  auto loss = [&] {
    const float a = moe_forward_ref(tmp.data(), bp.saved(), x.data(), w, sh, true);
    return dot_loss(tmp.data(), r.data(), tmp.size()) + (double)aux_coef * a;
  };
  struct Item {
    const char* name;
    Vec* param;
    Vec* ana;
    Vec* ana_ref;
  } items[] = {{"x", &x, &go.dx, &gr.dx},
               {"router", &router, &go.router, &gr.router},
               {"gate", &gate, &go.gate, &gr.gate},
               {"up", &up, &go.up, &gr.up},
               {"down", &down, &go.down, &gr.down}};
  for (const Item& it : items) {
    const auto num = numerical_grad(it.param->data(), it.param->size(), loss);
    EXPECT_TRUE(expect_grad(std::string("moe d") + it.name, num, *it.ana));
    EXPECT_TRUE(expect_grad(std::string("moe d") + it.name + " (ref)", num, *it.ana_ref));
  }
  ASSERT_EQ(bp.topk, bo.topk) << "fixed routing changed the experts during probing";

  // Accumulation, then null weight-gradient pointers: dx and the remaining gradients are unchanged.
  expect_accumulates("moe", {&go.dx, &go.router, &go.gate, &go.up, &go.down}, [&] {
    moe_backward(go.dx.data(), go.grads(), bo.scratch(), r.data(), aux_coef, bo.saved(), x.data(), w, sh);
  });
  MoeGradBufs full(sh);
  moe_backward(full.dx.data(), full.grads(), bo.scratch(), r.data(), aux_coef, bo.saved(), x.data(), w, sh);
  for (int frozen = 0; frozen <= 4; ++frozen) {  // 0..3: one weight frozen; 4: all frozen
    MoeGradBufs part(sh);
    MoeGrads g = part.grads();
    if (frozen == 0 || frozen == 4) g.router = nullptr;
    if (frozen == 1 || frozen == 4) g.gate = nullptr;
    if (frozen == 2 || frozen == 4) g.up = nullptr;
    if (frozen == 3 || frozen == 4) g.down = nullptr;
    moe_backward(part.dx.data(), g, bo.scratch(), r.data(), aux_coef, bo.saved(), x.data(), w, sh);
    const std::string tag = " with frozen set " + std::to_string(frozen);
    EXPECT_TRUE(all_close("moe dx" + tag, part.dx, full.dx, 0, 0));
    EXPECT_TRUE(all_close("moe drouter" + tag, part.router, g.router ? full.router : Vec(part.router.size(), 0.f), 0, 0));
    EXPECT_TRUE(all_close("moe dgate" + tag, part.gate, g.gate ? full.gate : Vec(part.gate.size(), 0.f), 0, 0));
    EXPECT_TRUE(all_close("moe dup" + tag, part.up, g.up ? full.up : Vec(part.up.size(), 0.f), 0, 0));
    EXPECT_TRUE(all_close("moe ddown" + tag, part.down, g.down ? full.down : Vec(part.down.size(), 0.f), 0, 0));
    // the reference skips the same work
    MoeGradBufs pr(sh);
    MoeGrads gref = pr.grads();
    if (!g.router) gref.router = nullptr;
    if (!g.gate) gref.gate = nullptr;
    if (!g.up) gref.up = nullptr;
    if (!g.down) gref.down = nullptr;
    moe_backward_ref(pr.dx.data(), gref, r.data(), aux_coef, br.saved(), x.data(), w, sh);
    EXPECT_TRUE(all_close("moe ref dx" + tag, pr.dx, gr.dx, 0, 0));
  }
}

TEST(OpMoe, GradCheckNoAuxLoss) { run_moe_case(0.f, {}); }
TEST(OpMoe, GradCheckWithAuxLoss) { run_moe_case(0.1f, {}); }
// Fixed routing given up front with one expert never used (an empty expert group) and a skewed load.
TEST(OpMoe, GradCheckForcedRoutingEmptyExpert) {
  run_moe_case(0.1f, {0, 1, 1, 0, 2, 0, 0, 2, 1, 2, 0, 1, 2, 0});
}

// Random experts (N·C inputs, their output gradient, router, gate, up, down) with each expert's weights packed
// (bf16 or fp32); rng goes on from there for what a case draws next.
struct PackedExperts {
  Rng rng;
  Vec x, dout, router, gate, up, down;
  std::vector<PackedWeight> pg, pu, pd;
  PackedExperts(const MoeShape& sh, uint64_t seed, bool bf16) : rng(seed) {
    const int N = sh.N, C = sh.C, F = sh.F, E = sh.E;
    x = randn((size_t)N * C, rng), router = randn((size_t)E * C, rng, 0.5f), dout = randn((size_t)N * C, rng);
    gate = randn((size_t)E * F * C, rng, 0.2f), up = randn(gate.size(), rng, 0.2f), down = randn(gate.size(), rng, 0.2f);
    for (int e = 0; e < E; ++e) {
      pg.push_back(pack_weight(gate.data() + (size_t)e * F * C, F, C, bf16));
      pu.push_back(pack_weight(up.data() + (size_t)e * F * C, F, C, bf16));
      pd.push_back(pack_weight(down.data() + (size_t)e * C * F, C, F, bf16));
    }
  }
  MoeWeights weights() const {
    return {router.data(), gate.data(), up.data(), down.data(), pg.data(), pu.data(), pd.data()};
  }
};

// On packs (bf16 or fp32) the down projection makes its input rows h = silu(hg) ⊙ hu as it goes; in the
// backward, the gate's input-gradient product makes its rows from dh, hg and hu, and the down's from the
// routing weights and dout: no h, dhg or dy in memory. The results must be the same bits as with those rows
// stored: stored here by a LoRA on the three projections whose B is zero (it adds nothing), and by asking for
// the experts' weight gradients (the backward then takes experts whole, not in halves). On bf16 packs with no
// up gradient, dhu itself goes to the up product in bf16 (MoeScratch::dhu16), and with the weight gradients on
// pair rows, dy, dhg and dhu go into those. A forward on bf16 packs for no trainer of the base gathers the experts'
// rows into bf16 only. F = 40 has a tail past 16 · 2.
void run_moe_made_rows_case(bool bf16) {
  SCOPED_TRACE(bf16 ? "bf16 packs" : "fp32 packs");
  const MoeShape sh{160, 32, 40, 4, 2};  // about 80 slots an expert: the last experts go as two halves
  const int N = sh.N, C = sh.C, F = sh.F, E = sh.E, R = 2;
  PackedExperts ex(sh, 62, bf16);
  Rng& rng = ex.rng;
  const Vec &x = ex.x, &dout = ex.dout;
  const MoeWeights w = ex.weights();
  Vec a_gate = randn((size_t)E * R * C, rng), a_up = randn(a_gate.size(), rng), a_down = randn((size_t)E * R * F, rng);
  Vec b_in((size_t)E * F * R, 0.f), b_down((size_t)E * C * R, 0.f);
  Vec u_gate((size_t)N * sh.K * R), u_up(u_gate.size()), u_down(u_gate.size()), du(u_gate.size());
  const MoeLoraPart part{0, N, R, 1.f, {a_gate.data(), a_up.data(), a_down.data()}, {b_in.data(), b_in.data(), b_down.data()}, {}, {}};
  MoeLora lora;
  lora.parts = &part, lora.n_parts = 1, lora.rmax = R, lora.du = du.data();
  lora.u[0] = u_gate.data(), lora.u[1] = u_up.data(), lora.u[2] = u_down.data();

  MoeBuffers made(sh), stored(sh);
  Vec out_made((size_t)N * C), out_stored((size_t)N * C);
  moe_forward(out_made.data(), made.saved(), x.data(), w, sh, false);
  moe_forward(out_stored.data(), stored.saved(), x.data(), w, sh, false, &lora);
  for (size_t i = 0; i < out_made.size(); ++i) ASSERT_EQ(out_made[i], out_stored[i]) << "forward at " << i;
  {  // one thread halves one expert, two threads two: the same bits
    const int threads = num_threads();
    set_num_threads(1);
    MoeBuffers one(sh);
    Vec out_one((size_t)N * C);
    moe_forward(out_one.data(), one.saved(), x.data(), w, sh, false);
    set_num_threads(threads);
    for (size_t i = 0; i < out_made.size(); ++i) ASSERT_EQ(out_made[i], out_one[i]) << "forward on one thread at " << i;
  }
  for (float v : made.h) ASSERT_TRUE(std::isnan(v)) << "the forward on packs stored h";
  if (bf16) {  // the experts' rows gathered into bf16 only, once for gate and up: the same outputs
    for (float v : made.xg) ASSERT_TRUE(std::isnan(v)) << "the forward on bf16 packs stored xg";
  }

  // Three backwards: none of the experts' weight gradients (dy, dhg made in the products), the down
  // projection's (h made again, dy stored), and with everything stored.
  MoeGradBufs g_none(sh), g_down(sh), g_stored(sh);
  const MoeGrads none{nullptr, nullptr, nullptr, nullptr};
  const MoeGrads only_down{nullptr, nullptr, nullptr, g_down.down.data()};
  const MoeGrads all_three{nullptr, g_stored.gate.data(), g_stored.up.data(), g_stored.down.data()};
  moe_backward(g_none.dx.data(), none, made.scratch(), dout.data(), 0.f, made.saved(), x.data(), w, sh);
  for (float v : made.dy) ASSERT_TRUE(std::isnan(v)) << "the backward without the down gradient stored dy";
  for (float v : made.dhg) ASSERT_TRUE(std::isnan(v)) << "the backward without gate or up gradients stored dhg";
  if (bf16) {  // dhu went to the up product in bf16 only
    for (float v : made.dhu) ASSERT_TRUE(std::isnan(v)) << "the backward on bf16 packs without an up gradient stored dhu";
  }
  moe_backward(g_down.dx.data(), only_down, made.scratch(), dout.data(), 0.f, made.saved(), x.data(), w, sh);
  moe_backward(g_stored.dx.data(), all_three, stored.scratch(), dout.data(), 0.f, stored.saved(), x.data(), w, sh, &lora);
  for (size_t i = 0; i < g_none.dx.size(); ++i) {
    ASSERT_EQ(g_none.dx[i], g_stored.dx[i]) << "dx at " << i;
    ASSERT_EQ(g_down.dx[i], g_stored.dx[i]) << "dx (with the down gradient) at " << i;
  }
  for (size_t i = 0; i < g_down.down.size(); ++i) ASSERT_EQ(g_down.down[i], g_stored.down[i]) << "d down at " << i;

  // All three weight gradients with no LoRA: on bf16 packs whose weight gradients take pair rows
  // (tn_takes_pairs), dy, dhg and dhu go from the made rows into those pairs, none stored in fp32; and the
  // forward keeps xg and h packed (halves of experts putting rows into one pack), neither in fp32.
  MoeBuffers paired(sh, true);
  Vec out_paired((size_t)N * C);
  MoeGradBufs g_paired(sh);
  moe_forward(out_paired.data(), paired.saved(), x.data(), w, sh, false, nullptr, false, true);  // as a trainer
  const MoeGrads paired_three{nullptr, g_paired.gate.data(), g_paired.up.data(), g_paired.down.data()};
  moe_backward(g_paired.dx.data(), paired_three, paired.scratch(), dout.data(), 0.f, paired.saved(), x.data(), w, sh,
               nullptr, true);
  if (bf16 && tn_takes_pairs()) {
    for (float v : paired.dy) ASSERT_TRUE(std::isnan(v)) << "the backward on pair rows stored dy";
    for (float v : paired.dhg) ASSERT_TRUE(std::isnan(v)) << "the backward on pair rows stored dhg";
    for (float v : paired.dhu) ASSERT_TRUE(std::isnan(v)) << "the backward on pair rows stored dhu";
  }
  if (bf16) {
    for (float v : paired.xg) ASSERT_TRUE(std::isnan(v)) << "the trainer's forward with packs stored xg";
    for (float v : paired.h) ASSERT_TRUE(std::isnan(v)) << "the trainer's forward with packs stored h";
  }
  for (size_t i = 0; i < g_paired.dx.size(); ++i) ASSERT_EQ(g_paired.dx[i], g_stored.dx[i]) << "dx (all three) at " << i;
  for (size_t i = 0; i < g_paired.gate.size(); ++i) {
    ASSERT_EQ(g_paired.gate[i], g_stored.gate[i]) << "d gate at " << i;
    ASSERT_EQ(g_paired.up[i], g_stored.up[i]) << "d up at " << i;
    ASSERT_EQ(g_paired.down[i], g_stored.down[i]) << "d down (all three) at " << i;
  }

  // Up and down without gate, from the kept packs: the up gradient's fp32 dhu against xg's pack.
  MoeGradBufs g_up(sh);
  const MoeGrads up_down{nullptr, nullptr, g_up.up.data(), g_up.down.data()};
  moe_backward(g_up.dx.data(), up_down, paired.scratch(), dout.data(), 0.f, paired.saved(), x.data(), w, sh, nullptr,
               true);
  for (size_t i = 0; i < g_up.up.size(); ++i) {
    ASSERT_EQ(g_up.up[i], g_stored.up[i]) << "d up (no gate) at " << i;
    ASSERT_EQ(g_up.down[i], g_stored.down[i]) << "d down (no gate) at " << i;
  }

  // A forward asked to keep h (a trainer of the base's weights) with no packs to keep it in stores it, and its
  // backward reads it.
  MoeBuffers kept(sh);
  Vec out_kept((size_t)N * C);
  MoeGradBufs g_kept(sh);
  moe_forward(out_kept.data(), kept.saved(), x.data(), w, sh, false, nullptr, false, true);
  for (size_t i = 0; i < made.h.size(); ++i) ASSERT_EQ(kept.h[i], made.h[i]) << "kept h at " << i;  // made again above
  const MoeGrads kept_down{nullptr, nullptr, nullptr, g_kept.down.data()};
  moe_backward(g_kept.dx.data(), kept_down, kept.scratch(), dout.data(), 0.f, kept.saved(), x.data(), w, sh, nullptr, true);
  for (size_t i = 0; i < g_kept.down.size(); ++i) ASSERT_EQ(g_kept.down[i], g_stored.down[i]) << "d down (h kept) at " << i;
}

// On bf16 packs the gate and up products may write hg and hu in bf16 (MoeSaved::hg16, hu16): each value is the
// fp32 product's rounded, nothing is written in fp32, and what the experts compute from them stays within
// bf16's rounding of the fp32 path: the output, dx and all three weight gradients of a trainer's backward (whose
// forward keeps packs), and dx of a backward without weight gradients. A LoRA on gate or up (which adds to hg
// and hu in fp32) keeps them in fp32.
TEST(OpMoe, GateAndUpKeptInBf16AreTheirFp32ValuesRounded) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const MoeShape sh{160, 32, 40, 4, 2};
  const int N = sh.N, C = sh.C, F = sh.F, E = sh.E;
  PackedExperts ex(sh, 63, true);
  Rng& rng = ex.rng;
  const Vec &x = ex.x, &dout = ex.dout;
  const MoeWeights w = ex.weights();
  auto relative = [](const Vec& a, const Vec& b) {
    double d = 0, r = 0;
    for (size_t i = 0; i < a.size(); ++i) d += std::pow((double)a[i] - b[i], 2), r += std::pow((double)b[i], 2);
    return std::sqrt(d / r);
  };
  for (bool trainer : {false, true}) {
    SCOPED_TRACE(trainer ? "a trainer's forward and backward" : "no weight gradients");
    MoeBuffers fp32(sh, trainer), kept16(sh, trainer, true);
    Vec out32((size_t)N * C), out16((size_t)N * C);
    moe_forward(out32.data(), fp32.saved(), x.data(), w, sh, false, nullptr, false, trainer);
    moe_forward(out16.data(), kept16.saved(), x.data(), w, sh, false, nullptr, false, trainer);
    const size_t values = (size_t)N * sh.K * F;
    for (size_t i = 0; i < values; ++i) {
      ASSERT_EQ(kept16.hg16[i], to_bf16(fp32.hg[i])) << "hg at " << i;
      ASSERT_EQ(kept16.hu16[i], to_bf16(fp32.hu[i])) << "hu at " << i;
      ASSERT_TRUE(std::isnan(kept16.hg[i]) && std::isnan(kept16.hu[i])) << "hg or hu also written in fp32 at " << i;
    }
    const double d_out = relative(out16, out32);
    EXPECT_GT(d_out, 0.0) << "the bf16 values were not the ones read";
    {  // against the experts in fp32 (no packs): at most half again the bf16 packs' own error (4.2e-3, 5.1e-3 measured)
      const MoeWeights plain{ex.router.data(), ex.gate.data(), ex.up.data(), ex.down.data(), nullptr, nullptr, nullptr};
      MoeBuffers unpacked(sh);
      Vec exact((size_t)N * C);
      moe_forward(exact.data(), unpacked.saved(), x.data(), plain, sh, false);
      EXPECT_LT(relative(out16, exact), 1.5 * relative(out32, exact)) << "output against fp32";
    }
    MoeGradBufs g32(sh), g16(sh);
    const MoeGrads three32{nullptr, g32.gate.data(), g32.up.data(), g32.down.data()};
    const MoeGrads three16{nullptr, g16.gate.data(), g16.up.data(), g16.down.data()};
    const MoeGrads none{nullptr, nullptr, nullptr, nullptr};
    moe_backward(g32.dx.data(), trainer ? three32 : none, fp32.scratch(), dout.data(), 0.f, fp32.saved(), x.data(), w,
                 sh, nullptr, trainer);
    moe_backward(g16.dx.data(), trainer ? three16 : none, kept16.scratch(), dout.data(), 0.f, kept16.saved(), x.data(),
                 w, sh, nullptr, trainer);
    EXPECT_LT(relative(g16.dx, g32.dx), 1e-2) << "dx";
    if (trainer) {
      EXPECT_LT(relative(g16.gate, g32.gate), 1e-2) << "d gate";
      EXPECT_LT(relative(g16.up, g32.up), 1e-2) << "d up";
      EXPECT_LT(relative(g16.down, g32.down), 1e-2) << "d down";
    }
    std::printf("  %s: relative differences out %.2e, dx %.2e\n", trainer ? "trainer" : "no grads", d_out,
                relative(g16.dx, g32.dx));
  }
  // With a LoRA on gate or up, hg and hu stay fp32: the bf16 buffers are not touched.
  const int R = 2;
  Vec a_in = randn((size_t)E * R * C, rng), b_in((size_t)E * F * R, 0.f), u_gate((size_t)N * sh.K * R), du(u_gate.size());
  const MoeLoraPart part{0, N, R, 1.f, {a_in.data(), nullptr, nullptr}, {b_in.data(), nullptr, nullptr}, {}, {}};
  MoeLora lora;
  lora.parts = &part, lora.n_parts = 1, lora.rmax = R, lora.du = du.data(), lora.u[0] = u_gate.data();
  MoeBuffers adapted(sh, false, true);
  Vec out((size_t)N * C);
  moe_forward(out.data(), adapted.saved(), x.data(), w, sh, false, &lora);
  for (uint16_t v : adapted.hg16) ASSERT_EQ(v, 0x7fc1) << "hg written in bf16 under a LoRA on gate";
}

TEST(OpMoe, PacksMakeTheSwigluRowsTheyReadWithTheSameBits) {
  if (bf16_gemm_available()) run_moe_made_rows_case(true);
  if (f32_packed_available()) run_moe_made_rows_case(false);
  if (!bf16_gemm_available() && !f32_packed_available()) GTEST_SKIP() << "no AVX-512: no packs on this CPU";
}

}  // namespace
}  // namespace heirloom
