// `heirloom pretrain`: a base model from text files.
#include <cstdio>

#include "commands.h"
#include "heirloom/train.h"

namespace heirloom::cli {

Action add_pretrain(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("pretrain", "pretrain a base model on text files (resumable, deterministic per seed)");
  auto o = std::make_shared<PretrainOptions>();
  sub->add_option("--preset", o->preset, "model preset: tiny, tiny-dense, moe-30m, dense-30m")->capture_default_str();
  sub->add_option("--text", o->texts, "training text file(s)")->required()->check(CLI::ExistingFile);
  sub->add_option("--out", o->out, "output model (GGUF)")->capture_default_str();
  sub->add_option("--steps", o->steps, "optimisation steps")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--batch", o->batch, "sequences per step")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--seq", o->seq, "tokens per sequence")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  sub->add_option("--lr", o->lr, "peak learning rate")->capture_default_str();
  sub->add_option("--min-lr", o->min_lr, "final learning rate of the cosine schedule")->capture_default_str();
  sub->add_option("--warmup", o->warmup, "linear warm-up steps")->capture_default_str();
  sub->add_option("--weight-decay", o->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  sub->add_option("--clip", o->clip, "gradient-norm clip (0 = off)")->capture_default_str();
  sub->add_option("--aux", o->aux_coef, "MoE load-balancing loss weight")->capture_default_str();
  sub->add_option("--eval-every", o->eval_every, "held-out evaluation interval (steps)")->capture_default_str();
  sub->add_option("--checkpoint-every", o->checkpoint_every, "checkpoint interval (steps), written to OUT.ckpt")->capture_default_str();
  sub->add_option("--seed", o->seed, "random seed")->capture_default_str();
  sub->add_option("--stop-at", o->stop_at, "stop after this step with a checkpoint (continue later with --resume)");
  sub->add_flag("--resume", o->resume, "continue from OUT.ckpt if it exists");
  sub->add_flag("--f16", o->f16, "store the final model's matrices as F16");
  add_common_flags(*sub, common);
  return [o, &common] {
    o->progress = true;
    const PretrainReport r = pretrain(*o);
    nlohmann::json curve = nlohmann::json::array();
    for (auto [s, l] : r.heldout_curve) curve.push_back({{"step", s}, {"heldout_loss", l}});
    if (common.json) {
      print_json({{"out", o->out}, {"preset", o->preset}, {"steps", r.steps}, {"params", r.n_params},
                  {"train_tokens", r.train_tokens}, {"heldout_tokens", r.heldout_tokens},
                  {"final_train_loss", r.final_train_loss}, {"heldout_loss", r.heldout_loss},
                  {"seconds", r.seconds}, {"tokens_per_second", r.tokens_per_second}, {"heldout_curve", curve}});
    } else {
      if (r.steps < o->steps) {
        std::printf("stopped at step %d of %d; checkpoint %s.ckpt (continue with --resume)\n", r.steps, o->steps, o->out.c_str());
        return 0;
      }
      std::printf("wrote %s: %s, %lld parameters, %d steps in %.1f s (%.0f tokens/s)\n", o->out.c_str(),
                  o->preset.c_str(), (long long)r.n_params, r.steps, r.seconds, r.tokens_per_second);
      std::printf("train loss %.4f, held-out loss %.4f (%lld held-out tokens)\n", r.final_train_loss, r.heldout_loss,
                  (long long)r.heldout_tokens);
    }
    return 0;
  };
}

}  // namespace heirloom::cli
