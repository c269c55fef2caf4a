// heirloom: a personal language-model specialist for everyone, trained on their own CPU.
// Dispatches to one subcommand per file; turns heirloom::Error into a message and exit code 2.
#include <cstdio>
#include <filesystem>
#include <map>

#include "commands.h"
#include "heirloom/corpus.h"
#include "heirloom/error.h"
#include "heirloom/threads.h"

namespace heirloom::cli {

void add_common_flags(CLI::App& sub, Common& common) {
  sub.add_option("--threads", common.threads, "worker threads (0 = all cores); results are deterministic per count")
      ->check(CLI::Range(0, 1024));
  sub.add_flag("--json", common.json, "print machine-readable JSON on stdout");
}

void add_precision_option(CLI::App& sub, std::string& precision) {
  sub.add_option("--precision", precision,
                 "arithmetic of the frozen base's matrix products: bf16 (fp32 accumulation; AMX tiles or "
                 "AVX512-BF16), fp32, or auto (bf16 where the CPU has AVX512-BF16, else fp32)")
      ->check(CLI::IsMember({"auto", "bf16", "fp32"}))
      ->capture_default_str();
}

std::string resolve_model(const std::string& given) {
  if (!given.empty()) return given;
  const std::string base = heirloom::find_default_base();
  if (base.empty())
    throw heirloom::Error("no model given and no base found",
                          "pass --model FILE, or pretrain one: heirloom pretrain --recipe recipes/moe-30m.json --out models/moe-30m.gguf");
  return base;
}

std::string general_text_or_default(const std::string& given, const std::string& corpus_dir) {
  if (!given.empty()) return given;
  const heirloom::CorpusDir cd{corpus_dir.empty() ? heirloom::default_corpus_dir() : corpus_dir};
  return std::filesystem::exists(cd.heldout_path("general")) ? cd.heldout_path("general") : "";
}

void apply_threads(const Common& common) { set_num_threads(common.threads); }

void print_json(const nlohmann::json& j) { std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str()); }

}  // namespace heirloom::cli

int main(int argc, char** argv) {
  using namespace heirloom::cli;
  CLI::App app{"heirloom — train a personal language-model specialist on your own CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("heirloom ") + HEIRLOOM_VERSION);
  Common common;
  std::map<CLI::App*, Action> actions;
  auto reg = [&](Action (*add)(CLI::App&, Common&)) {
    const size_t before = app.get_subcommands({}).size();
    Action a = add(app, common);
    actions[app.get_subcommands({})[before]] = std::move(a);
  };
  reg(add_pretrain);
  reg(add_eval);
  reg(add_generate);
  reg(add_bench);
  reg(add_corpus);
  reg(add_personalize);
  reg(add_export);
  reg(add_bet);
  reg(add_overlap);
  reg(add_inherit);
  reg(add_tokenize);
  reg(add_estate);
  reg(add_serve);
  reg(add_fleet);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    apply_threads(common);
    for (auto& [sub, action] : actions)
      if (sub->parsed()) return action();
  } catch (const heirloom::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "hint: %s\n", e.hint().c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\nhint: use a smaller batch, sequence or model\n");
    return 3;
  } catch (const std::filesystem::filesystem_error& e) {
    std::fprintf(stderr, "error: %s\nhint: check the path and its permissions\n", e.what());
    return 2;
  } catch (const std::exception& e) {  // a malformed JSON file, a number out of range, ...: a message, never a crash
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 1;
}
