// bf16 GEMM: the few-row path on AVX512-BF16; the many-row products on AMX tiles here, or on dot products
// (core/gemm_bf16_dot.cpp) where the CPU has no AMX; packing and conversion in core/gemm_bf16_pack.cpp.
// AMX blocking: each task computes a 32 × 32 block of C in four 16 × 16 fp32 tiles (tmm0–3) from two A tiles
// (tmm4–5, 16 rows × 32 k) and two B tiles (tmm6–7, 32 k × 16 columns), the whole K in one pass. A is rounded to bf16 once per call into a zero-padded buffer; B was packed once.
// Functions carry their own target attributes so the binary still runs on CPUs without AMX.
#include "core/gemm_bf16.h"
#include "core/gemm.h"
#include "core/fetch_ahead.h"
#include "core/gemm_bf16_dot.h"
#include "core/gemm_bf16_pack.h"
#include "core/gemm_f32.h"
#include "core/parallel.h"
#include "core/product_time.h"
#include "core/thread_team.h"
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

constexpr int kBlock = kBf16Block;  // rows and columns per task
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

int bf16_task_rows() { return bf16_amx_available() ? kBlock : dot_task_rows(); }

namespace {

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
  if (in_team() || tasks < 4 || threads == 1) {
    convert(0, Mp, a, Kp);
    return rows(0, MB);
  }
  if ((int64_t)Kp * B.Np * 2 <= kRowSplitBytes && MB >= 4 * threads) {
    // B fits each core's L2: every thread converts its own rows and multiplies them by all of B, with no
    // barrier between the two and no rows converted on another core (a per-thread product's speed).
    run_team(threads, [&](int t, int nt) {
      const auto [mb0, mb1] = team_share(MB, t, nt);
      convert((int)mb0 * kBlock, (int)mb1 * kBlock, a, Kp);
      rows((int)mb0, (int)mb1);
    });
    return;
  }
  auto task = [&](int t) { run(t / MB, t % MB, t % MB, MB); };  // consecutive tasks share a B column block
  run_team(threads, [&](int t, int nt) {
    for (auto [b, last] = team_share(Mp / 16, t, nt); b < last; ++b) convert((int)b * 16, (int)b * 16 + 16, a, Kp);
    team_barrier();
    tiles_on();
    for (auto [u, last] = team_share(tasks, t, nt); u < last; ++u) task((int)u);
    tiles_off();
  });
}

// The products of many rows: on AMX tiles where the CPU has them, else on AVX512-BF16 dot products.
// With `rank`, the dot products add it as they store C (core/rank_update.h); the tiles add it after.
// `repeatable`: convert has no side effects, and may be asked for a row more than once (dot_gemm).
template <class Convert>
void many_rows(int M, const PackedB& B, float* C, int ldc, bool accumulate, Convert convert,
               const RankUpdate* rank = nullptr, bool repeatable = false) {
  if (bf16_amx_available()) {
    take_fetch_ahead(0);  // AMX blocks fetch their own next column block; a hint is not used there
    amx_gemm(M, B, C, ldc, accumulate, convert);
    if (rank) apply_rank_update(*rank, C, ldc, M);
    return;
  }
  const bool fused = rank && fusable_in_panels(*rank, B.N);
  dot_gemm(M, B, C, ldc, accumulate, ALayout::rows, convert, nullptr, 0, fused ? rank : nullptr, nullptr, repeatable);
  if (rank && !fused) apply_rank_update(*rank, C, ldc, M);
}

// The few-row path (M ≤ kGemvRows, or any M under RowExact) on rows already in bf16, row stride B.Kp.
void few_rows(const uint16_t* rows, int M, const PackedB& B, float* C, int ldc, bool accumulate) {
  take_fetch_ahead(0);  // rows read the weight at the memory's pace (core/fetch_ahead.h)
  const uint32_t* pairs = reinterpret_cast<const uint32_t*>(rows);
  const int blocks = (B.N + 15) / 16;
  // Split across threads only when each gets enough weight to read (≥ 256 KB of bf16).
  if (in_team() || (int64_t)B.Kp * B.N < (1 << 18) || omp_get_max_threads() == 1)
    return gemv_blocks(pairs, M, B.Kp, B, C, ldc, accumulate, 0, blocks);
  run_team(omp_get_max_threads(), [&](int t, int nt) {
    const TeamShare share = team_share(blocks, t, nt);
    gemv_blocks(pairs, M, B.Kp, B, C, ldc, accumulate, (int)share.first, (int)share.last);
  });
}
bool takes_few_rows(int M) { return M <= kGemvRows || row_exact(); }
// The weight gradients' B changes every call (activations): packed per call into a reused buffer.
PackedB& packed_activations() {
  thread_local PackedB packed;
  return packed;
}
// One weight gradient C (+)= bf16(A)ᵀ · B, A fp32 or bf16, on B packed (into packed_activations() by the first
// of the products on it, or kept from a forward).
template <class TA>
void tn_product(int M, const TA* A, int lda, const PackedB& packed, float* C, int ldc, bool accumulate) {
  const int K = packed.K, Kp = packed.Kp;
  // (a lambda names a thread_local per executing thread: pass the caller's values in by copy)
  if (bf16_amx_available())
    return many_rows(M, packed, C, ldc, accumulate,
                     [=](int r0, int r1, uint16_t* a, int ld) { convert_columns(A, lda, M, K, Kp, ld, r0, r1, a); });
  // Dot products take Aᵀ's k-pairs as two rows of A make them, with no transpose: the products 1-7 % faster
  // than on Aᵀ's rows (a local program), about 1 % of the full step (bench/RESULTS.md, eighth session).
  dot_gemm(M, packed, C, ldc, accumulate, ALayout::pairs, [=](int r0, int r1, uint16_t* a, int ld) {
    convert_pairs(A, lda, M, K, Kp, ld, r0, r1, reinterpret_cast<uint32_t*>(a));
  });
}
// Weight gradients against one B: each(i, packed) runs product i on B packed (into packed_activations() here,
// once, timed with the first product) or given packed (kept from a forward).
template <class Each>
void on_one_b(int count, int M, int N, int K, const PackedB* given, const float* B, int ldb, Each&& each) {
  if (M <= 0 || N <= 0) return;
  const PackedB& packed = given ? *given : packed_activations();
  for (int i = 0; i < count; ++i) {
    TimedProduct timed(ProductKind::bf16_weight_grad, M, N, K);
    if (i == 0 && !given) pack_b_bf16_into(packed_activations(), B, ldb, false, K, N);
    each(i, packed);
  }
}
// The pair-row products against one B, packed here or given packed.
void pair_products(const PairProduct* products, int count, const PackedB* given, int N, const float* B, int ldb,
                   int ldc, bool accumulate) {
  if (count <= 0 || products[0].A->M <= 0 || N <= 0) return;
  if (!tn_takes_pairs()) throw Error("internal: pair rows on a CPU whose weight gradients do not take them", "report this as a bug");
  const int M = products[0].A->M, K = products[0].A->K;
  if (given && (given->K != K || given->N != N)) throw Error("internal: a kept B of another shape", "report this as a bug");
  on_one_b(count, M, N, K, given, B, ldb, [&](int i, const PackedB& packed) {
    const PairRows& A = *products[i].A;
    if (A.M != M || A.K != K) throw Error("internal: pair rows of different shapes against one B", "report this as a bug");
    dot_gemm(M, packed, products[i].C, ldc, accumulate, ALayout::pairs, nullptr, A.words.data(), A.ld);
  });
}
uint16_t* few_rows_buffer(int M, int Kp) {  // per calling thread
  thread_local std::vector<uint16_t> rows;
  if (rows.size() < (size_t)M * Kp) rows.resize((size_t)M * Kp);
  return rows.data();
}

}  // namespace

void gemm_bf16(int M, const float* A, int lda, const PackedB& B, float* C, int ldc, bool accumulate,
               const RankUpdate* rank) {
  if (M <= 0 || B.N <= 0) return;
  TimedProduct timed(ProductKind::bf16, M, B.N, B.K);
  if (takes_few_rows(M)) {
    uint16_t* rows = few_rows_buffer(M, B.Kp);
    convert_rows(A, lda, M, B.K, B.Kp, B.Kp, 0, M, rows);
    few_rows(rows, M, B, C, ldc, accumulate);
    if (rank) apply_rank_update(*rank, C, ldc, M);
    return;
  }
  many_rows(M, B, C, ldc, accumulate,
           [&](int r0, int r1, uint16_t* a, int ld) { convert_rows(A, lda, M, B.K, B.Kp, ld, r0, r1, a); }, rank,
           true);
}

int64_t bf16_rows_stride(int M, const PackedB& B) {
  return takes_few_rows(M) || bf16_amx_available() ? B.Kp : 2 * (int64_t)pair_stride(B.Kp / 2);
}

void gather_bf16_rows(const float* x, int64_t ldx, const int32_t* rows, int M, const PackedB& B, uint16_t* out,
                      int64_t ld) {
  for (int i = 0; i < M; ++i) convert_rows(x + (int64_t)rows[i] * ldx, 0, 1, B.K, B.Kp, 0, 0, 1, out + i * ld);
}

void gemm_bf16_on_rows(const uint16_t* rows, int64_t ld, int M, const PackedB& B, float* C, int ldc, bool accumulate) {
  if (M <= 0 || B.N <= 0) return;
  if (ld != bf16_rows_stride(M, B)) throw Error("internal: bf16 rows at a stride the product does not take", "report this as a bug");
  TimedProduct timed(ProductKind::bf16, M, B.N, B.K);
  if (takes_few_rows(M)) return few_rows(rows, M, B, C, ldc, accumulate);
  if (bf16_amx_available())  // the tiles' blocks read their own copy of the rows
    return many_rows(M, B, C, ldc, accumulate, [&](int r0, int r1, uint16_t* a, int lda) {
      for (int r = r0; r < r1; ++r)
        if (r < M) std::copy(rows + r * ld, rows + r * ld + B.Kp, a + (int64_t)r * lda);
        else std::fill(a + (int64_t)r * lda, a + (int64_t)r * lda + B.Kp, (uint16_t)0);
    });
  dot_gemm(M, B, C, ldc, accumulate, ALayout::rows, nullptr, reinterpret_cast<const uint32_t*>(rows), ld / 2);
}

void gemm_bf16_on_rows(const uint16_t* rows, int64_t ld, int M, const PackedB& B, uint16_t* C, int ldc) {
  if (M <= 0 || B.N <= 0) return;
  if (!takes_few_rows(M) && !bf16_amx_available()) {
    if (ld != bf16_rows_stride(M, B)) throw Error("internal: bf16 rows at a stride the product does not take", "report this as a bug");
    TimedProduct timed(ProductKind::bf16, M, B.N, B.K);
    return dot_gemm(M, B, nullptr, ldc, false, ALayout::rows, nullptr, reinterpret_cast<const uint32_t*>(rows), ld / 2,
                    nullptr, C);
  }
  // Elsewhere in fp32 first, then rounded row by row as the dot products' tiles round theirs.
  thread_local std::vector<float> out;  // per calling thread
  if (out.size() < (size_t)M * B.N) out.resize((size_t)M * B.N);
  gemm_bf16_on_rows(rows, ld, M, B, out.data(), B.N, false);
  convert_rows(out.data(), B.N, M, B.N, B.N, ldc, 0, M, C);
}

void gemm_bf16_produced(int M, const std::function<void(int, uint16_t*)>& row, const PackedB& B, float* C, int ldc,
                        bool accumulate) {
  if (M <= 0 || B.N <= 0) return;
  TimedProduct timed(ProductKind::bf16_produced, M, B.N, B.K);
  const int K = B.K, Kp = B.Kp;
  auto make = [&](int r, uint16_t* o) {
    if (r < M) row(r, o);
    std::fill(o + (r < M ? K : 0), o + Kp, (uint16_t)0);
  };
  if (takes_few_rows(M)) {
    uint16_t* rows = few_rows_buffer(M, Kp);
    for (int r = 0; r < M; ++r) make(r, rows + (int64_t)r * Kp);
    return few_rows(rows, M, B, C, ldc, accumulate);
  }
  many_rows(M, B, C, ldc, accumulate, [&](int r0, int r1, uint16_t* a, int ld) {
    for (int r = r0; r < r1; ++r) make(r, a + (int64_t)r * ld);
  });
}

void gemm_bf16_tn(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                  bool accumulate) {
  on_one_b(1, M, N, K, nullptr, B, ldb, [&](int, const PackedB& p) { tn_product(M, A, lda, p, C, ldc, accumulate); });
}

void gemm_bf16_tn(int M, int N, int K, const BfProduct* products, int count, int lda, const float* B, int ldb, int ldc,
                  bool accumulate) {
  on_one_b(count, M, N, K, nullptr, B, ldb, [&](int i, const PackedB& p) {
    tn_product(M, products[i].A, lda, p, products[i].C, ldc, accumulate);
  });
}

void gemm_bf16_tn(int M, int N, int K, const uint16_t* A, int lda, const float* B, int ldb, float* C, int ldc,
                  bool accumulate) {
  on_one_b(1, M, N, K, nullptr, B, ldb, [&](int, const PackedB& p) { tn_product(M, A, lda, p, C, ldc, accumulate); });
}

void gemm_bf16_tn(int M, const BfProduct* products, int count, int lda, const PackedB& B, int ldc, bool accumulate) {
  on_one_b(count, M, B.N, B.K, &B, nullptr, 0, [&](int i, const PackedB& p) {
    tn_product(M, products[i].A, lda, p, products[i].C, ldc, accumulate);
  });
}

bool tn_takes_pairs() { return bf16_gemm_available() && !bf16_amx_available(); }

void size_pair_rows(PairRows& p, int K, int M) {
  p.K = K;
  p.M = M;
  p.ld = pair_stride(M);
  const int64_t rows = round_up(K, 32) / 2;
  if ((int64_t)p.words.size() < rows * p.ld) p.words.resize(rows * p.ld);
  // An odd K's last pair is half made: its other halves are zeros, as are the pairs past it.
  std::fill(p.words.begin() + K / 2 * p.ld, p.words.begin() + rows * p.ld, 0u);
}

void gemm_bf16_tn(const PairProduct* products, int count, int N, const float* B, int ldb, int ldc, bool accumulate) {
  pair_products(products, count, nullptr, N, B, ldb, ldc, accumulate);
}

void gemm_bf16_tn(const PairProduct* products, int count, const PackedB& B, int ldc, bool accumulate) {
  pair_products(products, count, &B, B.N, nullptr, 0, ldc, accumulate);
}

void gemm_bf16_tn(const PairRows& A, int N, const float* B, int ldb, float* C, int ldc, bool accumulate) {
  const PairProduct one{&A, C};
  gemm_bf16_tn(&one, 1, N, B, ldb, ldc, accumulate);
}

Bf16Tiles::Bf16Tiles() {  // dot products have no tile state
  if (bf16_amx_available()) tiles_on();
}
Bf16Tiles::~Bf16Tiles() {
  if (bf16_amx_available()) tiles_off();
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

void gemm_bf16_small_pairs(int M, int N, int K, const uint32_t* a, int64_t ja, const PackedB& B, float* C, int ldc,
                           bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (bf16_amx_available())
    throw Error("internal: gemm_bf16_small_pairs on AMX tiles", "report this as a bug (its callers take dot products)");
  TimedProduct timed(ProductKind::bf16_small, M, N, K);
  dot_gemm_small_pairs(M, N, K, a, ja, B, C, ldc, accumulate);
}

}  // namespace heirloom
