// The next product's weights, fetched into L2 while this one multiplies. An expert's weights (256 KB in bf16)
// are rarely still cached when a step reaches them: 192 of them, more than the L3 holds. A product that waits
// for its weight at its start runs at the memory's pace; one that fetched it during the product before
// finds it in L2.
#pragma once
#include <cstdint>

namespace heirloom {

// The bytes [p, p + bytes) are fetched into L2 by the next packed product this thread runs (gemm_bf16,
// gemm_f32_packed and the products on their kernels), spread over its first row block when its own weight fits
// L2; that product clears the hint, used or not (AMX tiles, larger weights). Results never depend on it.
void fetch_ahead(const void* p, int64_t bytes);

// The pending hint, cleared as it is taken; empty when there is none or when the product taking it has fewer
// than kFetchAheadRows rows. Such a product (generation's one row) reads its own weight at the memory's pace,
// with too little arithmetic to hide a second one behind.
constexpr int kFetchAheadRows = 16;
struct FetchAhead {
  const char* p = nullptr;
  int64_t bytes = 0;
};
FetchAhead take_fetch_ahead(int rows);

}  // namespace heirloom
