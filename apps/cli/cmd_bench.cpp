// `heirloom bench`: engine speed on a preset's real shapes, against this machine's measured GEMM peaks.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "heirloom/bench.h"
#include "heirloom/error.h"
#include "heirloom/fleet.h"
#include "heirloom/text.h"

namespace heirloom::cli {

namespace {

// `heirloom bench fleet`: people per hour per core on synthetic people, registry writes under K writers, a school.
Action add_bench_fleet(CLI::App& bench, Common& common) {
  auto* sub = bench.add_subcommand("fleet", "people per hour per core (synthetic people from the person corpora), registry writes per second under K writers, and the extrapolation to a school");
  struct Opts {
    fleet::BenchOptions b;
    std::string precision = "auto";
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--base,--model", o->b.base, "base model (default: the moe-30m base under models/ or the cache)");
  sub->add_option("--people", o->b.people, "synthetic people")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--steps", o->b.steps, "training steps per person")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--eval-tokens", o->b.eval_tokens, "held-out tokens scored per person before and after")->capture_default_str();
  sub->add_option("--writers", o->b.writers, "concurrent registry writer processes to measure")->delimiter(',')->capture_default_str();
  sub->add_option("--commits", o->b.commits_per_writer, "commits per writer")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--postgres", o->b.postgres, "also measure registry writes to this PostgreSQL database (postgresql://...; its people get names starting with k)");
  sub->add_option("--school", o->b.school, "people to extrapolate to")->capture_default_str();
  sub->add_option("--corpus-dir", o->b.corpus_dir, "built corpus directory");
  sub->add_option("--work-dir", o->b.work_dir, "where the synthetic people and registries go (default: a temporary folder, removed)");
  add_precision_option(*sub, o->precision);
  sub->add_flag("--json", common.json, "print machine-readable JSON on stdout");
  return [o, &common] {
    fleet::BenchOptions b = o->b;
    b.base = resolve_model(b.base);
    b.precision = parse_precision(o->precision);
    b.progress = !common.json;
    const fleet::BenchReport r = fleet::bench(b);
    nlohmann::json writers = nlohmann::json::array();
    for (const auto& w : r.registry)
      writers.push_back({{"registry", w.registry}, {"writers", w.writers}, {"commits", w.commits}, {"seconds", w.seconds}, {"commits_per_second", w.commits_per_second}});
    if (common.json) {
      print_json({{"people", r.people}, {"trained", r.trained}, {"failed", r.failed}, {"threads", r.threads},
                  {"seconds", r.seconds}, {"seconds_per_person_core", r.seconds_per_person_core},
                  {"people_per_hour_per_core", r.people_per_hour_per_core},
                  {"registry_writes", writers}, {"school", r.school}, {"school_core_hours", r.school_core_hours},
                  {"cores_for_daily_refresh", r.cores_for_daily_refresh}, {"steps", b.steps}, {"eval_tokens", b.eval_tokens}});
      return r.failed ? 1 : 0;
    }
    std::printf("fleet: %d synthetic people (%d trained, %d failed) in %.1f s on %d thread%s: %.1f core-seconds per person, %.0f people per hour per core\n",
                r.people, r.trained, r.failed, r.seconds, r.threads, r.threads == 1 ? "" : "s", r.seconds_per_person_core,
                r.people_per_hour_per_core);
    std::printf("\n| registry | writers | commits | seconds | commits/s |\n|---|---:|---:|---:|---:|\n");
    for (const auto& w : r.registry)
      std::printf("| %s | %d | %d | %.2f | %.1f |\n", w.registry.c_str(), w.writers, w.commits, w.seconds, w.commits_per_second);
    std::printf("\n%lld people: %.0f core-hours (%.1f core-days); refreshed daily: %.0f cores\n", (long long)r.school,
                r.school_core_hours, r.school_core_hours / 24, r.cores_for_daily_refresh);
    return r.failed ? 1 : 0;
  };
}

}  // namespace

Action add_bench(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("bench", "measure training-step, forward and generation speed (random weights)");
  auto o = std::make_shared<BenchOptions>();
  sub->add_option("--preset", o->preset, "model preset")->capture_default_str();
  sub->add_option("--batch", o->batch, "training batch (sequences)")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--seq", o->seq, "training sequence length")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--forward-len", o->forward_len, "forward-pass length (batch 1)")->capture_default_str();
  sub->add_option("--gen-tokens", o->gen_tokens, "tokens to generate")->capture_default_str();
  sub->add_option("--repeats", o->repeats, "timed repetitions (median reported)")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--precision", o->precision, "rows in fp32, bf16 (where the CPU has AVX512-BF16) or both")
      ->check(CLI::IsMember({"fp32", "bf16", "both"}))->capture_default_str();
  sub->add_option("--only", o->only, "run only these tasks: sgemm, full, norm, lora, personalize, forward, generate")
      ->check(CLI::IsMember({"sgemm", "full", "norm", "lora", "personalize", "forward", "generate"}))->delimiter(',');
  sub->add_flag("--trace", o->trace,
                "run the personalize task once more, timing each step and measuring the instruction ceiling after every " +
                    std::to_string(kTraceSteps) + " (whether a slow stretch is the cores' or the memory's)");
  sub->add_option("--experiment", o->experiment,
                  "a trial of a local change under experiment(NAME) (src/core/experiment.h): the traced run alternates "
                  "steps without and with it, each pair on one window, and reports the median B/A (implies --trace); "
                  "the full, norm-only and LoRA step rows and the forward row run 20 such pairs on their batch too");
  auto show_parts = std::make_shared<bool>(false);
  sub->add_flag("--ops", *show_parts,
                "also show each task's parts (the norms, attention, the experts, the head, ...): their time, share and "
                "FLOPs, from one more run with the part clock on (always in --json, as ops)");
  auto plot_path = std::make_shared<std::string>();
  sub->add_option("--plot", *plot_path, "also write the report as charts to this SVG file (each task's share of the "
                                        "GEMM peak; with --trace, each step's time and the ceiling)");
  add_common_flags(*sub, common);
  const Action fleet = add_bench_fleet(*sub, common);
  return [o, &common, sub, fleet, plot_path, show_parts] {
    if (sub->got_subcommand("fleet")) {
      if (!plot_path->empty())
        throw Error("--plot draws heirloom bench's own report, which bench fleet does not run",
                    "leave --plot out for bench fleet (its results are in its --json)");
      return fleet();
    }
    auto runs = [&](const char* task) { return std::find(o->only.begin(), o->only.end(), task) != o->only.end(); };
    if (!o->experiment.empty() && !o->only.empty() && !runs("personalize") && !runs("full") && !runs("norm") &&
        !runs("lora") && !runs("forward"))
      throw Error("--experiment runs a trial on the training tasks (personalize, full, norm, lora) and the forward, "
                  "which --only leaves out",
                  "add one of them to --only");
    if (!plot_path->empty()) {  // said before the run, not after minutes of it
      const std::filesystem::path dir = std::filesystem::path(*plot_path).parent_path();
      if (!dir.empty() && !std::filesystem::is_directory(dir))
        throw Error("--plot: the folder '" + dir.string() + "' does not exist", "create it, or give another path");
    }
    const BenchReport r = run_bench(*o, !common.json);
    if (!plot_path->empty()) {
      write_file_atomic(*plot_path, bench_plot(r));
      std::fprintf(stderr, "wrote %s\n", plot_path->c_str());
    }
    auto rows = [](const std::vector<BenchRow>& v) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& x : v) {
        nlohmann::json by_kind = nlohmann::json::array();
        for (const auto& p : x.products_by_kind)
          by_kind.push_back({{"kind", p.kind}, {"share", p.share}, {"gflops", p.gflops}});
        nlohmann::json parts = nlohmann::json::array();
        for (const auto& p : x.parts)
          parts.push_back({{"name", p.name}, {"ms", p.ms}, {"share", p.share}, {"gflop", p.gflop}, {"gflops", p.gflops}});
        nlohmann::json by_shape = nlohmann::json::array();
        for (const auto& p : x.products_by_shape)
          by_shape.push_back({{"kind", p.kind}, {"N", p.N}, {"K", p.K}, {"calls", p.calls}, {"rows", p.rows},
                              {"share", p.share}, {"gflops", p.gflops}});
        a.push_back({{"name", x.name}, {"ms", x.ms}, {"best_ms", x.best_ms}, {"worst_ms", x.worst_ms},
                     {"tokens_per_s", x.tokens_per_s}, {"gflop", x.gflop}, {"gflops", x.gflops},
                     {"peak_fraction", x.peak_fraction}, {"ceiling_fraction", x.ceiling_fraction},
                     {"product_share", x.product_share}, {"product_gflops", x.product_gflops},
                     {"products_by_kind", by_kind}, {"products_by_shape", by_shape}, {"precision", x.precision},
                     {"setup_ms", x.setup_ms}, {"ops", parts}});
        if (!x.step_ms.empty()) a.back()["trace"] = {{"step_ms", x.step_ms}, {"ceiling_every", kTraceSteps},
                                                     {"ceiling_gflops", x.ceiling_trace}};
        if (x.experiment_pairs > 0)
          a.back()["trace"]["experiment"] = {{"pairs", x.experiment_pairs}, {"b_over_a", x.experiment_ratio},
                                             {"a_ms", x.experiment_a_ms}, {"b_ms", x.experiment_b_ms},
                                             {"reached", x.experiment_reached}};
      }
      return a;
    };
    if (common.json) {
      print_json({{"preset", r.preset}, {"cpu", r.cpu}, {"threads", r.threads}, {"sgemm_peak_gflops", r.sgemm_peak_gflops},
                  {"bf16_peak_gflops", r.bf16_peak_gflops}, {"bf16_kernel", r.bf16_kernel}, {"blas_kernel", r.blas_kernel},
                  {"gemm_fp32", r.gemm_fp32},
                  {"fp32_ceiling_gflops", r.fp32_ceiling_gflops}, {"bf16_ceiling_gflops", r.bf16_ceiling_gflops},
                  {"fp32_ceiling_one_thread_gflops", r.fp32_ceiling_one_thread_gflops},
                  {"thread_scaling", r.thread_scaling},
                  {"sgemm", rows(r.gemm_rows)}, {"results", rows(r.rows)}, {"notes", r.notes}});
      return 0;
    }
    std::printf("heirloom bench — %s on %s, %d threads, OpenBLAS kernel %s, gemm() on %s\n\n", r.preset.c_str(),
                r.cpu.c_str(), r.threads, r.blas_kernel.c_str(), r.gemm_fp32.c_str());
    std::printf("| sgemm shape (M x N x K) | ms | GFLOP/s |\n|---|---:|---:|\n");
    for (const auto& x : r.gemm_rows) std::printf("| %s | %.3f | %.1f |\n", x.name.c_str(), x.ms, x.gflops);
    std::printf("\nGEMM peak on these shapes: fp32 %.1f GFLOP/s (the best of OpenBLAS and heirloom's packed kernel, split or one per thread, here and in a second measurement after the tasks)", r.sgemm_peak_gflops);
    if (r.bf16_peak_gflops > 0) std::printf(", bf16 %s %.1f GFLOP/s", r.bf16_kernel.c_str(), r.bf16_peak_gflops);
    if (r.fp32_ceiling_gflops > 0) {
      std::printf(".\nInstruction ceiling (operands in registers, all threads): fp32 FMA %.1f GFLOP/s (the GEMM peak is %.0f%% of it)",
                  r.fp32_ceiling_gflops, 100 * r.sgemm_peak_gflops / r.fp32_ceiling_gflops);
      if (r.bf16_ceiling_gflops > 0)
        std::printf(", bf16 dot products %.1f GFLOP/s (%.0f%%)", r.bf16_ceiling_gflops, 100 * r.bf16_peak_gflops / r.bf16_ceiling_gflops);
    }
    if (r.thread_scaling > 0) {
      std::printf(".\nThreads: %d issued %.2fx one thread's FMAs (%.1f GFLOP/s alone; the lowest over the run's "
                  "measurements)", r.threads, r.thread_scaling, r.fp32_ceiling_one_thread_gflops);
      if (r.thread_scaling < 0.75 * r.threads)
        std::printf(".\nwarning: the threads did not each have a core's vector units for at least part of the run "
                    "(SMT siblings, vCPUs placed on one core, or another busy process): its times are not this "
                    "machine's best; --threads sets how many run");
    }
    std::printf("\n\n| task | ms | tokens/s | GFLOP/s | of the ceiling | of its GEMM peak | in products | products at |\n"
                "|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const auto& x : r.rows) {
      const double peak = x.precision == "bf16" ? r.bf16_peak_gflops : r.sgemm_peak_gflops;
      std::printf("| %s | %.1f | %.0f | %.1f | ", x.name.c_str(), x.ms, x.tokens_per_s, x.gflops);
      if (x.ceiling_fraction > 0) std::printf("%.0f%% | ", 100 * x.ceiling_fraction);
      else std::printf("— | ");
      if (peak > 0)
        std::printf("%.0f%% | %.0f%% | %.1f GFLOP/s (%.0f%%) |\n", 100 * x.peak_fraction, 100 * x.product_share,
                    x.product_gflops, 100 * x.product_gflops / peak);
      else  // the peak was not measured in this run (--only without sgemm)
        std::printf("— | %.0f%% | %.1f GFLOP/s |\n", 100 * x.product_share, x.product_gflops);
    }
    for (const auto& x : r.rows) {
      if (!*show_parts || x.parts.empty()) continue;
      const double peak = x.precision == "bf16" ? r.bf16_peak_gflops : r.sgemm_peak_gflops;
      double run_ms = 0;  // the parts and the rest make the whole run
      for (const auto& p : x.parts) run_ms += p.ms;
      std::printf("\nParts of %s (one more run with the part clock on, %.1f ms):\n\n"
                  "| part | ms | share | GFLOP (products) | GFLOP/s | of the GEMM peak |\n|---|---:|---:|---:|---:|---:|\n",
                  x.name.c_str(), run_ms);
      for (const auto& p : x.parts) {
        std::printf("| %s | %.2f | %.1f%% | %.3f | %.1f | ", p.name.c_str(), p.ms, 100 * p.share, p.gflop, p.gflops);
        if (peak > 0 && p.gflop > 0) std::printf("%.0f%% |\n", 100 * p.gflops / peak);
        else std::printf("— |\n");
      }
    }
    for (const auto& x : r.rows) {
      if (x.step_ms.empty()) continue;
      if (x.ceiling_trace.empty())  // a full-step trial: its steps alone
        std::printf("\nSteps of the trial on %s: ms per step, mean of each %d\n", x.name.c_str(), kTraceSteps);
      else
        std::printf("\nTrace of %s, one more run: ms per step, mean of each %d, and the instruction ceiling after them (GFLOP/s)\n",
                    x.name.c_str(), kTraceSteps);
      for (size_t i = 0; i * kTraceSteps < x.step_ms.size(); ++i) {
        const size_t s0 = i * kTraceSteps, s1 = std::min(x.step_ms.size(), s0 + kTraceSteps);
        double sum = 0;
        for (size_t s = s0; s < s1; ++s) sum += x.step_ms[s];
        std::printf("  steps %zu-%zu: %.1f ms", s0 + 1, s1, sum / (double)(s1 - s0));
        if (i < x.ceiling_trace.size()) std::printf(", ceiling %.0f", x.ceiling_trace[i]);
        std::printf("\n");
      }
      if (x.experiment_pairs > 0)
        std::printf("Trial of %s: steps with it / without it, median over %d pairs, each on one batch: %.3f "
                    "(medians %.2f ms with, %.2f without)\n",
                    o->experiment.c_str(), x.experiment_pairs, x.experiment_ratio, x.experiment_b_ms, x.experiment_a_ms);
      if (x.experiment_pairs > 0 && !x.experiment_reached)
        std::printf("Warning: no code asked for experiment(\"%s\") in the steps with it: A and B ran the same code, a "
                    "null trial. Is the hook in this binary (built with `make heirloom_cli` after the change)?\n",
                    o->experiment.c_str());
    }
    std::printf("\n");
    for (const auto& n : r.notes) std::printf("- %s\n", n.c_str());
    return 0;
  };
}

}  // namespace heirloom::cli
