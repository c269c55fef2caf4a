// See huge_pages.h.
#include "core/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>

namespace heirloom {

void advise_huge_pages(const void* p, size_t bytes) {
  if (bytes < 2 * kHugePageBytes) return;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p), first = (a + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes,
                  last = (a + bytes) / kHugePageBytes * kHugePageBytes;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);  // advice: a refusal is harmless
}

}  // namespace heirloom
