// `heirloom fleet`: personalise (or refresh) everyone in a manifest into the estate registry, on this machine
// or across machines with `mpirun -np K heirloom fleet ...`. See include/heirloom/fleet.h.
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "heirloom/error.h"
#include "heirloom/estate.h"
#include "heirloom/fleet.h"

namespace heirloom::cli {

Action add_fleet(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("fleet", "personalise everyone in a manifest into the registry; resumable; `mpirun -np K heirloom fleet ...` spreads it over ranks");
  struct Opts {
    std::string manifest, registry, keys, base, kind = "norm", targets = "q,k,v,o", precision = "auto", general, corpus_dir;
    PersonalizeOptions p;
  };
  auto o = std::make_shared<Opts>();
  o->p.eval_tokens = 2048;
  o->p.trajectory_every = 0;
  sub->add_option("--manifest", o->manifest, "JSON lines, one person each: {\"id\": \"s00001\", \"text\": [\"a.txt\"], \"kind\": \"norm\"}")
      ->required()->check(CLI::ExistingFile);
  sub->add_option("--registry", o->registry, "estate registry (a SQLite file or postgresql://...), created when missing (default: " + estate::default_registry_path() + ")");
  sub->add_option("--keys", o->keys, "folder of the people's secret keys, made on first training (default: " + estate::default_key_dir() + ")");
  sub->add_option("--base,--model", o->base, "base model (GGUF); default: the moe-30m base under models/ or the cache");
  sub->add_option("--kind", o->kind, "adapter kind for lines that name none")->check(CLI::IsMember({"norm", "lora", "steer"}))->capture_default_str();
  sub->add_option("--steps", o->p.steps, "training steps per person")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--lr", o->p.lr, "learning rate (default per kind: norm 1e-2, lora 1e-3, steer 1e-2)");
  sub->add_option("--batch", o->p.batch, "windows per step")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--seq", o->p.seq, "tokens per window (default 256, or the base's context when shorter)");
  sub->add_option("--rank", o->p.lora.rank, "LoRA rank")->capture_default_str()->check(CLI::Range(1, 256));
  sub->add_option("--targets", o->targets, "LoRA projections")->capture_default_str();
  sub->add_option("--seed", o->p.seed, "seed of the training windows")->capture_default_str();
  sub->add_option("--eval-tokens", o->p.eval_tokens, "tokens of each held-out text scored before and after, per person")
      ->capture_default_str()->check(CLI::Range(16, 1 << 30));
  sub->add_option("--general", o->general, "held-out general text (default: the general corpus's held-out split)");
  sub->add_option("--corpus-dir", o->corpus_dir, "built corpus directory");
  add_precision_option(*sub, o->precision);
  add_common_flags(*sub, common);
  return [o, &common] {
    fleet::Options f;
    f.base = resolve_model(o->base);
    f.registry = o->registry.empty() ? estate::default_registry_path() : o->registry;
    f.key_dir = o->keys.empty() ? estate::default_key_dir() : o->keys;
    f.recipe = o->p;
    f.recipe.lora.targets = parse_lora_targets(o->targets);
    f.recipe.precision = parse_precision(o->precision);
    f.recipe.general = general_text_or_default(o->general, o->corpus_dir);
    const std::vector<fleet::Person> people = fleet::read_manifest(o->manifest, parse_adapter_kind(o->kind));

    const fleet::Run run = fleet::run(f, people, common.threads, !common.json);
    if (run.rank != 0) return 0;  // rank 0 reports for everyone
    const fleet::Summary& s = run.summary;
    const double per_hour = s.seconds > 0 ? 3600.0 * s.trained / s.seconds : 0;
    if (common.json) {
      nlohmann::json outs = nlohmann::json::array();
      for (const auto& r : s.outcomes) outs.push_back(fleet::to_json(r));
      print_json({{"people", s.total}, {"trained", s.trained}, {"current", s.current}, {"failed", s.failed},
                  {"seconds", s.seconds}, {"trained_per_hour", per_hour}, {"ranks", run.ranks},
                  {"threads_per_rank", run.threads}, {"registry", f.registry}, {"outcomes", outs}});
    } else {
      std::printf("fleet: %d people: %d trained, %d already current, %d failed, in %.1f s (%d rank%s x %d thread%s; %.0f trained per hour)\n",
                  s.total, s.trained, s.current, s.failed, s.seconds, run.ranks, run.ranks == 1 ? "" : "s", run.threads,
                  run.threads == 1 ? "" : "s", per_hour);
      for (const auto& r : s.outcomes)
        if (r.status == fleet::Outcome::failed) std::printf("  failed: %s: %s\n", r.person.c_str(), r.error.c_str());
      std::printf("registry: %s\n", f.registry.c_str());
    }
    return s.failed > 0 ? 1 : 0;
  };
}

}  // namespace heirloom::cli
