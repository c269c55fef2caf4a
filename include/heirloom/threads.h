// Thread count for the engine's OpenMP loops and the BLAS. Results are deterministic for a given count.
#pragma once

namespace heirloom {

void set_num_threads(int n);  // n <= 0: all cores
int num_threads();

}  // namespace heirloom
