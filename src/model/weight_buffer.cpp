// WeightBuffer's allocation. See include/heirloom/weight_buffer.h.
#include "heirloom/weight_buffer.h"

#include "core/huge_pages.h"

namespace heirloom {

void WeightBuffer::assign(size_t n, float v) {
  keeper_.reset();
  if (owned_.capacity() < n) {  // fresh memory, asked for on huge pages before anything touches it
    owned_ = std::vector<float>();
    owned_.reserve(n);
    advise_huge_pages(owned_.data(), n * sizeof(float));
  }
  owned_.assign(n, v);
  point_at_owned();
}

}  // namespace heirloom
