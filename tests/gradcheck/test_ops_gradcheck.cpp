// Every op (attention and the experts in their own files): optimised vs `_ref` on odd sizes (forward and all backward outputs), gradients vs double-precision
// finite differences wrt every input and weight, "backward accumulates", and null weight-gradient pointers.
// The harness and its tolerance reasoning are in gradcheck.h.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"
#include "gradcheck.h"
#include "ops/adamw.h"
#include "ops/embed.h"
#include "ops/matmul.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "ops/xent.h"

namespace heirloom {
namespace {

using namespace gradcheck;

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

// Head widths of whole vectors (32, 64, 128: the rows' straight-line paths) and a partial one (40), over two
// sequences whose rows a block of 16 may straddle (T = 9): each row at its own position, pairs in order.
TEST(OpRope, WholeVectorWidthsMatchRef) {
  for (const int D : {32, 40, 64, 128}) {
    const int B = 2, T = 9, H = 3, HD = H * D, ld = HD + 5, pos0 = 3;
    const float base = 10000.f;
    const RopeTable tab = make_rope_table(64, D, base);
    Rng rng(37 + D);
    const Vec x = randn((size_t)B * T * ld, rng);
    Vec y = x, y_ref = x, d = x, d_ref = x;
    rope_forward(y.data(), ld, tab, B, T, H, D, pos0);
    rope_forward_ref(y_ref.data(), ld, base, B, T, H, D, pos0);
    rope_backward(d.data(), ld, tab, B, T, H, D, pos0);
    rope_backward_ref(d_ref.data(), ld, base, B, T, H, D, pos0);
    const std::string at = " at D = " + std::to_string(D);
    EXPECT_TRUE(all_close("rope forward vs ref" + at, y, y_ref, 1e-6, 1e-6));
    EXPECT_TRUE(all_close("rope backward vs ref" + at, d, d_ref, 1e-6, 1e-6));
    for (int n = 0; n < B * T; ++n)
      for (int c = HD; c < ld; ++c) ASSERT_EQ(y[n * ld + c], x[n * ld + c]) << "padding written" << at;
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
