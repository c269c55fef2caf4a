// A dense weight delta back to a LoRA pair: the best rank-k factorisation ΔW ≈ scale·B·A found by
// randomised subspace iteration (Halko, Martinsson & Tropp 2011). Exact when rank(ΔW) ≤ k, which is the
// case for linear, blend and task-vector merges of two rank-R adapters at k = 2R.
#pragma once
#include <cstdint>

namespace heirloom::inherit {

// dw: [out, in] row-major. Writes B [out, k] and A [k, in] with scale·B·A ≈ dw; returns ‖scale·B·A‖² / ‖dw‖²
// (the share of energy kept; 1 when dw is zero).
double factor_low_rank(const float* dw, int out, int in, int k, float scale, float* B, float* A, uint64_t seed);

}  // namespace heirloom::inherit
