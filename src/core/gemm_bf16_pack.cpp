// Packing and conversion to bf16 for the bf16 GEMM (core/gemm_bf16.h): B into the tiles AMX and vdpbf16ps
// read, A (or Aᵀ) into zero-padded bf16 rows. Functions carry their own target attributes, as in gemm_bf16.cpp.
#include "core/gemm_bf16.h"
#include "core/gemm_bf16_pack.h"
#include "core/gemm_tile.h"
#include "core/parallel.h"
#include "core/transpose16.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace heirloom {

namespace {
int round_up(int x, int m) { return (x + m - 1) / m * m; }

// 16 words bf16(lo[c]) | bf16(hi[c]) << 16: one k-pair for 16 columns, as vdpbf16ps and AMX read them.
// (maskz forms: gcc 12's plain ones warn about their own undefined pass-through operand)
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
__m512i pair_words(__m512 lo, __m512 hi) {
  return _mm512_or_si512(_mm512_maskz_cvtepu16_epi32(0xffff, (__m256i)_mm512_cvtneps_pbh(lo)),
                         _mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, (__m256i)_mm512_cvtneps_pbh(hi)), 16));
}

// The lines kAheadBytes further along rows 2j and 2j + 1 of a row-major source, fetched into L1:
// convert_columns reads 32 rows side by side, a 16-value column block at a time, more streams than the
// hardware prefetchers follow (the weight gradients' A; numbers in bench/RESULTS.md). pack_rows_of_k reads its
// B alike, but fetching ahead there measured no different.
constexpr int kAheadBytes = 512;
template <class T>
inline void fetch_rows_ahead(const T* src, int64_t ld, int j, int col) {
  constexpr int ahead = kAheadBytes / (int)sizeof(T);
  _mm_prefetch((const char*)(src + (int64_t)(2 * j) * ld + col + ahead), _MM_HINT_T0);
  _mm_prefetch((const char*)(src + (int64_t)(2 * j + 1) * ld + col + ahead), _MM_HINT_T0);
}

// Every 32-bit word of the packed buffer is written (padding as zeros), so packing in place over an
// earlier pack of the same shape leaves exactly what a fresh pack would. Seen as 32-bit words, column
// block n16 holds Kp/2 rows of 16 (k-pair, column) words: word (j, c) = bf16(B[2j][n]) | bf16(B[2j+1][n]) << 16.
// One line of packed words: Stream = a non-temporal store (a weight repacked every step is read next by the
// next step's forward, long after it has left the cache: no point fetching the line first, or keeping it).
template <bool Stream>
__attribute__((target("avx512f"))) void store_words(uint32_t* dst, __m512i v) {
  if constexpr (Stream) _mm512_stream_si512(reinterpret_cast<__m512i*>(dst), v);
  else _mm512_storeu_si512(dst, v);
}

template <bool Stream = false>
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
void pack_rows_of_k(uint32_t* dst, const float* src, int ld, int K, int N, int Kp, int Np, int j0, int j1) {
  // B[k][n] = src[k·ld + n]: two rows of src make one row of words.
  // Column block by column block: each writes j1 - j0 consecutive rows of words (whole lines, in order).
  const int J = Kp / 2;
  for (int n0 = 0; n0 < Np; n0 += 16)
    for (int j = j0; j < j1; ++j) {
      const int w = N - n0 < 16 ? (N - n0 > 0 ? N - n0 : 0) : 16;
      const __mmask16 m = (__mmask16)((1u << w) - 1);
      const __m512 lo = 2 * j < K ? _mm512_maskz_loadu_ps(m, src + (int64_t)(2 * j) * ld + n0) : _mm512_setzero_ps();
      const __m512 hi = 2 * j + 1 < K ? _mm512_maskz_loadu_ps(m, src + (int64_t)(2 * j + 1) * ld + n0) : _mm512_setzero_ps();
      store_words<Stream>(dst + ((int64_t)(n0 / 16) * J + j) * 16, pair_words(lo, hi));
    }
}

template <bool Stream = false>
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
void pack_rows_of_n(uint32_t* dst, const float* src, int ld, int K, int Kp, int n_from, int N) {
  // B[k][n] = src[n·ld + k], for a column block [n_from, n_from + 16): row n of src gives 16 k-pairs of
  // column n at a time; a transpose turns 16 such rows into 16 rows of words, each stored whole.
  const int J = Kp / 2;
  uint32_t* block = dst + (int64_t)(n_from / 16) * J * 16;
  for (int k = 0; k < Kp; k += 32) {
    __m512i w[16];
    const int w0 = K - k < 16 ? (K - k > 0 ? K - k : 0) : 16, w1 = K - k - 16 < 0 ? 0 : (K - k - 16 < 16 ? K - k - 16 : 16);
    for (int i = 0; i < 16; ++i) {
      const int n = n_from + i;
      w[i] = _mm512_setzero_si512();
      if (n < N && w0 > 0) {
        const float* row = src + (int64_t)n * ld;
        const __m512 a = _mm512_maskz_loadu_ps((__mmask16)((1u << w0) - 1), row + k);
        const __m512 b = w1 ? _mm512_maskz_loadu_ps((__mmask16)((1u << w1) - 1), row + k + 16) : _mm512_setzero_ps();
        w[i] = (__m512i)_mm512_cvtne2ps_pbh(b, a);  // k, k+1, … k+31 in order: 16 pairs
      }
    }
    transpose16(w);
    for (int i = 0; i < 16; ++i) store_words<Stream>(block + (int64_t)(k / 2 + i) * 16, w[i]);
  }
}

}  // namespace

// Rows [r0, r1) of A to bf16 at out + r·ldo, zero-padded to Kp columns; rows ≥ M are all zeros.
__attribute__((target("avx512f,avx512bf16,avx512vl")))
void convert_rows(const float* A, int lda, int M, int K, int Kp, int ldo, int r0, int r1, uint16_t* out) {
  for (int r = r0; r < r1; ++r) {
    uint16_t* o = out + (int64_t)r * ldo;
    if (r >= M) {
      std::memset(o, 0, sizeof(uint16_t) * Kp);
      continue;
    }
    const float* a = A + (int64_t)r * lda;
    int k = 0;
    for (; k + 16 <= K; k += 16)
      _mm256_storeu_si256((__m256i*)(o + k), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(a + k)));
    if (k < K) {
      const __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
      _mm256_mask_storeu_epi16(o + k, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, a + k)));
      k = K;
    }
    for (; k < Kp; ++k) o[k] = 0;
  }
}

// 16 words bf16(lo[c]) | bf16(hi[c]) << 16 from 16 columns (mask m) of two rows of A, in fp32 or already in bf16;
// a null row is a row of zeros (past K).
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
__m512i column_words(const float* lo, const float* hi, __mmask16 m) {
  return pair_words(lo ? _mm512_maskz_loadu_ps(m, lo) : _mm512_setzero_ps(),
                    hi ? _mm512_maskz_loadu_ps(m, hi) : _mm512_setzero_ps());
}
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
__m512i column_words(const uint16_t* lo, const uint16_t* hi, __mmask16 m) {
  const __m256i a = lo ? _mm256_maskz_loadu_epi16(m, lo) : _mm256_setzero_si256();
  const __m256i b = hi ? _mm256_maskz_loadu_epi16(m, hi) : _mm256_setzero_si256();
  return _mm512_or_si512(_mm512_maskz_cvtepu16_epi32(0xffff, a),
                         _mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, b), 16));
}

// Rows [r0, r1) of Aᵀ to bf16, where A is stored [K, M] with row stride lda: two rows of A give 16 words (one
// k-pair of 16 output rows); a transpose of 16 such makes 16 k-pairs of each output row, stored whole. Rows ≥ M
// and k ≥ K are zeros; no row outside [r0, r1) is written. Row r at out + r·ldo.
template <class T>
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
void convert_columns_of(const T* A, int lda, int M, int K, int Kp, int ldo, int r0, int r1, uint16_t* out) {
  uint32_t* o = reinterpret_cast<uint32_t*>(out);
  const int J = Kp / 2, ldw = ldo / 2;
  for (int j0 = 0; j0 < J; j0 += 16) {
    const int jn = J - j0 < 16 ? J - j0 : 16;
    for (int m0 = r0; m0 < r1; m0 += 16) {
      const int w = M - m0 < 16 ? (M - m0 > 0 ? M - m0 : 0) : 16;
      const __mmask16 m = (__mmask16)((1u << w) - 1);
      __m512i v[16];
      for (int i = 0; i < 16; ++i) {
        const int j = j0 + i;
        if (m0 + kAheadBytes / (int)sizeof(T) < M && i < jn && 2 * j + 1 < K) fetch_rows_ahead(A, lda, j, m0);
        const T* lo = i < jn && 2 * j < K ? A + (int64_t)(2 * j) * lda + m0 : nullptr;
        const T* hi = i < jn && 2 * j + 1 < K ? A + (int64_t)(2 * j + 1) * lda + m0 : nullptr;
        v[i] = column_words(lo, hi, m);
      }
      transpose16(v);
      const __mmask16 keep = (__mmask16)((1u << jn) - 1);
      for (int i = 0; i < 16 && m0 + i < r1; ++i) _mm512_mask_storeu_epi32(o + (int64_t)(m0 + i) * ldw + j0, keep, v[i]);
    }
  }
}

// Rows [r0, r1) of Aᵀ as k-pairs (ALayout::pairs, core/gemm_bf16_dot.h), A stored [K, M] with row stride lda:
// rows 2j and 2j + 1 of A, side by side, make words [r0, r1) of pair j (out + j·ldw words), as B's pack makes
// its words; nothing is transposed. Pairs j < Kp / 2 are written, zeros for k ≥ K and for rows ≥ M.
// A thread's rows of a pair are a short run of each of two rows of A (360 values of wq·k·v's 768), too short
// for the hardware prefetcher to get going before the next pair's: the pair this many ahead is fetched.
constexpr int kPairsAhead = 4;
template <class T>
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
void convert_pairs_of(const T* A, int lda, int M, int K, int Kp, int ldw, int r0, int r1, uint32_t* out) {
  for (int j = 0; j < Kp / 2; ++j) {
    const T* lo = 2 * j < K ? A + (int64_t)(2 * j) * lda : nullptr;
    const T* hi = 2 * j + 1 < K ? A + (int64_t)(2 * j + 1) * lda : nullptr;
    uint32_t* o = out + (int64_t)j * ldw;
    const bool ahead = 2 * (j + kPairsAhead) + 1 < K;
    for (int m0 = r0; m0 < r1; m0 += 16) {
      if (ahead) fetch_rows_ahead(A, lda, j + kPairsAhead, m0 - kAheadBytes / (int)sizeof(T));
      const __mmask16 m = first_columns(M - m0);
      _mm512_mask_storeu_epi32(o + m0, first_columns(r1 - m0),
                               column_words(lo ? lo + m0 : nullptr, hi ? hi + m0 : nullptr, m));
    }
  }
}

void convert_pairs(const float* A, int lda, int M, int K, int Kp, int ldw, int r0, int r1, uint32_t* out) {
  convert_pairs_of(A, lda, M, K, Kp, ldw, r0, r1, out);
}
void convert_pairs(const uint16_t* A, int lda, int M, int K, int Kp, int ldw, int r0, int r1, uint32_t* out) {
  convert_pairs_of(A, lda, M, K, Kp, ldw, r0, r1, out);
}

namespace {
// Row k's values [m, m + n) (n ≤ 16) into the k % 2 halves of 16 words at o: the words one k-pair makes.
__attribute__((target("avx512f,avx512vl,avx512bw")))
void put_half_words(uint16_t* o, const uint16_t* values, int n, bool high) {
  __m512i w = _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_maskz_loadu_epi16(first_columns(n), values));
  if (high) w = _mm512_maskz_slli_epi32(0xffff, w, 16);
  const __mmask32 halves = high ? 0xAAAAAAAAu : 0x55555555u;
  _mm512_mask_storeu_epi16(o, n == 16 ? halves : halves & (__mmask32)((1ull << (2 * n)) - 1), w);
}
}  // namespace

void put_pair_row(PairRows& p, int k, const uint16_t* row) {
  uint16_t* o = reinterpret_cast<uint16_t*>(p.words.data() + (int64_t)(k / 2) * p.ld);
  for (int m = 0; m < p.M; m += 16) put_half_words(o + 2 * m, row + m, std::min(16, p.M - m), k % 2 == 1);
}

void size_b_rows(PackedB& p, int K, int N) {
  size_b_bf16(p, K, N);
  // Zeros where no row writes: the pairs from K / 2 on (an odd K's last pair is half made), and whole blocks
  // of 16 columns that reach past N.
  uint32_t* w = reinterpret_cast<uint32_t*>(p.data.data());
  const int64_t J = p.Kp / 2, made = K / 2;
  for (int64_t n16 = 0; n16 < p.Np / 16; ++n16)
    std::fill(w + (n16 * J + ((n16 + 1) * 16 > N ? 0 : made)) * 16, w + (n16 + 1) * J * 16, 0u);
}

void put_b_row(PackedB& p, int k, const uint16_t* row) {
  uint16_t* o = p.data.data() + (int64_t)(k / 2) * 32;
  const int64_t block = (int64_t)p.Kp * 16;  // u16 per 16-column block
  for (int n0 = 0; n0 < p.N; n0 += 16) put_half_words(o + n0 / 16 * block, row + n0, std::min(16, p.N - n0), k % 2 == 1);
}

void convert_columns(const float* A, int lda, int M, int K, int Kp, int ldo, int r0, int r1, uint16_t* out) {
  convert_columns_of(A, lda, M, K, Kp, ldo, r0, r1, out);
}
void convert_columns(const uint16_t* A, int lda, int M, int K, int Kp, int ldo, int r0, int r1, uint16_t* out) {
  convert_columns_of(A, lda, M, K, Kp, ldo, r0, r1, out);
}

void pack_b_bf16_into(PackedB& p, const float* src, int ld, bool trans) {
  uint32_t* dst = reinterpret_cast<uint32_t*>(p.data.data());
  const int K = p.K, N = p.N, Kp = p.Kp, Np = p.Np;
  const int64_t work = (int64_t)Kp * Np;
  const bool worth = work >= (1 << 16);
  if (trans)
    parallel_for(Np / 16, worth, [&](int64_t n16) { pack_rows_of_n(dst, src, ld, K, Kp, (int)n16 * 16, N); });
  else
    parallel_for(Kp / 32, worth, [&](int64_t j16) {
      pack_rows_of_k(dst, src, ld, K, N, Kp, Np, (int)j16 * 16, (int)j16 * 16 + 16);
    });
}

void pack_b_bf16_rows(PackedB& p, const float* src, int ld, bool trans, int s0, int s1) {
  uint32_t* dst = reinterpret_cast<uint32_t*>(p.data.data());
  const int rows = trans ? p.N : p.K;  // src's rows: B's columns when transposed, else B's rows
  const int step = trans ? 16 : 32;    // src rows per packed block
  if (s0 % step != 0 || (s1 % step != 0 && s1 != rows) || s0 < 0 || s1 > rows)
    throw Error("internal: packing rows [" + std::to_string(s0) + ", " + std::to_string(s1) + ") of " +
                std::to_string(rows) + " off the pack's " + std::to_string(step) + "-row blocks");
  const int end = s1 == rows ? (trans ? p.Np : p.Kp) : s1;  // the last rows also write the padding blocks
  if (trans) {
    for (int n = s0; n < end; n += 16) pack_rows_of_n<true>(dst, src, ld, p.K, p.Kp, n, p.N);
  } else {
    for (int k = s0; k < end; k += 32) pack_rows_of_k<true>(dst, src, ld, p.K, p.N, p.Kp, p.Np, k / 2, k / 2 + 16);
  }
  _mm_sfence();  // the streamed lines are visible before anything after this
}

void size_b_bf16(PackedB& p, int K, int N) {
  p.K = K;
  p.N = N;
  p.Kp = round_up(K, 32);
  p.Np = round_up(N, kBf16Block);
  if (p.data.size() < (size_t)p.Kp * p.Np) p.data.resize((size_t)p.Kp * p.Np);
}

void pack_b_bf16_into(PackedB& p, const float* src, int ld, bool trans, int K, int N) {
  size_b_bf16(p, K, N);
  pack_b_bf16_into(p, src, ld, trans);
}

namespace {
// Rows 2j and 2j + 1 of a block (j < 16) as 16 words from column n0 on (mask m): fp32 converted, bf16 as it is.
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
__m512i block_pair(const float* src, int64_t ld, int j, int rows, int n0, __mmask16 m) {
  const __m512 lo = 2 * j < rows ? _mm512_maskz_loadu_ps(m, src + (int64_t)(2 * j) * ld + n0) : _mm512_setzero_ps();
  const __m512 hi = 2 * j + 1 < rows ? _mm512_maskz_loadu_ps(m, src + (int64_t)(2 * j + 1) * ld + n0) : _mm512_setzero_ps();
  return pair_words(lo, hi);
}
__attribute__((target("avx512f,avx512vl,avx512bw")))
__m512i block_pair(const uint16_t* src, int64_t ld, int j, int rows, int n0, __mmask16 m) {
  auto row = [&](int r) {
    return r < rows ? _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_maskz_loadu_epi16(m, src + (int64_t)r * ld + n0))
                    : _mm512_setzero_si512();
  };
  return _mm512_or_si512(row(2 * j), _mm512_maskz_slli_epi32(0xffff, row(2 * j + 1), 16));
}
// With `stream`, the lines go around the caches (a pack kept for a later pass; the caller fences).
template <class T>
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
void pack_block(PackedB& p, const T* src, int64_t ld, int k0, int rows, int n, bool stream = false) {
  uint32_t* dst = reinterpret_cast<uint32_t*>(p.data.data());
  const int J = p.Kp / 2, end = std::min(round_up(n, 32), p.Np);
  for (int n0 = 0; n0 < end; n0 += 16) {
    const __mmask16 m = (__mmask16)((1u << std::clamp(n - n0, 0, 16)) - 1);
    for (int j = 0; j < 16; ++j) {
      uint32_t* o = dst + ((int64_t)(n0 / 16) * J + k0 / 2 + j) * 16;
      if (stream) store_words<true>(o, block_pair(src, ld, j, rows, n0, m));
      else store_words<false>(o, block_pair(src, ld, j, rows, n0, m));
    }
  }
}
}  // namespace

void put_b_rows(PackedB& p, int k0, int n, const uint16_t* rows, int64_t ld) {
  const int k1 = k0 + n;
  for (int k = k0; k < k1;) {
    const int g = k / 32 * 32, g_end = std::min(g + 32, p.K);
    if (k == g && g_end <= k1) {  // a whole block of rows, no other caller's among them: whole lines
      pack_block(p, rows + (int64_t)(k - k0) * ld, ld, g, g_end - g, p.N, true);
      k = g_end;
    } else {
      for (const int e = std::min(g_end, k1); k < e; ++k) put_b_row(p, k, rows + (int64_t)(k - k0) * ld);
    }
  }
  _mm_sfence();
}

void pack_b_bf16_block(PackedB& p, const float* src, int ld, int k0, int rows, int n) {
  pack_block(p, src, ld, k0, rows, n);
}
void pack_b_bf16_block(PackedB& p, const uint16_t* src, int ld, int k0, int rows, int n) {
  pack_block(p, src, ld, k0, rows, n);
}

PackedB pack_b_bf16(const float* src, int ld, bool trans, int K, int N) {
  PackedB p;
  pack_b_bf16_into(p, src, ld, trans, K, N);
  return p;
}

void to_bf16_rows(const float* A, int lda, bool trans, int M, int K, uint16_t* out, int ldo) {
  const int rows = round_up(M, kBf16Block);
  if (trans) return convert_columns(A, lda, M, K, ldo, ldo, 0, rows, out);
  convert_rows(A, lda, M, K, ldo, ldo, 0, rows, out);
}

}  // namespace heirloom
