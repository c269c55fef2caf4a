// See rank_update.h.
#include "core/rank_update.h"

#include "core/gemm.h"

namespace heirloom {

bool fusable_in_panels(const RankUpdate& u, int N) {
  for (int i = 0; i < u.n; ++i) {
    const RankPart& p = u.parts[i];
    if (p.c0 % 32 != 0 || (p.c1 % 32 != 0 && p.c1 != N) || p.c0 >= p.c1 || p.c1 > N || p.rank < 1) return false;
  }
  return true;
}

void apply_rank_update(const RankUpdate& u, float* C, int ldc, int M) {
  for (int i = 0; i < u.n; ++i) {
    const RankPart& p = u.parts[i];
    gemm(false, false, M, p.c1 - p.c0, p.rank, 1.f, p.U, (int)p.ldu, p.Bt, (int)p.ldbt, 1.f, C + p.c0, ldc);
  }
}

}  // namespace heirloom
