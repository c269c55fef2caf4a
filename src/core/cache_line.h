// A std::vector allocator whose blocks start on a cache line: packed panels then never split a line on a
// load, and whole-line (streaming) stores can write them. Growing such a vector leaves its new elements
// uninitialised (the packs write every element they hold): zero-filling 116 MB of packs first, then packing
// over them, took half of packing the base. A workspace's buffers (model/workspace.h) use it for the same reason.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstring>
#include <new>

#include "core/huge_pages.h"

namespace heirloom {

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
    T* p = static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64}));
    advise_huge_pages(p, n * sizeof(T));  // a base's packs: before the packing touches them
    if (g_poison_new_blocks.load(std::memory_order_relaxed)) std::memset(static_cast<void*>(p), 0xFF, n * sizeof(T));
    return p;
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
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

}  // namespace heirloom
