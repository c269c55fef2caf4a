// The bf16 GEMM for CPUs with AVX512-BF16 but no AMX (AMD Zen 4 and later, Intel Cooper Lake): the same packed
// B as the AMX tiles, multiplied with vdpbf16ps dot products in registers. Internal to core/gemm_bf16.cpp.
#pragma once
#include <cstdint>
#include <functional>

#include "core/gemm_bf16.h"
#include "core/rank_update.h"

namespace heirloom {

// How a micro-tile gives vdpbf16ps a row's k-pair: broadcast from memory inside each instruction (fifteen rows a
// tile), or broadcast once into a register that both instructions read (fourteen). The bits are the same; the
// speed is the CPU's: dot_broadcast() picks a register on AMD's Zen 5 (family 1Ah) and later, the instruction
// elsewhere, HEIRLOOM_DOT_BROADCAST=register|instruction overriding; set_dot_broadcast() for tests and trials.
enum class DotBroadcast { in_instruction, in_register };
DotBroadcast dot_broadcast();
void set_dot_broadcast(DotBroadcast b);
// Rows per task of dot_gemm under the current broadcast: four micro-tiles (60 or 56).
int dot_task_rows();

// How dot_gemm holds bf16(A): rows = row r at r·ld values (B.Kp of them); pairs = k-pair j of every row as
// one row of 32-bit words at j·ld words, word r = bf16(A[r][2j]) | bf16(A[r][2j + 1]) << 16 (B.Kp / 2 such
// rows): what two rows of a stored Aᵀ make with no transpose (the weight gradients' doutᵀ).
enum class ALayout { rows, pairs };

// Writes rows [r0, r1) of bf16(A) in the layout dot_gemm asked for, at out with stride ld (zero beyond K; rows
// ≥ M all zeros), and no other row: threads convert their own ranges side by side.
using ConvertRows = std::function<void(int r0, int r1, uint16_t* out, int ld)>;

// C[M, N] (+)= bf16(A) · B, A supplied by convert, or `given` already in the layout (stride given_ld words; then
// convert is not called). Every output element is one dot-product chain over the k-pairs in order, whatever the
// layout. With `rank` (its parts on the 32-column panels: fusable_in_panels), that update is added as each
// micro-tile stores its rows (core/rank_update.h). With C16 (and C null, not accumulating), C is written in bf16
// there instead, each value the fp32 one rounded to nearest even. `repeatable`: convert may be asked for the
// same rows more than once (it has no side effects, as a plain conversion); else each row is asked for once.
void dot_gemm(int M, const PackedB& B, float* C, int ldc, bool accumulate, ALayout layout, const ConvertRows& convert,
              const uint32_t* given = nullptr, int64_t given_ld = 0, const RankUpdate* rank = nullptr,
              uint16_t* C16 = nullptr, bool repeatable = false);

// gemm_bf16_small (core/gemm_bf16.h) on dot products: the calling thread only, no tiles to configure.
void dot_gemm_small(int M, int N, int K, const uint16_t* a, int lda, const PackedB& B, float* C, int ldc,
                    bool accumulate);
// The same with A in the pairs layout (ALayout::pairs): pair j of row m at a[j·ja + m], zero past K.
void dot_gemm_small_pairs(int M, int N, int K, const uint32_t* a, int64_t ja, const PackedB& B, float* C, int ldc,
                          bool accumulate);

}  // namespace heirloom
