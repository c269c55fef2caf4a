// fp32 GEMM on packed panels. Blocking: a micro-tile is kMr rows × one 32-column panel, held in 2·kMr zmm
// accumulators over the whole K (24 accumulators, two panel vectors and a broadcast fit the 32 registers).
// A task is kTaskTiles micro-tiles (core/gemm_tile.h: RowTiles) × one panel. Tasks run by row block (B in L2,
// the block's rows in L1) when all of B fits L2, else by panel (the panel in L1, A streaming from L2); a long K
// with a large B runs in row groups over slices of K instead (slices_by_row_group). Functions carry their own
// target attributes so the binary still runs elsewhere.
#include "core/gemm_f32.h"

#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>

#include "core/fetch_ahead.h"
#include "core/gemm.h"
#include "core/gemm_tile.h"
#include "core/paced_split.h"
#include "core/parallel.h"
#include "core/product_time.h"
#include "core/thread_team.h"
#include "core/transpose16.h"
#include "heirloom/error.h"

namespace heirloom {

namespace {

constexpr int kNr = 32;             // columns per panel: two zmm
constexpr int kMr = 12;             // rows per micro-tile
constexpr int kTaskTiles = 4;       // micro-tiles per task (RowTiles: 4 · kMr rows at most; a joined last one up to 6)
constexpr int64_t kRowsFirstBytes = 1 << 20;  // a packed B up to this size is walked row block by row block
constexpr int kKSlice = 1024;  // a task's micro-tiles run over K in slices of this many (128 KB of a panel)

int round_up(int x, int m) { return (x + m - 1) / m * m; }

// Row tasks over n micro-tiles: kTaskTiles tiles each, or, with `join` (products on one thread), a last task of
// at most half that joined to the one before, so that its rows do not walk every panel again on their own (the
// protocol's experts, about 64 rows: 44 + 20 rows before). Task rt covers tiles [rt·kTaskTiles, the next task's
// first, or n for the last). The protocol's fp32 steps took 0.993–0.997 of their time in six trials
// (`heirloom bench --experiment`, nineteenth session); the same bits.
constexpr int kMaxTaskTiles = kTaskTiles + kTaskTiles / 2;
int row_tasks_of(int n, bool join) {
  const int tasks = (n + kTaskTiles - 1) / kTaskTiles;
  return join && tasks >= 2 && n - (tasks - 1) * kTaskTiles <= kTaskTiles / 2 ? tasks - 1 : tasks;
}
int task_end_tile(int rt, int tasks, int n) { return rt == tasks - 1 ? n : (rt + 1) * kTaskTiles; }

bool detect_avx512f() {
  // HEIRLOOM_NO_AVX512=1 runs this CPU as one without AVX-512 (and so without AMX): the paths such CPUs take.
  if (const char* off = std::getenv("HEIRLOOM_NO_AVX512"); off && *off && std::string(off) != "0") return false;
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 16));
}

// c0[r], c1[r] += A[R, K] · (b0 | b1)[K, 16 + 16] (row k of B at B + k·ldb, masked); with kFetch, `next` (the next
// panel's row k, two lines) on its way to L2 as it goes. The rows' values are read from three bases and two
// strides (ars, 3·ars; HEIRLOOM_TILE_ROWS, core/gemm_tile.h), broadcast inside the FMA: with twelve row pointers
// and the fetch's test in the loop, GCC kept the pointers in vector registers and moved them back on every k
// (BM_tile_depth, bench/RESULTS.md). Each element is the same FMA chain over k as with a broadcast register.
template <int R, bool kFetch>
__attribute__((target("avx512f"), always_inline)) inline void f32_loop(__m512 (&c0)[R], __m512 (&c1)[R],
                                                                      const float* A, int64_t ars, int64_t aks,
                                                                      const float* B, int64_t ldb, int K,
                                                                      __mmask16 mask0, __mmask16 mask1,
                                                                      const float* next) {
  TileRows rows(A, ars);
  const int64_t step = aks * 4;
  for (int k = 0; k < K; ++k) {
    if constexpr (kFetch) {  // the next panel's row k (its two lines) on its way to L2 while this one is multiplied
      _mm_prefetch((const char*)(next + k * kNr), _MM_HINT_T1);
      _mm_prefetch((const char*)(next + k * kNr + 16), _MM_HINT_T1);
    }
    const float* b = B + k * ldb;
    const __m512 v0 = _mm512_maskz_loadu_ps(mask0, b), v1 = _mm512_maskz_loadu_ps(mask1, b + 16);
    // the row's value broadcast once into a register for its two FMAs (read from memory by both, K = 1024 ran
    // slower than with a pointer per row, BM_tile_depth: rows a power of two apart, likely meeting in L1's sets)
#define HEIRLOOM_FMA_ROW(r, q, ADDR) HEIRLOOM_TILE_BROADCAST_ROW("vbroadcastss", "vfmadd231ps", __m512, r, q, ADDR)
    HEIRLOOM_TILE_ROWS(HEIRLOOM_FMA_ROW)
#undef HEIRLOOM_FMA_ROW
    rows.advance(step);
  }
}

// C[R, w] (+)= A[R, K] · B[K, w] for w ≤ 32 columns, A(r, k) at A[r·ars + k·aks], row k of B at B + k·ldb.
// The masks (w columns) guard B's loads and C's stores alike.
template <int R>
__attribute__((target("avx512f"))) void micro(const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb,
                                              int K, float* C, int64_t ldc, __mmask16 mask0, __mmask16 mask1,
                                              bool accumulate, const float* next, bool stream) {
  static_assert(R <= 15, "three bases of five rows");
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  if (next) f32_loop<R, true>(c0, c1, A, ars, aks, B, ldb, K, mask0, mask1, next);
  else f32_loop<R, false>(c0, c1, A, ars, aks, B, ldb, K, mask0, mask1, nullptr);
  store_tile<R>(C, ldc, c0, c1, mask0, mask1, accumulate, stream);
}

using Micro = void (*)(const float*, int64_t, int64_t, const float*, int64_t, int, float*, int64_t, __mmask16, __mmask16,
                       bool, const float*, bool);

template <int... R>
constexpr auto micro_table(std::integer_sequence<int, R...>) {
  return std::array<Micro, sizeof...(R)>{&micro<R + 1>...};
}
constexpr auto kMicro = micro_table(std::make_integer_sequence<int, kMr>{});

// Rows [0, M) of a ≤ 32-column product in micro-tiles (see gemm_f32_panel). With `next` (a panel's bytes: the
// next panel of the same K), the first micro-tile also fetches it into L2: the weights of a layer's products
// are often no longer cached when the step comes back to them. `later` is fetched by the second micro-tile.
// `stream`: C's whole rows written around the caches (core/gemm_tile.h); the caller fences.
void panel_rows(int M, int K, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb, int w, float* C,
                int64_t ldc, bool accumulate, const float* next = nullptr, const float* later = nullptr,
                bool stream = false) {
  const __mmask16 mask0 = first_columns(w), mask1 = first_columns(w - 16);
  const RowTiles tiles(M, kMr);
  for (int i = 0; i < tiles.n; ++i) {
    const int m = tiles.start(i);
    kMicro[tiles.start(i + 1) - m - 1](A + m * ars, ars, aks, B, ldb, K, C + m * ldc, ldc, mask0, mask1, accumulate,
                                       i == 0 ? next : i == 1 ? later : nullptr, stream);
  }
}

// `rows` rows of C against panel p, A(r, k) at A[r·ars + k·aks] and row r of C at C + r·ldc, for the rows
// from `first` on; for the first rows of all (first = 0), the next panel and `later` (a panel's bytes of
// another weight, or null) are fetched into L2 as these rows are multiplied.
void rows_by_panel(int first, int rows, int p, const float* A, int64_t ars, int64_t aks, const PackedF32& B, float* C,
                   int ldc, bool accumulate, const float* later, bool may_stream) {
  const int col = p * kNr;
  const float* panel = B.data.data() + (int64_t)p * B.K * kNr;
  // A panel's first rows fetch the next panel, which this thread most likely takes after this one.
  const float* next = first == 0 && col + kNr < B.N ? panel + (int64_t)B.K * kNr : nullptr;
  // A long K (the head's input gradient: 8192) runs in slices: a whole panel (1 MB there) and the rows' A no
  // longer fit L2 together, and each micro-tile fetched the panel again from L3.
  // An output written over in one slice goes around the caches, as the bf16 kernel's (core/gemm_bf16_dot.cpp).
  const bool stream = may_stream && B.K <= kKSlice && can_stream(C, ldc, accumulate);
  for (int k0 = 0; k0 < B.K; k0 += kKSlice)
    panel_rows(rows, std::min(kKSlice, B.K - k0), A + (int64_t)k0 * aks, ars, aks, panel + (int64_t)k0 * kNr, kNr,
               std::min(kNr, B.N - col), C + col, ldc, accumulate || k0 > 0, k0 == 0 ? next : nullptr,
               first == 0 && k0 == 0 ? later : nullptr, stream);
  if (stream) _mm_sfence();
}

// A long K with a B too large for L2 (the head's input gradient: K = 8192, 8 MB): row groups of kGroupTiles
// micro-tiles, each walking K in slices of kGroupSliceK with all of B's panels per slice, so that a group's
// rows and a slice of B (and the next slice, fetched as this one is multiplied) fit L2 together. A and B are
// each read from memory once per group; task by task (a panel against a row block), A was read once per panel
// and each panel once per row block. Each row's sums run in the same order whatever M is.
constexpr int kGroupTiles = 8, kGroupSliceK = 256;

void slices_by_row_group(const RowTiles& tiles, const float* A, int64_t ars, int64_t aks, const PackedF32& B,
                         float* C, int ldc, bool accumulate) {
  // As many groups for every thread (of at most kGroupTiles tiles): 22 tiles as groups of 8, 8 and 6 left one
  // of two threads with 14.
  const int nt = in_team() ? 1 : omp_get_max_threads(), panels = B.Np / kNr;
  const int groups = nt * ((tiles.n + nt * kGroupTiles - 1) / (nt * kGroupTiles));
  parallel_for(groups, true, [&](int64_t g) {
    const int r0 = tiles.start((int)(tiles.n * g / groups)), r1 = tiles.start((int)(tiles.n * (g + 1) / groups));
    for (int k0 = 0; k0 < B.K; k0 += kGroupSliceK)
      for (int p = 0; p < panels; ++p) {
        const int col = p * kNr, k1 = k0 + kGroupSliceK;
        const float* panel = B.data.data() + (int64_t)p * B.K * kNr;
        const float* next = k1 < B.K ? panel + (int64_t)k1 * kNr : nullptr;
        if (next && aks == 1)  // a share of the group's rows of the next slice too, a row's slice a page apart
          for (int r = r0 + (r1 - r0) * p / panels; r < r0 + (r1 - r0) * (p + 1) / panels; ++r)
            for (int k = k1; k < std::min(B.K, k1 + kGroupSliceK); k += 16)
              _mm_prefetch((const char*)(A + r * ars + k), _MM_HINT_T1);
        panel_rows(r1 - r0, std::min(kGroupSliceK, B.K - k0), A + r0 * ars + k0 * aks, ars, aks,
                   panel + (int64_t)k0 * kNr, kNr, std::min(kNr, B.N - col), C + (int64_t)r0 * ldc + col, ldc,
                   accumulate || k0 > 0, next);
      }
  });
}

// Panel p's bytes of the weight the next product will read (core/fetch_ahead.h), or null past its end.
const float* later_panel(const FetchAhead& ahead, int p, int64_t panel_floats) {
  return p * panel_floats * 4 < ahead.bytes ? reinterpret_cast<const float*>(ahead.p) + p * panel_floats : nullptr;
}

}  // namespace

bool f32_packed_available() {
  static const bool ok = detect_avx512f();
  return ok;
}

int f32_task_rows() { return kTaskTiles * kMr; }

namespace {
// Panel rows [0, K) of 16 of B's columns, src's rows [n0, n0 + w) (w ≤ 16; the rest zeros): 16 × 16 blocks
// read as 16 rows of src, transposed in registers, stored as 16 panel rows (dst's row stride kNr).
__attribute__((target("avx512f"))) void pack_transposed16(float* dst, const float* src, int ld, int K, int n0, int w,
                                                          float scale) {
  const __m512 s = _mm512_set1_ps(scale);
  for (int k0 = 0; k0 < K; k0 += 16) {
    const int kn = std::min(16, K - k0);
    const __mmask16 mask = first_columns(kn);
    __m512i v[16];
    for (int i = 0; i < w; ++i)  // 16 short streams defeat the hardware's prefetcher: fetch 4 lines ahead
      _mm_prefetch((const char*)(src + (int64_t)(n0 + i) * ld + k0 + 64), _MM_HINT_T0);
    for (int i = 0; i < 16; ++i)
      v[i] = i < w ? _mm512_castps_si512(_mm512_mul_ps(s, _mm512_maskz_loadu_ps(mask, src + (int64_t)(n0 + i) * ld + k0)))
                   : _mm512_setzero_si512();
    transpose16(v);
    for (int i = 0; i < kn; ++i) _mm512_storeu_si512(dst + (int64_t)(k0 + i) * kNr, v[i]);
  }
}

void pack_panels(PackedF32& p, const float* src, int ld, bool trans, float scale) {
  const int K = p.K, N = p.N, panels = p.Np / kNr;
  parallel_for(panels, (int64_t)K * p.Np >= (1 << 16), [&](int64_t q) {
    float* dst = p.data.data() + (int64_t)q * K * kNr;
    const int n0 = (int)q * kNr, w = std::min(kNr, N - n0);
    if (trans) {  // B's columns are src's rows: 16 rows at a time, transposed in registers
      pack_transposed16(dst, src, ld, K, n0, std::min(16, w), scale);
      pack_transposed16(dst + 16, src, ld, K, n0 + 16, w - 16, scale);
    } else {  // B's rows are src's rows: 32 adjacent values at a time
      for (int k = 0; k < K; ++k) {
        const float* row = src + (int64_t)k * ld + n0;
        float* d = dst + (int64_t)k * kNr;
        for (int j = 0; j < w; ++j) d[j] = scale * row[j];
        for (int j = w; j < kNr; ++j) d[j] = 0.f;
      }
    }
  });
}
}  // namespace

void pack_b_f32_into(PackedF32& p, const float* src, int ld, bool trans) { pack_panels(p, src, ld, trans, 1.f); }

void pack_b_f32_into(PackedF32& p, const float* src, int ld, bool trans, int K, int N, float scale) {
  p.K = K;
  p.N = N;
  p.Np = round_up(N, kNr);
  if (p.data.size() < (size_t)p.Np * K) p.data.resize((size_t)p.Np * K);
  pack_panels(p, src, ld, trans, scale);
}

PackedF32 pack_b_f32(const float* src, int ld, bool trans, int K, int N) {
  PackedF32 p;
  pack_b_f32_into(p, src, ld, trans, K, N, 1.f);
  return p;
}

void gemm_f32_packed(int M, const float* A, int lda, const PackedF32& B, float* C, int ldc, bool accumulate) {
  if (M <= 0 || B.N <= 0) return;
  TimedProduct timed(ProductKind::f32_packed, M, B.N, B.K);
  gemm_f32_strided(M, A, lda, 1, B, C, ldc, accumulate);
}

void gemm_f32_produced(int M, const std::function<void(int, float*)>& row, const PackedF32& B, float* C, int ldc,
                       bool accumulate) {
  if (M <= 0 || B.N <= 0) return;
  TimedProduct timed(ProductKind::f32_produced, M, B.N, B.K);
  if (!f32_packed_available()) throw Error("internal: packed fp32 products need AVX-512F", "report this as a bug");
  // Rows a cache line further apart than their length: a power of two bytes apart, the micro-tile's rows
  // would share the same few L1 sets.
  const int K = B.K, lda = round_up(K, 16) + 16, panels = B.Np / kNr;
  const FetchAhead ahead = take_fetch_ahead(M);
  const int64_t panel_floats = (int64_t)K * kNr;
  thread_local std::vector<float> buf;  // per calling thread: experts multiply inside parallel regions
  if (buf.size() < (size_t)kMaxTaskTiles * kMr * lda) buf.resize((size_t)kMaxTaskTiles * kMr * lda);
  const RowTiles tiles(M, kMr);
  const bool may_stream = !outputs_cached();
  const int row_tasks = row_tasks_of(tiles.n, true);
  for (int rt = 0; rt < row_tasks; ++rt) {  // a row block made, then multiplied by every panel
    const int r0 = tiles.start(rt * kTaskTiles), rows = tiles.start(task_end_tile(rt, row_tasks, tiles.n)) - r0;
    for (int r = 0; r < rows; ++r) row(r0 + r, buf.data() + (int64_t)r * lda);
    for (int p = 0; p < panels; ++p) {
      const float* later = r0 == 0 ? later_panel(ahead, p, panel_floats) : nullptr;
      rows_by_panel(r0, rows, p, buf.data(), lda, 1, B, C + (int64_t)r0 * ldc, ldc, accumulate, later, may_stream);
    }
  }
}

void gemm_f32_general(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, bool accumulate, float* C, int ldc) {
  thread_local PackedF32 packed;  // per calling thread: experts multiply inside parallel regions
  pack_b_f32_into(packed, B, ldb, trans_b, K, N, alpha);
  gemm_f32_strided(M, A, trans_a ? 1 : lda, trans_a ? lda : 1, packed, C, ldc, accumulate);
}

void gemm_f32_strided(int M, const float* A, int64_t ars, int64_t aks, const PackedF32& B, float* C, int ldc,
                      bool accumulate) {
  if (M <= 0 || B.N <= 0) return;
  if (!f32_packed_available()) throw Error("internal: packed fp32 products need AVX-512F", "report this as a bug");
  if (B.K == 0) {
    for (int i = 0; i < M; ++i)
      if (!accumulate) std::fill_n(C + (int64_t)i * ldc, B.N, 0.f);
    return;
  }
  const RowTiles tiles(M, kMr);
  const int row_tasks = row_tasks_of(tiles.n, in_team() || omp_get_max_threads() == 1);
  const int panels = B.Np / kNr, tasks = row_tasks * panels;
  // Consecutive tasks share a row block when all of B stays in L2: its rows are then read from L1 and its
  // outputs written whole lines at a time. A larger B (the head's 8 MB) would be fetched again for every row
  // block, so there consecutive tasks share a panel instead.
  const bool rows_first = (int64_t)B.K * B.Np * (int64_t)sizeof(float) <= kRowsFirstBytes;
  if (!rows_first && B.K > kKSlice) return slices_by_row_group(tiles, A, ars, aks, B, C, ldc, accumulate);
  // With B in L2, the first row block's tasks also fetch the next product's weight (core/fetch_ahead.h), a
  // panel's bytes each.
  const FetchAhead ahead = take_fetch_ahead(M);
  const int64_t panel_floats = (int64_t)B.K * kNr;
  const bool may_stream = !outputs_cached();  // on the calling thread: a CachedOutputs holds for every task
  auto task = [&](int t) {
    const int p = rows_first ? t % panels : t / row_tasks, t0 = (rows_first ? t / panels : t % row_tasks) * kTaskTiles;
    const int r0 = tiles.start(t0), r1 = tiles.start(task_end_tile(t0 / kTaskTiles, row_tasks, tiles.n));
    const float* later = rows_first ? later_panel(ahead, p, panel_floats) : nullptr;
    rows_by_panel(r0, r1 - r0, p, A + (int64_t)r0 * ars, ars, aks, B, C + (int64_t)r0 * ldc, ldc,
                  accumulate, later, may_stream);
  };
  const bool worth = (int64_t)M * B.Np * B.K >= (1 << 16);
  const int threads = omp_get_max_threads();
  // A B at least as wide as A is tall (the protocol's q, k, v and output products and their input gradients, 256
  // rows) is split by its columns: each thread multiplies all of A by its own share of B's panels, row block by
  // row block, and fetches only that share of B. The protocol's fp32 steps took 0.970–0.973 of their time
  // (`heirloom bench --experiment`, three trials, eighteenth session); split so only where B is twice as wide,
  // 0.981–0.991. The 8x128 steps' products (M = 1024) gained nothing so (0.995–1.012, four trials).
  if (worth && rows_first && M <= B.N && panels >= threads && threads > 1 && !in_team()) {
    run_paced(panels, threads, [](int) {}, [&](int, int64_t p0, int64_t p1) {
      for (int rt = 0; rt < row_tasks; ++rt)
        for (int p = (int)p0; p < (int)p1; ++p) task(rt * panels + p);
    });
    return;
  }
  parallel_for(tasks, worth, [&](int64_t t) { task((int)t); });
}

void gemm_f32_panel(int M, int K, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb, int w,
                    float* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || w <= 0) return;
  TimedProduct timed(ProductKind::f32_panel, M, w, K);
  if (w > kNr || !f32_packed_available())
    throw Error("internal: gemm_f32_panel takes at most 32 columns, on a CPU with AVX-512F", "report this as a bug");
  panel_rows(M, K, A, ars, aks, B, ldb, w, C, ldc, accumulate);
}

}  // namespace heirloom
