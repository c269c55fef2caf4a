// exp for float loops that the compiler can vectorise. glibc only offers vector expf under -ffast-math,
// which we do not use, so the scalar expf call made softmax-heavy ops (cross-entropy over 8192 logits,
// SwiGLU, attention) the slowest part of a step. Cephes' expf: x = n·ln2 + r, |r| ≤ ln2/2, a degree-6
// polynomial for e^r, times 2^n. Relative error ≤ 2 ulp over the clamped range [−87, 88] (below −87 the
// result is e^−87 ≈ 1.6e−38 instead of a denormal or 0 — harmless for softmax weights).
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace heirloom {

#pragma omp declare simd notinbranch
inline float exp_fast(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>(((int32_t)n + 127) << 23);
}

}  // namespace heirloom
