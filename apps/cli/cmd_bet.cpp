// `heirloom bet`: run one of the seeds' bets (`bet N`) or list them (`bet list`).
#include <cstdio>

#include "commands.h"
#include "heirloom/bets.h"
#include "heirloom/corpus.h"
#include "heirloom/error.h"

namespace heirloom::cli {

Action add_bet(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("bet", "reproduce one of the seeds' bets (`heirloom bet list` lists them)");
  struct Opts { std::string which, precision = "auto"; BetOptions b; };
  auto o = std::make_shared<Opts>();
  sub->add_option("bet", o->which, "the bet (10, 43, ..., 69-real), or `list`")->required();
  sub->add_option("--base,--model", o->b.base, "base model (GGUF); default: the moe-30m base under models/ or the cache");
  sub->add_option("--corpus-dir", o->b.corpus_dir, "built corpus directory (default: " + default_corpus_dir() + ")");
  sub->add_option("--out-dir", o->b.out_dir, "where results go (NN_name.json and .svg)")->capture_default_str();
  sub->add_option("--seeds", o->b.seeds, "seeds to run, where the bet uses several (0 = its default)")->capture_default_str();
  sub->add_flag("--quick", o->b.quick, "a reduced run (fewer steps and tokens), for tests");
  add_precision_option(*sub, o->precision);
  add_common_flags(*sub, common);
  return [o, &common] {
    if (o->which == "list") {
      if (common.json) {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& b : bet_list()) j.push_back({{"bet", b.id}, {"name", b.name}, {"summary", b.summary}});
        print_json(j);
      } else {
        for (const auto& b : bet_list()) std::printf("%-9s %-28s %s\n", b.id.c_str(), b.name.c_str(), b.summary.c_str());
      }
      return 0;
    }
    const std::string& n = o->which;
    const BetInfo& info = find_bet(n);
    BetOptions b = o->b;
    if (info.needs_base) b.base = resolve_model(b.base);
    b.progress = !common.json;
    b.precision = parse_precision(o->precision);
    const nlohmann::json r = run_bet(n, b);
    if (common.json) {
      print_json(r);
    } else {
      std::printf("bet %s (%s) on %s: %.0f s\n", n.c_str(), r["name"].get<std::string>().c_str(),
                  b.base.empty() ? "no base (synthetic)" : b.base.c_str(),
                  r["wall_clock_seconds"].get<double>());
      std::printf("summary: %s\n", r["summary"].dump(1).c_str());
      std::printf("wrote %s/%s.json and .svg\n", b.out_dir.c_str(), bet_stem(info).c_str());
    }
    return 0;
  };
}

}  // namespace heirloom::cli
