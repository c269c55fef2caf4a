// Conversions of A to bf16 rows, shared by the bf16 GEMM's files (core/gemm_bf16.cpp, core/gemm_bf16_pack.cpp).
// Internal to core/: callers outside use to_bf16_rows (core/gemm_bf16.h).
#pragma once
#include <cstdint>

namespace heirloom {

// A packed B's columns are padded to whole blocks of this many (gemm_bf16.cpp's AMX tasks are 32 x 32).
constexpr int kBf16Block = 32;

// Rows [r0, r1) of A to bf16 at out + r·ldo, zero-padded to Kp columns; rows ≥ M are all zeros.
void convert_rows(const float* A, int lda, int M, int K, int Kp, int ldo, int r0, int r1, uint16_t* out);
// Rows [r0, r1) of Aᵀ, A stored [K, M] (row stride lda), the same way.
void convert_columns(const float* A, int lda, int M, int K, int Kp, int ldo, int r0, int r1, uint16_t* out);
// The same from A in bf16 (as to_bf16 rounds it).
void convert_columns(const uint16_t* A, int lda, int M, int K, int Kp, int ldo, int r0, int r1, uint16_t* out);
// Rows [r0, r1) of Aᵀ, A stored [K, M] (row stride lda), as k-pairs (ALayout::pairs in core/gemm_bf16_dot.h):
// word r of pair j at out + j·ldw, for the Kp / 2 pairs; from A in fp32 or in bf16.
void convert_pairs(const float* A, int lda, int M, int K, int Kp, int ldw, int r0, int r1, uint32_t* out);
void convert_pairs(const uint16_t* A, int lda, int M, int K, int Kp, int ldw, int r0, int r1, uint32_t* out);

}  // namespace heirloom
