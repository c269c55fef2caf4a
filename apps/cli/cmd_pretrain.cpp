// `heirloom pretrain`: a base model from a built corpus (default) or from text files.
#include <cstdio>

#include "commands.h"
#include "heirloom/corpus.h"
#include "heirloom/text.h"
#include "heirloom/train.h"

namespace heirloom::cli {

Action add_pretrain(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("pretrain", "pretrain a base model (resumable, deterministic per seed and thread count)");
  auto o = std::make_shared<PretrainOptions>();
  auto recipe = std::make_shared<std::string>();
  // Flags given on the command line override the recipe's values; `given` replays them after it is read.
  auto given = std::make_shared<std::vector<std::pair<CLI::Option*, std::function<void(PretrainOptions&)>>>>();
  auto flag = [&](CLI::Option* opt, auto member) {
    given->emplace_back(opt, [member, o](PretrainOptions& dst) { dst.*member = (*o).*member; });
    return opt;
  };
  sub->add_option("--recipe", *recipe, "recipe JSON (e.g. recipes/moe-30m.json); flags override its values")->check(CLI::ExistingFile);
  flag(sub->add_option("--preset", o->preset, "model preset: tiny, tiny-dense, moe-30m, dense-30m")->capture_default_str(), &PretrainOptions::preset);
  flag(sub->add_option("--text", o->texts, "train on these text files (byte-level vocabulary) instead of a corpus")->check(CLI::ExistingFile), &PretrainOptions::texts);
  flag(sub->add_option("--corpus-dir", o->corpus_dir, "built corpus directory (default: " + default_corpus_dir() + ")"), &PretrainOptions::corpus_dir);
  flag(sub->add_option("--corpus", o->corpus, "which corpus of it to train on")->capture_default_str(), &PretrainOptions::corpus);
  sub->add_option("--out", o->out, "output model (GGUF)")->capture_default_str();
  flag(sub->add_option("--steps", o->steps, "optimisation steps")->capture_default_str()->check(CLI::PositiveNumber), &PretrainOptions::steps);
  flag(sub->add_option("--batch", o->batch, "sequences per step")->capture_default_str()->check(CLI::PositiveNumber), &PretrainOptions::batch);
  flag(sub->add_option("--seq", o->seq, "tokens per sequence")->capture_default_str()->check(CLI::Range(2, 1 << 20)), &PretrainOptions::seq);
  flag(sub->add_option("--lr", o->lr, "peak learning rate")->capture_default_str(), &PretrainOptions::lr);
  flag(sub->add_option("--min-lr", o->min_lr, "final learning rate of the cosine schedule")->capture_default_str(), &PretrainOptions::min_lr);
  flag(sub->add_option("--warmup", o->warmup, "linear warm-up steps")->capture_default_str(), &PretrainOptions::warmup);
  flag(sub->add_option("--weight-decay", o->weight_decay, "AdamW decoupled weight decay")->capture_default_str(), &PretrainOptions::weight_decay);
  flag(sub->add_option("--clip", o->clip, "gradient-norm clip (0 = off)")->capture_default_str(), &PretrainOptions::clip);
  flag(sub->add_option("--aux", o->aux_coef, "MoE load-balancing loss weight")->capture_default_str(), &PretrainOptions::aux_coef);
  flag(sub->add_option("--eval-every", o->eval_every, "held-out evaluation interval (steps)")->capture_default_str(), &PretrainOptions::eval_every);
  flag(sub->add_option("--checkpoint-every", o->checkpoint_every, "checkpoint interval (steps), written to OUT.ckpt")->capture_default_str(), &PretrainOptions::checkpoint_every);
  flag(sub->add_option("--seed", o->seed, "random seed")->capture_default_str(), &PretrainOptions::seed);
  sub->add_option("--stop-at", o->stop_at, "stop after this step with a checkpoint (continue later with --resume)");
  sub->add_flag("--resume", o->resume, "continue from OUT.ckpt if it exists");
  sub->add_flag("--f16", o->f16, "store the final model's matrices as F16");
  add_common_flags(*sub, common);
  return [o, recipe, given, &common] {
    PretrainOptions run = *o;
    if (!recipe->empty()) {
      run = pretrain_options_from_recipe(read_text_file(*recipe), *recipe);
      for (auto& [opt, apply] : *given)
        if (opt->count() > 0) apply(run);
      run.out = o->out;
      run.stop_at = o->stop_at;
      run.resume = o->resume;
      run.f16 = o->f16;
    }
    run.progress = true;
    const PretrainReport r = pretrain(run);
    nlohmann::json curve = nlohmann::json::array();
    for (auto [s, l] : r.heldout_curve) curve.push_back({{"step", s}, {"heldout_loss", l}});
    if (common.json) {
      print_json({{"out", run.out}, {"preset", run.preset}, {"steps", r.steps}, {"params", r.n_params},
                  {"train_tokens", r.train_tokens}, {"heldout_tokens", r.heldout_tokens},
                  {"steps_run", r.steps_run}, {"final_train_loss", r.final_train_loss}, {"heldout_loss", r.heldout_loss},
                  {"seconds", r.seconds}, {"tokens_per_second", r.tokens_per_second}, {"heldout_curve", curve}});
    } else {
      if (r.steps < run.steps) {
        std::printf("stopped at step %d of %d; checkpoint %s.ckpt (continue with --resume)\n", r.steps, run.steps, run.out.c_str());
        return 0;
      }
      if (r.steps_run == 0) {  // the checkpoint was already at the last step: only the model file was written
        std::printf("wrote %s: %s, %lld parameters, from the finished checkpoint (%d steps)\n", run.out.c_str(),
                    run.preset.c_str(), (long long)r.n_params, r.steps);
        std::printf("held-out loss %.4f (%lld held-out tokens)\n", r.heldout_loss, (long long)r.heldout_tokens);
        return 0;
      }
      std::printf("wrote %s: %s, %lld parameters, %d steps (%d in this run) in %.1f s (%.0f tokens/s)\n", run.out.c_str(),
                  run.preset.c_str(), (long long)r.n_params, r.steps, r.steps_run, r.seconds, r.tokens_per_second);
      std::printf("train loss %.4f, held-out loss %.4f (%lld held-out tokens)\n", r.final_train_loss, r.heldout_loss,
                  (long long)r.heldout_tokens);
    }
    return 0;
  };
}

}  // namespace heirloom::cli
