// Token embedding: a row gather from wte[V, C] and its scatter-add gradient.
// Token ids are validated by the caller (model edge); the op assumes 0 <= id < V.
#pragma once
#include <cstdint>

namespace heirloom {

// out[N, C] = wte[tokens[n], :]
void embed_forward(float* out, const int32_t* tokens, const float* wte, int N, int C);
// dwte[tokens[n], :] += dout[n, :]   (serial over rows: deterministic, and cheap next to the GEMMs)
void embed_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C);

void embed_forward_ref(float* out, const int32_t* tokens, const float* wte, int N, int C);
void embed_backward_ref(float* dwte, const float* dout, const int32_t* tokens, int N, int C);

}  // namespace heirloom
