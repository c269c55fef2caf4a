// Linear layer forward/backward on gemm(). See matmul.h.
#include "ops/matmul.h"

#include "core/fetch_ahead.h"
#include "core/gemm.h"
#include "heirloom/error.h"

namespace heirloom {

PackedWeight pack_weight(const float* weight, int O, int I, bool bf16, bool backward) {
  PackedWeight p;
  if (bf16) {
    p.fwd = pack_b_bf16(weight, I, true, I, O);
    if (backward) p.bwd = pack_b_bf16(weight, I, false, O, I);
  } else {
    p.fwd32 = pack_b_f32(weight, I, true, I, O);
    if (backward) p.bwd32 = pack_b_f32(weight, I, false, O, I);
  }
  return p;
}

void repack_weight(PackedWeight& p, const float* weight, int O, int I) {
  if (p.bf16()) {
    if (p.fwd.K != I || p.fwd.N != O) throw Error("internal: repacking a bf16 weight into a pack of another shape");
    pack_b_bf16_into(p.fwd, weight, I, true);
    if (p.has_backward()) pack_b_bf16_into(p.bwd, weight, I, false);
  } else {
    if (p.fwd32.K != I || p.fwd32.N != O) throw Error("internal: repacking an fp32 weight into a pack of another shape");
    pack_b_f32_into(p.fwd32, weight, I, true);
    if (p.has_backward()) pack_b_f32_into(p.bwd32, weight, I, false);
  }
}

void repack_weight_rows(PackedWeight& p, const float* weight, int O, int I, int r0, int r1) {
  if (!p.bf16() || p.fwd.K != I || p.fwd.N != O) throw Error("internal: repacking rows of a weight with no bf16 pack of its shape");
  pack_b_bf16_rows(p.fwd, weight, I, true, r0, r1);
  if (p.has_backward()) pack_b_bf16_rows(p.bwd, weight, I, false, r0, r1);
}

void fetch_weight_ahead(const PackedWeight* p, const float* weight, int64_t floats, bool backward) {
  if (!p) return fetch_ahead(weight, weight ? floats * (int64_t)sizeof(float) : 0);
  if (p->bf16()) {
    const PackedB& b = backward ? p->bwd : p->fwd;
    return fetch_ahead(b.data.data(), (int64_t)b.data.size() * sizeof(uint16_t));
  }
  const PackedF32& b = backward ? p->bwd32 : p->fwd32;
  fetch_ahead(b.data.data(), (int64_t)b.data.size() * sizeof(float));
}

void matmul_forward(float* out, int ldo, const float* inp, int ldi, const float* weight, int N, int I, int O,
                    bool accumulate, const PackedWeight* packed, const RankUpdate* rank) {
  if (packed && packed->bf16()) return gemm_bf16(N, inp, ldi, packed->fwd, out, ldo, accumulate, rank);
  if (packed) gemm_f32_packed(N, inp, ldi, packed->fwd32, out, ldo, accumulate);
  else gemm(false, true, N, O, I, 1.f, inp, ldi, weight, I, accumulate ? 1.f : 0.f, out, ldo);
  if (rank) apply_rank_update(*rank, out, ldo, N);
}

void matmul_backward(float* dinp, int ldi_d, float* dweight, const float* dout, int ldo, const float* inp, int ldi,
                     const float* weight, int N, int I, int O, const PackedWeight* packed, bool write_dinp,
                     bool write_dweight, const RankUpdate* rank) {
  if (rank && !dinp) throw Error("internal: a rank update on an input gradient not asked for", "report this as a bug");
  const bool bf16 = packed && packed->bf16();
  if (dinp && bf16) gemm_bf16(N, dout, ldo, packed->bwd, dinp, ldi_d, !write_dinp, rank);
  else if (dinp && packed) gemm_f32_packed(N, dout, ldo, packed->bwd32, dinp, ldi_d, !write_dinp);
  else if (dinp) gemm(false, false, N, I, O, 1.f, dout, ldo, weight, I, write_dinp ? 0.f : 1.f, dinp, ldi_d);
  if (rank && !bf16) apply_rank_update(*rank, dinp, ldi_d, N);
  if (dweight && bf16) gemm_bf16_tn(O, I, N, dout, ldo, inp, ldi, dweight, I, !write_dweight);
  else if (dweight) gemm(true, false, O, I, N, 1.f, dout, ldo, inp, ldi, write_dweight ? 0.f : 1.f, dweight, I);
}

void matmul_forward_ref(float* out, int ldo, const float* inp, int ldi, const float* weight, int N, int I, int O,
                        bool accumulate) {
  gemm_ref(false, true, N, O, I, 1.f, inp, ldi, weight, I, accumulate ? 1.f : 0.f, out, ldo);
}

void matmul_backward_ref(float* dinp, int ldi_d, float* dweight, const float* dout, int ldo, const float* inp,
                         int ldi, const float* weight, int N, int I, int O) {
  if (dinp) gemm_ref(false, false, N, I, O, 1.f, dout, ldo, weight, I, 1.f, dinp, ldi_d);
  if (dweight) gemm_ref(true, false, O, I, N, 1.f, dout, ldo, inp, ldi, 1.f, dweight, I);
}

}  // namespace heirloom
