// The model's flat fp32 weight buffer: either owned memory, or a copy-on-write view of an F32 model file
// that is memory-mapped (so loading such a base costs no copy, and processes that load the same file share
// its pages). Writes to a mapped buffer (merging an adapter, training in full) touch private copies of the
// pages they change; the file is never modified. Copying a buffer always gives owned memory.
#pragma once
#include <algorithm>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "heirloom/cache_line.h"

namespace heirloom {

class WeightBuffer {
 public:
  WeightBuffer() = default;
  WeightBuffer(const WeightBuffer& o) : owned_(o.begin(), o.end()) { point_at_owned(); }
  WeightBuffer& operator=(const WeightBuffer& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  WeightBuffer(WeightBuffer&& o) noexcept { *this = std::move(o); }
  WeightBuffer& operator=(WeightBuffer&& o) noexcept {
    owned_ = std::move(o.owned_);  // a vector's move keeps its storage, so data_ stays valid
    keeper_ = std::move(o.keeper_);
    data_ = o.data_;
    size_ = o.size_;
    o.owned_.clear();
    o.data_ = nullptr;
    o.size_ = 0;
    return *this;
  }

  // A view of n floats at `p`, kept alive by `keeper` (the mapping). p must be writable (a private mapping).
  static WeightBuffer view(std::shared_ptr<const void> keeper, float* p, size_t n) {
    WeightBuffer b;
    b.keeper_ = std::move(keeper);
    b.data_ = p;
    b.size_ = n;
    return b;
  }

  void assign(size_t n, float v);  // on huge pages when large (core/huge_pages.h)
  template <class It>
  void assign(It first, It last) {
    AlignedFloats copy(first, last);  // first..last may point into this buffer
    keeper_.reset();
    owned_ = std::move(copy);
    point_at_owned();
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  float* data() { return data_; }
  const float* data() const { return data_; }
  float& operator[](size_t i) { return data_[i]; }
  const float& operator[](size_t i) const { return data_[i]; }
  float* begin() { return data_; }
  float* end() { return data_ + size_; }
  const float* begin() const { return data_; }
  const float* end() const { return data_ + size_; }
  bool mapped() const { return keeper_ != nullptr; }

  friend bool operator==(const WeightBuffer& a, const WeightBuffer& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  void point_at_owned() {
    data_ = owned_.data();
    size_ = owned_.size();
  }
  AlignedFloats owned_;                 // empty when mapped; on cache lines (heirloom/cache_line.h)
  std::shared_ptr<const void> keeper_;  // the mapping, when mapped
  float* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace heirloom
