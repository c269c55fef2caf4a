// Token embedding forward/backward. See embed.h.
#include "ops/embed.h"

#include <cstring>

#include "core/parallel.h"

namespace heirloom {

void embed_forward(float* out, const int32_t* tokens, const float* wte, int N, int C) {
  parallel_blocks(N, 16, (int64_t)N * C >= kSplitValues, [&](int64_t r0, int64_t r1) {
    for (int64_t n = r0; n < r1; ++n) std::memcpy(out + n * C, wte + (int64_t)tokens[n] * C, sizeof(float) * C);
  });
}

void embed_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  for (int n = 0; n < N; ++n) {
    float* d = dwte + (int64_t)tokens[n] * C;
    const float* g = dout + (int64_t)n * C;
    for (int c = 0; c < C; ++c) d[c] += g[c];
  }
}

void embed_forward_ref(float* out, const int32_t* tokens, const float* wte, int N, int C) {
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) out[(int64_t)n * C + c] = wte[(int64_t)tokens[n] * C + c];
}

void embed_backward_ref(float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) dwte[(int64_t)tokens[n] * C + c] += dout[(int64_t)n * C + c];
}

}  // namespace heirloom
