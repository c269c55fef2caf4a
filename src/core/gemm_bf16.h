// bf16 matrix multiply for frozen weights: the weight is converted and packed once, the activations are
// rounded to bf16 per call, and products accumulate in fp32. On Intel AMX tiles where the CPU has them (and the
// kernel grants them), else on AVX512-BF16 dot products (AMD Zen 4, core/gemm_bf16_dot.h).
// Chosen at run time: bf16_gemm_available() is false on CPUs without AVX512-BF16, and callers then keep the
// fp32 products. Used for frozen weights, and for trained ones repacked as the optimizer updates them
// (BaseTrainer's mixed precision: its master weights stay fp32).
#pragma once
#include "core/rank_update.h"
#include "heirloom/cache_line.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace heirloom {

// B[K, N] in bf16, as AMX tiles of 32 (K) × 16 (N), zero-padded to Kp = ⌈K/32⌉·32 and Np = ⌈N/32⌉·32.
struct PackedB {
  int K = 0, N = 0, Kp = 0, Np = 0;
  std::vector<uint16_t, CacheLineAllocator<uint16_t>> data;  // tile (n16, k32) at ((n16 · Kp/32) + k32) · 512; pairs of k interleaved
};

// B[k][n] = trans ? src[n·ld + k] : src[k·ld + n], for k < K, n < N.
PackedB pack_b_bf16(const float* src, int ld, bool trans, int K, int N);
// The same, in place over p (already sized for this K, N): for weights that change every step.
void pack_b_bf16_into(PackedB& p, const float* src, int ld, bool trans);
// Only what rows [s0, s1) of src make (src's rows are B's columns when trans, else B's rows), on the calling
// thread: for a weight packed piece by piece right after each piece changes. s0 is a multiple of 16 (trans)
// or 32; so is s1, or it is the last row, and then the pack's padding is written too.
void pack_b_bf16_rows(PackedB& p, const float* src, int ld, bool trans, int s0, int s1);
// The same for B[K, N] of any shape, reusing p's buffer (grown, never shrunk): for operands packed per call.
void pack_b_bf16_into(PackedB& p, const float* src, int ld, bool trans, int K, int N);

// p sized for B[K, N] (its buffer grown, never shrunk), nothing packed: for a B packed block by block.
void size_b_bf16(PackedB& p, int K, int N);
// B's rows [k0, k0 + 32) (k0 a multiple of 32), columns [0, n) and zeros to the next multiple of 32 (within
// p.Np), from `rows` rows of src (row stride ld), rows past them zero; no other part of p is written. From
// fp32, or from bf16 (as to_bf16_rows makes it).
void pack_b_bf16_block(PackedB& p, const float* src, int ld, int k0, int rows, int n);
void pack_b_bf16_block(PackedB& p, const uint16_t* src, int ld, int k0, int rows, int n);

// C[M, N] (row stride ldc) = (accumulate ? C : 0) + bf16(A)[M, K] · B, A fp32 with row stride lda; then, with
// `rank`, + that low-rank update in fp32 (core/rank_update.h: inside the product where its kernel can).
// Requires bf16_gemm_available().
void gemm_bf16(int M, const float* A, int lda, const PackedB& B, float* C, int ldc, bool accumulate,
               const RankUpdate* rank = nullptr);

// C[M, N] (+)= bf16(A)ᵀ · bf16(B) with both operands fp32 and converted per call: A stored [K, M] (row stride
// lda), B stored [K, N] (row stride ldb). For weight gradients (doutᵀ · inp). Requires bf16_gemm_available().
void gemm_bf16_tn(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                  bool accumulate);
// The same for several A (each [K, M], row stride lda) against one B, packed once: C_i (+)= bf16(A_i)ᵀ · bf16(B)
// (the experts' gate and up gradients, both against the expert's input rows).
struct BfProduct {
  const float* A;
  float* C;
};
void gemm_bf16_tn(int M, int N, int K, const BfProduct* products, int count, int lda, const float* B, int ldb, int ldc,
                  bool accumulate);
// The same with A already in bf16 (as ops/vec_math.h's to_bf16 rounds it): the same C as on A in fp32.
void gemm_bf16_tn(int M, int N, int K, const uint16_t* A, int lda, const float* B, int ldb, float* C, int ldc,
                  bool accumulate);

// Rows gathered from a larger matrix and converted once, for several products on them (an expert's input rows,
// for its gate and up products): row i of out = bf16(x[rows[i]]), B.K values zero-padded to B.Kp, at the stride
// bf16_rows_stride gives for M rows against B; gemm_bf16_on_rows multiplies them. The same C as gemm_bf16 on the
// gathered rows in fp32.
int64_t bf16_rows_stride(int M, const PackedB& B);
void gather_bf16_rows(const float* x, int64_t ldx, const int32_t* rows, int M, const PackedB& B, uint16_t* out, int64_t ld);
void gemm_bf16_on_rows(const uint16_t* rows, int64_t ld, int M, const PackedB& B, float* C, int ldc, bool accumulate);
// The same C written over in bf16 (row stride ldc values), each value that product's fp32 one rounded to nearest
// even (ops/vec_math.h: to_bf16): an output read only as bf16 rounds or through a sigmoid (the experts' gate
// and up projections) goes to memory and back at half the bytes.
void gemm_bf16_on_rows(const uint16_t* rows, int64_t ld, int M, const PackedB& B, uint16_t* C, int ldc);

// Aᵀ as gemm_bf16_tn's dot products take it, filled a row of A at a time as the rows are made (the trained
// head's dlogits, made in bf16 row by row): for A [K, M], ⌈K/32⌉·16 rows of M 32-bit words (stride ld), word m
// of row j = A[2j][m] | A[2j + 1][m] << 16, the rows past K zeros. Where tn_takes_pairs() (no AMX tiles).
struct PairRows {
  int K = 0, M = 0;
  int64_t ld = 0;
  std::vector<uint32_t, CacheLineAllocator<uint32_t>> words;
};
bool tn_takes_pairs();
// p sized for A [K, M] (its buffer grown, never shrunk), the padding past row K zeroed; rows < K not written.
void size_pair_rows(PairRows& p, int K, int M);
// Row k < K of A (M values in bf16) into p: the half of each word of pair k / 2 that it makes. Rows 2j and 2j + 1
// write different halves of the same words: any thread may write any row, one writer per row.
void put_pair_row(PairRows& p, int k, const uint16_t* row);
// C[M, N] (+)= Aᵀ · bf16(B) as gemm_bf16_tn, on A filled into pair rows (every row < K put), B stored [K, N];
// and for several A of one shape against one B, packed once (the experts' gate and up gradients).
void gemm_bf16_tn(const PairRows& A, int N, const float* B, int ldb, float* C, int ldc, bool accumulate);
struct PairProduct {
  const PairRows* A;
  float* C;
};
void gemm_bf16_tn(const PairProduct* products, int count, int N, const float* B, int ldb, int ldc, bool accumulate);

// A B kept packed from where its rows were made, for weight gradients on it later (a trainer's forward keeps the
// experts' input rows and h so): size_b_rows sizes p for B [K, N] (its buffer grown, never shrunk) and zeroes
// its padding, rows < K not written; put_b_row writes row k < K (N values in bf16). Rows 2j and 2j + 1 write
// different halves of the same words: any thread may write any row, one writer per row. The same pack as
// pack_b_bf16 on the rows in fp32, rounded alike.
void size_b_rows(PackedB& p, int K, int N);
void put_b_row(PackedB& p, int k, const uint16_t* row);
// Rows [k0, k0 + n) at once (row i at rows + i·ld): whole blocks of 32 rows as whole cache lines, around the
// caches (the pack is read by a later pass), and rows of a block another caller shares one at a time.
void put_b_rows(PackedB& p, int k0, int n, const uint16_t* rows, int64_t ld);
// The weight gradients above on such a B: C_i (+)= A_iᵀ · B, A_i as pair rows (where tn_takes_pairs()) or in
// fp32 ([B.K, M], row stride lda).
void gemm_bf16_tn(const PairProduct* products, int count, const PackedB& B, int ldc, bool accumulate);
void gemm_bf16_tn(int M, const BfProduct* products, int count, int lda, const PackedB& B, int ldc, bool accumulate);

// C[M, N] (+)= A · B where row r of A (B.K values, already in bf16) is written by row(r, values) when the
// product needs it, in parallel: an A that exists only to be multiplied is never stored, nor made in fp32 first
// (the cross-entropy's dlogits, 32 MB per step; the experts' SwiGLU rows). Rounded as gemm_bf16 rounds its A
// (ops/vec_math.h: to_bf16), the rows give the same C as gemm_bf16 on the rows in fp32, on the same kernels.
void gemm_bf16_produced(int M, const std::function<void(int, uint16_t*)>& row, const PackedB& B, float* C, int ldc,
                        bool accumulate);

// Small products inside a caller's parallel loop (attention's per-head blocks), on the calling thread only,
// with operands the caller prepares once and reuses: B packed (pack_b_bf16_into with a shape), A as bf16
// rows (to_bf16_rows). Requires bf16_gemm_available() and a live Bf16Tiles on the calling thread.
class Bf16Tiles {  // this thread's AMX tiles (where it has them) configured for the small products, while it lives
 public:
  Bf16Tiles();
  ~Bf16Tiles();
  Bf16Tiles(const Bf16Tiles&) = delete;
  Bf16Tiles& operator=(const Bf16Tiles&) = delete;
};
// bf16(A)[M, K] as rows of ldo values (ldo ≥ ⌈K/32⌉·32, a multiple of 32), zero beyond K, and ⌈M/32⌉·32 rows
// with those beyond M zero. A[m][k] = trans ? A[k·lda + m] : A[m·lda + k].
void to_bf16_rows(const float* A, int lda, bool trans, int M, int K, uint16_t* out, int ldo);
// C[M, N] (+)= a[M, K] · B[0:K, 0:N] for a from to_bf16_rows (row stride lda), K ≤ B.K, N ≤ B.N. Row r of C
// depends only on row r of a: the same rows give the same results however many are multiplied.
void gemm_bf16_small(int M, int N, int K, const uint16_t* a, int lda, const PackedB& B, float* C, int ldc,
                     bool accumulate);
// The same with a in pairs of k (core/gemm_bf16_dot.h ALayout::pairs): word j·ja + m holds bf16(A[m][2j]) |
// bf16(A[m][2j + 1]) << 16, zero past K: what two rows of Aᵀ make side by side, with no transpose. On dot
// products only (not AMX tiles).
void gemm_bf16_small_pairs(int M, int N, int K, const uint32_t* a, int64_t ja, const PackedB& B, float* C, int ldc,
                           bool accumulate);

// True when this CPU has AVX512-BF16 (and AVX-512F, not switched off by HEIRLOOM_NO_AVX512).
bool bf16_gemm_available();
// True when it also has AMX-BF16 and the kernel granted this process the tile state (HEIRLOOM_NO_AMX=1 says
// no, to run the dot-product path on an AMX CPU).
bool bf16_amx_available();
const char* bf16_gemm_kind();  // "AMX" or "AVX512-BF16": what gemm_bf16 runs on here

// The stride in words of rows of `words` 32-bit words (A's rows in pairs of k, or k-pairs of M rows) in an A:
// a whole and odd number of cache lines, so that rows read side by side, or walked, do not fall in a few L1 sets.
int pair_stride(int words);

// Rows per task of gemm_bf16 here (32 on AMX tiles; four micro-tiles of dot products, 60 or 56): a caller
// splitting a product's rows between threads splits them in whole tasks.
int bf16_task_rows();

}  // namespace heirloom
