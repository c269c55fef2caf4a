// The LRU adapter cache. See adapter_cache.h.
#include "serve/adapter_cache.h"

namespace heirloom::serve {

int64_t applied_bytes(const AppliedAdapters& a) {
  int64_t n = (int64_t)(a.buffer.size() * sizeof(float));
  for (const auto& layer : a.view.lora_a) n += (int64_t)(layer.size() * sizeof(void*));
  if (a.merged) n += (int64_t)(a.merged->data.size() * sizeof(float));
  return n + (int64_t)sizeof(AppliedAdapters);
}

std::shared_ptr<const AppliedAdapters> AdapterCache::get(const std::string& key, const Loader& load) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = map_.find(key); it != map_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.order);
      ++stats_.hits;
      return it->second.value;
    }
    ++stats_.misses;
  }
  std::shared_ptr<const AppliedAdapters> value = load();  // may throw: nothing is cached then
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = map_.find(key); it != map_.end()) return it->second.value;  // loaded meanwhile by another request
  lru_.push_front(key);
  Entry e{value, applied_bytes(*value), lru_.begin()};
  stats_.bytes += e.bytes;
  map_.emplace(key, std::move(e));
  evict_locked();
  return value;
}

// Drops least recently used entries until the bound holds; the newest entry stays even when alone it is
// larger than the bound (it is in use).
void AdapterCache::evict_locked() {
  while (stats_.bytes > limit_ && lru_.size() > 1) {
    const std::string victim = lru_.back();
    lru_.pop_back();
    auto it = map_.find(victim);
    stats_.bytes -= it->second.bytes;
    map_.erase(it);
    ++stats_.evictions;
  }
}

CacheStats AdapterCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  CacheStats s = stats_;
  s.limit = limit_;
  s.entries = (int)map_.size();
  return s;
}

}  // namespace heirloom::serve
