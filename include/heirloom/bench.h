// `heirloom bench`: the engine's speed on a model's real shapes, with the machine's own sgemm peak
// measured on the same GEMM shapes so every throughput can be read as a fraction of what is possible.
#pragma once
#include <string>
#include <vector>

#include "heirloom/config.h"

namespace heirloom {

struct BenchOptions {
  std::string preset = "moe-30m";
  int batch = 8, seq = 128;  // training step shape
  int forward_len = 512;     // forward pass length (batch 1)
  int gen_tokens = 128;      // tokens generated after a 16-token prompt
  int repeats = 5;           // timed repetitions (after one warm-up)
  int lora_rank = 8;
  int personal_steps = 100, personal_seq = 256;  // the Bet 10 job: 100 norm-adapter steps of 256 tokens
  std::vector<std::string> only;  // task groups to run (sgemm, full, norm, lora, personalize, forward, generate); empty = all
  std::string precision = "both";  // rows in fp32, bf16 (where the CPU has AVX512-BF16) or both
  bool trace = false;  // the personalize task once more, each step timed, the instruction ceiling every kTraceSteps
  // A trial (core/experiment.h): that traced run alternates steps without and with experiment(name) on, each
  // pair of steps on one window. Implies trace.
  std::string experiment;
};

constexpr int kTraceSteps = 10;

// Whether step s of a trial runs with the experiment on: one step of each pair (2k, 2k + 1), the second in even
// pairs and the first in odd ones, so that neither half always comes second to the window.
inline bool trial_step_on(int s) { return (s % 2 == 1) != ((s / 2) % 2 == 1); }

struct BenchRow {
  std::string name;
  double ms = 0;         // median milliseconds per call
  double best_ms = 0, worst_ms = 0;  // the fastest and slowest timed call (--json): this VM's spread
  double tokens_per_s = 0;
  double gflop = 0;      // work per call (formula in the report)
  double gflops = 0;     // achieved GFLOP/s
  double peak_fraction = 0;     // of the measured GEMM peak in the row's own precision
  double ceiling_fraction = 0;  // of the instruction ceiling in that precision (0: not measured)
  // From one more run with the product clock on (core/product_time.h): the share of the machine's time
  // (wall × threads) spent inside matrix products, and the products' own rate over that time.
  double product_share = 0;
  double product_gflops = 0;  // products' FLOPs as issued / their time, for the whole machine
  struct Products {           // the same for one kernel's entry point (core/product_time.h ProductKind)
    std::string kind;
    double share = 0, gflops = 0;
  };
  std::vector<Products> products_by_kind;  // the kernels that ran, in ProductKind order
  struct ShapeProducts : Products {          // one kernel's products with the same N and K (--json only)
    int64_t N = 0, K = 0, calls = 0, rows = 0;  // rows = Σ M over the calls
  };
  std::vector<ShapeProducts> products_by_shape;  // the kShapesReported that took the most time, most first
  // From one more run with the part clock on, its parts (core/op_time.h: the norms, attention, the experts, the head, ...): each part's
  // wall time, its share of the run, and the FLOPs of the products run inside it (as issued); the last part,
  // "the rest", is the run's time outside them (the trainer's own work; a whole run's setup).
  struct Part {
    std::string name;
    double ms = 0, share = 0, gflop = 0, gflops = 0;
  };
  std::vector<Part> parts;
  std::string precision = "fp32";
  double setup_ms = 0;  // whole-run rows: of ms, the median time before the first step (packing the base, making the adapter)
  // --trace, whole-run rows: one more run (not among the timed ones), each step's milliseconds, and the
  // instruction ceiling in the row's arithmetic measured after every kTraceSteps steps (GFLOP/s, all threads):
  // whether a slow stretch of steps is the cores' (the ceiling falls with it) or the memory's (it does not).
  std::vector<double> step_ms, ceiling_trace;
  // --experiment: over the step pairs (A without, B with the change), the median of B/A and how many pairs
  // (those whose first step follows a ceiling measurement are left out: it evicted the caches), and each half's median.
  double experiment_ratio = 0, experiment_a_ms = 0, experiment_b_ms = 0;
  int experiment_pairs = 0;
  bool experiment_reached = false;  // some code asked experiment(NAME) in a B step (else a null trial)
};

struct BenchReport {
  std::string preset, cpu;
  int threads = 0;
  double sgemm_peak_gflops = 0;  // best measured fp32 GEMM GFLOP/s over the model's shapes (OpenBLAS or packed)
  double bf16_peak_gflops = 0;   // the same for the bf16 GEMM (0 without AVX512-BF16)
  std::string bf16_kernel;       // what bf16 runs on here: "AMX" or "AVX512-BF16" (empty without either)
  std::string blas_kernel;       // OpenBLAS's kernel (the sgemm rows)
  std::string gemm_fp32;         // what gemm() (the fp32 full step's products) runs on: "OpenBLAS" or "heirloom panels"
  // The instruction ceiling (bench/ceiling.h): register-only FMA and bf16 dot-product loops on all threads.
  double fp32_ceiling_gflops = 0, bf16_ceiling_gflops = 0;
  // The fp32 FMA ceiling on one thread, and the lowest ratio of all threads' to one thread's over the run's
  // measurements: about `threads` where each thread has a core's vector units to itself, near 1 where they share
  // them (SMT siblings, or a VM's vCPUs placed on one core, as this project's 2-vCPU VM sometimes is). 0 with one
  // thread or without AVX-512F.
  double fp32_ceiling_one_thread_gflops = 0, thread_scaling = 0;
  std::vector<BenchRow> gemm_rows, rows;
  std::vector<std::string> notes;  // FLOP formulas
};

BenchReport run_bench(const BenchOptions& opt, bool progress);
// The report as one SVG document (src/bench/bench_plot.cpp): each task's share of the GEMM peak, fp32 and bf16
// side by side, then each traced run's step times and instruction ceilings.
std::string bench_plot(const BenchReport& r);

}  // namespace heirloom
