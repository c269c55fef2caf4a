#include "core/fetch_ahead.h"

namespace heirloom {

namespace {
thread_local FetchAhead t_ahead;
}

void fetch_ahead(const void* p, int64_t bytes) { t_ahead = {static_cast<const char*>(p), p ? bytes : 0}; }

FetchAhead take_fetch_ahead(int rows) {
  const FetchAhead a = t_ahead;
  t_ahead = {};
  return rows >= kFetchAheadRows ? a : FetchAhead{};
}

}  // namespace heirloom
