// Randomised subspace iteration. See lora_refactor.h.
#include "inherit/lora_refactor.h"

#include <cmath>
#include <vector>

#include "core/gemm.h"
#include "core/rng.h"

namespace heirloom::inherit {

namespace {

// Orthonormalises the k columns of Q [rows, k] in place (modified Gram-Schmidt, twice for stability);
// a column that is (numerically) in the span of the earlier ones becomes zero.
void orthonormalise(std::vector<float>& Q, int rows, int k) {
  for (int j = 0; j < k; ++j) {
    double before = 0;
    for (int r = 0; r < rows; ++r) before += (double)Q[(size_t)r * k + j] * Q[(size_t)r * k + j];
    for (int pass = 0; pass < 2; ++pass)
      for (int i = 0; i < j; ++i) {
        double d = 0;
        for (int r = 0; r < rows; ++r) d += (double)Q[(size_t)r * k + i] * Q[(size_t)r * k + j];
        for (int r = 0; r < rows; ++r) Q[(size_t)r * k + j] -= (float)(d * Q[(size_t)r * k + i]);
      }
    double n = 0;
    for (int r = 0; r < rows; ++r) n += (double)Q[(size_t)r * k + j] * Q[(size_t)r * k + j];
    const bool dependent = !(n > 1e-10 * before) || n == 0;
    for (int r = 0; r < rows; ++r) Q[(size_t)r * k + j] = dependent ? 0.f : (float)(Q[(size_t)r * k + j] / std::sqrt(n));
  }
}

}  // namespace

double factor_low_rank(const float* dw, int out, int in, int k, float scale, float* B, float* A, uint64_t seed) {
  double total = 0;
  for (int64_t i = 0; i < (int64_t)out * in; ++i) total += (double)dw[i] * dw[i];
  Rng rng(seed);
  std::vector<float> omega((size_t)in * k), Q((size_t)out * k), Z((size_t)in * k);
  for (float& x : omega) x = rng.normal();
  gemm(false, false, out, k, in, 1.f, dw, in, omega.data(), k, 0.f, Q.data(), k);  // Q = ΔW Ω
  orthonormalise(Q, out, k);
  for (int it = 0; it < 3; ++it) {  // power iterations sharpen the subspace when ΔW is not exactly low-rank
    gemm(true, false, in, k, out, 1.f, dw, in, Q.data(), k, 0.f, Z.data(), k);  // Z = ΔWᵀ Q
    orthonormalise(Z, in, k);
    gemm(false, false, out, k, in, 1.f, dw, in, Z.data(), k, 0.f, Q.data(), k);  // Q = ΔW Z
    orthonormalise(Q, out, k);
  }
  // A = Qᵀ ΔW / scale so that scale·B·A = Q Qᵀ ΔW with B = Q.
  gemm(true, false, k, in, out, 1.f / scale, Q.data(), k, dw, in, 0.f, A, in);
  for (size_t i = 0; i < Q.size(); ++i) B[i] = Q[i];
  double kept = 0;
  for (int64_t i = 0; i < (int64_t)k * in; ++i) kept += (double)A[i] * A[i] * scale * scale;  // ‖Qᵀ ΔW‖ = ‖Q Qᵀ ΔW‖
  return total > 0 ? kept / total : 1.0;
}

}  // namespace heirloom::inherit
