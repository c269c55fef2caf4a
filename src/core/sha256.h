// SHA-256 (FIPS 180-4), for corpus manifests and content checksums. Small and dependency-free.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace heirloom {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex();  // finishes the hash; the object is spent afterwards

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view s);

}  // namespace heirloom
