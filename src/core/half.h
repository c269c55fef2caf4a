// Storage number formats: IEEE half (F16), bfloat16 (BF16) and llama.cpp's Q8_0 blocks, plus the
// TensorType tag that names them as GGUF does.
// Invariants: conversions are bit-exact with ggml's reference code (round to nearest even; NaN stays
// NaN; F16 overflow goes to inf; subnormals are kept, not flushed). A Q8_0 block is 32 values stored
// as an f16 scale d followed by 32 int8 q, value = d * q (34 bytes).
// Not here: compute in these formats. The engine computes in f32; these are for loading and saving.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace heirloom {

// Tensor element types, numbered as in GGUF/ggml. Only the ones the engine reads and writes.
enum class TensorType : int32_t { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 };

constexpr int64_t kQ8_0Block = 32;        // elements per Q8_0 block
constexpr size_t kQ8_0BlockBytes = 34;    // 2-byte f16 scale + 32 int8

// Short name ("F32", "Q8_0", ...) or nullptr for an id we do not support.
const char* type_name(TensorType t);
// True for the four types above.
bool is_supported_type(int32_t id);
// Bytes for a row of n elements; for Q8_0, n must be a multiple of 32 (the caller validates).
uint64_t row_bytes(TensorType t, int64_t n);

inline uint16_t f32_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00u | static_cast<uint16_t>((ax >> 13) & 0x3ffu);  // quiet NaN
  if (ax >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds (to even) past 65504: inf
  if (ax >= 0x38800000u) {                        // normal half (>= 2^-14)
    uint32_t h = ((ax >> 23) - 112u) << 10 | ((ax >> 13) & 0x3ffu);
    const uint32_t rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is correct
    return sign | static_cast<uint16_t>(h);
  }
  if (ax <= 0x33000000u) return sign;  // <= 2^-25: half-way to the smallest subnormal ties to 0
  // Subnormal half: units of 2^-24. The float is m * 2^(e-150) with the implicit bit restored.
  const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14..24
  uint32_t h = m >> shift;
  const uint32_t rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (h & 1u))) ++h;
  return sign | static_cast<uint16_t>(h);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
    return std::bit_cast<float>(std::bit_cast<uint32_t>(v) | sign);
  }
  if (e == 31) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
}

// As ggml: NaN is kept quiet, everything else rounds to nearest even (overflow to inf is correct).
inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// Converts n stored elements of type t to f32. For Q8_0, n must be a multiple of 32.
void dequantize_row(TensorType t, const uint8_t* src, float* dst, int64_t n);
// llama.cpp's reference Q8_0: per block d = amax/127 (stored as f16), q = round(x / d) half away from
// zero. n must be a multiple of 32; dst receives n/32 * 34 bytes.
void quantize_row_q8_0(const float* src, uint8_t* dst, int64_t n);
// f32 -> stored bytes for F32/F16/BF16/Q8_0 (the writer's side of dequantize_row).
void quantize_row(TensorType t, const float* src, uint8_t* dst, int64_t n);

}  // namespace heirloom
