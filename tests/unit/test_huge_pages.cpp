// Large packs and an owned weight buffer are advised onto huge pages before anything touches them, and
// mid-size blocks (an expert's pack) come from slabs advised so: the mapping that holds them carries the
// kernel's "hg" flag (/proc/self/smaps), where the kernel has transparent huge pages at all.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "heirloom/cache_line.h"
#include "heirloom/weight_buffer.h"

namespace heirloom {
namespace {

// The VmFlags of the mapping that holds p, or "" when none does.
std::string vm_flags_of(const void* p) {
  std::ifstream in("/proc/self/smaps");
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = lo <= a && a < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

bool kernel_has_huge_pages() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  std::getline(in, modes);
  return !modes.empty() && modes.find("[never]") == std::string::npos;
}

TEST(HugePages, LargeBuffersAreAdvisedBeforeTheyAreTouched) {
  if (!kernel_has_huge_pages()) GTEST_SKIP() << "no transparent huge pages on this kernel";
  std::vector<float, CacheLineAllocator<float>> pack(size_t{6} << 20);  // 24 MB
  pack[pack.size() / 2] = 1.f;
  EXPECT_NE(vm_flags_of(pack.data() + pack.size() / 2).find(" hg"), std::string::npos)
      << vm_flags_of(pack.data() + pack.size() / 2);
  WeightBuffer w;
  w.assign(size_t{6} << 20, 0.5f);
  EXPECT_EQ(w[12345], 0.5f);
  EXPECT_NE(vm_flags_of(w.data() + w.size() / 2).find(" hg"), std::string::npos) << vm_flags_of(w.data() + w.size() / 2);
  // An expert's pack (256 KB) shares a slab on huge pages.
  std::vector<float, CacheLineAllocator<float>> expert(size_t{64} << 10);
  expert[0] = 1.f;
  EXPECT_NE(vm_flags_of(expert.data()).find(" hg"), std::string::npos) << vm_flags_of(expert.data());
}

// Blocks from the slabs start on cache lines, never overlap while held, hold what is written to them, and a
// freed block serves the next request of its size class.
TEST(HugePages, MidSizeBlocksAreDistinctAlignedAndReused) {
  const std::vector<size_t> sizes = {size_t{64} << 10, 70000, size_t{256} << 10, 300000, size_t{1} << 20, (size_t{4} << 20) - 64};
  std::vector<std::pair<unsigned char*, size_t>> held;
  for (int round = 0; round < 3; ++round)
    for (size_t i = 0; i < sizes.size(); ++i) {
      auto* p = static_cast<unsigned char*>(allocate_cache_lines(sizes[i]));
      ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << sizes[i];
      std::memset(p, (int)(held.size() + 1), sizes[i]);
      held.push_back({p, sizes[i]});
    }
  for (size_t i = 0; i < held.size(); ++i) {  // each block still holds its own byte: none overlapped another
    const auto [p, n] = held[i];
    EXPECT_EQ(p[0], (unsigned char)(i + 1));
    EXPECT_EQ(p[n - 1], (unsigned char)(i + 1));
    for (size_t j = i + 1; j < held.size(); ++j)
      EXPECT_TRUE(p + n <= held[j].first || held[j].first + held[j].second <= p) << i << " overlaps " << j;
  }
  unsigned char* freed = held[2].first;
  free_cache_lines(freed, sizes[2]);
  auto* again = static_cast<unsigned char*>(allocate_cache_lines(sizes[2] - 1000));  // the same size class
  EXPECT_EQ(again, freed);
  held[2].first = again;
  for (auto [p, n] : held) free_cache_lines(p, n);
  // Outside the pool: small blocks from the heap, still on a cache line.
  void* small = allocate_cache_lines(100);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small) % 64, 0u);
  free_cache_lines(small, 100);
}

}  // namespace
}  // namespace heirloom
