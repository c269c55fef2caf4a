// Every op: optimised vs `_ref` on odd sizes (forward and all backward outputs), gradients vs double-precision
// finite differences wrt every input and weight, "backward accumulates", and null weight-gradient pointers.
// The harness and its tolerance reasoning are in gradcheck.h.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/rng.h"
#include "heirloom/threads.h"
#include "gradcheck.h"
#include "ops/adamw.h"
#include "ops/attention.h"
#include "ops/embed.h"
#include "ops/matmul.h"
#include "ops/moe.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "ops/xent.h"

namespace heirloom {
namespace {

using namespace gradcheck;
using Vec = std::vector<float>;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Zeroes the gradients, runs `backward` (which accumulates into them) twice, and expects twice the gradient
// of a single run. Also requires the single-run gradients to be non-zero, so the check means something.
void expect_accumulates(const std::string& what, const std::vector<Vec*>& grads, const std::function<void()>& backward) {
  for (Vec* g : grads) std::fill(g->begin(), g->end(), 0.f);
  backward();
  std::vector<Vec> once;
  for (Vec* g : grads) once.push_back(*g);
  backward();
  for (size_t i = 0; i < grads.size(); ++i) {
    Vec twice(once[i].size());
    for (size_t j = 0; j < twice.size(); ++j) twice[j] = 2.f * once[i][j];
    const double scale = max_abs(once[i].data(), once[i].size());
    EXPECT_GT(scale, 0.0) << what << " gradient " << i << " is all zero";
    EXPECT_TRUE(all_close(what + " grad " + std::to_string(i) + " after two backward calls", *grads[i], twice,
                      1e-6 * scale, 1e-6));
  }
}

// ---------------------------------------------------------------------------------------------
// The harness itself, on a function with a known gradient: out_i = sin(x_i)·x_{i+1} (float outputs).

TEST(OpGradcheckHarness, KnownGradientAndDirectionalDerivative) {
  const int n = 9;
  Rng rng(3);
  Vec x = randn(n, rng, 2.f), r = randn(n, rng), out(n);
  auto loss = [&] {
    for (int i = 0; i < n; ++i) out[i] = (float)(std::sin((double)x[i]) * (i + 1 < n ? x[i + 1] : 1.0));
    return dot_loss(out.data(), r.data(), n);
  };
  Vec ana(n);
  for (int i = 0; i < n; ++i)
    ana[i] = (float)(r[i] * std::cos((double)x[i]) * (i + 1 < n ? x[i + 1] : 1.0) +
                     (i > 0 ? r[i - 1] * std::sin((double)x[i - 1]) : 0.0));
  const Vec x0 = x;
  const auto num = numerical_grad(x.data(), n, loss);
  EXPECT_TRUE(identical("x restored after probing", x, x0));
  EXPECT_TRUE(expect_grad("harness sin", num, ana));
  Options tight;
  tight.abs_tol = 1e-5;  // the noise floor here is far lower than the default tolerance
  EXPECT_TRUE(compare_grad("harness sin (tight)", num, ana.data(), tight));
  // A wrong gradient fails: 1 % off in one element, or one sign.
  Vec bad = ana;
  bad[4] *= 1.01f;
  EXPECT_FALSE(compare_grad("corrupted", num, bad.data()));
  bad = ana;
  bad[7] = -bad[7];
  EXPECT_FALSE(compare_grad("corrupted", num, bad.data()));
  // Directional derivative along u equals Σ ana·u.
  Vec u = randn(n, rng);
  const double dd = directional_derivative(x.data(), n, u.data(), loss, 5e-2);
  EXPECT_TRUE(identical("x restored after directional probe", x, x0));
  double expect = 0;
  for (int i = 0; i < n; ++i) expect += (double)ana[i] * u[i];
  EXPECT_NEAR(dd, expect, 1e-4 * (1 + std::fabs(expect)));
  // Lagrange slope on unevenly spaced points is exact for a polynomial of degree ≤ n − 1.
  const double t[5] = {-0.21, -0.1, 0, 0.09, 0.2};
  double f[5];
  for (int i = 0; i < 5; ++i) f[i] = 3 - 2 * t[i] + 5 * t[i] * t[i] - t[i] * t[i] * t[i] * t[i];
  EXPECT_NEAR(lagrange_slope_at_zero(t, f, 5), -2.0, 1e-12);
}

// ---------------------------------------------------------------------------------------------
// embed

TEST(OpEmbed, ForwardBackwardMatchRefAndGradCheck) {
  const int N = 7, C = 13, V = 37;
  Rng rng(11);
  std::vector<int32_t> tok(N);
  for (auto& t : tok) t = (int32_t)rng.below(V);
  tok[4] = tok[1];  // a repeated token: its gradient rows must add
  tok[6] = V - 1;
  Vec wte = randn((size_t)V * C, rng), r = randn((size_t)N * C, rng);

  Vec out(N * C, kNaN), out_ref(N * C, kNaN);
  embed_forward(out.data(), tok.data(), wte.data(), N, C);
  embed_forward_ref(out_ref.data(), tok.data(), wte.data(), N, C);
  EXPECT_TRUE(identical("embed forward vs ref", out, out_ref));
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) ASSERT_EQ(out[n * C + c], wte[(size_t)tok[n] * C + c]);

  Vec dwte((size_t)V * C, 0.f), dwte_ref((size_t)V * C, 0.f);
  embed_backward(dwte.data(), r.data(), tok.data(), N, C);
  embed_backward_ref(dwte_ref.data(), r.data(), tok.data(), N, C);
  EXPECT_TRUE(all_close("embed backward vs ref", dwte, dwte_ref, 1e-6, 1e-6));

  Vec tmp(N * C);
  auto loss = [&] {
    embed_forward_ref(tmp.data(), tok.data(), wte.data(), N, C);
    return dot_loss(tmp.data(), r.data(), tmp.size());
  };
  const auto num = numerical_grad(wte.data(), wte.size(), loss);
  EXPECT_TRUE(expect_grad("embed dwte", num, dwte));
  EXPECT_TRUE(expect_grad("embed dwte (ref)", num, dwte_ref));
  expect_accumulates("embed", {&dwte}, [&] { embed_backward(dwte.data(), r.data(), tok.data(), N, C); });
}

// ---------------------------------------------------------------------------------------------
// rmsnorm

TEST(OpRmsnorm, ForwardBackwardMatchRefAndGradCheck) {
  const float eps = 1e-5f;
  // C = 131: 16-lane vectors and a scalar tail; N = 37: three blocks of rows (16 each, the last partial), whose
  // partial gain gradients are added in order.
  for (auto [N, C] : {std::pair{7, 13}, std::pair{3, 131}, std::pair{37, 40}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
    Rng rng(100 + C);
    Vec x = randn((size_t)N * C, rng), w = randn(C, rng, 0.3f), r = randn((size_t)N * C, rng);
    for (auto& v : w) v += 1.f;
    x[2] *= 5.f;  // a row with a different scale

    Vec out(N * C, kNaN), out_ref(N * C, kNaN), rstd(N, kNaN), rstd_ref(N, kNaN);
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
    rmsnorm_forward_ref(out_ref.data(), rstd_ref.data(), x.data(), w.data(), N, C, eps);
    EXPECT_TRUE(all_close("rmsnorm out", out, out_ref, 1e-6, 1e-5));
    EXPECT_TRUE(all_close("rmsnorm rstd", rstd, rstd_ref, 0, 1e-6));
    {  // the residual add fused with the norm: the same numbers as the add, then the norm
      Vec sum = x, add = randn((size_t)N * C, rng), out_fused(N * C, kNaN), rstd_fused(N, kNaN);
      Vec sum_apart = sum, out_apart(N * C, kNaN), rstd_apart(N, kNaN);
      add_rmsnorm_forward(sum.data(), add.data(), out_fused.data(), rstd_fused.data(), w.data(), N, C, eps);
      for (size_t i = 0; i < sum_apart.size(); ++i) sum_apart[i] += add[i];
      rmsnorm_forward(out_apart.data(), rstd_apart.data(), sum_apart.data(), w.data(), N, C, eps);
      EXPECT_TRUE(identical("add_rmsnorm sum", sum, sum_apart));
      EXPECT_TRUE(identical("add_rmsnorm out", out_fused, out_apart));
      EXPECT_TRUE(identical("add_rmsnorm rstd", rstd_fused, rstd_apart));
    }
    for (int n = 0; n < N; ++n) {  // the definition, independently of both implementations
      double ss = 0;
      for (int c = 0; c < C; ++c) ss += (double)x[n * C + c] * x[n * C + c];
      EXPECT_NEAR(rstd_ref[n], 1.0 / std::sqrt(ss / C + eps), 1e-6 / std::sqrt(ss / C + eps));
    }

    Vec dx(N * C, 0.f), dw(C, 0.f), dx_ref(N * C, 0.f), dw_ref(C, 0.f);
    rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), N, C);
    rmsnorm_backward_ref(dx_ref.data(), dw_ref.data(), r.data(), x.data(), w.data(), rstd.data(), N, C);
    EXPECT_TRUE(all_close("rmsnorm dx", dx, dx_ref, 1e-6, 1e-5));
    EXPECT_TRUE(all_close("rmsnorm dw", dw, dw_ref, 1e-6, 1e-5));

    Vec tmp(N * C), rs(N);
    auto loss = [&] {
      rmsnorm_forward_ref(tmp.data(), rs.data(), x.data(), w.data(), N, C, eps);
      return dot_loss(tmp.data(), r.data(), tmp.size());
    };
    const auto num_x = numerical_grad(x.data(), x.size(), loss), num_w = numerical_grad(w.data(), w.size(), loss);
    EXPECT_TRUE(expect_grad("rmsnorm dx", num_x, dx));
    EXPECT_TRUE(expect_grad("rmsnorm dw", num_w, dw));
    EXPECT_TRUE(expect_grad("rmsnorm dx (ref)", num_x, dx_ref));
    EXPECT_TRUE(expect_grad("rmsnorm dw (ref)", num_w, dw_ref));

    expect_accumulates("rmsnorm", {&dx, &dw}, [&] {
      rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), N, C);
    });
    // Frozen gain: dx is exactly what it was with the gain gradient on.
    Vec dx_frozen(N * C, 0.f), dx_full(N * C, 0.f), dw_full(C, 0.f);
    rmsnorm_backward(dx_full.data(), dw_full.data(), r.data(), x.data(), w.data(), rstd.data(), N, C);
    rmsnorm_backward(dx_frozen.data(), nullptr, r.data(), x.data(), w.data(), rstd.data(), N, C);
    EXPECT_TRUE(identical("rmsnorm dx with dweight=null", dx_frozen, dx_full));
    Vec dx_frozen_ref(N * C, 0.f);
    rmsnorm_backward_ref(dx_frozen_ref.data(), nullptr, r.data(), x.data(), w.data(), rstd.data(), N, C);
    EXPECT_TRUE(all_close("rmsnorm ref dx with dweight=null", dx_frozen_ref, dx_ref, 0, 0));
  }
}

// ---------------------------------------------------------------------------------------------
// matmul

TEST(OpMatmul, StridedAccumulateMatchRefAndGradCheck) {
  const int N = 7, I = 13, O = 11, ldi = 16, ldo = 14, ldd = 17;  // row strides wider than the data
  Rng rng(21);
  Vec inp = randn((size_t)N * ldi, rng), W = randn((size_t)O * I, rng, 0.3f), r = randn((size_t)N * O, rng);
  const Vec base = randn((size_t)N * ldo, rng);  // existing contents of out (incl. padding)

  for (bool acc : {false, true}) {
    SCOPED_TRACE(acc ? "accumulate" : "overwrite");
    Vec out = base, out_ref = base;
    matmul_forward(out.data(), ldo, inp.data(), ldi, W.data(), N, I, O, acc);
    matmul_forward_ref(out_ref.data(), ldo, inp.data(), ldi, W.data(), N, I, O, acc);
    EXPECT_TRUE(all_close("matmul forward vs ref", out, out_ref, 1e-5, 1e-5));
    for (int n = 0; n < N; ++n) {
      for (int o = 0; o < O; ++o) {  // the definition, in double
        double s = acc ? base[n * ldo + o] : 0.0;
        for (int i = 0; i < I; ++i) s += (double)inp[n * ldi + i] * W[o * I + i];
        EXPECT_NEAR(out[n * ldo + o], s, 1e-5 * (1 + std::fabs(s)));
      }
      for (int o = O; o < ldo; ++o) EXPECT_EQ(out[n * ldo + o], base[n * ldo + o]) << "padding written";
    }
  }

  // Backward with dinp in a differently strided buffer whose padding must survive.
  const float pad = 777.f;
  Vec dinp((size_t)N * ldd, pad), dW((size_t)O * I, 0.f), dinp_ref((size_t)N * ldd, pad), dW_ref((size_t)O * I, 0.f);
  for (int n = 0; n < N; ++n) std::fill(dinp.begin() + n * ldd, dinp.begin() + n * ldd + I, 0.f);
  dinp_ref = dinp;
  Vec dout((size_t)N * ldo, kNaN);  // dout has row stride ldo as well; padding is never read
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < O; ++o) dout[n * ldo + o] = r[n * O + o];
  matmul_backward(dinp.data(), ldd, dW.data(), dout.data(), ldo, inp.data(), ldi, W.data(), N, I, O);
  matmul_backward_ref(dinp_ref.data(), ldd, dW_ref.data(), dout.data(), ldo, inp.data(), ldi, W.data(), N, I, O);
  EXPECT_TRUE(all_close("matmul dinp vs ref", dinp, dinp_ref, 1e-5, 1e-5));
  EXPECT_TRUE(all_close("matmul dW vs ref", dW, dW_ref, 1e-5, 1e-5));
  for (int n = 0; n < N; ++n)
    for (int i = I; i < ldd; ++i) ASSERT_EQ(dinp[n * ldd + i], pad) << "dinp padding written";

  // Gradients: the loss reads out's valid [N, O] block; accumulate mode adds a constant, which must not matter.
  Vec tmp((size_t)N * ldo);
  auto loss = [&] {
    tmp = base;
    matmul_forward_ref(tmp.data(), ldo, inp.data(), ldi, W.data(), N, I, O, true);
    return dot_loss(tmp.data(), ldo, r.data(), N, O);
  };
  const auto idx = row_indices(N, I, ldi), idx_d = row_indices(N, I, ldd);
  const auto num_x = numerical_grad_at(inp.data(), idx, loss), num_w = numerical_grad(W.data(), W.size(), loss);
  EXPECT_TRUE(expect_grad("matmul dinp", num_x, gather(dinp.data(), idx_d)));
  EXPECT_TRUE(expect_grad("matmul dW", num_w, dW));
  EXPECT_TRUE(expect_grad("matmul dinp (ref)", num_x, gather(dinp_ref.data(), idx_d)));
  EXPECT_TRUE(expect_grad("matmul dW (ref)", num_w, dW_ref));

  expect_accumulates("matmul", {&dinp, &dW}, [&] {
    matmul_backward(dinp.data(), ldd, dW.data(), dout.data(), ldo, inp.data(), ldi, W.data(), N, I, O);
  });
  // Null outputs are skipped; the other one is unchanged.
  Vec a((size_t)N * ldd, 0.f), b((size_t)O * I, 0.f);
  matmul_backward(a.data(), ldd, nullptr, dout.data(), ldo, inp.data(), ldi, W.data(), N, I, O);
  matmul_backward(nullptr, ldd, b.data(), dout.data(), ldo, inp.data(), ldi, W.data(), N, I, O);
  Vec a2((size_t)N * ldd, 0.f), b2((size_t)O * I, 0.f);
  matmul_backward(a2.data(), ldd, b2.data(), dout.data(), ldo, inp.data(), ldi, W.data(), N, I, O);
  EXPECT_TRUE(identical("matmul dinp with dweight=null", a, a2));
  EXPECT_TRUE(identical("matmul dweight with dinp=null", b, b2));
}

// ---------------------------------------------------------------------------------------------
// rope

TEST(OpRope, StridedMatchRefAndGradCheck) {
  const int B = 2, T = 5, H = 3, D = 8, HD = H * D, ld = HD + 5, pos0 = 7;
  const float base = 10000.f;
  const RopeTable tab = make_rope_table(64, D, base);
  Rng rng(31);
  Vec x = randn((size_t)B * T * ld, rng), r = randn((size_t)B * T * HD, rng);
  const auto idx = row_indices(B * T, HD, ld);

  Vec y = x, y_ref = x;
  rope_forward(y.data(), ld, tab, B, T, H, D, pos0);
  rope_forward_ref(y_ref.data(), ld, base, B, T, H, D, pos0);
  EXPECT_TRUE(all_close("rope forward vs ref", y, y_ref, 1e-6, 1e-6));  // padding: both untouched, so equal
  for (int n = 0; n < B * T; ++n)
    for (int c = HD; c < ld; ++c) ASSERT_EQ(y[n * ld + c], x[n * ld + c]) << "padding written";
  // Position p, pair i rotates by p·base^(−2i/D): check one element by hand (b=1, t=2, head 1, pair 1).
  {
    const int row = 1 * T + 2, i = 1, off = row * ld + 1 * D + 2 * i;
    const double th = (pos0 + 2) * std::pow((double)base, -2.0 * i / D);
    EXPECT_NEAR(y[off], x[off] * std::cos(th) - x[off + 1] * std::sin(th), 1e-6);
    EXPECT_NEAR(y[off + 1], x[off] * std::sin(th) + x[off + 1] * std::cos(th), 1e-6);
  }
  // backward is the inverse rotation: backward(forward(x)) = x
  Vec back = y;
  rope_backward(back.data(), ld, tab, B, T, H, D, pos0);
  EXPECT_TRUE(all_close("rope backward∘forward", back, x, 1e-6, 1e-6));
  // Far positions: the float table (computed in double) still matches the double reference.
  {
    const RopeTable big = make_rope_table(4096, D, base);
    Vec a = x, b = x;
    rope_forward(a.data(), ld, big, B, T, H, D, 4000);
    rope_forward_ref(b.data(), ld, base, B, T, H, D, 4000);
    EXPECT_TRUE(all_close("rope forward at pos 4000", a, b, 2e-6, 1e-6));
  }

  // Gradient: dx = rope_backward(r) laid out with stride ld.
  auto scatter_r = [&] {
    Vec d((size_t)B * T * ld, 555.f);
    for (size_t i = 0; i < idx.size(); ++i) d[idx[i]] = r[i];
    return d;
  };
  Vec dx = scatter_r(), dx_ref = scatter_r();
  rope_backward(dx.data(), ld, tab, B, T, H, D, pos0);
  rope_backward_ref(dx_ref.data(), ld, base, B, T, H, D, pos0);
  EXPECT_TRUE(all_close("rope backward vs ref", dx, dx_ref, 1e-6, 1e-6));
  for (int n = 0; n < B * T; ++n)
    for (int c = HD; c < ld; ++c) ASSERT_EQ(dx[n * ld + c], 555.f) << "dx padding written";

  Vec tmp;
  auto loss = [&] {
    tmp = x;
    rope_forward_ref(tmp.data(), ld, base, B, T, H, D, pos0);
    return dot_loss(tmp.data(), ld, r.data(), B * T, HD);
  };
  const auto num = numerical_grad_at(x.data(), idx, loss);
  EXPECT_TRUE(expect_grad("rope dx", num, gather(dx.data(), idx)));
  EXPECT_TRUE(expect_grad("rope dx (ref)", num, gather(dx_ref.data(), idx)));
}

// ---------------------------------------------------------------------------------------------
// attention

struct AttnCase {
  int B, T, H, Hkv, D, pos0;
};

// pos0 = 0: q, k, v interleaved in one [B·T, (H + 2Hkv)·D] buffer, as the model's fused qkv projection writes
// them (dq, dk, dv likewise in one buffer). pos0 > 0: q from that buffer, k and v from a cache
// [B, n_ctx, 2·Hkv·D] (k | v per row) holding S = pos0 + T rows per sequence plus unused slack rows.
void run_attention_case(const AttnCase& c) {
  SCOPED_TRACE("B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " H=" + std::to_string(c.H) +
               " Hkv=" + std::to_string(c.Hkv) + " D=" + std::to_string(c.D) + " pos0=" + std::to_string(c.pos0));
  const int B = c.B, T = c.T, H = c.H, Hkv = c.Hkv, D = c.D, HD = H * D, QKV = (H + 2 * Hkv) * D;
  AttnShape s{};
  s.B = B, s.T = T, s.H = H, s.Hkv = Hkv, s.D = D, s.pos0 = c.pos0;
  const int S = s.S();
  Rng rng(41 + 7 * c.pos0 + H + Hkv);
  Vec qkv = randn((size_t)B * T * QKV, rng);
  Vec cache;
  const float* k;
  const float* v;
  s.ldq = QKV;
  int n_ctx = 0;
  if (c.pos0 == 0) {
    s.ldkv = QKV;
    s.kv_bstride = (int64_t)T * QKV;
  } else {
    n_ctx = S + 2;
    s.ldkv = 2 * Hkv * D;
    s.kv_bstride = (int64_t)n_ctx * s.ldkv;
    cache = randn((size_t)B * n_ctx * s.ldkv, rng);
  }
  auto kv_ptrs = [&](float* qkv_, float* cache_, float** k_, float** v_) {
    if (c.pos0 == 0) *k_ = qkv_ + HD, *v_ = qkv_ + HD + Hkv * D;
    else *k_ = cache_, *v_ = cache_ + Hkv * D;
  };
  {
    float *kk, *vv;
    kv_ptrs(qkv.data(), cache.data(), &kk, &vv);
    k = kk, v = vv;
  }
  const float* q = qkv.data();
  // A larger score scale than unit normals give, so the softmax is far from uniform.
  for (auto& e : qkv) e *= 1.5f;
  const size_t n_att = (size_t)B * H * T * S, n_out = (size_t)B * T * HD;
  Vec r = randn(n_out, rng);

  const size_t n_stats = (size_t)B * H * T * 2;
  Vec out(n_out, kNaN), stats(n_stats, kNaN), out_ref(n_out, kNaN), att(n_att, kNaN), stats_ref(n_stats, kNaN);
  attention_forward(out.data(), stats.data(), q, k, v, s);
  attention_forward_ref(out_ref.data(), att.data(), q, k, v, s, stats_ref.data());
  EXPECT_TRUE(all_close("attention out vs ref", out, out_ref, 1e-6, 1e-5));
  EXPECT_TRUE(all_close("attention row stats vs ref", stats, stats_ref, 1e-6, 1e-5));
  if (H == Hkv && c.pos0 == 0) {  // q and k rotated inside, head by head: as rope_forward over them first
    const RopeTable tab = make_rope_table(S + 4, D, 10000.f);
    Vec before = qkv, after = qkv, out_apart(n_out, kNaN), stats_apart(n_stats, kNaN);
    Vec out_inside(n_out, kNaN), stats_inside(n_stats, kNaN);
    rope_forward(after.data(), QKV, tab, B, T, H + Hkv, D, 0);
    attention_forward(out_apart.data(), stats_apart.data(), after.data(), after.data() + HD, after.data() + 2 * HD, s);
    attention_forward_rotating(out_inside.data(), stats_inside.data(), before.data(), before.data() + HD,
                               before.data() + 2 * HD, s, tab);
    EXPECT_TRUE(identical("attention rotating: q, k rotated in place", before, after));
    EXPECT_TRUE(identical("attention rotating: out", out_inside, out_apart));
    EXPECT_TRUE(identical("attention rotating: row stats", stats_inside, stats_apart));
  }
  {  // without row stats (forward only): the same output bit for bit
    Vec out_only(n_out, kNaN);
    attention_forward(out_only.data(), nullptr, q, k, v, s);
    EXPECT_EQ(out_only, out);
  }
  // Backward into buffers laid out like the inputs.
  auto zeros_like_inputs = [&](Vec& dqkv, Vec& dcache) {
    dqkv.assign(qkv.size(), 0.f);
    dcache.assign(cache.size(), 0.f);
  };
  Vec dqkv, dcache, dqkv_ref, dcache_ref;
  zeros_like_inputs(dqkv, dcache);
  zeros_like_inputs(dqkv_ref, dcache_ref);
  auto backward = [&](Vec& dqkv_, Vec& dcache_, bool ref) {
    float *dk, *dv;
    kv_ptrs(dqkv_.data(), dcache_.data(), &dk, &dv);
    if (ref) attention_backward_ref(dqkv_.data(), dk, dv, r.data(), att.data(), q, k, v, s);
    else attention_backward(dqkv_.data(), dk, dv, r.data(), stats.data(), q, k, v, s);
  };
  backward(dqkv, dcache, false);
  backward(dqkv_ref, dcache_ref, true);
  {  // with the rotation back inside: the same as rope_backward over dq's and dk's rows afterwards
    const RopeTable tab = make_rope_table(S + 4, D, 10000.f);
    Vec rotated = dqkv, rotated_cache = dcache;
    rope_backward(rotated.data(), QKV, tab, B, T, H, D, c.pos0);
    if (c.pos0 == 0) rope_backward(rotated.data() + HD, QKV, tab, B, T, Hkv, D, 0);
    else
      for (int b = 0; b < B; ++b) rope_backward(rotated_cache.data() + (size_t)b * s.kv_bstride, s.ldkv, tab, 1, S, Hkv, D, 0);
    Vec inside(qkv.size(), 0.f), inside_cache(cache.size(), 0.f);
    float *dk, *dv;
    kv_ptrs(inside.data(), inside_cache.data(), &dk, &dv);
    attention_backward(inside.data(), dk, dv, r.data(), stats.data(), q, k, v, s, false, &tab);
    EXPECT_TRUE(identical("attention dqkv rotated back inside", inside, rotated));
    EXPECT_TRUE(identical("attention dcache rotated back inside", inside_cache, rotated_cache));
  }
  if (c.pos0 == 0) {  // written (as the model's backward asks): every value over NaN, the same as added to zeros
    Vec written(qkv.size(), kNaN);
    float *dk, *dv;
    kv_ptrs(written.data(), nullptr, &dk, &dv);
    attention_backward(written.data(), dk, dv, r.data(), stats.data(), q, k, v, s, true);
    EXPECT_TRUE(identical("attention dqkv written over NaN", written, dqkv));
  }
  EXPECT_TRUE(all_close("attention dqkv vs ref", dqkv, dqkv_ref, 1e-6, 1e-5));
  EXPECT_TRUE(all_close("attention dcache vs ref", dcache, dcache_ref, 1e-6, 1e-5));

  Vec o_tmp(n_out), a_tmp(n_att);
  auto loss = [&] {
    attention_forward_ref(o_tmp.data(), a_tmp.data(), q, k, v, s);
    return dot_loss(o_tmp.data(), r.data(), n_out);
  };
  // Every element of every buffer: unused columns and slack cache rows must get exactly zero gradient.
  const auto num_qkv = numerical_grad(qkv.data(), qkv.size(), loss);
  EXPECT_TRUE(expect_grad("attention d(qkv buffer)", num_qkv, dqkv));
  EXPECT_TRUE(expect_grad("attention d(qkv buffer) (ref)", num_qkv, dqkv_ref));
  if (c.pos0 > 0) {
    const auto num_cache = numerical_grad(cache.data(), cache.size(), loss);
    EXPECT_TRUE(expect_grad("attention d(kv cache)", num_cache, dcache));
    EXPECT_TRUE(expect_grad("attention d(kv cache) (ref)", num_cache, dcache_ref));
    for (int b = 0; b < B; ++b)
      for (int j = S; j < n_ctx; ++j)
        for (int i = 0; i < s.ldkv; ++i) ASSERT_EQ(dcache[((size_t)b * n_ctx + j) * s.ldkv + i], 0.f);
  }
  std::vector<Vec*> grads{&dqkv};
  if (c.pos0 > 0) grads.push_back(&dcache);
  expect_accumulates("attention", grads, [&] { backward(dqkv, dcache, false); });
}

TEST(OpAttention, GqaTrainingLayoutGradCheck) { run_attention_case({2, 5, 4, 2, 8, 0}); }
TEST(OpAttention, MhaTrainingLayoutGradCheck) { run_attention_case({2, 5, 3, 3, 6, 0}); }
TEST(OpAttention, GqaKvCacheGradCheck) { run_attention_case({2, 5, 4, 2, 8, 3}); }
TEST(OpAttention, MhaKvCacheGradCheck) { run_attention_case({1, 3, 2, 2, 6, 4}); }
// Several blocks of query rows (32 each): each block uses only the keys up to its last row.
TEST(OpAttention, BlocksOfQueryRowsGradCheck) { run_attention_case({1, 100, 2, 1, 4, 0}); }
TEST(OpAttention, BlocksOfQueryRowsAfterACacheGradCheck) { run_attention_case({1, 70, 2, 1, 4, 9}); }

// A row that is one token at position pos0 (generation): its output is the softmax-weighted mean of the
// cached values — compare with a direct computation.
TEST(OpAttention, SingleTokenDecodeMatchesDirectSoftmax) {
  const int H = 4, Hkv = 2, D = 8, pos0 = 6, S = pos0 + 1, ldkv = 2 * Hkv * D;
  AttnShape s{};
  s.B = 1, s.T = 1, s.H = H, s.Hkv = Hkv, s.D = D, s.pos0 = pos0, s.ldq = H * D, s.ldkv = ldkv, s.kv_bstride = (int64_t)S * ldkv;
  Rng rng(47);
  Vec q = randn(H * D, rng), cache = randn((size_t)S * ldkv, rng), out(H * D), stats(2 * H);
  attention_forward(out.data(), stats.data(), q.data(), cache.data(), cache.data() + Hkv * D, s);
  for (int h = 0; h < H; ++h) {
    const int g = h / (H / Hkv);
    std::vector<double> sc(S);
    double mx = -1e300, sum = 0;
    for (int j = 0; j < S; ++j) {
      double d = 0;
      for (int i = 0; i < D; ++i) d += (double)q[h * D + i] * cache[j * ldkv + g * D + i];
      sc[j] = d / std::sqrt((double)D);
      mx = std::max(mx, sc[j]);
    }
    for (auto& e : sc) sum += (e = std::exp(e - mx));
    EXPECT_NEAR(stats[2 * h], mx, 1e-5);
    EXPECT_NEAR(stats[2 * h + 1], 1 / sum, 1e-6);
    for (int i = 0; i < D; ++i) {
      double o = 0;
      for (int j = 0; j < S; ++j) o += sc[j] / sum * cache[j * ldkv + Hkv * D + g * D + i];
      EXPECT_NEAR(out[h * D + i], o, 1e-5);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// swiglu

TEST(OpSwiglu, ForwardBackwardMatchRefAndGradCheck) {
  const int N = 7, F = 11;
  Rng rng(51);
  Vec g = randn((size_t)N * F, rng, 3.f), u = randn((size_t)N * F, rng), r = randn((size_t)N * F, rng);
  g[0] = 0.f, g[1] = -20.f, g[2] = 20.f;  // silu(0) = 0, saturated tails

  Vec out(N * F, kNaN), out_ref(N * F, kNaN);
  swiglu_forward(out.data(), g.data(), u.data(), N, F);
  swiglu_forward_ref(out_ref.data(), g.data(), u.data(), N, F);
  EXPECT_TRUE(all_close("swiglu forward vs ref", out, out_ref, 1e-7, 1e-6));
  for (int i = 0; i < N * F; ++i) EXPECT_NEAR(out[i], g[i] / (1 + std::exp(-(double)g[i])) * u[i], 1e-6 * (1 + std::fabs(out[i])));

  Vec dg(N * F, kNaN), du(N * F, kNaN), dg_ref(N * F, kNaN), du_ref(N * F, kNaN);  // written, never read
  swiglu_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), N, F);
  swiglu_backward_ref(dg_ref.data(), du_ref.data(), r.data(), g.data(), u.data(), N, F);
  EXPECT_TRUE(all_close("swiglu dgate vs ref", dg, dg_ref, 1e-7, 1e-6));
  EXPECT_TRUE(all_close("swiglu dup vs ref", du, du_ref, 1e-7, 1e-6));

  Vec tmp(N * F);
  auto loss = [&] {
    swiglu_forward_ref(tmp.data(), g.data(), u.data(), N, F);
    return dot_loss(tmp.data(), r.data(), tmp.size());
  };
  const auto num_g = numerical_grad(g.data(), g.size(), loss), num_u = numerical_grad(u.data(), u.size(), loss);
  EXPECT_TRUE(expect_grad("swiglu dgate", num_g, dg));
  EXPECT_TRUE(expect_grad("swiglu dup", num_u, du));
  EXPECT_TRUE(expect_grad("swiglu dgate (ref)", num_g, dg_ref));
  EXPECT_TRUE(expect_grad("swiglu dup (ref)", num_u, du_ref));
  // The gradients are written: a second call over the first leaves the same values (the NaN start above
  // already shows nothing was read).
  const Vec dg1 = dg, du1 = du;
  swiglu_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), N, F);
  EXPECT_EQ(dg, dg1);
  EXPECT_EQ(du, du1);
}

// ---------------------------------------------------------------------------------------------
// moe

struct MoeBuffers {
  std::vector<float> probs, weights, xg, hg, hu, h, y, logits;
  std::vector<int32_t> topk, offsets, slot_row, slot_of, cursor;
  std::vector<float> dy, dh, dhg, dhu, dxg, dlogits, dw, gaux;
  std::vector<uint16_t> dhu16;
  explicit MoeBuffers(const MoeShape& sh) {
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
            xg.data(),    hg.data(),   hu.data(),      h.data(),       y.data(),        logits.data(), cursor.data()};
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

// On packs (bf16 or fp32) the down projection makes its input rows h = silu(hg) ⊙ hu as it goes; in the
// backward, the gate's input-gradient product makes its rows from dh, hg and hu, and the down's from the
// routing weights and dout: no h, dhg or dy in memory. The results must be the same bits as with those rows
// stored: stored here by a LoRA on the down projection whose B is zero (it adds nothing), and by asking for
// the experts' weight gradients (the backward then takes experts whole, not in halves). On bf16 packs with no
// up gradient, dhu itself goes to the up product in bf16 (MoeScratch::dhu16). F = 40 has a tail past 16 · 2.
void run_moe_made_rows_case(bool bf16) {
  SCOPED_TRACE(bf16 ? "bf16 packs" : "fp32 packs");
  const MoeShape sh{160, 32, 40, 4, 2};  // about 80 slots an expert: the last experts go as two halves
  const int N = sh.N, C = sh.C, F = sh.F, E = sh.E, R = 2;
  Rng rng(62);
  Vec x = randn((size_t)N * C, rng), router = randn((size_t)E * C, rng, 0.5f), dout = randn((size_t)N * C, rng);
  Vec gate = randn((size_t)E * F * C, rng, 0.2f), up = randn(gate.size(), rng, 0.2f), down = randn(gate.size(), rng, 0.2f);
  std::vector<PackedWeight> pg, pu, pd;
  for (int e = 0; e < E; ++e) {
    pg.push_back(pack_weight(gate.data() + (size_t)e * F * C, F, C, bf16));
    pu.push_back(pack_weight(up.data() + (size_t)e * F * C, F, C, bf16));
    pd.push_back(pack_weight(down.data() + (size_t)e * C * F, C, F, bf16));
  }
  const MoeWeights w{router.data(), gate.data(), up.data(), down.data(), pg.data(), pu.data(), pd.data()};
  Vec a_down = randn((size_t)E * R * F, rng), b_down((size_t)E * C * R, 0.f), u((size_t)N * sh.K * R), du(u.size());
  const MoeLoraPart part{0, N, R, 1.f, {nullptr, nullptr, a_down.data()}, {nullptr, nullptr, b_down.data()}, {}, {}};
  MoeLora lora;
  lora.parts = &part, lora.n_parts = 1, lora.rmax = R, lora.u[2] = u.data(), lora.du = du.data();

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

  // Three backwards: none of the experts' weight gradients (dy, dhg made in the products), the down
  // projection's (h made again, dy stored), and with everything stored.
  MoeGradBufs g_none(sh), g_down(sh), g_stored(sh);
  const MoeGrads none{nullptr, nullptr, nullptr, nullptr};
  const MoeGrads only_down{nullptr, nullptr, nullptr, g_down.down.data()};
  const MoeGrads all_three{nullptr, g_stored.gate.data(), g_stored.up.data(), g_stored.down.data()};
  moe_backward(g_none.dx.data(), none, made.scratch(), dout.data(), 0.f, made.saved(), x.data(), w, sh);
  for (float v : made.dy) ASSERT_TRUE(std::isnan(v)) << "the backward without the down gradient stored dy";
  for (float v : made.dhg) ASSERT_TRUE(std::isnan(v)) << "the backward without gate or up gradients stored dhg";
  if (bf16)  // dhu went to the up product in bf16 only
    for (float v : made.dhu) ASSERT_TRUE(std::isnan(v)) << "the backward on bf16 packs without an up gradient stored dhu";
  moe_backward(g_down.dx.data(), only_down, made.scratch(), dout.data(), 0.f, made.saved(), x.data(), w, sh);
  moe_backward(g_stored.dx.data(), all_three, stored.scratch(), dout.data(), 0.f, stored.saved(), x.data(), w, sh, &lora);
  for (size_t i = 0; i < g_none.dx.size(); ++i) {
    ASSERT_EQ(g_none.dx[i], g_stored.dx[i]) << "dx at " << i;
    ASSERT_EQ(g_down.dx[i], g_stored.dx[i]) << "dx (with the down gradient) at " << i;
  }
  for (size_t i = 0; i < g_down.down.size(); ++i) ASSERT_EQ(g_down.down[i], g_stored.down[i]) << "d down at " << i;

  // A forward asked to keep h (a trainer of the base's weights) stores it, and its backward reads it.
  MoeBuffers kept(sh);
  Vec out_kept((size_t)N * C);
  MoeGradBufs g_kept(sh);
  moe_forward(out_kept.data(), kept.saved(), x.data(), w, sh, false, nullptr, false, true);
  for (size_t i = 0; i < made.h.size(); ++i) ASSERT_EQ(kept.h[i], made.h[i]) << "kept h at " << i;  // made again above
  const MoeGrads kept_down{nullptr, nullptr, nullptr, g_kept.down.data()};
  moe_backward(g_kept.dx.data(), kept_down, kept.scratch(), dout.data(), 0.f, kept.saved(), x.data(), w, sh, nullptr, true);
  for (size_t i = 0; i < g_kept.down.size(); ++i) ASSERT_EQ(g_kept.down[i], g_stored.down[i]) << "d down (h kept) at " << i;
}

TEST(OpMoe, PacksMakeTheSwigluRowsTheyReadWithTheSameBits) {
  if (bf16_gemm_available()) run_moe_made_rows_case(true);
  if (f32_packed_available()) run_moe_made_rows_case(false);
  if (!bf16_gemm_available() && !f32_packed_available()) GTEST_SKIP() << "no AVX-512: no packs on this CPU";
}

// ---------------------------------------------------------------------------------------------
// xent

TEST(OpXent, IgnoredRowsMatchRefAndGradCheck) {
  const int N = 7, V = 37;
  Rng rng(71);
  Vec logits = randn((size_t)N * V, rng, 2.f);
  std::vector<int32_t> tg(N);
  for (auto& t : tg) t = (int32_t)rng.below(V);
  tg[2] = kIgnoreIndex, tg[5] = kIgnoreIndex, tg[6] = V - 1;

  Vec losses(N, kNaN), losses_ref(N, kNaN);
  int ns = -1, ns_ref = -1;
  const double total = xent_forward(losses.data(), logits.data(), tg.data(), N, V, &ns);
  const double total_ref = xent_forward_ref(losses_ref.data(), logits.data(), tg.data(), N, V, &ns_ref);
  EXPECT_EQ(ns, 5);
  EXPECT_EQ(ns_ref, 5);
  EXPECT_EQ(losses[2], 0.f);
  EXPECT_EQ(losses[5], 0.f);
  EXPECT_TRUE(all_close("xent losses vs ref", losses, losses_ref, 1e-6, 1e-6));
  EXPECT_NEAR(total, total_ref, 1e-5);
  for (int n = 0; n < N; ++n) {
    if (tg[n] < 0) continue;
    double mx = -1e300, s = 0;
    for (int i = 0; i < V; ++i) mx = std::max(mx, (double)logits[n * V + i]);
    for (int i = 0; i < V; ++i) s += std::exp(logits[n * V + i] - mx);
    const double l = std::log(s) + mx - logits[n * V + tg[n]];
    EXPECT_NEAR(losses[n], l, 1e-5);
    EXPECT_NEAR(log_softmax_at(logits.data() + n * V, V, tg[n]), -l, 1e-5);
  }
  // Large logits: stable, and shift invariant.
  {
    Vec shifted = logits, ls(N);
    for (auto& e : shifted) e += 1000.f;
    int n2 = 0;
    xent_forward(ls.data(), shifted.data(), tg.data(), N, V, &n2);
    EXPECT_TRUE(all_close("xent shift invariance", ls, losses, 2e-3, 0));  // ulp(1000) = 6e-5 per logit
  }

  const float scale = 1.f / ns;
  Vec d(N * V, 0.f), d_ref(N * V, 0.f);
  xent_backward(d.data(), logits.data(), tg.data(), scale, N, V);
  xent_backward_ref(d_ref.data(), logits.data(), tg.data(), scale, N, V);
  EXPECT_TRUE(all_close("xent dlogits vs ref", d, d_ref, 1e-7, 1e-5));
  for (int n : {2, 5})
    for (int i = 0; i < V; ++i) ASSERT_EQ(d[n * V + i], 0.f) << "ignored row got a gradient";

  Vec ls(N);
  auto loss = [&] {
    int k = 0;
    return scale * xent_forward_ref(ls.data(), logits.data(), tg.data(), N, V, &k);
  };
  const auto num = numerical_grad(logits.data(), logits.size(), loss);
  EXPECT_TRUE(expect_grad("xent dlogits", num, d));
  EXPECT_TRUE(expect_grad("xent dlogits (ref)", num, d_ref));
  expect_accumulates("xent", {&d}, [&] { xent_backward(d.data(), logits.data(), tg.data(), scale, N, V); });

  // The training path: the forward's log-sum-exp reused, and dlogits written over whatever was there.
  Vec lse(N, kNaN), d_write(N * V, kNaN), d_acc(N * V, 0.f);
  int n3 = 0;
  xent_forward(ls.data(), logits.data(), tg.data(), N, V, &n3, lse.data());
  xent_backward(d_acc.data(), logits.data(), tg.data(), scale, N, V, lse.data());
  xent_backward_write(d_write.data(), logits.data(), tg.data(), scale, N, V, lse.data());
  EXPECT_TRUE(all_close("xent dlogits with the forward's lse", d_acc, d_ref, 1e-7, 1e-5));
  EXPECT_TRUE(all_close("xent dlogits written", d_write, d_ref, 1e-7, 1e-5));
  for (int n : {2, 5})
    for (int i = 0; i < V; ++i) ASSERT_EQ(d_write[n * V + i], 0.f) << "ignored row not cleared";
  // Row by row (the bf16 head makes each row as its product converts it): the same numbers, ignored rows zero.
  for (int n = 0; n < N; ++n) {
    Vec row(V, kNaN);
    xent_backward_row(row.data(), logits.data() + (size_t)n * V, tg[n], scale, V, tg[n] >= 0 ? lse[n] : kNaN);
    for (int i = 0; i < V; ++i) ASSERT_EQ(row[i], d_write[(size_t)n * V + i]) << "row " << n << " col " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// adamw, schedule

TEST(OpAdamw, MatchesRefOverSeveralSteps) {
  const int64_t n = 1001;
  AdamwHparams hp;
  hp.lr = 1e-2f, hp.weight_decay = 0.1f;
  Rng rng(81);
  Vec p = randn(n, rng), m(n, 0.f), v(n, 0.f);
  Vec p_ref = p, m_ref = m, v_ref = v;
  for (int step = 1; step <= 5; ++step) {
    Vec g = randn(n, rng, 0.1f);
    g[0] = 0.f;
    const float lr = hp.lr * (1.f - 0.1f * step);
    hp.grad_scale = step % 2 ? 1.f : 0.37f;  // clipping folded into the update
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, hp, step, lr);
    adamw_update_ref(p_ref.data(), g.data(), m_ref.data(), v_ref.data(), n, hp, step, lr);
    SCOPED_TRACE("step " + std::to_string(step));
    // m and v can cancel to near zero: bound by a few ulps of their terms (|g| ~ 0.1 ⇒ ~1e-2 and ~5e-4).
    EXPECT_TRUE(all_close("adamw m", m, m_ref, 1e-8, 1e-6));
    EXPECT_TRUE(all_close("adamw v", v, v_ref, 1e-10, 1e-6));
    EXPECT_TRUE(all_close("adamw param", p, p_ref, 3e-7, 2e-7));  // ~2 ulps of |p| ~ 1
  }
  // grad_scale s on g is the update on s·g.
  Vec g = randn(n, rng, 0.1f), gs(g), pa(p), pb(p), ma(m), mb(m), va(v), vb(v);
  for (auto& e : gs) e *= 0.25f;
  hp.grad_scale = 0.25f;
  adamw_update(pa.data(), g.data(), ma.data(), va.data(), n, hp, 6, hp.lr);
  hp.grad_scale = 1.f;
  adamw_update(pb.data(), gs.data(), mb.data(), vb.data(), n, hp, 6, hp.lr);
  EXPECT_TRUE(all_close("adamw grad_scale", pa, pb, 1e-7, 1e-7));
}

TEST(OpAdamw, FirstStepIsSignDescent) {
  const int64_t n = 257;
  Rng rng(82);
  Vec p0 = randn(n, rng), g(n);
  for (auto& e : g) {
    const float s = rng.normal();
    e = (s < 0 ? -1.f : 1.f) * (1e-2f + std::fabs(s));  // |g| ≥ 1e-2 ≫ eps
  }
  for (float wd : {0.f, 0.1f}) {
    SCOPED_TRACE("wd=" + std::to_string(wd));
    AdamwHparams hp;
    hp.lr = 1e-2f, hp.weight_decay = wd;
    Vec p = p0, m(n, 0.f), v(n, 0.f), p2 = p0, m2(n, 0.f), v2(n, 0.f);
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, hp, 1, hp.lr);
    adamw_update_ref(p2.data(), g.data(), m2.data(), v2.data(), n, hp, 1, hp.lr);
    for (int64_t i = 0; i < n; ++i) {
      // m̂ = g, v̂ = g² ⇒ Δp = −lr·(g/(|g|+eps) + wd·p) ≈ −lr·(sign(g) + wd·p)
      const double expect = -hp.lr * ((g[i] > 0 ? 1.0 : -1.0) + wd * p0[i]);
      ASSERT_NEAR(p[i] - p0[i], expect, 1e-4 * hp.lr + 4e-7) << i;
      ASSERT_NEAR(p2[i] - p0[i], expect, 1e-4 * hp.lr + 4e-7) << i;
      ASSERT_NEAR(m[i], (1 - hp.beta1) * g[i], 1e-7 * std::fabs(g[i]));
      ASSERT_NEAR(v[i], (1 - hp.beta2) * g[i] * g[i], 1e-6 * g[i] * g[i]);
    }
  }
  // A zero gradient with no decay leaves the parameter exactly where it was.
  AdamwHparams hp;
  float p = 1.2345f, gz = 0.f, m = 0.f, v = 0.f;
  adamw_update(&p, &gz, &m, &v, 1, hp, 1, hp.lr);
  EXPECT_EQ(p, 1.2345f);
}

TEST(OpAdamw, SumSquaresAndScale) {
  Rng rng(83);
  Vec x = randn(1001, rng);
  double ss = 0;
  for (float e : x) ss += (double)e * e;
  EXPECT_NEAR(sum_squares(x.data(), (int64_t)x.size()), ss, 1e-9 * ss);
  Vec y = x;
  scale_inplace(y.data(), (int64_t)y.size(), 0.5f);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], 0.5f * x[i]);
}

TEST(OpLrSchedule, WarmupCosineDecay) {
  const int warmup = 10, total = 100;
  const float lr_max = 1e-3f, lr_min = 1e-4f;
  for (int s = 0; s < warmup; ++s) EXPECT_NEAR(lr_schedule(s, warmup, total, lr_max, lr_min), lr_max * (s + 1) / warmup, 1e-9) << s;
  EXPECT_NEAR(lr_schedule(warmup - 1, warmup, total, lr_max, lr_min), lr_max, 1e-9);  // warm-up reaches lr_max
  EXPECT_NEAR(lr_schedule(warmup, warmup, total, lr_max, lr_min), lr_max, 1e-9);
  EXPECT_NEAR(lr_schedule((warmup + total) / 2, warmup, total, lr_max, lr_min), 0.5 * (lr_max + lr_min), 1e-9);
  EXPECT_NEAR(lr_schedule(total, warmup, total, lr_max, lr_min), lr_min, 1e-9);
  EXPECT_NEAR(lr_schedule(total + 50, warmup, total, lr_max, lr_min), lr_min, 1e-9);
  for (int s = warmup; s < total; ++s) {
    const float a = lr_schedule(s, warmup, total, lr_max, lr_min), b = lr_schedule(s + 1, warmup, total, lr_max, lr_min);
    EXPECT_LT(b, a) << "not strictly decreasing at step " << s;
    EXPECT_GE(b, lr_min);
    EXPECT_LE(a, lr_max);
  }
  for (int s = 1; s < warmup; ++s)
    EXPECT_GT(lr_schedule(s, warmup, total, lr_max, lr_min), lr_schedule(s - 1, warmup, total, lr_max, lr_min));
  // No warm-up: starts at lr_max.
  EXPECT_NEAR(lr_schedule(0, 0, total, lr_max, lr_min), lr_max, 1e-9);
}

}  // namespace
}  // namespace heirloom
