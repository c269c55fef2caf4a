// `heirloom bench`: engine speed on a preset's real shapes, against this machine's measured sgemm peak.
#include <cstdio>

#include "commands.h"
#include "heirloom/bench.h"

namespace heirloom::cli {

Action add_bench(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("bench", "measure training-step, forward and generation speed (random weights)");
  auto o = std::make_shared<BenchOptions>();
  sub->add_option("--preset", o->preset, "model preset")->capture_default_str();
  sub->add_option("--batch", o->batch, "training batch (sequences)")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--seq", o->seq, "training sequence length")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--forward-len", o->forward_len, "forward-pass length (batch 1)")->capture_default_str();
  sub->add_option("--gen-tokens", o->gen_tokens, "tokens to generate")->capture_default_str();
  sub->add_option("--repeats", o->repeats, "timed repetitions (median reported)")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--precision", o->precision, "rows in fp32, bf16 (where the CPU has AMX-BF16) or both")
      ->check(CLI::IsMember({"fp32", "bf16", "both"}))->capture_default_str();
  sub->add_option("--only", o->only, "run only these tasks: sgemm, full, norm, lora, personalize, forward, generate")
      ->check(CLI::IsMember({"sgemm", "full", "norm", "lora", "personalize", "forward", "generate"}))->delimiter(',');
  add_common_flags(*sub, common);
  return [o, &common] {
    const BenchReport r = run_bench(*o, !common.json);
    auto rows = [](const std::vector<BenchRow>& v) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& x : v)
        a.push_back({{"name", x.name}, {"ms", x.ms}, {"tokens_per_s", x.tokens_per_s}, {"gflop", x.gflop},
                     {"gflops", x.gflops}, {"peak_fraction", x.peak_fraction},
                     {"precision", x.precision}});
      return a;
    };
    if (common.json) {
      print_json({{"preset", r.preset}, {"cpu", r.cpu}, {"threads", r.threads}, {"sgemm_peak_gflops", r.sgemm_peak_gflops},
                  {"bf16_peak_gflops", r.bf16_peak_gflops},
                  {"sgemm", rows(r.gemm_rows)}, {"results", rows(r.rows)}, {"notes", r.notes}});
      return 0;
    }
    std::printf("heirloom bench — %s on %s, %d threads\n\n", r.preset.c_str(), r.cpu.c_str(), r.threads);
    std::printf("| sgemm shape (M x N x K) | ms | GFLOP/s |\n|---|---:|---:|\n");
    for (const auto& x : r.gemm_rows) std::printf("| %s | %.3f | %.1f |\n", x.name.c_str(), x.ms, x.gflops);
    std::printf("\nGEMM peak on these shapes: sgemm %.1f GFLOP/s", r.sgemm_peak_gflops);
    if (r.bf16_peak_gflops > 0) std::printf(", bf16 AMX %.1f GFLOP/s", r.bf16_peak_gflops);
    std::printf("\n\n| task | ms | tokens/s | GFLOP/s | of its GEMM peak |\n|---|---:|---:|---:|---:|\n");
    for (const auto& x : r.rows)
      if (x.peak_fraction > 0)
        std::printf("| %s | %.1f | %.0f | %.1f | %.0f%% |\n", x.name.c_str(), x.ms, x.tokens_per_s, x.gflops, 100 * x.peak_fraction);
      else  // the peak was not measured in this run (--only without sgemm)
        std::printf("| %s | %.1f | %.0f | %.1f | — |\n", x.name.c_str(), x.ms, x.tokens_per_s, x.gflops);
    std::printf("\n");
    for (const auto& n : r.notes) std::printf("- %s\n", n.c_str());
    return 0;
  };
}

}  // namespace heirloom::cli
