// See huge_pages.h and heirloom/cache_line.h.
#include "core/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace heirloom {

void advise_huge_pages(const void* p, size_t bytes) {
  if (bytes < 2 * kHugePageBytes) return;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p), first = (a + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes,
                  last = (a + bytes) / kHugePageBytes * kHugePageBytes;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);  // advice: a refusal is harmless
}

namespace {

constexpr size_t kPooledFrom = size_t{64} << 10;  // smaller blocks: the heap's own
constexpr size_t kSlabBytes = 16 * kHugePageBytes;

// Pooled sizes rounded up to a quarter of their power of two (at most a quarter more), so that blocks freed by
// one trainer's packs or one batch shape's buffers serve the next of a similar size.
size_t size_class(size_t bytes) {
  size_t top = kPooledFrom;
  while (top * 2 <= bytes) top *= 2;
  const size_t step = top / 4;
  return (bytes + step - 1) / step * step;
}

// Mid-size blocks carved from 32 MB slabs advised onto huge pages before anything touches them; a freed block
// waits for the next of its size class. Slabs are never given back: the process keeps at most what it once
// held at a time of each class.
struct Pool {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free_blocks;
  char* next = nullptr;
  size_t left = 0;

  void* take(size_t cls) {
    std::lock_guard<std::mutex> lock(mu);
    auto& list = free_blocks[cls];
    if (!list.empty()) {
      void* p = list.back();
      list.pop_back();
      return p;
    }
    if (left < cls) {
      void* slab = std::aligned_alloc(kHugePageBytes, kSlabBytes);
      if (!slab) throw std::bad_alloc();
      madvise(slab, kSlabBytes, MADV_HUGEPAGE);  // advice: a refusal is harmless
      next = static_cast<char*>(slab);
      left = kSlabBytes;  // the old slab's tail (under one block) stays unused
    }
    void* p = next;
    next += cls;
    left -= cls;
    return p;
  }
  void give(void* p, size_t cls) {
    std::lock_guard<std::mutex> lock(mu);
    free_blocks[cls].push_back(p);
  }
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: blocks may be freed by static destructors after main
  return *p;
}

bool pooled(size_t bytes) { return bytes >= kPooledFrom && bytes < 2 * kHugePageBytes; }

}  // namespace

void* allocate_cache_lines(size_t bytes) {
  if (pooled(bytes)) return pool().take(size_class(bytes));
  void* p = ::operator new(bytes, std::align_val_t{64});
  advise_huge_pages(p, bytes);  // a base's head and a large batch's buffers: before anything touches them
  return p;
}

void free_cache_lines(void* p, size_t bytes) {
  if (!p) return;
  if (pooled(bytes)) return pool().give(p, size_class(bytes));
  ::operator delete(p, std::align_val_t{64});
}

}  // namespace heirloom
