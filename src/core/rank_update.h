// A low-rank update added to a product's output as the product stores it: LoRA's out += s·u·Bᵀ on the frozen
// layer's output and dx += du·A on its input gradient. Done after the product, the update read back and rewrote
// the whole output, which the product had just written around the caches (LoRA's step spent 2.2–2.4 % of its
// time there: bench/RESULTS.md); inside the product's last store the output never leaves its registers.
#pragma once
#include <array>
#include <cstdint>

namespace heirloom {

// C[r][c] += Σ_{k < rank} U[r·ldu + k] · Bt[k·ldbt + c − c0] for c in [c0, c1): each element one FMA chain
// over k in order from zero, then added to C (after the product, and after what it accumulated onto): the bits
// of gemm()'s rank-K update on the same operands.
struct RankPart {
  int c0 = 0, c1 = 0, rank = 0;
  const float* U = nullptr;
  int64_t ldu = 0;
  const float* Bt = nullptr;
  int64_t ldbt = 0;
};
// Parts applied in order (a column in several parts gets them one after another).
struct RankUpdate {
  static constexpr int kMaxParts = 4;
  std::array<RankPart, kMaxParts> parts;
  int n = 0;
  void add(const RankPart& p) { parts.at(n++) = p; }
};

// Whether dot_gemm can add u inside its micro-tiles on a product N columns wide: parts on its 32-column panels.
bool fusable_in_panels(const RankUpdate& u, int N);
// The update on rows [0, M) of C after the product (gemm()'s rank-K update; the paths that cannot fuse it).
void apply_rank_update(const RankUpdate& u, float* C, int ldc, int M);

}  // namespace heirloom
