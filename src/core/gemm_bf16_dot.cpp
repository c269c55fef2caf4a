// bf16 GEMM on AVX512-BF16 dot products. The packed B (core/gemm_bf16.h) holds each 16-column block as rows of
// 16 words, word (j, c) = the k-pair (2j, 2j + 1) of column c: exactly what vdpbf16ps multiplies against one
// broadcast k-pair of a row of A. Blocking as the fp32 kernel's (core/gemm_f32.cpp): a micro-tile is up to mr
// rows × 32 columns (two blocks) in 2·mr zmm accumulators over all of K, the two panel vectors in two more
// registers; a task is kTaskTiles·mr rows × 32 columns, run row block by row block when B fits L2, else panel by panel.
// The k-pair's broadcast (DotBroadcast, core/gemm_bf16_dot.h) is read inside each instruction (mr = 15, what a
// Zen 4 runs fastest) or broadcast once into a register for both (mr = 14, what a Zen 5 runs fastest).
#include "core/gemm_bf16_dot.h"

#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "core/fetch_ahead.h"
#include "core/gemm.h"
#include "core/gemm_tile.h"
#include "core/paced_split.h"
#include "core/parallel.h"
#include "core/thread_team.h"
#include "heirloom/error.h"

namespace heirloom {

namespace {

constexpr int kNr = 32;             // columns per task: two 16-column blocks
constexpr int kMr = 15;             // rows per micro-tile at most (30 accumulators)
// Rows per micro-tile: 15 with the broadcast inside the instructions (12, 13 and 14 measured slower on a Zen 4),
// 14 with it in a register of its own.
int tile_rows(DotBroadcast b) { return b == DotBroadcast::in_register ? kMr - 1 : kMr; }
constexpr int kTaskTiles = 4;  // micro-tiles per task
constexpr int kWords = 16;          // 32-bit words (k-pairs) per row of a block
constexpr int64_t kRowsFirstBytes = 1 << 20;

// Pair j of the panel's two 16-column blocks (b0, and b0 + bstride), and with kFetch the same pair of the next
// panel on its way to L2.
template <bool kFetch>
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline void panel_pair(__m512bh& v0, __m512bh& v1,
                                                                                   const uint32_t* b0,
                                                                                   int64_t bstride, int j,
                                                                                   const uint32_t* next) {
  if constexpr (kFetch) {
    _mm_prefetch((const char*)(next + (int64_t)j * kWords), _MM_HINT_T1);
    _mm_prefetch((const char*)(next + bstride + (int64_t)j * kWords), _MM_HINT_T1);
  }
  v0 = (__m512bh)_mm512_loadu_si512(b0 + (int64_t)j * kWords);
  v1 = (__m512bh)_mm512_loadu_si512(b0 + bstride + (int64_t)j * kWords);
}

// The K loop of a micro-tile: c0[r], c1[r] += a[r, J pairs] · (b0 | b1)[J, 16 + 16], b1 = b0 + bstride. With
// kFetch it also fetches `next` (the next 32 columns) into L2 as it goes. Nothing else lives in the loop: with a
// rank update's sums or the fetch in the same loop GCC ran out of registers for the rows' addresses and one
// accumulator, and reloaded them from the stack on every k-pair (heirloom_microbench BM_tile_depth and the
// protocol's trial: bench/RESULTS.md, eleventh session).
// Rows (ALayout::rows) are addressed from three bases and two strides (HEIRLOOM_TILE_ROWS, core/gemm_tile.h).
// ALayout::pairs reads pair j of every row from one line (offsets 4·r).
template <int R, ALayout L, DotBroadcast Bc, bool kFetch>
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline void tile_loop(__m512 (&c0)[R], __m512 (&c1)[R],
                                                                                  const uint32_t* a, int64_t lda,
                                                                                  int J, const uint32_t* b0,
                                                                                  int64_t bstride,
                                                                                  const uint32_t* next) {
  if constexpr (L == ALayout::rows) {
    TileRows rows(a, lda);
    for (int j = 0; j < J; ++j) {
      __m512bh v0, v1;
      panel_pair<kFetch>(v0, v1, b0, bstride, j, next);
      if constexpr (Bc == DotBroadcast::in_instruction) {
        // the k-pair broadcast from memory inside the instruction: no register for it
#define HEIRLOOM_DOT_ROW(r, q, ADDR)                                                               \
  asm("vdpbf16ps " ADDR "%{1to16%}, %[v0], %[c0]\n\tvdpbf16ps " ADDR "%{1to16%}, %[v1], %[c1]"  \
      : [c0] "+v"(c0[r]), [c1] "+v"(c1[r])                                                       \
      : [base] "r"(rows.base[q]), [v0] "v"(v0), [v1] "v"(v1), [s1] "r"(rows.s1), [s3] "r"(rows.s3));
        HEIRLOOM_TILE_ROWS(HEIRLOOM_DOT_ROW)
#undef HEIRLOOM_DOT_ROW
      } else {
        // the k-pair broadcast into a register (a load), then both instructions read it there
#define HEIRLOOM_DOT_ROW(r, q, ADDR) HEIRLOOM_TILE_BROADCAST_ROW("vpbroadcastd", "vdpbf16ps", __m512i, r, q, ADDR)
        HEIRLOOM_TILE_ROWS(HEIRLOOM_DOT_ROW)
#undef HEIRLOOM_DOT_ROW
      }
      rows.advance(4);
    }
  } else {
    for (int j = 0; j < J; ++j) {
      __m512bh v0, v1;
      panel_pair<kFetch>(v0, v1, b0, bstride, j, next);
      const uint32_t* aj = a + (int64_t)j * lda;
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        if constexpr (Bc == DotBroadcast::in_instruction) {
          asm("vdpbf16ps %2%{1to16%}, %3, %0\n\tvdpbf16ps %2%{1to16%}, %4, %1"
              : "+v"(c0[r]), "+v"(c1[r])
              : "m"(aj[r]), "v"(v0), "v"(v1));
        } else {
          __m512i x;
          asm("vpbroadcastd %3, %2\n\tvdpbf16ps %2, %4, %0\n\tvdpbf16ps %2, %5, %1"
              : "+v"(c0[r]), "+v"(c1[r]), "=&v"(x)
              : "m"(aj[r]), "v"(v0), "v"(v1));
        }
      }
    }
  }
}

// A rank update's sums for a micro-tile's R rows into ranked [parts][R][32] (core/rank_update.h), apart from the
// tile's loop (see tile_loop).
template <int R>
__attribute__((target("avx512f"), noinline)) void rank_sums(float* ranked, const RankTiles& rank, int row,
                                                           __mmask16 mask0, __mmask16 mask1) {
  __m512 c0[R], c1[R];
  for (int i = 0; i < rank.n; ++i) {
    rank_tile<R>(c0, c1, rank.part[i], row, mask0, mask1);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
      _mm512_store_ps(ranked + (i * R + r) * 32, c0[r]), _mm512_store_ps(ranked + (i * R + r) * 32 + 16, c1[r]);
  }
}

// A micro-tile's rows written over C in bf16 (c16, rounded to nearest even as ops/vec_math.h's to_bf16): with
// `stream` and all 32 columns, each row's 64 bytes (one line) around the caches (C's rows 64-byte aligned).
template <int R>
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline void store_tile_bf16(
    uint16_t* c16, int64_t ldc, __m512 (&c0)[R], __m512 (&c1)[R], __mmask16 mask0, __mmask16 mask1, bool stream,
    const float* ranked, int parts) {
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    uint16_t* c = c16 + r * ldc;
    for (int i = 0; i < parts; ++i) {
      c0[r] = _mm512_add_ps(c0[r], _mm512_load_ps(ranked + (i * R + r) * 32));
      c1[r] = _mm512_add_ps(c1[r], _mm512_load_ps(ranked + (i * R + r) * 32 + 16));
    }
    const __m256i lo = (__m256i)_mm512_cvtneps_pbh(c0[r]), hi = (__m256i)_mm512_cvtneps_pbh(c1[r]);
    if (stream && mask0 == 0xFFFF && mask1 == 0xFFFF) {
      _mm256_stream_si256(reinterpret_cast<__m256i*>(c), lo);  // the line's two halves, combined on the way
      _mm256_stream_si256(reinterpret_cast<__m256i*>(c + 16), hi);
    } else {
      _mm256_mask_storeu_epi16(c, mask0, lo);
      _mm256_mask_storeu_epi16(c + 16, mask1, hi);
    }
  }
}

// C[R, ≤ 32] (+)= a[R, J pairs] · (b0 | b1)[J, 16 + 16], b1 = b0 + bstride, pair j of row r at a[r·lda + j]
// (ALayout::rows) or a[j·lda + r] (ALayout::pairs); masks guard C's columns (B's padding is zeros). With `next`,
// this micro-tile also fetches the next 32 columns into L2; with `stream`, whole rows of C are written around
// the caches (core/gemm_tile.h). With c_bf16, C holds bf16 values (ldc of them a row), written over.
template <int R, ALayout L, DotBroadcast Bc>
__attribute__((target("avx512f,avx512bf16"))) void micro(const uint32_t* a, int64_t lda, int J, const uint32_t* b0,
                                                         int64_t bstride, void* C, int64_t ldc, __mmask16 mask0,
                                                         __mmask16 mask1, bool accumulate, const uint32_t* next,
                                                         bool stream, const RankTiles* rank, int rank_row,
                                                         bool c_bf16) {
  // A rank update's sums first (core/rank_update.h); added as the tile stores.
  alignas(64) float ranked[RankUpdate::kMaxParts * R * 32];
  const int parts = rank ? rank->n : 0;
  if (parts) rank_sums<R>(ranked, *rank, rank_row, mask0, mask1);
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  if (next) tile_loop<R, L, Bc, true>(c0, c1, a, lda, J, b0, bstride, next);
  else tile_loop<R, L, Bc, false>(c0, c1, a, lda, J, b0, bstride, nullptr);
  if (c_bf16) store_tile_bf16<R>(static_cast<uint16_t*>(C), ldc, c0, c1, mask0, mask1, stream, ranked, parts);
  else store_tile<R>(static_cast<float*>(C), ldc, c0, c1, mask0, mask1, accumulate, stream, ranked, parts);
}

using Micro = void (*)(const uint32_t*, int64_t, int, const uint32_t*, int64_t, void*, int64_t, __mmask16, __mmask16,
                       bool, const uint32_t*, bool, const RankTiles*, int, bool);

// The parts of `u` on the panel from column col (a micro-tile's rows from its first row, rank_row).
RankTiles panel_parts(const RankUpdate* u, int col) {
  RankTiles t;
  for (int i = 0; u && i < u->n; ++i) {
    const RankPart& p = u->parts[i];
    if (col >= p.c0 && col < p.c1) t.part[t.n++] = {p.U, p.ldu, p.Bt + (col - p.c0), p.ldbt, p.rank};
  }
  return t;
}

// The micro-tiles of 1..15 rows (the broadcast in a register: 1..14; its table's 15th is never called).
template <ALayout L, DotBroadcast Bc, int... R>
constexpr auto micro_table(std::integer_sequence<int, R...>) {
  constexpr bool kFifteen = Bc == DotBroadcast::in_instruction;
  return std::array<Micro, sizeof...(R)>{&micro<(R + 1 < kMr || kFifteen ? R + 1 : kMr - 1), L, Bc>...};
}
template <ALayout L, DotBroadcast Bc>
constexpr auto kMicro = micro_table<L, Bc>(std::make_integer_sequence<int, kMr>{});
const std::array<Micro, kMr>& micro_tiles(ALayout layout, DotBroadcast b) {
  using enum DotBroadcast;
  if (layout == ALayout::pairs)
    return b == in_register ? kMicro<ALayout::pairs, in_register> : kMicro<ALayout::pairs, in_instruction>;
  return b == in_register ? kMicro<ALayout::rows, in_register> : kMicro<ALayout::rows, in_instruction>;
}

std::atomic<int> g_broadcast{-1};  // DotBroadcast, or -1: not yet chosen

// HEIRLOOM_DOT_BROADCAST=instruction|register, else a register on AMD's family 1Ah (Zen 5) and later: there the
// protocol's steps took 0.954–0.958 of their time with it (`heirloom bench --experiment`, bench/RESULTS.md,
// twelfth session). A Zen 4 ran its tiles faster with the broadcast inside the instruction (cde7ca7), and other
// CPUs were not measured: they keep that. Another value is warned of and ignored, not thrown: the first product
// may run inside a parallel region, where an exception ends the process.
DotBroadcast chosen_broadcast() {
  if (const char* e = std::getenv("HEIRLOOM_DOT_BROADCAST"); e && *e) {
    if (std::string(e) == "register") return DotBroadcast::in_register;
    if (std::string(e) == "instruction") return DotBroadcast::in_instruction;
    std::fprintf(stderr, "heirloom: HEIRLOOM_DOT_BROADCAST is '%s', not 'register' or 'instruction': ignored\n", e);
  }
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return DotBroadcast::in_instruction;
  const bool amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "AuthenticAMD"
  if (!amd || !__get_cpuid(1, &a, &b, &c, &d)) return DotBroadcast::in_instruction;
  const unsigned base = (a >> 8) & 0xf, family = base + (base == 0xf ? (a >> 20) & 0xff : 0);
  return family >= 0x1a ? DotBroadcast::in_register : DotBroadcast::in_instruction;
}

}  // namespace

DotBroadcast dot_broadcast() {
  int b = g_broadcast.load(std::memory_order_relaxed);
  if (b < 0) g_broadcast.store(b = (int)chosen_broadcast(), std::memory_order_relaxed);
  return (DotBroadcast)b;
}

void set_dot_broadcast(DotBroadcast b) { g_broadcast.store((int)b, std::memory_order_relaxed); }

int dot_task_rows() { return kTaskTiles * tile_rows(dot_broadcast()); }

int pair_stride(int words) {
  const int lines = (words + 15) / 16;
  return (lines + 1 + (lines % 2 == 1)) * 16;
}

void dot_gemm(int M, const PackedB& B, float* C, int ldc, bool accumulate, ALayout layout, const ConvertRows& convert,
              const uint32_t* given, int64_t given_ld, const RankUpdate* rank, uint16_t* C16, bool repeatable) {
  if (rank && !fusable_in_panels(*rank, B.N))
    throw Error("internal: a rank update off the product's panels", "report this as a bug");
  if (C16 && (C || accumulate)) throw Error("internal: a bf16 output beside an fp32 one, or added to", "report this as a bug");
  const DotBroadcast bc = dot_broadcast();
  const int mr = tile_rows(bc), task_rows = kTaskTiles * mr;
  const int Kp = B.Kp, J = Kp / 2, Mp = (M + 15) / 16 * 16, panels = B.Np / kNr;
  int row_tasks = (M + task_rows - 1) / task_rows;
  // A B that stays in L2 is walked row block by row block (the rows then come from L1), and the first row
  // block's tasks (one per panel) fetch the next product's weight (core/fetch_ahead.h), a panel's bytes each.
  // A larger B (the head's) is walked panel by panel, each panel's first micro-tile fetching the next panel.
  const bool rows_first = (int64_t)Kp * B.Np * 2 <= kRowsFirstBytes;
  const int threads = omp_get_max_threads();
  const bool one_thread = in_team() || threads == 1 || row_tasks * panels == 1 || (int64_t)M * B.Np * Kp < (1 << 16);
  // On one thread (an expert's products), a last row task of at most half a task's rows joins the one before it:
  // each panel then comes into L1 once for all of them, and the joined task's micro-tiles have even heights (64
  // rows, the protocol's experts: 13 + 13 + 13 + 13 + 12, not 14 + 14 + 14 + 14, then 8 with every panel again).
  // The protocol's steps took 0.995–0.998 of their time in six trials (`heirloom bench --experiment`, nineteenth
  // session); the same bits.
  if (one_thread && row_tasks >= 2 && M - (row_tasks - 1) * task_rows <= task_rows / 2) --row_tasks;
  const int tasks = row_tasks * panels;
  // A B at least one and a half times A's width (the q, k, v product: 768 columns, the protocol's 256 rows or the
  // forward's 512) is split by its columns instead, where A may be converted more than once (`repeatable`, or
  // given): each thread converts all of A and multiplies it by its own share of B's panels, row block by row
  // block, fetching only that share of B from memory, not all of it. The protocol's bf16 steps took 0.993–0.995
  // of their time (`heirloom bench --experiment`, three trials, eighteenth session), the 1x512 forward 0.990–0.995
  // (five); with the rows converted once, a share per thread, and a barrier, 0.999–1.005 of the time of converting
  // them twice. Split so wherever B is as wide as A (adding the output product and the q, k, v input gradient),
  // the steps took 1.004–1.010: A's conversion doubles.
  const bool columns = !one_thread && rows_first && panels >= threads && 3 * M <= 2 * B.N && (repeatable || given);
  // Else each thread converts its own rows and multiplies them by all of B (see below).
  const bool shares = !columns && !one_thread && rows_first && row_tasks >= 2 * threads;
  const bool pairs = layout == ALayout::pairs, convert_here = given == nullptr;
  // In the pairs layout, share t's words start on a cache line of their own, `shift` words to the right of
  // its first row: the threads would otherwise write the same line of every pair as they convert side by side.
  auto first_task = [&](int t) { return (int)((int64_t)row_tasks * t / threads); };
  const bool shifted = pairs && shares && convert_here;
  auto shift_of = [&](int t) { return shifted ? 16 * t + (16 - first_task(t) * task_rows % 16) % 16 : 0; };
  auto shift_of_task = [&](int rt) {  // the shift of the share that owns row task rt
    int t = 0;
    while (shifted && t + 1 < threads && rt >= first_task(t + 1)) ++t;
    return shift_of(t);
  };
  // A's rows (or k-pairs) an odd number of cache lines apart: rows of 512 or 1024 values (a power of two bytes
  // apart) would all fall in the same few L1 sets, and a micro-tile reads 15 of them at once (or walks the pairs).
  const int64_t ja = !convert_here ? given_ld : pairs ? pair_stride(Mp + (shares ? 16 * threads : 0))
                                                      : pair_stride(Kp / 2);  // in words
  const int lda = pairs ? (int)ja : 2 * (int)ja;  // as convert takes it
  thread_local std::vector<uint16_t> abuf;  // per calling thread: callers may multiply inside parallel regions
  const size_t need = convert_here ? (size_t)(pairs ? J : Mp) * ja * 2 : 0;
  if (abuf.size() < need) abuf.resize(need);
  uint16_t* a16 = abuf.data();
  const uint32_t* a = convert_here ? reinterpret_cast<const uint32_t*>(a16) : given;
  const uint32_t* b = reinterpret_cast<const uint32_t*>(B.data.data());
  const FetchAhead ahead = take_fetch_ahead(M);
  const int64_t panel_words = (int64_t)2 * J * kWords;
  // An output written over (not added to) goes around the caches: it is read by a later op, often after the
  // products of other experts or layers, and write-allocating it evicted this product's weight and rows
  // (BM_expert_product_cache, outputs cycled, 250 rows: 365 GFLOP/s, 384-406 streamed; bench/RESULTS.md). Each task
  // fences its streamed lines before the product returns or another thread reads them.
  const bool stream = !outputs_cached() && (C16 ? reinterpret_cast<uintptr_t>(C16) % 64 == 0 && ldc % 32 == 0
                                                : can_stream(C, ldc, accumulate));
  // Row m, column col of the output, in whichever type it holds.
  auto out_at = [&](int m, int col) -> void* {
    const int64_t i = (int64_t)m * ldc + col;
    return C16 ? static_cast<void*>(C16 + i) : static_cast<void*>(C + i);
  };
  const auto& micro = micro_tiles(layout, bc);
  auto task = [&](int rt, int p, int shift, const uint32_t* a) {
    const int r0 = rt * task_rows, r1 = rt == row_tasks - 1 ? M : r0 + task_rows;  // the last: joined, or short
    const int col = p * kNr, w = std::min(kNr, B.N - col);
    const uint32_t* b0 = b + p * panel_words;
    const uint32_t* next = !rows_first && r0 == 0 && p + 1 < panels ? b0 + panel_words : nullptr;
    if (rows_first && r0 == 0 && (int64_t)p * panel_words * 4 < ahead.bytes)
      next = reinterpret_cast<const uint32_t*>(ahead.p) + p * panel_words;
    const RankTiles parts = panel_parts(rank, col);
    // The task's rows in tiles of even heights: the 16 rows left of 256 (four tasks of 60 before them) ran as
    // 15 + 1, and a tile of one row waits on its two chains (8 + 8: the protocol's steps took 0.996–0.999 of
    // their time in three trials). Attention's small products (small_tiles) take even heights too.
    const RowTiles tiles(r1 - r0, mr);
    for (int i = 0; i < tiles.n; ++i) {
      const int m = r0 + tiles.start(i), h = tiles.start(i + 1) - tiles.start(i);
      micro[h - 1](a + (pairs ? m + shift : (int64_t)m * ja), ja, J, b0, (int64_t)J * kWords, out_at(m, col), ldc,
                   first_columns(w), first_columns(w - 16), accumulate, i == 0 ? next : nullptr, stream,
                   parts.n ? &parts : nullptr, m, C16 != nullptr);
    }
    if (stream) _mm_sfence();
  };
  auto run = [&](int t) { rows_first ? task(t / panels, t % panels, 0, a) : task(t % row_tasks, t / row_tasks, 0, a); };
  if (one_thread) {
    if (convert_here) convert(0, Mp, a16, lda);
    for (int t = 0; t < tasks; ++t) run(t);
    return;
  }
  if (shares) {
    // No barrier, no rows from another core but what a thread that finished first takes from the other's last
    // row tasks.
    parallel_shares(row_tasks, panels, false, [&](int t, int) {
      if (convert_here)
        convert(first_task(t) * task_rows, std::min(Mp, first_task(t + 1) * task_rows), a16 + 2 * shift_of(t), lda);
    }, [&](int64_t u) { task((int)(u / panels), (int)(u % panels), shift_of_task((int)(u / panels)), a); });
    return;
  }
  if (columns) {  // each thread a share of the panels by its pace (core/paced_split.h)
    run_paced(panels, threads, [&](int) {
      if (convert_here) {  // into the running thread's own buffer
        if (abuf.size() < need) abuf.resize(need);
        convert(0, Mp, abuf.data(), lda);
      }
    }, [&](int, int64_t p0, int64_t p1) {
      const uint32_t* own = convert_here ? reinterpret_cast<const uint32_t*>(abuf.data()) : a;
      for (int rt = 0; rt < row_tasks; ++rt)
        for (int p = (int)p0; p < (int)p1; ++p) task(rt, p, 0, own);
    });
    return;
  }
  // Every task reads rows from every thread's conversion (which may be costly: the head's backward makes each
  // row of its A as it converts it): all rows first, then the tasks.
  if (convert_here) parallel_for(Mp / 16, true, [&](int64_t r) { convert((int)r * 16, (int)r * 16 + 16, a16, lda); });
  parallel_for(tasks, true, [&](int64_t t) { run((int)t); });
}

namespace {
// dot_gemm_small's loop for A in either layout: a pairs-layout tile starts m words in, a rows-layout one m rows.
void small_tiles(int M, int N, int K, const uint32_t* a, int64_t ja, ALayout layout, const PackedB& B, float* C,
                 int ldc, bool accumulate) {
  // a is zero past K, so an odd K's last pair multiplies B's next row by zero.
  const int J = (K + 1) / 2, JB = B.Kp / 2;
  const uint32_t* b = reinterpret_cast<const uint32_t*>(B.data.data());
  const DotBroadcast bc = dot_broadcast();
  const int mr = tile_rows(bc);
  const auto& micro = micro_tiles(layout, bc);
  const bool pairs = layout == ALayout::pairs;
  // Tiles of even heights, as dot_gemm's tasks: attention's Sᵀ and dPᵀ (M = a block's keys) ended in a tile of
  // 2 rows at 128 keys, 4 at 256, which waits on its few chains. The protocol's steps took 0.996–1.001 of their
  // time in ten trials, nine below 1 (`heirloom bench --experiment`, nineteenth session); the same bits.
  const RowTiles tiles(M, mr);
  for (int col = 0; col < N; col += kNr) {
    const uint32_t* b0 = b + (int64_t)(col / 16) * JB * kWords;
    const int w = std::min(kNr, N - col);
    for (int i = 0; i < tiles.n; ++i) {
      const int m = tiles.start(i), h = tiles.start(i + 1) - m;
      micro[h - 1](a + (pairs ? m : m * ja), ja, J, b0, (int64_t)JB * kWords, C + (int64_t)m * ldc + col, ldc,
                   first_columns(w), first_columns(w - 16), accumulate, nullptr, false, nullptr, 0, false);
    }
  }
}
}  // namespace

void dot_gemm_small(int M, int N, int K, const uint16_t* a, int lda, const PackedB& B, float* C, int ldc,
                    bool accumulate) {
  small_tiles(M, N, K, reinterpret_cast<const uint32_t*>(a), lda / 2, ALayout::rows, B, C, ldc, accumulate);
}

void dot_gemm_small_pairs(int M, int N, int K, const uint32_t* a, int64_t ja, const PackedB& B, float* C, int ldc,
                          bool accumulate) {
  small_tiles(M, N, K, a, ja, ALayout::pairs, B, C, ldc, accumulate);
}

}  // namespace heirloom
