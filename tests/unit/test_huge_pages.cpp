// Large packs and an owned weight buffer are advised onto huge pages before anything touches them: the
// mapping that holds them carries the kernel's "hg" flag (/proc/self/smaps), where the kernel has
// transparent huge pages at all.
#include <gtest/gtest.h>

#include <cstdint>
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
  // A small buffer is not worth a huge page.
  std::vector<float, CacheLineAllocator<float>> small(size_t{64} << 10);  // 256 KB
  small[0] = 1.f;
  EXPECT_EQ(vm_flags_of(small.data()).find(" hg"), std::string::npos) << vm_flags_of(small.data());
}

}  // namespace
}  // namespace heirloom
