// In-register transpose of 16 × 16 32-bit words (bf16 pairs or floats), for the packers of core/gemm_bf16.cpp
// and core/gemm_f32.cpp. The maskz forms: gcc 12's plain ones warn about their own undefined pass-through operand.
#pragma once
#include <immintrin.h>

namespace heirloom {

// 128-bit lanes of a and b: 0x44 a.0 a.1 b.0 b.1, 0xEE a.2 a.3 b.2 b.3, 0x88 a.0 a.2 b.0 b.2, 0xDD a.1 a.3 b.1 b.3.
template <int imm>
__attribute__((target("avx512f"), always_inline)) inline __m512i transpose_lanes(__m512i a, __m512i b) {
  return _mm512_maskz_shuffle_i32x4(0xffff, a, b, imm);
}

// w[i] holds row i on entry and column i on return. (Unpacks pair the rows inside 128-bit lanes; two lane
// shuffles then gather each column's four lanes.)
__attribute__((target("avx512f"), always_inline)) inline void transpose16(__m512i w[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_maskz_unpacklo_epi32(0xffff, w[i], w[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_epi32(0xffff, w[i], w[i + 1]);
  }
  // u[4g + c], lane L: column 4L + c of rows 4g .. 4g + 3
  for (int g = 0; g < 4; ++g) {
    const __m512i* q = t + 4 * g;
    u[4 * g + 0] = _mm512_maskz_unpacklo_epi64(0xff, q[0], q[2]);
    u[4 * g + 1] = _mm512_maskz_unpackhi_epi64(0xff, q[0], q[2]);
    u[4 * g + 2] = _mm512_maskz_unpacklo_epi64(0xff, q[1], q[3]);
    u[4 * g + 3] = _mm512_maskz_unpackhi_epi64(0xff, q[1], q[3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i lo01 = transpose_lanes<0x44>(u[c], u[4 + c]), hi01 = transpose_lanes<0xEE>(u[c], u[4 + c]);
    const __m512i lo23 = transpose_lanes<0x44>(u[8 + c], u[12 + c]), hi23 = transpose_lanes<0xEE>(u[8 + c], u[12 + c]);
    w[c] = transpose_lanes<0x88>(lo01, lo23);  // column 4L + c takes lane L of every group
    w[4 + c] = transpose_lanes<0xDD>(lo01, lo23);
    w[8 + c] = transpose_lanes<0x88>(hi01, hi23);
    w[12 + c] = transpose_lanes<0xDD>(hi01, hi23);
  }
}

}  // namespace heirloom
