// Finite-difference gradient checking for float ops and models, with the numerical side in double.
//
// What is compared
// ----------------
//   ana = the gradient the float backward produces;
//   num = d loss / d x_i by finite differences, loss = Σ out ⊙ r (r fixed and random) summed in double.
// The numerical side runs the `_ref` forward wherever one exists: it accumulates in double and only rounds
// its outputs to float, so the one noise source left in the loss is that final rounding (≤ 2^-24 relative
// per output element), not order-dependent float accumulation.
//
// Why a wide, high-order stencil
// ------------------------------
// A difference quotient with step h has error ≈ C_w·δ/h (rounding: δ = noise in the loss, C_w = Σ|stencil
// weights|·h) + truncation O(h^p). A two-point central difference (p = 2) is stuck: h = 1e-3 amplifies the
// loss noise 1000×, and for larger h the h²·f‴ term dominates. The rounding part is the floor that matters —
// perturbing one input moves M outputs, so δ ≈ 6e-8·√M·|out·r| and at h = 1e-2 a 5-point stencil already
// showed errors up to 7e-5 (rmsnorm, C = 131). So we use the central 2m+1-point stencil with m = 4
// (eighth order, truncation ∝ h⁸·f⁽⁹⁾) and a large step h = 5e-2·max(1, |x|): C_w ≈ 2.1, i.e. ~40× less
// noise amplification than a 2-point difference at h = 1e-3, with truncation still negligible.
// Measured on the op tests (max |num − ana| over every checked tensor; ana from the float backward):
//   (h, m) = (1e-2, 2): ≤ 7.3e-5   (3e-2, 2): ≤ 2.5e-5   (1e-1, 2): ≤ 6.6e-4 (truncation, softmax ops)
//            (5e-2, 4): ≤ 1.9e-5   (7e-2, 4): ≤ 1.2e-5   (1.5e-1, 4): ≤ 2.6e-4 (truncation)
// For inputs whose nonlinearity acts on a much smaller scale than O(1), pass a smaller Options::h.
//
// Perturbed values are rounded to float when stored, so the probes x + k·h are not exactly equispaced. We
// do not assume the nominal offsets: the real offsets t_k = float(x + k·h) − x are exact in double, and the
// derivative at 0 is taken from the Lagrange interpolant through the points (t_k, L_k). For exact offsets
// this is the textbook stencil; otherwise it keeps its order instead of picking up an O(ulp/h) error.
//
// Tolerances
// ----------
// Every element: |num − ana| ≤ max(abs_tol, rel_tol·|num|); whole vector: cosine(num, ana) ≥ 1 − 1e-6.
// Defaults abs_tol = 1e-4 (≥ 5× the worst measured noise above, for O(1) data), rel_tol = 1e-3 (10× below a
// 1 % error). The cosine catches a global scale or direction error that hides below the per-element
// bounds. All data are from fixed seeds and the `_ref` forwards are deterministic, so a pass is repeatable.
// `expect_grad` also proves sensitivity every time it runs: it multiplies the largest-|num| element of the
// analytic gradient by 1.01, and flips the sign of another sizeable element far from it, and requires both
// corrupted copies to FAIL the same check (a check blind to a 1 % error is itself a failure).
// Set HEIRLOOM_GRADCHECK_VERBOSE=1 to print every check's worst element, max |diff| and cosine.
//
// Model-level use: a whole model's forward is float (BLAS), so its loss carries accumulation noise
// ~1e-6·|L| — prefer `directional_derivative`, which perturbs all parameters along one random direction u
// and compares with Σ ana·u: the signal is the whole gradient's norm rather than one component.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/rng.h"

namespace heirloom::gradcheck {

using Vec = std::vector<float>;
inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();  // fills what an op must write

// ---------------------------------------------------------------------------------------------
// Random data.

inline void fill_normal(float* x, size_t n, Rng& rng, float scale = 1.f) {
  for (size_t i = 0; i < n; ++i) x[i] = scale * rng.normal();
}
inline void fill_normal(std::vector<float>& x, Rng& rng, float scale = 1.f) { fill_normal(x.data(), x.size(), rng, scale); }

inline void fill_uniform(float* x, size_t n, Rng& rng, float lo, float hi) {
  for (size_t i = 0; i < n; ++i) x[i] = lo + (hi - lo) * rng.uniform();
}
inline void fill_uniform(std::vector<float>& x, Rng& rng, float lo, float hi) { fill_uniform(x.data(), x.size(), rng, lo, hi); }

inline std::vector<float> randn(size_t n, Rng& rng, float scale = 1.f) {
  std::vector<float> v(n);
  fill_normal(v, rng, scale);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Vector comparisons.

inline double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs((double)a[i] - (double)b[i]));
  return m;
}
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  return max_abs_diff(a.data(), b.data(), std::min(a.size(), b.size()));
}

inline double max_abs(const float* a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs((double)a[i]));
  return m;
}

template <class A, class B>
double cosine(const A* a, const B* b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) {
    ab += (double)a[i] * (double)b[i];
    aa += (double)a[i] * (double)a[i];
    bb += (double)b[i] * (double)b[i];
  }
  if (aa == 0 && bb == 0) return 1.0;  // both zero: identical
  if (aa == 0 || bb == 0) return 0.0;
  return ab / std::sqrt(aa * bb);
}

// Σ out ⊙ r in double. Strided form: `rows` rows of `width` values, row stride ld (r is dense [rows, width]).
inline double dot_loss(const float* out, const float* r, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += (double)out[i] * (double)r[i];
  return s;
}
inline double dot_loss(const float* out, int64_t ld, const float* r, int rows, int width) {
  double s = 0;
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < width; ++j) s += (double)out[i * ld + j] * (double)r[(int64_t)i * width + j];
  return s;
}

// Optimised vs `_ref` (or any two float results): |a − b| ≤ abs_tol + rel_tol·|b| elementwise.
// Reports the worst element (largest excess over its bound) and the count of failures.
inline ::testing::AssertionResult all_close(const std::string& what, const float* a, const float* b, size_t n,
                                        double abs_tol, double rel_tol = 0.0) {
  size_t bad = 0, worst = 0;
  double worst_ratio = -1;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs((double)a[i] - (double)b[i]);
    const double bound = abs_tol + rel_tol * std::fabs((double)b[i]);
    const double ratio = std::isnan(d) ? INFINITY : d / bound;
    if (!(d <= bound)) ++bad;
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
  }
  std::ostringstream os;
  os.precision(9);
  if (bad == 0) return ::testing::AssertionSuccess();
  os << what << ": " << bad << " of " << n << " elements differ; worst [" << worst << "] " << a[worst] << " vs "
     << b[worst] << " (|diff| " << std::fabs((double)a[worst] - b[worst]) << ", bound " << abs_tol << " + "
     << rel_tol << "·|ref|)";
  return ::testing::AssertionFailure() << os.str();
}
inline ::testing::AssertionResult all_close(const std::string& what, const std::vector<float>& a,
                                        const std::vector<float>& b, double abs_tol, double rel_tol = 0.0) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << what << ": sizes differ " << a.size() << " vs " << b.size();
  return all_close(what, a.data(), b.data(), a.size(), abs_tol, rel_tol);
}

// Bitwise equality (e.g. "a null gradient pointer changes nothing else").
inline ::testing::AssertionResult identical(const std::string& what, const std::vector<float>& a,
                                            const std::vector<float>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << what << ": sizes differ";
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i] && !(std::isnan(a[i]) && std::isnan(b[i])))
      return ::testing::AssertionFailure() << what << ": element " << i << " " << a[i] << " vs " << b[i];
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// Numerical gradient.

struct Options {
  double h = 5e-2;           // step = h · max(1, |x|)
  int m = 4;                 // stencil x + k·step, k = −m..m: 2m + 1 points, error O(step^2m); 1 ≤ m ≤ 4
  double abs_tol = 1e-4;     // per element: |num − ana| ≤ max(abs_tol, rel_tol·|num|)
  double rel_tol = 1e-3;
  double min_cosine = 1 - 1e-6;
  bool self_test = true;     // expect_grad: also require 1 % / sign corruptions to be caught
};

// Derivative at t = 0 of the polynomial through the n points (t[k], f[k]) (Lagrange, in double).
inline double lagrange_slope_at_zero(const double* t, const double* f, int n) {
  double d = 0;
  for (int i = 0; i < n; ++i) {
    // L_i'(0) = Σ_{j≠i} Π_{m≠i,j} (0 − t_m) / Π_{m≠i} (t_i − t_m)
    double denom = 1;
    for (int m = 0; m < n; ++m)
      if (m != i) denom *= t[i] - t[m];
    double num = 0;
    for (int j = 0; j < n; ++j) {
      if (j == i) continue;
      double p = 1;
      for (int m = 0; m < n; ++m)
        if (m != i && m != j) p *= -t[m];
      num += p;
    }
    d += f[i] * num / denom;
  }
  return d;
}

// d loss / d x[idx[i]] for every listed index. `loss` recomputes the forward from the current x and returns the
// scalar loss in double; x is restored exactly afterwards.
inline std::vector<double> numerical_grad_at(float* x, const std::vector<int64_t>& idx,
                                             const std::function<double()>& loss, const Options& opt = {}) {
  std::vector<double> g(idx.size());
  const int m = std::clamp(opt.m, 1, 4);
  const double L0 = loss();
  for (size_t i = 0; i < idx.size(); ++i) {
    float& xi = x[idx[i]];
    const float x0 = xi;
    const double h = opt.h * std::max(1.0, std::fabs((double)x0));
    double t[9], f[9];
    for (int j = 0; j <= 2 * m; ++j) {
      const int k = j - m;
      if (k == 0) {
        t[j] = 0, f[j] = L0;
        continue;
      }
      xi = (float)((double)x0 + k * h);
      t[j] = (double)xi - (double)x0;  // exact in double
      f[j] = loss();
    }
    xi = x0;
    g[i] = lagrange_slope_at_zero(t, f, 2 * m + 1);
  }
  return g;
}

// d loss / d x[i] for i in [0, n).
inline std::vector<double> numerical_grad(float* x, size_t n, const std::function<double()>& loss,
                                          const Options& opt = {}) {
  std::vector<int64_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = (int64_t)i;
  return numerical_grad_at(x, idx, loss, opt);
}

// Indices of a [rows, width] block with row stride ld (row-major), and the block gathered densely.
inline std::vector<int64_t> row_indices(int rows, int width, int64_t ld) {
  std::vector<int64_t> idx;
  idx.reserve((size_t)rows * width);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < width; ++c) idx.push_back(r * ld + c);
  return idx;
}
inline std::vector<float> gather(const float* x, const std::vector<int64_t>& idx) {
  std::vector<float> g(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) g[i] = x[idx[i]];
  return g;
}

// Element-wise + cosine comparison of a numerical gradient (double) with an analytic one (float).
inline ::testing::AssertionResult compare_grad(const std::string& what, const std::vector<double>& num,
                                               const float* ana, const Options& opt = {}) {
  const size_t n = num.size();
  size_t bad = 0, worst = 0;
  double worst_ratio = -1, max_diff = 0, max_num = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(num[i] - (double)ana[i]);
    max_diff = std::max(max_diff, d), max_num = std::max(max_num, std::fabs(num[i]));
    const double bound = std::max(opt.abs_tol, opt.rel_tol * std::fabs(num[i]));
    const double ratio = std::isnan(d) ? INFINITY : d / bound;
    if (!(d <= bound)) ++bad;
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
  }
  const double cs = cosine(num.data(), ana, n);
  std::ostringstream os;
  os.precision(9);
  os << what << " (n=" << n << "): worst [" << worst << "] num " << (n ? num[worst] : 0) << " ana "
     << (n ? ana[worst] : 0) << " (|diff|/bound " << worst_ratio << "); max |diff| " << max_diff << ", max |num| " << max_num
     << "; cosine 1-" << 1 - cs;
  if (bad == 0 && cs >= opt.min_cosine) return ::testing::AssertionSuccess() << os.str();
  return ::testing::AssertionFailure() << bad << " elements out of tolerance (abs " << opt.abs_tol << ", rel "
                                       << opt.rel_tol << ", min cosine 1-" << 1 - opt.min_cosine << ") — "
                                       << os.str();
}

// compare_grad, plus (opt.self_test) proof that this very check would catch a 1 % error in the largest
// component or a sign error in another sizeable one. Use with EXPECT_TRUE.
inline ::testing::AssertionResult expect_grad(const std::string& what, const std::vector<double>& num,
                                              const float* ana, const Options& opt = {}) {
  auto r = compare_grad(what, num, ana, opt);
  if (std::getenv("HEIRLOOM_GRADCHECK_VERBOSE")) std::fprintf(stderr, "[gradcheck] %s\n", r.message());
  if (!r || !opt.self_test) return r;
  const size_t n = num.size();
  size_t big = 0;
  for (size_t i = 0; i < n; ++i)
    if (std::fabs(num[i]) > std::fabs(num[big])) big = i;
  if (n == 0 || std::fabs(num[big]) * opt.rel_tol * 10 < opt.abs_tol)
    return ::testing::AssertionFailure() << what << ": gradient too small for the tolerance to mean anything (max |num| "
                                         << (n ? num[big] : 0) << ")";
  std::vector<float> bad(ana, ana + n);
  bad[big] *= 1.01f;
  if (compare_grad(what, num, bad.data(), opt))
    return ::testing::AssertionFailure() << what << ": check is blind to a 1% error in element " << big;
  // Sign flip of the sizeable element farthest from `big` in index (a different tensor region).
  size_t other = n;
  for (size_t i = 0; i < n; ++i)
    if (i != big && std::fabs(num[i]) > 2 * opt.abs_tol) {
      if (other == n || (i > big ? i - big : big - i) > (other > big ? other - big : big - other)) other = i;
    }
  if (other < n) {
    bad.assign(ana, ana + n);
    bad[other] = -bad[other];
    if (compare_grad(what, num, bad.data(), opt))
      return ::testing::AssertionFailure() << what << ": check is blind to a sign error in element " << other;
  }
  return r;
}
inline ::testing::AssertionResult expect_grad(const std::string& what, const std::vector<double>& num,
                                              const std::vector<float>& ana, const Options& opt = {}) {
  if (ana.size() != num.size())
    return ::testing::AssertionFailure() << what << ": sizes differ " << num.size() << " vs " << ana.size();
  return expect_grad(what, num, ana.data(), opt);
}

// One-call form: numerical gradient of `loss` wrt x[0..n) against ana[0..n).
inline ::testing::AssertionResult check_grad(const std::string& what, float* x, size_t n, const float* ana,
                                             const std::function<double()>& loss, const Options& opt = {}) {
  return expect_grad(what, numerical_grad(x, n, loss, opt), ana, opt);
}

// Directional derivative of `loss` along u at the current parameters (params[i] += ε·u[i] for every i), with
// the same 2m+1-point stencil; step eps is in units of u. The caller compares it with Σ ana·u.
// For whole-model checks where per-component differences drown in float forward noise.
inline double directional_derivative(float* params, size_t n, const float* u, const std::function<double()>& loss,
                                     double eps, int m = 4) {
  m = std::clamp(m, 1, 4);
  std::vector<float> p0(params, params + n);
  double t[9], f[9];
  for (int j = 0; j <= 2 * m; ++j) {
    const int k = j - m;
    // Actual displacement along u, measured in double: least squares of (params − p0) onto u.
    for (size_t i = 0; i < n; ++i) params[i] = (float)((double)p0[i] + k * eps * u[i]);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
      num += ((double)params[i] - p0[i]) * u[i];
      den += (double)u[i] * u[i];
    }
    t[j] = den > 0 ? num / den : 0;
    f[j] = loss();
  }
  std::copy(p0.begin(), p0.end(), params);
  return lagrange_slope_at_zero(t, f, 2 * m + 1);
}

// Zeroes the gradients, runs `backward` (which accumulates into them) twice, and expects twice the gradient
// of a single run. Also requires the single-run gradients to be non-zero, so the check means something.
inline void expect_accumulates(const std::string& what, const std::vector<std::vector<float>*>& grads, const std::function<void()>& backward) {
  for (std::vector<float>* g : grads) std::fill(g->begin(), g->end(), 0.f);
  backward();
  std::vector<std::vector<float>> once;
  for (std::vector<float>* g : grads) once.push_back(*g);
  backward();
  for (size_t i = 0; i < grads.size(); ++i) {
    std::vector<float> twice(once[i].size());
    for (size_t j = 0; j < twice.size(); ++j) twice[j] = 2.f * once[i][j];
    const double scale = max_abs(once[i].data(), once[i].size());
    EXPECT_GT(scale, 0.0) << what << " gradient " << i << " is all zero";
    EXPECT_TRUE(all_close(what + " grad " + std::to_string(i) + " after two backward calls", *grads[i], twice,
                      1e-6 * scale, 1e-6));
  }
}

}  // namespace heirloom::gradcheck
