// The `heirloom` program as a user meets it: --help on every command, JSON output, and bad input
// answered with a message on stderr, exit code 2 and no output file.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "cli_helpers.h"
#include "core/gemm.h"
#include "heirloom/model.h"
#include "heirloom/text.h"
#include "heirloom/vocab.h"

namespace heirloom {
namespace {

namespace fs = std::filesystem;

TEST(Cli, EveryCommandHasHelp) {
  for (const char* c : {"pretrain", "eval", "generate", "bench", "personalize", "export", "bet", "overlap", "inherit",
                        "tokenize"}) {
    const CliResult r = run(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0) << c;
    EXPECT_NE(r.out.find("--threads"), std::string::npos) << c;
    EXPECT_NE(r.out.find("--json"), std::string::npos) << c;
  }
  EXPECT_NE(run("--help").out.find("pretrain"), std::string::npos);
  EXPECT_NE(run("").code, 0);  // a subcommand is required
}

// Every bench row splits its time into matrix products and the rest, from a clocked run of its own; the
// protocol's whole run also says how much of it came before the first step. Each row's median lies between its
// best and worst runs; the whole run's two runs (of --repeats 3) give their mean, not the slower one. With
// --trace the whole run is run once more, each of its 100 steps timed and the ceiling measured after every ten.
TEST(Cli, BenchSplitsEachTaskIntoProductsAndTheRest) {
  const CliResult r =
      run("bench --preset tiny --only sgemm,norm,personalize,forward --precision fp32 --repeats 3 --trace --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["results"].size(), 3u) << r.out;
  for (const auto& row : j["results"]) {
    const bool whole_run = row["name"].get<std::string>().find("whole run") != std::string::npos;
    const double setup = row["setup_ms"], ms = row["ms"];
    if (whole_run) EXPECT_GT(setup, 0.0) << row.dump();
    else EXPECT_EQ(setup, 0.0) << row.dump();
    EXPECT_LT(setup, ms) << row.dump();
    const double best = row["best_ms"], worst = row["worst_ms"];
    EXPECT_GT(best, 0.0) << row.dump();
    EXPECT_LE(best, ms) << row.dump();
    EXPECT_LE(ms, worst) << row.dump();
    if (whole_run) {
      EXPECT_NEAR(ms, (best + worst) / 2, 1e-9 * worst) << row.dump();
    }
    ASSERT_EQ(row.contains("trace"), whole_run) << row.dump();
    if (!whole_run) continue;
    const auto steps = row["trace"]["step_ms"].get<std::vector<double>>();
    const auto ceiling = row["trace"]["ceiling_gflops"].get<std::vector<double>>();
    EXPECT_EQ(steps.size(), 100u);
    EXPECT_EQ(ceiling.size(), 10u);
    for (double s : steps) EXPECT_GT(s, 0.0);
    if (j["fp32_ceiling_gflops"].get<double>() > 0) {  // measured where the CPU has AVX-512F
      for (double c : ceiling) EXPECT_GT(c, 0.0);
    }
  }
  // With more than one thread (and AVX-512F), how the threads' FMA rate scales against one thread's: between
  // sharing one core's vector units (about 1) and a core each (about the thread count).
  const int threads = j["threads"];
  const double scaling = j["thread_scaling"], one = j["fp32_ceiling_one_thread_gflops"];
  if (threads > 1 && j["fp32_ceiling_gflops"].get<double>() > 0) {
    EXPECT_GT(one, 0.0) << r.out;
    EXPECT_GT(scaling, 0.5) << r.out;
    EXPECT_LT(scaling, 1.25 * threads) << r.out;
  } else {
    EXPECT_EQ(scaling, 0.0) << r.out;
    EXPECT_EQ(one, 0.0) << r.out;
  }
  // The sgemm rows run on OpenBLAS, the fp32 full step's products on gemm()'s choice: the report names both.
  EXPECT_FALSE(j["blas_kernel"].get<std::string>().empty()) << r.out;
  EXPECT_NE(j["blas_kernel"].get<std::string>(), "unknown") << r.out;
  EXPECT_EQ(j["gemm_fp32"].get<std::string>(), own_fp32_products() ? "heirloom panels" : "OpenBLAS") << r.out;
  for (const auto& row : j["results"]) {
    const double share = row["product_share"], rate = row["product_gflops"];
    EXPECT_GT(share, 0.0) << row.dump();
    EXPECT_LE(share, 1.0) << row.dump();
    EXPECT_GT(rate, 0.0) << row.dump();
    double by_kind = 0;  // the kernels' shares add up to the total
    for (const auto& part : row["products_by_kind"]) by_kind += part["share"].get<double>();
    EXPECT_NEAR(by_kind, share, 1e-9) << row.dump();
    // The run's parts: the norms, attention, the experts, the head, ... and the rest make the whole run, and
    // each product's FLOPs are the part's that ran it.
    double parts = 0;
    std::map<std::string, double> gflop;
    for (const auto& part : row["ops"]) parts += part["share"].get<double>(), gflop[part["name"]] = part["gflop"];
    EXPECT_NEAR(parts, 1.0, 1e-9) << row.dump();
    ASSERT_FALSE(row["ops"].empty()) << row.dump();
    EXPECT_EQ(row["ops"].back()["name"], "the rest") << row.dump();
    for (const char* name : {"q, k, v product", "attention", "output product", "routing", "experts", "head"})
      EXPECT_GT(gflop[name], 0.0) << name << " " << row.dump();
    EXPECT_EQ(gflop.at("norms"), 0.0) << row.dump();
  }
}

// --plot writes the report as an SVG: the tasks' bars and, with --trace, the traced run's steps; a folder that
// does not exist is refused before the run, with a hint, and nothing is written; bench fleet refuses it. A trial
// draws its steps without and with the change as two lines.
TEST(Cli, BenchPlotDrawsTheTasksAndTheTrace) {
  Dir d("bench_plot");
  const CliResult r = run("bench --preset tiny --only sgemm,norm,personalize --precision fp32 --repeats 1 --trace --ops --plot " +
                          d / "bench.svg");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Parts of train step norm-only 8x128 [fp32]"), std::string::npos) << r.out;  // --ops
  EXPECT_NE(r.out.find("| attention |"), std::string::npos) << r.out;
  const std::string svg = read_text_file(d / "bench.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u) << svg.substr(0, 200);
  EXPECT_NE(svg.find("Share of the GEMM peak"), std::string::npos);
  EXPECT_NE(svg.find("norm-only 8x128"), std::string::npos);
  EXPECT_NE(svg.find("protocol [fp32]: each step"), std::string::npos);
  EXPECT_NE(svg.find("instruction ceiling every 10 steps"), std::string::npos);
  EXPECT_NE(svg.find("Where the time goes [fp32]"), std::string::npos);  // --ops: the parts
  EXPECT_NE(svg.find("% of the GEMM peak (— : none)"), std::string::npos);
  EXPECT_NE(svg.find(">attention<"), std::string::npos);
  const CliResult trial = run("bench --preset tiny --only full --precision fp32 --repeats 1 --experiment probe --plot " +
                              d / "trial.svg");  // a trial's steps: one line without the change, one with it
  ASSERT_EQ(trial.code, 0) << trial.out;
  const std::string trial_svg = read_text_file(d / "trial.svg");
  EXPECT_NE(trial_svg.find("without the change"), std::string::npos);
  EXPECT_NE(trial_svg.find("with the change"), std::string::npos);
  const CliResult bad = run("bench --preset tiny --only norm --repeats 1 --plot " + d / "missing/bench.svg");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("does not exist"), std::string::npos) << bad.out;
  EXPECT_FALSE(std::filesystem::exists(d / "missing"));
  const CliResult fleet = run("bench --plot " + d / "fleet.svg" + " fleet --people 1");
  EXPECT_NE(fleet.code, 0);
  EXPECT_NE(fleet.out.find("bench fleet does not run"), std::string::npos) << fleet.out;
}

// A trial (--experiment) reports its step pairs in the personalize row's trace and in the full, LoRA and forward
// rows', and is refused, with a hint, when --only leaves all of those tasks out.
TEST(Cli, BenchExperimentReportsItsPairsOrSaysWhatIsMissing) {
  const CliResult r = run("bench --preset tiny --only personalize --precision fp32 --repeats 1 --experiment probe --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto trial = nlohmann::json::parse(r.out)["results"][0]["trace"]["experiment"];
  EXPECT_EQ(trial["pairs"].get<int>(), 41) << trial.dump();
  EXPECT_GT(trial["b_over_a"].get<double>(), 0.0) << trial.dump();
  const CliResult full = run("bench --preset tiny --only full --precision fp32 --repeats 1 --experiment probe --json");
  ASSERT_EQ(full.code, 0) << full.out;
  const auto full_trial = nlohmann::json::parse(full.out)["results"][0]["trace"]["experiment"];
  EXPECT_EQ(full_trial["pairs"].get<int>(), 20) << full_trial.dump();
  EXPECT_GT(full_trial["b_over_a"].get<double>(), 0.0) << full_trial.dump();
  const CliResult lora = run("bench --preset tiny --only lora --precision fp32 --repeats 1 --experiment probe --json");
  ASSERT_EQ(lora.code, 0) << lora.out;
  const auto lora_trial = nlohmann::json::parse(lora.out)["results"][0]["trace"]["experiment"];
  EXPECT_EQ(lora_trial["pairs"].get<int>(), 20) << lora_trial.dump();
  const CliResult fwd = run("bench --preset tiny --only forward --precision fp32 --repeats 1 --experiment probe --json");
  ASSERT_EQ(fwd.code, 0) << fwd.out;
  const auto fwd_trial = nlohmann::json::parse(fwd.out)["results"][0]["trace"]["experiment"];
  EXPECT_EQ(fwd_trial["pairs"].get<int>(), 20) << fwd_trial.dump();
  const CliResult bad = run("bench --preset tiny --only generate --experiment probe");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("add one of them to --only"), std::string::npos) << bad.out;
}

TEST(Cli, PretrainEvalGenerateEndToEnd) {
  Dir d;
  {
    std::ofstream t(d / "t.txt");
    for (int i = 0; i < 200; ++i) t << "Every person deserves a model of their own words. " << i % 10 << "\n";
  }
  CliResult r = run("pretrain --preset tiny --text " + d / "t.txt" + " --out " + d / "m.gguf" +
              " --steps 4 --batch 2 --seq 32 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"heldout_loss\""), std::string::npos);
  r = run("eval --model " + d / "m.gguf" + " --text " + d / "t.txt" + " --json --ctx 64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"ppl\""), std::string::npos);
  r = run("eval --model " + d / "m.gguf" + " --text " + d / "t.txt" + " --protocol llama --ctx 64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("llama protocol"), std::string::npos);
  r = run("generate --model " + d / "m.gguf" + " --prompt Every -n 5 --temperature 0 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"tokens\""), std::string::npos);
  // tokenize prints what encode gives, with BOS unless --no-bos.
  const std::vector<int32_t> ids = encode(load_vocab(d / "m.gguf"), "Every person", false);
  std::string want;
  for (int32_t id : ids) {
    if (!want.empty()) want += ' ';
    want += std::to_string(id);
  }
  r = run("tokenize --model " + d / "m.gguf" + " -p 'Every person' --ids --no-bos");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, want + "\n");
  r = run("tokenize --model " + d / "m.gguf" + " -p 'Every person' --ids");
  EXPECT_EQ(r.out, "1 " + want + "\n");
}

TEST(Cli, BadInputIsAMessageAndExitCodeAndNothingWritten) {
  Dir d;
  std::ofstream(d / "notgguf.gguf") << "this is not a model";
  CliResult r = run("eval --model " + d / "notgguf.gguf" + " --text " + d / "notgguf.gguf");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("error:"), std::string::npos);
  EXPECT_NE(r.out.find("GGUF"), std::string::npos) << r.out;

  // A truncated model.
  Model m = init_model(preset_config("tiny"), byte_vocab(), 1);
  save_model(m, d / "m.gguf");
  fs::resize_file(d / "m.gguf", fs::file_size(d / "m.gguf") / 2);
  r = run("generate --model " + d / "m.gguf" + " --prompt hi -n 3");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("error:"), std::string::npos);

  // A context longer than the model's.
  save_model(m, d / "ok.gguf");
  std::ofstream(d / "short.txt") << "short text for scoring";
  r = run("eval --model " + d / "ok.gguf" + " --text " + d / "short.txt" + " --ctx 4096");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("128"), std::string::npos) << r.out;

  // Too little text to pretrain on: no model and no checkpoint left behind.
  r = run("pretrain --preset tiny --text " + d / "short.txt" + " --out " + d / "new.gguf");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_FALSE(fs::exists(d / "new.gguf"));
  EXPECT_FALSE(fs::exists(d / "new.gguf.ckpt"));

  // Absurd dimensions in a header: a model whose width is enormous.
  {
    Model big = init_model(preset_config("tiny"), byte_vocab(), 1);
    big.config.n_embd = 1 << 30;  // written into the header, tensors stay small
    save_model(big, d / "absurd.gguf");
  }
  r = run("eval --model " + d / "absurd.gguf" + " --text " + d / "short.txt");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("expected"), std::string::npos) << r.out;

  // Unknown preset and a missing file: parse-time errors, non-zero.
  EXPECT_NE(run("pretrain --preset nope --text " + d / "short.txt" + " --out " + d / "x.gguf").code, 0);
  EXPECT_NE(run("eval --model " + d / "missing.gguf" + " --text " + d / "short.txt").code, 0);
}

}  // namespace
}  // namespace heirloom
