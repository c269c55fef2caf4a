// WeightBuffer's allocation. See include/heirloom/weight_buffer.h.
#include "heirloom/weight_buffer.h"

#include "core/huge_pages.h"

namespace heirloom {

void WeightBuffer::assign(size_t n, float v) {
  keeper_.reset();
  reserve_on_huge_pages(owned_, n);
  owned_.assign(n, v);
  point_at_owned();
}

}  // namespace heirloom
