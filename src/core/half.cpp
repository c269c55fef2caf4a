// Row conversions between f32 and the stored tensor types (see half.h for the formats).
// Q8_0 follows llama.cpp's quantize_row_q8_0_ref to the bit, so files we write quantise as llama.cpp's.
// Shapes are validated by callers (the GGUF reader checks ne[0] % 32 for Q8_0); here they are asserts.
#include "core/half.h"

#include <cassert>
#include <cmath>

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace heirloom {

const char* type_name(TensorType t) {
  switch (t) {
    case TensorType::F32: return "F32";
    case TensorType::F16: return "F16";
    case TensorType::Q8_0: return "Q8_0";
    case TensorType::BF16: return "BF16";
  }
  return nullptr;
}

bool is_supported_type(int32_t id) { return id == 0 || id == 1 || id == 8 || id == 30; }

uint64_t row_bytes(TensorType t, int64_t n) {
  const uint64_t un = static_cast<uint64_t>(n);
  switch (t) {
    case TensorType::F32: return un * 4;
    case TensorType::F16:
    case TensorType::BF16: return un * 2;
    case TensorType::Q8_0: return un / kQ8_0Block * kQ8_0BlockBytes;
  }
  return 0;
}

static void f16_row_to_f32(const uint8_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(__F16C__)
  // The hardware conversion is exact, so it agrees with f16_to_f32 bit for bit.
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = f16_to_f32(h);
  }
}

void dequantize_row(TensorType t, const uint8_t* src, float* dst, int64_t n) {
  switch (t) {
    case TensorType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case TensorType::F16:
      f16_row_to_f32(src, dst, n);
      return;
    case TensorType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case TensorType::Q8_0:
      assert(n % kQ8_0Block == 0);
      for (int64_t b = 0; b < n / kQ8_0Block; ++b) {
        const uint8_t* blk = src + b * kQ8_0BlockBytes;
        uint16_t dh;
        std::memcpy(&dh, blk, 2);
        const float d = f16_to_f32(dh);
        const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
        float* y = dst + b * kQ8_0Block;
        for (int j = 0; j < kQ8_0Block; ++j) y[j] = d * static_cast<float>(q[j]);
      }
      return;
  }
  assert(false && "dequantize_row: unsupported type");
}

void quantize_row_q8_0(const float* src, uint8_t* dst, int64_t n) {
  assert(n % kQ8_0Block == 0);
  for (int64_t b = 0; b < n / kQ8_0Block; ++b) {
    const float* x = src + b * kQ8_0Block;
    float amax = 0.0f;
    for (int j = 0; j < kQ8_0Block; ++j) {
      const float v = std::fabs(x[j]);
      amax = amax > v ? amax : v;  // ggml's MAX, NaN handling included
    }
    // As llama.cpp: the inverse uses the f32 scale, not the f16-rounded one that is stored.
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t* blk = dst + b * kQ8_0BlockBytes;
    const uint16_t dh = f32_to_f16(d);
    std::memcpy(blk, &dh, 2);
    for (int j = 0; j < kQ8_0Block; ++j) {
      blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
    }
  }
}

void quantize_row(TensorType t, const float* src, uint8_t* dst, int64_t n) {
  switch (t) {
    case TensorType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case TensorType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case TensorType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case TensorType::Q8_0:
      quantize_row_q8_0(src, dst, n);
      return;
  }
  assert(false && "quantize_row: unsupported type");
}

}  // namespace heirloom
