// Wall time of a step's parts (the norms, attention, the experts, the head, ...), so `heirloom bench --ops` can
// show where a step's time goes against the FLOPs each part issues: which part keeps a step below the GEMM
// peak. Off, at the cost of one flag test per part, unless an OpClock is alive.
// A part is timed on the thread that runs the step (a TimedOp made inside a team is ignored), without the time
// of the parts timed inside it. The products that run while a part is the innermost one, on any thread, add
// their FLOPs to it, as core/product_time.h counts them (as issued; a product inside another once). Without a
// ProductClock alive they read no clock for it: run the parts apart from the product clock, whose two clock
// reads per product would be counted in the parts of many small products (attention's).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace heirloom {

struct OpTime {
  struct Part {
    std::string name;
    double seconds = 0;  // wall time, without the parts timed inside it
    double flop = 0;     // the products' FLOPs while it was the innermost part
    int64_t calls = 0;
  };
  std::vector<Part> parts;  // in the order they were first met
};

class OpClock {  // counts while alive; one at a time, made outside the teams
 public:
  OpClock();
  ~OpClock();
  OpClock(const OpClock&) = delete;
  OpClock& operator=(const OpClock&) = delete;
  OpTime read() const;  // totals since construction (read when no part is running)
};

class TimedOp {  // times the scope it lives in as the part `name` (a string literal: kept by address)
 public:
  explicit TimedOp(const char* name);
  ~TimedOp();
  TimedOp(const TimedOp&) = delete;
  TimedOp& operator=(const TimedOp&) = delete;

 private:
  int index_ = -1;  // the part's slot, or -1: not counting
  TimedOp* outer_ = nullptr;
  std::chrono::steady_clock::time_point start_;
};

// A product's FLOPs, for the innermost part alive (core/product_time.cpp calls it); nothing when none is.
void add_op_flop(double flop);
bool op_clock_on();

}  // namespace heirloom
