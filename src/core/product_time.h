// Machine time spent inside matrix products, so `heirloom bench` can split a step into its products and
// everything else (what keeps a step below the GEMM peak). Off, at the cost of one flag test per product,
// unless a ProductClock is alive.
// A product counts its wall time × the threads it holds: all of OpenMP's threads when called outside a
// parallel region (the other cores wait on it even if it runs on one), one inside (experts in parallel,
// attention's per-head blocks). A product called from inside another counts once, as the outer one.
#pragma once
#include <chrono>
#include <cstdint>

namespace heirloom {

struct ProductTime {
  double core_seconds = 0;  // Σ wall time × threads held
  double flop = 0;          // 2·M·N·K of every product, as issued (masked attention blocks included)
};

class ProductClock {  // counts while alive; one at a time, made outside parallel regions
 public:
  ProductClock();
  ~ProductClock();
  ProductClock(const ProductClock&) = delete;
  ProductClock& operator=(const ProductClock&) = delete;
  ProductTime read() const;  // totals since construction (read when no product is running)
};

class TimedProduct {  // at the top of a product's entry point: times the call it lives in
 public:
  TimedProduct(int64_t M, int64_t N, int64_t K);
  ~TimedProduct();
  TimedProduct(const TimedProduct&) = delete;
  TimedProduct& operator=(const TimedProduct&) = delete;

 private:
  bool entered_ = false, counting_ = false;
  int threads_ = 1;
  double flop_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace heirloom
