// The instruction ceiling: how many multiply-add FLOPs the cores issue per second with every operand in a
// register (no loads, no stores), on all threads at once. A GEMM cannot beat it; how close the GEMM peak
// comes to it says how much the kernels leave to memory and loop overhead.
#pragma once

namespace heirloom {

// fp32 FMA on 512-bit registers (0 without AVX-512F) and bf16 pair dot products (vdpbf16ps, 0 without
// AVX512-BF16), in GFLOP/s over `threads` threads; the best of `repeats` runs of about 40 ms each.
double fma_ceiling_gflops(int threads, int repeats);
double bf16_dot_ceiling_gflops(int threads, int repeats);

}  // namespace heirloom
