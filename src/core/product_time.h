// Machine time spent inside matrix products, so `heirloom bench` can split a step into its products and
// everything else (what keeps a step below the GEMM peak), and the products by kernel. Off, at the cost of
// one flag test per product, unless a ProductClock is alive.
// A product counts its wall time × the threads it holds: all of OpenMP's threads when called outside a
// parallel region (the other cores wait on it even if it runs on one), one inside (experts in parallel,
// attention's per-head blocks). A product called from inside another counts once, as the outer one.
#pragma once
#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

namespace heirloom {

// The entry points that time themselves.
enum class ProductKind {
  blas,              // gemm(): OpenBLAS, or the row-exact dot products
  f32_packed,        // gemm_f32_packed: fp32 on weights packed into panels
  f32_produced,      // gemm_f32_produced: the same with the rows it makes (the experts' SwiGLU rows)
  f32_panel,         // gemm_f32_panel: attention's small fp32 products
  bf16,              // gemm_bf16: AMX or AVX512-BF16 on packed weights
  bf16_produced,     // gemm_bf16_produced: with the rows it makes (the cross-entropy's)
  bf16_weight_grad,  // gemm_bf16_tn: weight gradients, both operands converted per call
  bf16_small,        // gemm_bf16_small: attention's small bf16 products (AMX or dot products)
  count
};
constexpr int kProductKinds = (int)ProductKind::count;
const char* product_kind_name(ProductKind k);

struct ProductTime {
  struct Part {
    double core_seconds = 0;  // Σ wall time × threads held
    double flop = 0;          // 2·M·N·K of every product, as issued (masked attention blocks included)
  };
  Part total;
  std::array<Part, kProductKinds> by_kind;
  struct Shape {  // every product of one kernel with the same N and K (M, the rows, varies: experts, blocks)
    ProductKind kind = ProductKind::blas;
    int64_t N = 0, K = 0;
    int64_t calls = 0, rows = 0;  // how many products, and Σ M
    Part part;
  };
  std::vector<Shape> by_shape;  // most core-seconds first
};

class ProductClock {  // counts while alive; one at a time, made outside parallel regions
 public:
  ProductClock();
  ~ProductClock();
  ProductClock(const ProductClock&) = delete;
  ProductClock& operator=(const ProductClock&) = delete;
  ProductTime read() const;  // totals since construction (read when no product is running)
};

// On a worker thread of a parallel region that a timed product opened: the products made here while it lives
// are parts of that one (which already counts every thread it holds), so they are not counted again.
class PartOfProduct {
 public:
  PartOfProduct();
  ~PartOfProduct();
  PartOfProduct(const PartOfProduct&) = delete;
  PartOfProduct& operator=(const PartOfProduct&) = delete;
};

class TimedProduct {  // at the top of a product's entry point: times the call it lives in
 public:
  TimedProduct(ProductKind kind, int64_t M, int64_t N, int64_t K);
  ~TimedProduct();
  TimedProduct(const TimedProduct&) = delete;
  TimedProduct& operator=(const TimedProduct&) = delete;

 private:
  bool entered_ = false, counting_ = false;
  ProductKind kind_ = ProductKind::blas;
  int threads_ = 1;
  int64_t M_ = 0, N_ = 0, K_ = 0;
  double flop_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace heirloom
