// A std::vector allocator whose blocks start on a cache line: packed panels then never split a line on a
// load, and whole-line (streaming) stores can write them. Growing such a vector leaves its new elements
// uninitialised (the packs write every element they hold): zero-filling 116 MB of packs first, then packing
// over them, took half of packing the base. A workspace's buffers (model/workspace.h), the model's weights and a
// trainer's gradients and moments use it too: 512-bit loads of a buffer 16 bytes off a line each split two lines,
// and a product writes its output around the caches only into aligned rows (core/gemm_tile.h).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstring>
#include <new>
#include <vector>

namespace heirloom {

// Asks for huge pages on the whole 2 MB pages inside [p, p + bytes); only memory not yet touched benefits.
// Does nothing for buffers under two huge pages, or where the system says no. (src/core/huge_pages.cpp)
void advise_huge_pages(const void* p, size_t bytes);

// A block of `bytes` starting on a cache line, and its release (given the same size). Blocks of two huge pages
// or more are advised onto huge pages whole; blocks from 64 KB up to that come from slabs on huge pages,
// shared by the process (src/core/huge_pages.cpp), so that a base's packs (256 KB per expert matrix) and a
// short batch's activations are on 2 MB pages too.
void* allocate_cache_lines(size_t bytes);
void free_cache_lines(void* p, size_t bytes);

// For tests: while set, new blocks are filled with 0xFF bytes (NaN as floats, −1 as integers), so a value read
// before it is written shows in the results.
inline std::atomic<bool> g_poison_new_blocks{false};

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) {
    T* p = static_cast<T*>(allocate_cache_lines(n * sizeof(T)));
    if (g_poison_new_blocks.load(std::memory_order_relaxed)) std::memset(static_cast<void*>(p), 0xFF, n * sizeof(T));
    return p;
  }
  void deallocate(T* p, std::size_t n) { free_cache_lines(p, n * sizeof(T)); }
  template <class U>
  void construct(U* p) noexcept {  // default-initialised, not value-initialised: no zero fill
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(static_cast<Args&&>(args)...);
  }
  bool operator==(const CacheLineAllocator&) const { return true; }
};

// fp32 values starting on a cache line.
using AlignedFloats = std::vector<float, CacheLineAllocator<float>>;

}  // namespace heirloom
