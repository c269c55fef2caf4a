// Large buffers on 2 MB pages where the kernel gives them only on request (transparent huge pages in
// "madvise" mode, as on this project's Debian machines): the first touch of a 120 MB buffer then takes 60
// page faults instead of 30,000, each of which stalled the thread that touched it.
#pragma once
#include <cstddef>

#include "heirloom/cache_line.h"  // advise_huge_pages

namespace heirloom {

constexpr size_t kHugePageBytes = size_t{2} << 20;

// v with room for n elements: when it has less, its old values are dropped and fresh memory is reserved and
// advised before anything touches it (the caller then fills it).
template <class Vec>
void reserve_on_huge_pages(Vec& v, size_t n) {
  if (v.capacity() >= n) return;
  Vec().swap(v);
  v.reserve(n);
  advise_huge_pages(v.data(), n * sizeof(*v.data()));
}

}  // namespace heirloom
