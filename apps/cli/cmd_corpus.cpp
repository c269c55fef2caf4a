// `heirloom corpus build`: the general and person corpora, their splits, the tokenizer and the manifest.
#include <cstdio>

#include "commands.h"
#include "heirloom/corpus.h"

namespace heirloom::cli {

Action add_corpus(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("corpus", "build the corpora from Debian's text packages");
  sub->require_subcommand(1);
  auto* build = sub->add_subcommand("build", "extract, split and tokenize the general and person corpora (deterministic)");
  auto o = std::make_shared<CorpusBuildOptions>();
  build->add_option("--out", o->out_dir, "output directory (default: " + default_corpus_dir() + ")");
  build->add_option("--recipe", o->recipe_path, "corpus recipe JSON (default: the built-in recipes/corpora.json)")
      ->check(CLI::ExistingFile);
  add_common_flags(*build, common);
  return [o, &common] {
    o->progress = !common.json;
    const std::string manifest = build_corpora(*o);
    if (common.json) {
      std::fputs(manifest.c_str(), stdout);
      return 0;
    }
    const auto m = nlohmann::json::parse(manifest);
    const std::string dir = o->out_dir.empty() ? default_corpus_dir() : o->out_dir;
    std::printf("built %s (tokenizer: %d tokens)\n\n", dir.c_str(), m["tokenizer"]["vocab_size"].get<int>());
    std::printf("| corpus | kind | train KB | train tokens | held-out KB | held-out tokens | source |\n|---|---|---:|---:|---:|---:|---|\n");
    for (const auto& c : m["corpora"]) {
      std::string pkgs;
      for (const auto& s : c["sources"]) pkgs += (pkgs.empty() ? "" : ", ") + s["package"].get<std::string>();
      std::printf("| %s | %s | %.0f | %lld | %.0f | %lld | %s |\n", c["name"].get<std::string>().c_str(),
                  c["kind"].get<std::string>().c_str(), c["train"]["bytes"].get<double>() / 1024,
                  c["train"]["tokens"].get<long long>(), c["heldout"]["bytes"].get<double>() / 1024,
                  c["heldout"]["tokens"].get<long long>(), pkgs.c_str());
    }
    return 0;
  };
}

}  // namespace heirloom::cli
