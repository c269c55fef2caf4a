// Whole-model gradient checks on small configs (dense and MoE, tied and untied): for every tensor of the
// base, and for every adapter part (norm deltas, LoRA A/B on q/k/v/o, steering), the analytic gradient's
// projection on a random direction u must match the finite-difference directional derivative of the
// objective (mean cross-entropy + aux_coef·load-balancing loss). Routing is held fixed across probes.
// The model's forward is float, so the directional derivative (whose signal is a whole tensor's gradient
// norm) is used instead of element-wise probes; a 1% error in any tensor's gradient fails the check.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/rng.h"
#include "heirloom/engine.h"
#include "heirloom/vocab.h"

namespace heirloom {
namespace {

ModelConfig small_config(bool moe, bool tied) {
  ModelConfig c = preset_config(moe ? "tiny" : "tiny-dense");
  c.n_embd = 32; c.n_head = 4; c.n_head_kv = 2; c.n_ff = moe ? 24 : 40; c.n_layer = 2; c.n_ctx = 16;
  c.tied_output = tied;
  return c;
}

struct Fixture {
  Model m;
  std::vector<int32_t> tok, tgt;
  int B = 2, T = 9;
  float aux = 0.05f;
  Fixture(bool moe, bool tied) : m(init_model(small_config(moe, tied), byte_vocab(), 11)) {
    Rng rng(5);
    // Larger-than-default weights so every path carries signal; gains away from 1.
    for (auto& x : m.data) x *= 4.f;
    for (const auto& s : m.tensors)
      if (s.is_norm())
        for (int64_t i = 0; i < s.numel; ++i) m.data[s.offset + i] = 1.f + 0.3f * rng.normal();
    for (int i = 0; i < B * T; ++i) {
      tok.push_back((int32_t)rng.below(m.config.n_vocab));
      tgt.push_back(i % 5 == 3 ? -1 : (int32_t)rng.below(m.config.n_vocab));
    }
  }
};

// objective at the current parameters, routing fixed after the first call.
double objective(Fixture& f, Workspace& ws, std::span<const AdapterView* const> ads, bool fixed) {
  ForwardOptions fo;
  fo.for_backward = true;
  fo.fixed_routing = fixed;
  fo.aux_coef = f.aux;
  return forward(f.m, ws, Batch{f.tok.data(), f.tgt.data(), f.B, f.T}, ads, fo).objective(f.aux);
}

// 4th-order central difference of objective along u applied to [p, p+n).
double directional(Fixture& f, Workspace& ws, std::span<const AdapterView* const> ads, float* p,
                   const std::vector<float>& u, double h) {
  std::vector<float> orig(p, p + u.size());
  auto at = [&](double t) {
    for (size_t i = 0; i < u.size(); ++i) p[i] = (float)(orig[i] + t * u[i]);
    return objective(f, ws, ads, true);
  };
  const double d = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h);
  std::copy(orig.begin(), orig.end(), p);
  return d;
}

void check(const std::string& what, double num, double ana) {
  // Measured noise of the float forward at h = 0.1: |num − ana| ≤ 2e-6 on these fixtures.
  const double tol = std::max(1e-5, 3e-3 * std::abs(num));
  EXPECT_NEAR(ana, num, tol) << what;
  // Sensitivity: wherever the signal is above the noise floor, a 2% gradient error must exceed the tolerance.
  if (std::abs(num) > 1e-3) {
    EXPECT_GT(0.02 * std::abs(ana), tol) << what << ": check too loose to see a 2% error";
  }
}

std::vector<float> direction(size_t n, Rng& rng) {
  std::vector<float> u(n);
  double ss = 0;
  for (auto& x : u) {
    x = rng.normal();
    ss += (double)x * x;
  }
  for (auto& x : u) x = (float)(x / std::sqrt(ss));
  return u;
}

void check_base(bool moe, bool tied) {
  Fixture f(moe, tied);
  auto ws = make_workspace();
  objective(f, *ws, {}, false);  // fixes routing
  objective(f, *ws, {}, true);
  std::vector<float> grad(f.m.data.size(), 0.f);
  backward(f.m, *ws, {}, std::vector<bool>(f.m.tensors.size(), true), grad.data(), nullptr, nullptr, f.aux);
  Rng rng(9);
  for (const auto& s : f.m.tensors) {
    const std::vector<float> u = direction(s.numel, rng);
    double ana = 0;
    for (int64_t i = 0; i < s.numel; ++i) ana += (double)grad[s.offset + i] * u[i];
    const double num = directional(f, *ws, {}, f.m.data.data() + s.offset, u, 0.1);
    check(s.name, num, ana);
  }
}

TEST(ModelGradcheck, MoeUntied) { check_base(true, false); }
TEST(ModelGradcheck, DenseUntied) { check_base(false, false); }
TEST(ModelGradcheck, MoeTied) { check_base(true, true); }

// backward(…, dbase_write = true) writes the gradients instead of adding them to dbase: over a dbase of NaN, the
// same values bit for bit as added to zeros (a tied head's gradient too, which the embedding's is added to; the
// gains', the router's and the embedding's, sums of parts, cleared first); without it, backward adds (a second
// call doubles every gradient).
TEST(ModelGradcheck, GradientsWrittenOverAnythingEqualGradientsAddedToZeros) {
  for (bool moe : {true, false})
    for (bool tied : {false, true}) {
      SCOPED_TRACE(std::string(moe ? "moe" : "dense") + (tied ? " tied" : " untied"));
      Fixture f(moe, tied);
      auto ws = make_workspace();
      objective(f, *ws, {}, false);
      const std::vector<bool> all(f.m.tensors.size(), true);
      std::vector<float> added(f.m.data.size(), 0.f), twice(f.m.data.size(), 0.f);
      std::vector<float> written(f.m.data.size(), std::numeric_limits<float>::quiet_NaN());
      backward(f.m, *ws, {}, all, added.data(), nullptr, nullptr, f.aux);
      backward(f.m, *ws, {}, all, written.data(), nullptr, nullptr, f.aux, true);
      for (int k = 0; k < 2; ++k) backward(f.m, *ws, {}, all, twice.data(), nullptr, nullptr, f.aux);
      for (const auto& s : f.m.tensors)
        for (int64_t i = s.offset; i < s.offset + s.numel; ++i) {
          ASSERT_EQ(written[i], added[i]) << s.name << " [" << i - s.offset << "]";
          ASSERT_NEAR(twice[i], 2 * added[i], 1e-5 * std::fabs(added[i]) + 1e-30) << s.name << " [" << i - s.offset << "]";
        }
    }
}

TEST(ModelGradcheck, FrozenTensorsGetNoGradientAndTrainableOnesMatch) {
  Fixture f(true, false);
  auto ws = make_workspace();
  objective(f, *ws, {}, false);
  std::vector<float> all(f.m.data.size(), 0.f), some(f.m.data.size(), 0.f);
  std::vector<bool> mask(f.m.tensors.size());
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = f.m.tensors[i].is_norm();
  backward(f.m, *ws, {}, std::vector<bool>(mask.size(), true), all.data(), nullptr, nullptr, f.aux);
  backward(f.m, *ws, {}, mask, some.data(), nullptr, nullptr, f.aux);
  for (size_t t = 0; t < mask.size(); ++t) {
    const auto& s = f.m.tensors[t];
    for (int64_t i = 0; i < s.numel; ++i) {
      if (mask[t]) ASSERT_FLOAT_EQ(some[s.offset + i], all[s.offset + i]) << s.name;
      else ASSERT_EQ(some[s.offset + i], 0.f) << s.name;
    }
  }
}

TEST(ModelGradcheck, AdapterParts) {
  Fixture f(true, false);
  const ModelConfig& c = f.m.config;
  const int L = c.n_layer, C = c.n_embd, R = 3, HD = c.n_head * c.head_dim(), KD = c.n_head_kv * c.head_dim();
  const int E = c.n_expert, F = c.n_ff;
  ASSERT_GT(E, 0) << "the fixture must be MoE so the router and expert LoRA are checked too";
  // Every target: q, k, v, o, router, and the experts' gate, up, down (one pair per expert).
  const int in[kLoraTargets] = {C, C, C, HD, C, C, C, F}, out[kLoraTargets] = {HD, KD, KD, C, E, F, F, C};
  const int T8 = kLoraTargets;
  Rng rng(21);
  std::vector<float> norm((2 * L + 1) * C), steer(L * C);
  for (auto& x : norm) x = 0.2f * rng.normal();
  for (auto& x : steer) x = 0.2f * rng.normal();
  std::vector<std::vector<float>> A, Bm, dA, dB;
  AdapterView av;
  av.norm_delta = norm.data();
  av.steer = steer.data();
  av.lora_rank = R;
  av.lora_scale = 0.7f;
  av.lora_a.resize(L); av.lora_b.resize(L);
  for (int l = 0; l < L; ++l)
    for (int t = 0; t < T8; ++t) {
      const int copies = is_expert_target(t) ? E : 1;
      A.emplace_back(copies * R * in[t]); Bm.emplace_back(copies * out[t] * R);
      for (auto& x : A.back()) x = 0.3f * rng.normal();
      for (auto& x : Bm.back()) x = 0.3f * rng.normal();
    }
  for (int l = 0; l < L; ++l)
    for (int t = 0; t < T8; ++t) { av.lora_a[l][t] = A[l * T8 + t].data(); av.lora_b[l][t] = Bm[l * T8 + t].data(); }
  std::vector<float> dnorm(norm.size()), dsteer(steer.size());
  AdapterGrads ag;
  ag.norm_delta = dnorm.data();
  ag.steer = dsteer.data();
  ag.lora_a.resize(L); ag.lora_b.resize(L);
  dA.reserve(A.size()); dB.reserve(Bm.size());
  for (int l = 0; l < L; ++l)
    for (int t = 0; t < T8; ++t) {
      dA.emplace_back(A[l * T8 + t].size()); dB.emplace_back(Bm[l * T8 + t].size());
      ag.lora_a[l][t] = dA.back().data(); ag.lora_b[l][t] = dB.back().data();
    }
  const AdapterView* ads[1] = {&av};
  auto ws = make_workspace();
  objective(f, *ws, ads, false);
  objective(f, *ws, ads, true);
  backward(f.m, *ws, ads, std::vector<bool>(f.m.tensors.size(), false), nullptr, &av, &ag, f.aux);
  auto probe = [&](const std::string& name, std::vector<float>& p, const std::vector<float>& g) {
    const std::vector<float> u = direction(p.size(), rng);
    double ana = 0;
    for (size_t i = 0; i < p.size(); ++i) ana += (double)g[i] * u[i];
    check(name, directional(f, *ws, ads, p.data(), u, 0.1), ana);
  };
  probe("norm_delta", norm, dnorm);
  probe("steer", steer, dsteer);
  for (int i = 0; i < T8 * L; ++i) {
    probe("lora_a layer " + std::to_string(i / T8) + " target " + std::to_string(i % T8), A[i], dA[i]);
    probe("lora_b layer " + std::to_string(i / T8) + " target " + std::to_string(i % T8), Bm[i], dB[i]);
  }
}

}  // namespace
}  // namespace heirloom
