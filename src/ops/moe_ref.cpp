// The experts' naive twins (ops/moe.h): one token through one expert at a time, in double, for the tests.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/moe.h"

namespace heirloom {

namespace {
struct ExpertRef {  // one token through one expert, in double
  std::vector<double> hg, hu, h, y;
};
ExpertRef expert_ref(const float* x, const MoeWeights& w, int e, int C, int F) {
  ExpertRef r{std::vector<double>(F), std::vector<double>(F), std::vector<double>(F), std::vector<double>(C)};
  const int64_t fc = (int64_t)F * C;
  for (int f = 0; f < F; ++f) {
    for (int c = 0; c < C; ++c) {
      r.hg[f] += (double)x[c] * w.gate[e * fc + (int64_t)f * C + c];
      r.hu[f] += (double)x[c] * w.up[e * fc + (int64_t)f * C + c];
    }
    r.h[f] = r.hg[f] / (1.0 + std::exp(-r.hg[f])) * r.hu[f];
  }
  for (int c = 0; c < C; ++c)
    for (int f = 0; f < F; ++f) r.y[c] += r.h[f] * w.down[e * fc + (int64_t)c * F + f];
  return r;
}
}  // namespace

float moe_forward_ref(float* out, const MoeSaved& s, const float* x, const MoeWeights& w, const MoeShape& sh,
                      bool fixed_routing) {
  const int N = sh.N, C = sh.C, F = sh.F, E = sh.E, K = sh.K;
  std::vector<double> pe(E, 0.0), fe(E, 0.0);
  for (int n = 0; n < N; ++n) {
    const float* xn = x + (int64_t)n * C;
    std::vector<double> l(E);
    double mx = -INFINITY, sum = 0;
    for (int e = 0; e < E; ++e) {
      for (int c = 0; c < C; ++c) l[e] += (double)xn[c] * w.router[(int64_t)e * C + c];
      mx = std::max(mx, l[e]);
    }
    for (int e = 0; e < E; ++e) sum += std::exp(l[e] - mx);
    for (int e = 0; e < E; ++e) s.probs[(int64_t)n * E + e] = (float)(std::exp(l[e] - mx) / sum), pe[e] += std::exp(l[e] - mx) / sum;
    int32_t* idx = s.topk + (int64_t)n * K;
    if (!fixed_routing) top_k_experts(idx, s.probs + (int64_t)n * E, E, K);
    double ks = 0;
    for (int k = 0; k < K; ++k) ks += std::exp(l[idx[k]] - mx) / sum;
    for (int c = 0; c < C; ++c) out[(int64_t)n * C + c] = 0.f;
    for (int k = 0; k < K; ++k) {
      const double wk = std::exp(l[idx[k]] - mx) / sum / ks;
      s.weights[(int64_t)n * K + k] = (float)wk;
      fe[idx[k]] += 1.0 / (N * K);
      const ExpertRef r = expert_ref(xn, w, idx[k], C, F);
      for (int c = 0; c < C; ++c) out[(int64_t)n * C + c] += (float)(wk * r.y[c]);
    }
  }
  double aux = 0;
  for (int e = 0; e < E; ++e) aux += fe[e] * pe[e] / N;
  return (float)(aux * E);
}

void moe_backward_ref(float* dx, const MoeGrads& g, const float* dout, float aux_coef, const MoeSaved& s,
                      const float* x, const MoeWeights& w, const MoeShape& sh) {
  const int N = sh.N, C = sh.C, F = sh.F, E = sh.E, K = sh.K;
  const int64_t fc = (int64_t)F * C;
  std::vector<double> fe(E, 0.0);
  for (int i = 0; i < N * K; ++i) fe[s.topk[i]] += 1.0 / (N * K);
  for (int n = 0; n < N; ++n) {
    const float* xn = x + (int64_t)n * C;
    const float* go = dout + (int64_t)n * C;
    std::vector<double> dwk(K), dl(E, 0.0);
    for (int k = 0; k < K; ++k) {
      const int e = s.topk[n * K + k];
      const double wk = s.weights[n * K + k];
      const ExpertRef r = expert_ref(xn, w, e, C, F);
      for (int c = 0; c < C; ++c) dwk[k] += go[c] * r.y[c];
      std::vector<double> dh(F, 0.0);
      for (int c = 0; c < C; ++c)
        for (int f = 0; f < F; ++f) {
          dh[f] += wk * go[c] * w.down[e * fc + (int64_t)c * F + f];
          if (g.down) g.down[e * fc + (int64_t)c * F + f] += (float)(wk * go[c] * r.h[f]);
        }
      for (int f = 0; f < F; ++f) {
        const double sg = 1.0 / (1.0 + std::exp(-r.hg[f]));
        const double dg = dh[f] * r.hu[f] * sg * (1.0 + r.hg[f] * (1.0 - sg)), du = dh[f] * r.hg[f] * sg;
        for (int c = 0; c < C; ++c) {
          dx[(int64_t)n * C + c] += (float)(dg * w.gate[e * fc + (int64_t)f * C + c] + du * w.up[e * fc + (int64_t)f * C + c]);
          if (g.gate) g.gate[e * fc + (int64_t)f * C + c] += (float)(dg * xn[c]);
          if (g.up) g.up[e * fc + (int64_t)f * C + c] += (float)(du * xn[c]);
        }
      }
    }
    double wdw = 0;
    for (int k = 0; k < K; ++k) wdw += s.weights[n * K + k] * dwk[k];
    for (int k = 0; k < K; ++k) dl[s.topk[n * K + k]] += s.weights[n * K + k] * (dwk[k] - wdw);
    const float* p = s.probs + (int64_t)n * E;
    double pg = 0;
    for (int e = 0; e < E; ++e) pg += p[e] * aux_coef * E * fe[e] / N;
    for (int e = 0; e < E; ++e) dl[e] += p[e] * (aux_coef * E * fe[e] / N - pg);
    for (int e = 0; e < E; ++e)
      for (int c = 0; c < C; ++c) {
        dx[(int64_t)n * C + c] += (float)(dl[e] * w.router[(int64_t)e * C + c]);
        if (g.router) g.router[(int64_t)e * C + c] += (float)(dl[e] * xn[c]);
      }
  }
}

}  // namespace heirloom
