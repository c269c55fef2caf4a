// RoPE forward/backward. See rope.h.
#include "ops/rope.h"

#include <cmath>
#include <cstdint>

#include "core/parallel.h"

namespace heirloom {

RopeTable make_rope_table(int n_ctx, int D, float base, const std::vector<float>& freqs) {
  RopeTable t;
  t.n_ctx = n_ctx;
  t.D = D;
  t.base = base;
  t.freqs = freqs;
  t.cos.resize((size_t)n_ctx * D / 2);
  t.sin.resize((size_t)n_ctx * D / 2);
  for (int p = 0; p < n_ctx; ++p)
    for (int i = 0; i < D / 2; ++i) {
      const double theta = p * std::pow((double)base, -2.0 * i / D) / (freqs.empty() ? 1.0 : (double)freqs[i]);
      t.cos[(size_t)p * D / 2 + i] = (float)std::cos(theta);
      t.sin[(size_t)p * D / 2 + i] = (float)std::sin(theta);
    }
  return t;
}

namespace {
// sign = +1 rotates forward, -1 applies the transpose (inverse) rotation.
void rotate(float* x, int ld, const RopeTable& tab, int B, int T, int H, int D, int pos0, float sign) {
  const int half = D / 2;
  parallel_blocks((int64_t)B * T, 16, (int64_t)B * T * H * D >= kSplitValues, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int t = (int)(r % T);
      float* row = x + r * ld;
      const float* c = tab.cos.data() + (int64_t)(pos0 + t) * half;
      const float* s = tab.sin.data() + (int64_t)(pos0 + t) * half;
      for (int h = 0; h < H; ++h) {
        float* v = row + h * D;
        for (int i = 0; i < half; ++i) {
          const float x0 = v[2 * i], x1 = v[2 * i + 1], si = sign * s[i];
          v[2 * i] = x0 * c[i] - x1 * si;
          v[2 * i + 1] = x0 * si + x1 * c[i];
        }
      }
    }
  });
}

void rotate_ref(float* x, int ld, float base, int B, int T, int H, int D, int pos0, double sign) {
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h)
        for (int i = 0; i < D / 2; ++i) {
          float* v = x + ((int64_t)b * T + t) * ld + h * D;
          const double theta = (pos0 + t) * std::pow((double)base, -2.0 * i / D);
          const double c = std::cos(theta), s = sign * std::sin(theta);
          const double x0 = v[2 * i], x1 = v[2 * i + 1];
          v[2 * i] = (float)(x0 * c - x1 * s);
          v[2 * i + 1] = (float)(x0 * s + x1 * c);
        }
}
}  // namespace

void rope_forward(float* x, int ld, const RopeTable& tab, int B, int T, int H, int D, int pos0) {
  rotate(x, ld, tab, B, T, H, D, pos0, 1.f);
}
void rope_backward(float* dx, int ld, const RopeTable& tab, int B, int T, int H, int D, int pos0) {
  rotate(dx, ld, tab, B, T, H, D, pos0, -1.f);
}
void rope_forward_ref(float* x, int ld, float base, int B, int T, int H, int D, int pos0) {
  rotate_ref(x, ld, base, B, T, H, D, pos0, 1.0);
}
void rope_backward_ref(float* dx, int ld, float base, int B, int T, int H, int D, int pos0) {
  rotate_ref(dx, ld, base, B, T, H, D, pos0, -1.0);
}

}  // namespace heirloom
