// Linear layer without bias: out = inp · Wᵀ, W stored [O, I] (PyTorch order, GGUF ne = [I, O]).
// Row strides let a layer write into a slice of a wider buffer (q|k|v share one [N, (H+2Hkv)·D] buffer).
#pragma once

#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/rank_update.h"

#include <functional>

namespace heirloom {

// A frozen W [O, I] packed once for both products it takes part in: as bf16 k-pairs
// (core/gemm_bf16.h: AMX tiles or AVX512-BF16 dot products) or as fp32 panels (core/gemm_f32.h). Only one
// pair is filled.
struct PackedWeight {
  PackedB fwd;       // bf16: B = Wᵀ [I, O], for inp · Wᵀ
  PackedB bwd;       // bf16: B = W [O, I], for dout · W
  PackedF32 fwd32;   // fp32: the same two
  PackedF32 bwd32;
  bool bf16() const { return fwd.N > 0; }
  bool has_backward() const { return bwd.N > 0 || bwd32.N > 0; }
};
// backward = false: fwd only (inference); backward() refuses such packs.
PackedWeight pack_weight(const float* weight, int O, int I, bool bf16, bool backward = true);
void repack_weight(PackedWeight& p, const float* weight, int O, int I);  // in place, same shape and arithmetic
// Only rows [r0, r1) of the weight, on the calling thread (bf16 packs): r0 and r1 multiples of kRepackRows,
// or r1 = O. For an optimizer that repacks each block of rows right after updating it, while it is in cache.
constexpr int kRepackRows = 32;
void repack_weight_rows(PackedWeight& p, const float* weight, int O, int I, int r0, int r1);

// The next product on this thread multiplies by p's forward (backward) pack: it is fetched into L2 while the
// product that comes first runs (core/fetch_ahead.h). With no pack, the product packs `weight` (`floats` of
// them) per call, and that is fetched instead. Both null clears a pending hint.
void fetch_weight_ahead(const PackedWeight* p, const float* weight, int64_t floats, bool backward);

// out[N, O] (row stride ldo) = (accumulate ? out : 0) + inp[N, I] (row stride ldi) · weight[O, I]ᵀ
// With `packed` (the same W, packed), the product runs on the pack: in bf16 with fp32 accumulation, or fp32.
// With `rank`, that low-rank update is added to out after (core/rank_update.h; inside the bf16 product).
void matmul_forward(float* out, int ldo, const float* inp, int ldi, const float* weight, int N, int I, int O,
                    bool accumulate = false, const PackedWeight* packed = nullptr, const RankUpdate* rank = nullptr);
// dinp[N, I] += dout · W ; dweight[O, I] += doutᵀ · inp.  Either output may be null (skipped).
// A bf16 `packed` computes both in bf16 with fp32 accumulation: dinp on the packed W, dweight with dout and
// inp converted per call; an fp32 one computes dinp on the packed W. write_dinp: dinp = dout · W instead (saves clearing it first).
// write_dweight: dweight = doutᵀ · inp instead (its memory is not read: a weight gradient known to be zero).
// With `rank`, that low-rank update is added to dinp after its product, as matmul_forward adds it to out.
void matmul_backward(float* dinp, int ldi_d, float* dweight, const float* dout, int ldo, const float* inp, int ldi,
                     const float* weight, int N, int I, int O, const PackedWeight* packed = nullptr,
                     bool write_dinp = false, bool write_dweight = false, const RankUpdate* rank = nullptr);

// The product on p's forward pack (inp · Wᵀ) or, with backward, its backward pack (dout · W), with the left
// operand made a row at a time by row(r, values) (I or O values): those rows never go to memory
// (gemm_bf16_produced, gemm_f32_produced). row takes float* on fp32 packs and uint16_t* on bf16 packs (the row
// in bf16, as ops/vec_math.h's to_bf16 rounds it): the same values as the product of the rows stored.
template <class Row>
void packed_product_of_rows(const PackedWeight& p, bool backward, int N, Row&& row, float* out, int ldo,
                            bool accumulate) {
  if (p.bf16())
    return gemm_bf16_produced(N, [&](int r, uint16_t* values) { row(r, values); }, backward ? p.bwd : p.fwd, out, ldo,
                              accumulate);
  gemm_f32_produced(N, [&](int r, float* values) { row(r, values); }, backward ? p.bwd32 : p.fwd32, out, ldo,
                    accumulate);
}

void matmul_forward_ref(float* out, int ldo, const float* inp, int ldi, const float* weight, int N, int I, int O,
                        bool accumulate = false);
void matmul_backward_ref(float* dinp, int ldi_d, float* dweight, const float* dout, int ldo, const float* inp,
                         int ldi, const float* weight, int N, int I, int O);

}  // namespace heirloom
