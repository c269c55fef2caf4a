// bf16 GEMM: packing, conversion and the few-row path on AVX512-BF16; the many-row products on AMX tiles here,
// or on dot products (core/gemm_bf16_dot.cpp) where the CPU has no AMX. AMX blocking: each task computes a
// 32 × 32 block of C in four 16 × 16 fp32 tiles (tmm0–3) from two A tiles (tmm4–5, 16 rows × 32 k) and two B tiles (tmm6–7, 32 k × 16 columns),
// the whole K in one pass. A is rounded to bf16 once per call into a zero-padded buffer; B was packed once.
// Functions carry their own target attributes so the binary still runs on CPUs without AMX.
#include "core/gemm_bf16.h"
#include "core/gemm.h"
#include "core/fetch_ahead.h"
#include "core/gemm_bf16_dot.h"
#include "core/gemm_f32.h"
#include "core/parallel.h"
#include "core/product_time.h"
#include "core/transpose16.h"
#include "heirloom/error.h"

#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

namespace heirloom {

namespace {

constexpr int kBlock = 32;      // rows and columns per task
constexpr int kTileElems = 512;  // bf16 values per packed B tile (16 rows × 32)
constexpr int64_t kRowSplitBytes = 1 << 20;  // a packed B up to this size is split by rows between threads

int round_up(int x, int m) { return (x + m - 1) / m * m; }

bool detect_avx512_bf16() {
  if (!f32_packed_available()) return false;  // no AVX-512F (or HEIRLOOM_NO_AVX512): no bf16 path either
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}

bool detect_amx() {
  // HEIRLOOM_NO_AMX=1 runs an AMX CPU as one with AVX512-BF16 only: the dot-product path such CPUs take.
  if (const char* off = std::getenv("HEIRLOOM_NO_AMX"); off && *off && std::string(off) != "0") return false;
  if (!detect_avx512_bf16()) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  if (!(amx_bf16 && amx_tile)) return false;
  // Linux hands out the 8 KB tile state only on request (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA).
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtileData = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtileData) == 0;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

const TileConfig& tile_config() {
  static const TileConfig cfg = [] {
    TileConfig t;
    for (int i = 0; i < 8; ++i) {  // every tile 16 rows × 64 bytes
      t.rows[i] = 16;
      t.colsb[i] = 64;
    }
    return t;
  }();
  return cfg;
}

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

// C tile (row0, col0) in or out of memory: full tiles go direct, edge tiles through a 16 × 16 buffer.
struct TileIo {
  float* C;
  int ldc, M, N;
  bool full(int row0, int col0) const { return row0 + 16 <= M && col0 + 16 <= N; }
  void to_buffer(int row0, int col0, float* buf) const {
    std::memset(buf, 0, sizeof(float) * 256);
    for (int i = 0; i < 16 && row0 + i < M; ++i)
      for (int j = 0; j < 16 && col0 + j < N; ++j) buf[i * 16 + j] = C[(int64_t)(row0 + i) * ldc + col0 + j];
  }
  void from_buffer(int row0, int col0, const float* buf) const {
    for (int i = 0; i < 16 && row0 + i < M; ++i)
      for (int j = 0; j < 16 && col0 + j < N; ++j) C[(int64_t)(row0 + i) * ldc + col0 + j] = buf[i * 16 + j];
  }
};

// Tile numbers are instruction immediates, so each of the four accumulators is spelled out.
#define HEIRLOOM_LOAD_C(t, i, j)                                               \
  do {                                                                         \
    const int r = m0 + 16 * (i), c = n0 + 16 * (j);                            \
    if (!accumulate) _tile_zero(t);                                            \
    else if (io.full(r, c)) _tile_loadd(t, io.C + (int64_t)r * io.ldc + c, io.ldc * 4); \
    else { io.to_buffer(r, c, buf); _tile_loadd(t, buf, 64); }                 \
  } while (0)
#define HEIRLOOM_STORE_C(t, i, j)                                              \
  do {                                                                         \
    const int r = m0 + 16 * (i), c = n0 + 16 * (j);                            \
    if (r < io.M && c < io.N) {                                                \
      if (io.full(r, c)) _tile_stored(t, io.C + (int64_t)r * io.ldc + c, io.ldc * 4); \
      else { _tile_stored(t, buf, 64); io.from_buffer(r, c, buf); }            \
    }                                                                          \
  } while (0)

// With `next`, the block also fetches `lines` cache lines from there into L2, spread over its k steps (a share
// of the next column block's weights, which often are no longer cached when the step comes back to them).
__attribute__((target("amx-tile,amx-bf16")))
void block(const uint16_t* a, int lda, int Kp, const uint16_t* b0, const uint16_t* b1, int m0, int n0,
           const TileIo& io, bool accumulate, const char* next = nullptr, int lines = 0) {
  alignas(64) float buf[256];
  HEIRLOOM_LOAD_C(0, 0, 0);
  HEIRLOOM_LOAD_C(1, 0, 1);
  HEIRLOOM_LOAD_C(2, 1, 0);
  HEIRLOOM_LOAD_C(3, 1, 1);
  const uint16_t* a0 = a + (int64_t)m0 * lda;
  const uint16_t* a1 = a0 + (int64_t)16 * lda;
  const int per_step = next ? (lines + Kp / 32 - 1) / (Kp / 32) : 0;
  for (int k = 0, kt = 0; k < Kp; k += 32, ++kt) {
    for (int l = kt * per_step; l < std::min(lines, (kt + 1) * per_step); ++l) _mm_prefetch(next + 64 * l, _MM_HINT_T1);
    _tile_loadd(4, a0 + k, lda * 2);
    _tile_loadd(5, a1 + k, lda * 2);
    _tile_loadd(6, b0 + (int64_t)kt * kTileElems, 64);
    _tile_loadd(7, b1 + (int64_t)kt * kTileElems, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  HEIRLOOM_STORE_C(0, 0, 0);
  HEIRLOOM_STORE_C(1, 0, 1);
  HEIRLOOM_STORE_C(2, 1, 0);
  HEIRLOOM_STORE_C(3, 1, 1);
}
#undef HEIRLOOM_LOAD_C
#undef HEIRLOOM_STORE_C

// A few rows (generation, M ≤ kGemvRows): AMX would pad them to 32, so instead each B row pair is read once
// with AVX512-BF16 dot products. The packed tiles are already in the pair-interleaved order vdpbf16ps wants:
// for column block n16, "row" j (k = 2j, 2j+1 of 16 columns) sits at data + (n16·Kp/2 + j)·32.
constexpr int kGemvRows = 4;

__attribute__((target("avx512f,avx512bf16,avx512vl")))
void gemv_blocks(const uint32_t* apairs, int M, int Kp, const PackedB& B, float* C, int ldc, bool accumulate, int nb0,
                 int nb1) {
  const int J = Kp / 2;
  for (int n16 = nb0; n16 < nb1; ++n16) {
    const uint16_t* b = B.data.data() + (int64_t)n16 * J * 32;
    const int col = n16 * 16, width = B.N - col < 16 ? B.N - col : 16;
    const __mmask16 mask = (__mmask16)((1u << width) - 1);
    // Rows in groups of kGemvRows over the same (L1-resident) column block: every row's arithmetic is the
    // same whatever the group, so under RowExact (core/gemm.h) any number of rows takes this path.
    for (int m0 = 0; m0 < M; m0 += kGemvRows) {
      const int mc = M - m0 < kGemvRows ? M - m0 : kGemvRows;
      __m512 acc[kGemvRows][2];
      for (int m = 0; m < mc; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
      for (int j = 0; j < J; j += 2) {  // J is a multiple of 16: two independent chains hide the latency
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + (int64_t)j * 32);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + (int64_t)(j + 1) * 32);
        for (int m = 0; m < mc; ++m) {
          const uint32_t* a = apairs + (int64_t)(m0 + m) * J;
          acc[m][0] = _mm512_dpbf16_ps(acc[m][0], (__m512bh)_mm512_set1_epi32((int)a[j]), b0);
          acc[m][1] = _mm512_dpbf16_ps(acc[m][1], (__m512bh)_mm512_set1_epi32((int)a[j + 1]), b1);
        }
      }
      for (int m = 0; m < mc; ++m) {
        float* c = C + (int64_t)(m0 + m) * ldc + col;
        __m512 r = _mm512_add_ps(acc[m][0], acc[m][1]);
        if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask, c));
        _mm512_mask_storeu_ps(c, mask, r);
      }
    }
  }
}

__attribute__((target("amx-tile"))) void tiles_on() { _tile_loadconfig(&tile_config()); }
__attribute__((target("amx-tile"))) void tiles_off() { _tile_release(); }

}  // namespace

bool bf16_gemm_available() {
  static const bool ok = detect_avx512_bf16();
  return ok;
}

bool bf16_amx_available() {
  static const bool ok = detect_amx();
  return ok;
}

const char* bf16_gemm_kind() { return bf16_amx_available() ? "AMX" : "AVX512-BF16"; }

namespace {

// 16 words bf16(lo[c]) | bf16(hi[c]) << 16: one k-pair for 16 columns, as vdpbf16ps and AMX read them.
// (maskz forms: gcc 12's plain ones warn about their own undefined pass-through operand)
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
__m512i pair_words(__m512 lo, __m512 hi) {
  return _mm512_or_si512(_mm512_maskz_cvtepu16_epi32(0xffff, (__m256i)_mm512_cvtneps_pbh(lo)),
                         _mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, (__m256i)_mm512_cvtneps_pbh(hi)), 16));
}

// The lines kAheadValues further along rows 2j and 2j + 1 of a row-major fp32 source, fetched into L1:
// convert_columns reads 32 rows side by side, a 16-value column block at a time, more streams than the
// hardware prefetchers follow (the weight gradients' A; numbers in bench/RESULTS.md). pack_rows_of_k reads its
// B alike, but fetching ahead there measured no different.
constexpr int kAheadValues = 128;
inline void fetch_rows_ahead(const float* src, int64_t ld, int j, int col) {
  _mm_prefetch((const char*)(src + (int64_t)(2 * j) * ld + col + kAheadValues), _MM_HINT_T0);
  _mm_prefetch((const char*)(src + (int64_t)(2 * j + 1) * ld + col + kAheadValues), _MM_HINT_T0);
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

// Rows [r0, r1) of Aᵀ to bf16, where A is stored [K, M] with row stride lda: two rows of A give 16 words (one
// k-pair of 16 output rows); a transpose of 16 such makes 16 k-pairs of each output row, stored whole. Rows ≥ M
// and k ≥ K are zeros; no row outside [r0, r1) is written. Row r at out + r·ldo.
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
void convert_columns(const float* A, int lda, int M, int K, int Kp, int ldo, int r0, int r1, uint16_t* out) {
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
        if (m0 + kAheadValues < M && i < jn && 2 * j + 1 < K) fetch_rows_ahead(A, lda, j, m0);
        const __m512 lo = i < jn && 2 * j < K ? _mm512_maskz_loadu_ps(m, A + (int64_t)(2 * j) * lda + m0) : _mm512_setzero_ps();
        const __m512 hi = i < jn && 2 * j + 1 < K ? _mm512_maskz_loadu_ps(m, A + (int64_t)(2 * j + 1) * lda + m0) : _mm512_setzero_ps();
        v[i] = pair_words(lo, hi);
      }
      transpose16(v);
      const __mmask16 keep = (__mmask16)((1u << jn) - 1);
      for (int i = 0; i < 16 && m0 + i < r1; ++i) _mm512_mask_storeu_epi32(o + (int64_t)(m0 + i) * ldw + j0, keep, v[i]);
    }
  }
}

// C[M, N] (+)= bf16 A · B for packed B, A supplied by convert(r0, r1, out, Kp): rows [r0, r1) of A as bf16,
// zero-padded to B.Kp columns (rows ≥ M zero). Blocks of 32 × 32 split across threads.
template <class Convert>
void amx_gemm(int M, const PackedB& B, float* C, int ldc, bool accumulate, Convert convert) {
  const int Mp = round_up(M, kBlock), Kp = B.Kp, KT = Kp / 32, MB = Mp / kBlock, NB = B.Np / kBlock;
  thread_local std::vector<uint16_t> abuf;  // per calling thread: callers may run GEMMs inside parallel regions
  if (abuf.size() < (size_t)Mp * Kp) abuf.resize((size_t)Mp * Kp);
  uint16_t* a = abuf.data();
  const TileIo io{C, ldc, M, B.N};
  // Block (nb, mb), fetching share `part` of `parts` of the next column block (2·KT tiles, contiguous): the
  // row blocks that use a column block fetch the next one between them.
  const int block_lines = 2 * KT * kTileElems * 2 / 64;
  auto run = [&](int nb, int mb, int part, int parts) {
    const uint16_t* b0 = B.data.data() + (int64_t)(2 * nb) * KT * kTileElems;
    const int share = (block_lines + parts - 1) / parts;
    const char* next = nb + 1 < NB ? (const char*)(b0 + (int64_t)2 * KT * kTileElems) + (int64_t)64 * part * share : nullptr;
    block(a, Kp, Kp, b0, b0 + (int64_t)KT * kTileElems, mb * kBlock, nb * kBlock, io, accumulate, next,
          std::max(0, std::min(share, block_lines - part * share)));
  };
  // Row blocks [mb0, mb1) against every column block, on the calling thread.
  auto rows = [&](int mb0, int mb1) {
    tiles_on();
    for (int nb = 0; nb < NB; ++nb)
      for (int mb = mb0; mb < mb1; ++mb) run(nb, mb, mb - mb0, mb1 - mb0);
    tiles_off();
  };
  const int tasks = MB * NB, threads = omp_get_max_threads();
  if (omp_in_parallel() || tasks < 4 || threads == 1) {
    convert(0, Mp, a, Kp);
    return rows(0, MB);
  }
  if ((int64_t)Kp * B.Np * 2 <= kRowSplitBytes && MB >= 4 * threads) {
    // B fits each core's L2: every thread converts its own rows and multiplies them by all of B, with no
    // barrier between the two and no rows converted on another core (a per-thread product's speed).
#pragma omp parallel
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int mb0 = (int)((int64_t)MB * t / nt), mb1 = (int)((int64_t)MB * (t + 1) / nt);
      convert(mb0 * kBlock, mb1 * kBlock, a, Kp);
      rows(mb0, mb1);
    }
    return;
  }
  auto task = [&](int t) { run(t / MB, t % MB, t % MB, MB); };  // consecutive tasks share a B column block
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int r = 0; r < Mp; r += 16) convert(r, r + 16, a, Kp);
    tiles_on();
#pragma omp for schedule(static)
    for (int t = 0; t < tasks; ++t) task(t);
    tiles_off();
  }
}

// The products of many rows: on AMX tiles where the CPU has them, else on AVX512-BF16 dot products.
template <class Convert>
void many_rows(int M, const PackedB& B, float* C, int ldc, bool accumulate, Convert convert) {
  if (bf16_amx_available()) {
    take_fetch_ahead(0);  // AMX blocks fetch their own next column block; a hint is not used there
    return amx_gemm(M, B, C, ldc, accumulate, convert);
  }
  dot_gemm(M, B, C, ldc, accumulate, convert);
}

}  // namespace

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
  p.Np = round_up(N, kBlock);
  if (p.data.size() < (size_t)p.Kp * p.Np) p.data.resize((size_t)p.Kp * p.Np);
}

void pack_b_bf16_into(PackedB& p, const float* src, int ld, bool trans, int K, int N) {
  size_b_bf16(p, K, N);
  pack_b_bf16_into(p, src, ld, trans);
}

namespace {
// Rows 2j and 2j + 1 of a block (j < 16) as 16 words from column n0 on (mask m): fp32 converted, bf16 as it is.
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
__m512i block_pair(const float* src, int ld, int j, int rows, int n0, __mmask16 m) {
  const __m512 lo = 2 * j < rows ? _mm512_maskz_loadu_ps(m, src + (int64_t)(2 * j) * ld + n0) : _mm512_setzero_ps();
  const __m512 hi = 2 * j + 1 < rows ? _mm512_maskz_loadu_ps(m, src + (int64_t)(2 * j + 1) * ld + n0) : _mm512_setzero_ps();
  return pair_words(lo, hi);
}
__attribute__((target("avx512f,avx512vl,avx512bw")))
__m512i block_pair(const uint16_t* src, int ld, int j, int rows, int n0, __mmask16 m) {
  auto row = [&](int r) {
    return r < rows ? _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_maskz_loadu_epi16(m, src + (int64_t)r * ld + n0))
                    : _mm512_setzero_si512();
  };
  return _mm512_or_si512(row(2 * j), _mm512_maskz_slli_epi32(0xffff, row(2 * j + 1), 16));
}
template <class T>
__attribute__((target("avx512f,avx512bf16,avx512vl,avx512bw")))
void pack_block(PackedB& p, const T* src, int ld, int k0, int rows, int n) {
  uint32_t* dst = reinterpret_cast<uint32_t*>(p.data.data());
  const int J = p.Kp / 2, end = std::min(round_up(n, 32), p.Np);
  for (int n0 = 0; n0 < end; n0 += 16) {
    const __mmask16 m = (__mmask16)((1u << std::clamp(n - n0, 0, 16)) - 1);
    for (int j = 0; j < 16; ++j)
      _mm512_storeu_si512(dst + ((int64_t)(n0 / 16) * J + k0 / 2 + j) * 16, block_pair(src, ld, j, rows, n0, m));
  }
}
}  // namespace

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

void gemm_bf16(int M, const float* A, int lda, const PackedB& B, float* C, int ldc, bool accumulate) {
  if (M <= 0 || B.N <= 0) return;
  TimedProduct timed(ProductKind::bf16, M, B.N, B.K);
  if (M <= kGemvRows || row_exact()) {
    take_fetch_ahead(0);  // rows read the weight at the memory's pace (core/fetch_ahead.h)
    thread_local std::vector<uint16_t> rows;
    if (rows.size() < (size_t)M * B.Kp) rows.resize((size_t)M * B.Kp);
    convert_rows(A, lda, M, B.K, B.Kp, B.Kp, 0, M, rows.data());
    const uint32_t* pairs = reinterpret_cast<const uint32_t*>(rows.data());
    const int blocks = (B.N + 15) / 16;
    // Split across threads only when each gets enough weight to read (≥ 256 KB of bf16).
    if (omp_in_parallel() || (int64_t)B.Kp * B.N < (1 << 18) || omp_get_max_threads() == 1)
      return gemv_blocks(pairs, M, B.Kp, B, C, ldc, accumulate, 0, blocks);
#pragma omp parallel
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      gemv_blocks(pairs, M, B.Kp, B, C, ldc, accumulate, (int)((int64_t)blocks * t / nt),
                  (int)((int64_t)blocks * (t + 1) / nt));
    }
    return;
  }
  many_rows(M, B, C, ldc, accumulate,
           [&](int r0, int r1, uint16_t* a, int ld) { convert_rows(A, lda, M, B.K, B.Kp, ld, r0, r1, a); });
}

void gemm_bf16_produced(int M, const std::function<void(int, float*)>& row, const PackedB& B, float* C, int ldc,
                        bool accumulate) {
  if (M <= 0 || B.N <= 0) return;
  TimedProduct timed(ProductKind::bf16_produced, M, B.N, B.K);
  const int K = B.K, Kp = B.Kp;
  many_rows(M, B, C, ldc, accumulate, [&](int r0, int r1, uint16_t* a, int ld) {
    thread_local std::vector<float> buf;  // one row, per executing thread
    if (buf.size() < (size_t)K) buf.resize(K);
    for (int r = r0; r < r1; ++r) {
      if (r < M) row(r, buf.data());
      convert_rows(buf.data(), 0, M, K, Kp, ld, r, r + 1, a);  // row stride 0: row r of "A" is buf
    }
  });
}

void gemm_bf16_tn(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                  bool accumulate) {
  if (M <= 0 || N <= 0) return;
  TimedProduct timed(ProductKind::bf16_weight_grad, M, N, K);
  thread_local PackedB packed;  // B changes every call (activations): packed per call into a reused buffer
  pack_b_bf16_into(packed, B, ldb, false, K, N);
  // (a lambda names a thread_local per executing thread: pass the caller's values in by copy)
  const int Kp = packed.Kp;
  many_rows(M, packed, C, ldc, accumulate,
           [=](int r0, int r1, uint16_t* a, int ld) { convert_columns(A, lda, M, K, Kp, ld, r0, r1, a); });
}

Bf16Tiles::Bf16Tiles() {  // dot products have no tile state
  if (bf16_amx_available()) tiles_on();
}
Bf16Tiles::~Bf16Tiles() {
  if (bf16_amx_available()) tiles_off();
}

void to_bf16_rows(const float* A, int lda, bool trans, int M, int K, uint16_t* out, int ldo) {
  const int rows = round_up(M, kBlock);
  if (trans) return convert_columns(A, lda, M, K, ldo, ldo, 0, rows, out);
  convert_rows(A, lda, M, K, ldo, ldo, 0, rows, out);
}

void gemm_bf16_small(int M, int N, int K, const uint16_t* a, int lda, const PackedB& B, float* C, int ldc,
                     bool accumulate) {
  if (M <= 0 || N <= 0) return;
  TimedProduct timed(ProductKind::bf16_small, M, N, K);
  if (!bf16_amx_available()) return dot_gemm_small(M, N, K, a, lda, B, C, ldc, accumulate);
  const int Kq = round_up(K, 32), KT = B.Kp / 32;
  const TileIo io{C, ldc, M, N};
  for (int n0 = 0; n0 < N; n0 += kBlock) {
    const uint16_t* b0 = B.data.data() + (int64_t)(n0 / 16) * KT * kTileElems;
    for (int m0 = 0; m0 < M; m0 += kBlock) block(a, lda, Kq, b0, b0 + (int64_t)KT * kTileElems, m0, n0, io, accumulate);
  }
}

}  // namespace heirloom
