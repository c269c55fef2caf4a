// The server's adapters in memory: loaded lazily (from the registry, on first use), combined and
// prepared for per-row use, and kept in an LRU cache bounded in bytes. An entry evicted while requests
// still use it stays alive until they finish (shared ownership); only the cache forgets it.
#pragma once
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "heirloom/adapter.h"

namespace heirloom::serve {

struct CacheStats {
  int64_t hits = 0, misses = 0, evictions = 0, bytes = 0, limit = 0;
  int entries = 0;
};

class AdapterCache {
 public:
  using Loader = std::function<std::shared_ptr<const AppliedAdapters>()>;
  explicit AdapterCache(int64_t limit_bytes) : limit_(limit_bytes) {}
  // The entry for `key`, made by `load` on a miss (outside the lock: loads of different keys overlap).
  std::shared_ptr<const AppliedAdapters> get(const std::string& key, const Loader& load);
  CacheStats stats() const;

 private:
  struct Entry {
    std::shared_ptr<const AppliedAdapters> value;
    int64_t bytes = 0;
    std::list<std::string>::iterator order;
  };
  void evict_locked();
  const int64_t limit_;
  mutable std::mutex mu_;
  std::list<std::string> lru_;  // most recent first
  std::unordered_map<std::string, Entry> map_;
  CacheStats stats_;
};

// Memory an applied adapter holds (its combined buffer and, for a merged model, the model's weights).
int64_t applied_bytes(const AppliedAdapters& a);

}  // namespace heirloom::serve
