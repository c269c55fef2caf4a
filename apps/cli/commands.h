// The `heirloom` subcommands: each file registers one with CLI11 and runs it. No maths here.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "heirloom/adapter.h"
#include "heirloom/overlap.h"

namespace heirloom::cli {

// Options every command has.
struct Common {
  int threads = 0;  // 0 = all cores
  bool json = false;
};

// Each returns the action to run after parsing.
using Action = std::function<int()>;
Action add_pretrain(CLI::App& app, Common& common);
Action add_eval(CLI::App& app, Common& common);
Action add_generate(CLI::App& app, Common& common);
Action add_bench(CLI::App& app, Common& common);
Action add_corpus(CLI::App& app, Common& common);
Action add_personalize(CLI::App& app, Common& common);
Action add_export(CLI::App& app, Common& common);
Action add_bet(CLI::App& app, Common& common);
Action add_overlap(CLI::App& app, Common& common);
Action add_inherit(CLI::App& app, Common& common);
Action add_tokenize(CLI::App& app, Common& common);
Action add_estate(CLI::App& app, Common& common);
Action add_serve(CLI::App& app, Common& common);
Action add_fleet(CLI::App& app, Common& common);

void add_common_flags(CLI::App& sub, Common& common);
// --precision auto|bf16|fp32: the arithmetic of the frozen base's matrix products.
void add_precision_option(CLI::App& sub, std::string& precision);
// The --model/--base argument, or the default base when it is empty (Error when there is none).
std::string resolve_model(const std::string& given);
// --general, else the general corpus's held-out split when it is built, else empty.
std::string general_text_or_default(const std::string& given, const std::string& corpus_dir);
void apply_threads(const Common& common);
void print_json(const nlohmann::json& j);
// The estate's secret key of a person: `given`, else the default key folder's NAME.key.
std::string key_path(const std::string& given, const std::string& person);
std::vector<uint8_t> read_file_bytes(const std::string& path);  // Error when unreadable

// Adapters given on the command line, loaded onto (and checked against) a base.
struct LoadedAdapters {
  std::vector<Adapter> adapters;
  std::vector<float> scales;
  std::vector<std::string> names;
  AppliedAdapters applied;
  const Adapter* routed = nullptr;  // a concatenated heir given alone: the command routes it (applied is empty)
};
// The overlap report as the successor reads it (overlap and inherit).
void print_overlap(const inherit::OverlapReport& r);

void add_adapter_option(CLI::App& sub, std::vector<std::string>& specs);
LoadedAdapters load_adapters(const Model& base, const std::vector<std::string>& specs);

}  // namespace heirloom::cli
