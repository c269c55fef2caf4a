// Rotary position embedding, llama.cpp's NORM type: adjacent pairs (2i, 2i+1) of each head are rotated
// by angle pos · base^(−2i/D) (divided by freqs[i] when the model has frequency factors). Applied in place; backward rotates the gradient by the negative angle.
// The tables hold cos/sin for every position up to the model's context, computed once in double.
#pragma once
#include <vector>

namespace heirloom {

struct RopeTable {
  int n_ctx = 0, D = 0;
  float base = 0.f;
  std::vector<float> freqs;     // as given (empty = none)
  std::vector<float> cs;  // [n_ctx, D]: position p's pair i has cos at p·D + 2i, sin at p·D + 2i + 1
  bool matches(int n, int d, float b, const std::vector<float>& f) const { return n_ctx == n && D == d && base == b && freqs == f; }
};
RopeTable make_rope_table(int n_ctx, int D, float base, const std::vector<float>& freqs = {});

// x: B sequences of T rows, row stride ld, each row holds H heads of D; row t has position pos0 + t.
void rope_forward(float* x, int ld, const RopeTable& tab, int B, int T, int H, int D, int pos0);
void rope_backward(float* dx, int ld, const RopeTable& tab, int B, int T, int H, int D, int pos0);

void rope_forward_ref(float* x, int ld, float base, int B, int T, int H, int D, int pos0);
void rope_backward_ref(float* dx, int ld, float base, int B, int T, int H, int D, int pos0);

}  // namespace heirloom
