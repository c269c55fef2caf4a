// RoPE forward/backward. See rope.h.
#include "ops/rope.h"

#include <cmath>
#include <cstdint>

#include <immintrin.h>

#include "core/parallel.h"

namespace heirloom {

RopeTable make_rope_table(int n_ctx, int D, float base, const std::vector<float>& freqs) {
  RopeTable t;
  t.n_ctx = n_ctx;
  t.D = D;
  t.base = base;
  t.freqs = freqs;
  t.cs.resize((size_t)n_ctx * D);
  for (int p = 0; p < n_ctx; ++p)
    for (int i = 0; i < D / 2; ++i) {
      const double theta = p * std::pow((double)base, -2.0 * i / D) / (freqs.empty() ? 1.0 : (double)freqs[i]);
      const float c = (float)std::cos(theta), s = (float)std::sin(theta);
      const size_t at = (size_t)p * D / 2 + i;
      t.cs[2 * at] = c, t.cs[2 * at + 1] = s;
    }
  return t;
}

namespace {
#if defined(__AVX512F__)
// Rows [0, n) of x (row stride ld, H heads of D each) at positions t, t + 1, … (wrapping to 0 after T; position
// p's pairs at cs + p·D), rotated with the scalar loop's roundings (below): even lane x0·c − round(x1·si), odd
// lane x0·si + round(x1·c), as fma(x0 x0, (c, si), round(x1 x1 · (−si, c))), from the table's (c, s) pairs with
// their halves swapped and sign bits flipped. With D known (kD > 0) a row is straight-line code. The same bits as
// the scalar loop, in 0.56–0.59 of its time (BM_rope_unit/256: 2.04–2.08 µs against 3.45–3.64); the protocol's
// bf16 steps took 0.990–0.998 of their time in four trials (`heirloom bench --experiment`, twentieth session).
template <int kD>
void rotate_rows(float* x, int64_t ld, const float* cs, int t, int T, int n, int H, int Dr, float sign) {
  const int D = kD > 0 ? kD : Dr;
  const __m512i flip_f = _mm512_set1_epi64(sign > 0 ? 0 : (int64_t)0x8000000000000000ull);  // odd lanes: −s
  const __m512i flip_g = _mm512_set1_epi64(sign > 0 ? 0x80000000ll : 0);                     // even lanes: −s
  for (int i = 0; i < n; ++i, t = t + 1 == T ? 0 : t + 1) {
    float* row = x + i * ld;
    const float* c = cs + (int64_t)t * D;
    for (int d = 0; d < D; d += 16) {
      const __mmask16 m = D - d >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (D - d)) - 1);
      const __m512i w = _mm512_maskz_loadu_epi32(m, c + d);
      const __m512 f = _mm512_castsi512_ps(_mm512_xor_si512(w, flip_f));
      const __m512i swapped = _mm512_maskz_shuffle_epi32(0xffff, w, (_MM_PERM_ENUM)0xB1);  // (s, c) pairs
      const __m512 g = _mm512_castsi512_ps(_mm512_xor_si512(swapped, flip_g));
      for (int h = 0; h < H; ++h) {
        float* v = row + h * D + d;
        const __m512 xv = _mm512_maskz_loadu_ps(m, v);
        const __m512 x0 = _mm512_maskz_moveldup_ps(0xffff, xv), x1 = _mm512_maskz_movehdup_ps(0xffff, xv);
        _mm512_mask_storeu_ps(v, m, _mm512_fmadd_ps(x0, f, _mm512_mul_ps(x1, g)));
      }
    }
  }
}
#endif

// sign = +1 rotates forward, -1 applies the transpose (inverse) rotation.
void rotate(float* x, int ld, const RopeTable& tab, int B, int T, int H, int D, int pos0, float sign) {
  parallel_blocks((int64_t)B * T, 16, (int64_t)B * T * H * D >= kSplitValues, [&](int64_t r0, int64_t r1) {
#if defined(__AVX512F__)
    float* x0 = x + r0 * ld;
    const int t0 = (int)(r0 % T), n = (int)(r1 - r0);
    const float* cs = tab.cs.data() + (int64_t)pos0 * D;
    if (D == 32) return rotate_rows<32>(x0, ld, cs, t0, T, n, H, D, sign);
    if (D == 64) return rotate_rows<64>(x0, ld, cs, t0, T, n, H, D, sign);
    if (D == 128) return rotate_rows<128>(x0, ld, cs, t0, T, n, H, D, sign);
    return rotate_rows<0>(x0, ld, cs, t0, T, n, H, D, sign);
#else
    for (int64_t r = r0; r < r1; ++r) {
      const float* cs = tab.cs.data() + (int64_t)(pos0 + r % T) * D;  // pair i: (cos, sin) at 2i, 2i + 1
      for (int h = 0; h < H; ++h) {
        float* v = x + r * ld + h * D;
        for (int i = 0; i < D / 2; ++i) {
          const float x0 = v[2 * i], x1 = v[2 * i + 1], c = cs[2 * i], si = sign * cs[2 * i + 1];
          v[2 * i] = x0 * c - x1 * si;
          v[2 * i + 1] = x0 * si + x1 * c;
        }
      }
    }
#endif
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
