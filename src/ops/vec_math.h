// exp for the softmax-heavy ops (cross-entropy over the vocabulary, attention, SwiGLU). glibc offers a vector
// expf only under -ffast-math, which we do not use, and GCC 12 turns a scalar clamp into branches that block
// auto-vectorisation, so the scalar expf made cross-entropy the slowest op of a training step.
// exp_poly, written with GCC vector extensions so it compiles to SIMD on any target (Cephes expf):
// x = n·ln2 + r with n = round(x·log2 e), |r| ≤ ln2/2, a degree-6 polynomial for e^r, times 2^n built in the
// exponent bits. Relative error ≤ 2 ulp on [−87, 88]; inputs are clamped there (e^−87 ≈ 1.6e−38 stands in for
// smaller values — harmless for softmax weights). On AVX-512 the 16-lane exp_fast is exp_scalef instead.
#pragma once
#include <cstdint>
#include <cstring>

#include <immintrin.h>

#include "core/half.h"  // bf16_to_f32

namespace heirloom {

// 16 lanes: one zmm register on an AVX-512 CPU (two ymm on AVX2, as the compiler splits them). With eight,
// heirloom_microbench's BM_xent and BM_swiglu took 1.6-2.0 times as long on this project's Zen 5 machine.
typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));

// The clamp to [−87, 88]. kMinMax (16 lanes where the compiler targets AVX-512): vmaxps and vminps, two
// instructions where the compare-and-select takes four, with the same result, NaN included (vmaxps(−87, x) is x
// when x is NaN, as x < −87 ? −87 : x is). The protocol's steps took 0.985–0.994 of their time with it in three
// trials, null trials 0.996–1.000 (`heirloom bench --experiment`, bench/RESULTS.md).
template <class F, bool kMinMax>
inline F exp_clamp(F x) {
#if defined(__AVX512F__)
  if constexpr (kMinMax && sizeof(F) == 64)
    return (F)_mm512_maskz_min_ps(0xffff, _mm512_set1_ps(88.0f),  // (maskz: gcc 12 warns of the plain forms' pass-through)
                                  _mm512_maskz_max_ps(0xffff, _mm512_set1_ps(-87.0f), (__m512)x));
#endif
  x = x < -87.0f ? F{} - 87.0f : x;
  return x > 88.0f ? F{} + 88.0f : x;
}

template <class F, class I, bool kMinMax = true>
inline F exp_poly(F x) {
  x = exp_clamp<F, kMinMax>(x);
  // Round to nearest by adding 1.5·2^23: the integer then sits in the low mantissa bits.
  const F t = x * 1.44269504088896341f + 12582912.0f;
  const F n = t - 12582912.0f;
  I bits;
  std::memcpy(&bits, &t, sizeof bits);
  const I e = (bits - 0x4B400000 + 127) << 23;
  F scale;
  std::memcpy(&scale, &e, sizeof scale);
  const F r = x - n * 0.693359375f + n * 2.12194440e-4f;
  F p = F{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * scale;
}

#if defined(__AVX512F__)
// e^x as 2^n · 2^f with n = round(x·log2 e) and f = x·log2 e − n (|f| ≤ 1/2, from two FMAs with log2 e split
// in two, so f carries no error from the product), 2^f by a degree-5 minimax polynomial on [−1/2, 1/2] with
// 2^0 = 1 exactly, 2^n applied by vscalefps: 12 instructions to exp_poly's 19. Within 3 ulp of e^x (its test,
// tests/unit/test_vec_math.cpp, prints the worst relative error it meets).
// Inputs are clamped to [−104, 88]: no infinity above, 0 below (vscalefps underflows), NaN kept.
inline f32x16 exp_scalef(f32x16 x) {
  const __m512 xc = _mm512_maskz_min_ps(0xffff, _mm512_set1_ps(88.0f),
                                        _mm512_maskz_max_ps(0xffff, _mm512_set1_ps(-104.0f), (__m512)x));
  const __m512 n = _mm512_maskz_roundscale_ps(0xffff, _mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_fmadd_ps(xc, _mm512_set1_ps(1.925963033500011e-08f),
                                   _mm512_fmsub_ps(xc, _mm512_set1_ps(1.44269502162933349609375f), n));
  __m512 p = _mm512_set1_ps(1.326466212e-03f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.671493433e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550733581e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402224243e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931470037e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return (f32x16)_mm512_maskz_scalef_ps(0xffff, p, n);  // (maskz forms: gcc 12 warns of the plain ones' pass-through)
}
#endif
inline float exp_fast(float x) { return exp_poly<float, int32_t>(x); }
// 16 lanes: exp_scalef where the compiler targets AVX-512 (the protocol's steps took 0.989–0.993 of their time
// in bf16, 0.993–0.996 in fp32, the bf16 norm step 0.983–0.989: `heirloom bench --experiment`, seventeenth
// session), else exp_poly.
inline f32x16 exp_fast(f32x16 x) {
#if defined(__AVX512F__)
  return exp_scalef(x);
#else
  return exp_poly<f32x16, i32x16>(x);
#endif
}

inline f32x16 load16(const float* p) {
  f32x16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store16(float* p, f32x16 v) { std::memcpy(p, &v, sizeof v); }

// bfloat16 as the bf16 products round their operands (vcvtneps2bf16, core/gemm_bf16_pack.cpp): to nearest even,
// denormal inputs as zero, NaN kept (quiet). Row functions that write either type (float or these bits) let a
// product take its rows in bf16 as they are made, with no fp32 row between (gemm_bf16_produced).
inline uint16_t to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7f800000u) == 0) return (uint16_t)((x >> 16) & 0x8000u);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
inline void store16(uint16_t* p, f32x16 v) {
#if defined(__AVX512BF16__) && defined(__AVX512VL__)
  _mm256_storeu_si256((__m256i*)p, (__m256i)_mm512_cvtneps_pbh((__m512)v));
#else
  for (int i = 0; i < 16; ++i) p[i] = to_bf16(v[i]);
#endif
}
inline f32x16 load16(const uint16_t* p) {
#if defined(__AVX512F__)
  // (maskz forms: gcc 12's plain ones warn about their own undefined pass-through operand)
  const __m512i w = _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_loadu_si256((const __m256i*)p));
  return (f32x16)_mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, w, 16));
#else
  f32x16 v;
  for (int i = 0; i < 16; ++i) v[i] = bf16_to_f32(p[i]);
  return v;
#endif
}
// A row's last, partial block of n < 16 values in the vector lanes (the lanes from n on hold `fill`), and back:
// its elements then get the full blocks' vector arithmetic, where a scalar loop took as long as the whole
// vector part on the attention's rows (n_keys = t + 1 leaves 7.5 values a row on average).
inline f32x16 load_first(const float* p, int n, float fill = 0.f) {
#if defined(__AVX512F__)
  return (f32x16)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << n) - 1), p);
#else
  f32x16 v = f32x16{} + fill;
  for (int i = 0; i < n; ++i) v[i] = p[i];
  return v;
#endif
}
inline f32x16 load_first(const uint16_t* p, int n, float fill = 0.f) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  const __mmask16 m = (__mmask16)((1u << n) - 1);
  const __m512i w = _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_maskz_loadu_epi16(m, p));
  return (f32x16)_mm512_mask_blend_ps(m, _mm512_set1_ps(fill), _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, w, 16)));
#else
  f32x16 v = f32x16{} + fill;
  for (int i = 0; i < n; ++i) v[i] = bf16_to_f32(p[i]);
  return v;
#endif
}
inline void store_first(float* p, f32x16 v, int n) {
#if defined(__AVX512F__)
  _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v);
#else
  for (int i = 0; i < n; ++i) p[i] = v[i];
#endif
}
inline void store_first(uint16_t* p, f32x16 v, int n) {
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  _mm256_mask_storeu_epi16(p, (__mmask16)((1u << n) - 1), (__m256i)_mm512_cvtneps_pbh((__m512)v));
#else
  for (int i = 0; i < n; ++i) p[i] = to_bf16(v[i]);
#endif
}
// v with the lanes from n on zero
inline f32x16 first_lanes(f32x16 v, int n) {
#if defined(__AVX512F__)
  return (f32x16)_mm512_maskz_mov_ps((__mmask16)((1u << n) - 1), (__m512)v);
#else
  for (int i = n; i < 16; ++i) v[i] = 0.f;
  return v;
#endif
}

inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return bf16_to_f32(*p); }  // exact
inline void store1(float* p, float v) { *p = v; }
inline void store1(uint16_t* p, float v) { *p = to_bf16(v); }

// out[i] = s·x[i], i < n
template <class Out>
inline void scale_row(Out* out, const float* x, float s, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) store16(out + i, load16(x + i) * s);
  if (i < n) store_first(out + i, load_first(x + i, n - i) * s, n - i);
}
inline float hsum(f32x16 v) {  // a fixed tree: the same sum on every CPU
  float h[8];
  for (int i = 0; i < 8; ++i) h[i] = v[i] + v[i + 8];
  return ((h[0] + h[4]) + (h[1] + h[5])) + ((h[2] + h[6]) + (h[3] + h[7]));
}

// Σ x[i]·y[i], 16 lanes then the fixed tree (a serial sum waited on each add); x in fp32 or bf16
template <class X>
inline float row_dot(const X* x, const float* y, int n) {
  f32x16 s{};
  int i = 0;
  for (; i + 16 <= n; i += 16) s += load16(x + i) * load16(y + i);
  if (i < n) s += load_first(x + i, n - i) * load_first(y + i, n - i);
  return hsum(s);
}

// max of x[0..n)
inline float row_max(const float* x, int n) {
  f32x16 m = f32x16{} - 3.0e38f;
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const f32x16 v = load16(x + i);
    m = v > m ? v : m;
  }
  if (i < n) {
    const f32x16 v = load_first(x + i, n - i, -3.0e38f);
    m = v > m ? v : m;
  }
  float r = m[0];
  for (int j = 1; j < 16; ++j) r = m[j] > r ? m[j] : r;
  return r;
}

// Σ exp(x[i] − m)
inline float row_sum_exp(const float* x, int n, float m) {
  f32x16 s{};
  int i = 0;
  for (; i + 16 <= n; i += 16) s += exp_fast(load16(x + i) - m);
  if (i < n) s += first_lanes(exp_fast(load_first(x + i, n - i) - m), n - i);
  return hsum(s);
}

// y[i] = exp(scale·x[i] − m) (in place allowed); returns the sum
inline float row_exp(float* y, const float* x, int n, float m, float scale = 1.0f) {
  f32x16 s{};
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const f32x16 e = exp_fast(load16(x + i) * scale - m);
    store16(y + i, e);
    s += e;
  }
  if (i < n) {
    const f32x16 e = first_lanes(exp_fast(load_first(x + i, n - i) * scale - m), n - i);
    store_first(y + i, e, n - i);
    s += e;
  }
  return hsum(s);
}

}  // namespace heirloom
