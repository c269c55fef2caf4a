// The Bet 10 job. See include/heirloom/personalize.h.
#include "heirloom/personalize.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/progress.h"
#include "heirloom/adapter_train.h"
#include "heirloom/error.h"
#include "heirloom/eval.h"
#include "heirloom/text.h"
#include "model/workspace.h"

namespace heirloom {

float default_lr(AdapterKind kind) {
  switch (kind) {
    case AdapterKind::norm: return 1e-2f;
    case AdapterKind::lora: return 1e-3f;
    case AdapterKind::steer: return 1e-2f;
    case AdapterKind::full: return 5e-5f;  // the seeds' Bet 10 setting
  }
  return 1e-3f;
}

std::string bet10_verdict(double pb, double pa, double gb, double ga) {
  const double drop = pb / pa, rise = ga / gb;
  if (!std::isfinite(drop) || !std::isfinite(rise)) return "CATASTROPHIC";
  if (drop < 1.01 || rise > 5.0) return "CATASTROPHIC";
  if (drop > 10.0 && rise < 1.5) return "STRICT";
  if (drop > 2.0 && rise < 2.0) return "LENIENT";
  return "none";
}

size_t heldout_cut(const std::string& text, double fraction) {
  const size_t target = (size_t)((1.0 - fraction) * (double)text.size());
  // The break nearest the target, looking a quarter of the held-out share either way.
  const size_t reach = std::max<size_t>(1, (size_t)(fraction * (double)text.size() / 4));
  for (const char* sep : {"\n\n", "\n", " "}) {
    const size_t after = text.find(sep, target), before = text.rfind(sep, target);
    size_t best = std::string::npos;
    if (after != std::string::npos && after - target <= reach) best = after;
    if (before != std::string::npos && target - before <= reach && (best == std::string::npos || target - before < best - target))
      best = before;
    if (best != std::string::npos && best > 0) return best + std::string(sep).size();
  }
  size_t cut = std::min(target, text.size());
  while (cut > 0 && cut < text.size() && ((unsigned char)text[cut] & 0xC0) == 0x80) --cut;  // not inside a character
  return cut;
}

namespace {

std::string join_person_texts(const std::vector<std::string>& paths, int64_t max_bytes, int64_t& invalid) {
  std::string all;
  for (const auto& p : paths) {
    PersonText t = read_person_text(p, max_bytes - (int64_t)all.size());
    invalid += t.invalid_utf8;
    if (!all.empty()) all += "\n\n";
    all += t.text;
  }
  return all;
}

std::span<const int32_t> first(const std::vector<int32_t>& v, int64_t n) {
  return {v.data(), (size_t)std::min<int64_t>(n, (int64_t)v.size())};
}

}  // namespace

PersonTokens person_tokens(const Model& base, const PersonalizeOptions& o) {
  if (o.texts.empty()) throw Error("personalize needs the person's text", "pass --text FILE (one or more)");
  if (o.general.empty())
    throw Error("personalize needs held-out general text to check the base's general ability",
                "run `heirloom corpus build` (the general corpus's held-out split is the default) or pass --general FILE");
  // Read, check, split, tokenise: every error before any training.
  PersonTokens t;
  std::string text = join_person_texts(o.texts, o.max_bytes, t.invalid_utf8), held_text;
  if (!o.heldout.empty()) {
    held_text = join_person_texts({o.heldout}, o.max_bytes, t.invalid_utf8);
  } else {
    const size_t cut = heldout_cut(text, o.heldout_fraction);
    held_text = text.substr(cut);
    text.resize(cut);
  }
  t.train = encode(base.vocab, text, true);
  t.heldout = encode(base.vocab, held_text, true);
  // Only the general text's first eval_tokens are scored: the rest of a long corpus is not tokenised.
  t.general = encode_first(base.vocab, read_text_file(o.general), true, (size_t)std::max(o.eval_tokens, 16));
  return t;
}

PersonalizeReport personalize(const Model& base, Adapter& adapter, const PersonalizeOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const PersonTokens t = person_tokens(base, o);
  const double tokenize = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PersonalizeReport rep = personalize_tokens(base, adapter, t.train, t.heldout, t.general, o);
  rep.invalid_utf8 = t.invalid_utf8;
  rep.tokenize_seconds = tokenize;
  return rep;
}

PersonalizeReport personalize_tokens(const Model& base, Adapter& adapter, const std::vector<int32_t>& train,
                                     const std::vector<int32_t>& held, const std::vector<int32_t>& general,
                                     const PersonalizeOptions& opt) {
  PersonalizeOptions o = opt;
  if (o.seq == 0) o.seq = std::min(256, base.config.n_ctx);
  if (o.steps < 1 || o.batch < 1) throw Error("--steps and --batch must be at least 1");
  if (o.seq < 8 || o.seq > base.config.n_ctx)
    throw Error("--seq " + std::to_string(o.seq) + " is outside [8, " + std::to_string(base.config.n_ctx) + "]",
                "the base's context length is the longest training window");
  PersonalizeReport rep;
  rep.kind = adapter.kind;
  rep.lr = o.lr > 0 ? o.lr : default_lr(adapter.kind);
  rep.steps = o.steps;
  rep.batch = o.batch;
  rep.seq = o.seq;
  rep.train_tokens = (int64_t)train.size();
  rep.heldout_tokens = (int64_t)held.size();
  rep.general_tokens = (int64_t)general.size();
  if (rep.train_tokens < o.seq + 1)
    throw Error("the training text has " + std::to_string(rep.train_tokens) + " tokens, fewer than one training window of " +
                    std::to_string(o.seq + 1),
                "give more text (a few pages at least) or a shorter --seq");
  if (rep.heldout_tokens < 16)
    throw Error("the held-out text has only " + std::to_string(rep.heldout_tokens) + " tokens (at least 16 are needed)",
                "give more text, or a separate --heldout file");
  if (rep.general_tokens < 16) throw Error("the general text has fewer than 16 tokens");

  auto seconds_since = [](auto t) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count(); };
  // --- prepare: the trainer packs the frozen base once (bf16); evaluation uses the same arithmetic
  auto t0 = std::chrono::steady_clock::now();
  rep.n_values = (int64_t)adapter.params.size();
  AdapterTrainer trainer(base, adapter, AdamwConfig{rep.lr, 0.9f, 0.999f, 1e-8f, 0.f, 1.0f}, o.precision);
  rep.precision = trainer.precision();
  // One scratch for every evaluation and for training: the memory the evaluation before has touched is
  // then the first training step's too, not fresh (slow at its first touch).
  auto ws = make_workspace();
  rep.prepare_seconds = seconds_since(t0);

  // --- before
  const int ctx = o.seq;
  const auto personal_eval = first(held, o.eval_tokens), general_eval = first(general, o.eval_tokens);
  t0 = std::chrono::steady_clock::now();
  ws->frozen = trainer.frozen_weights();  // null for fp32, and for a full adapter (its tuned copy is scored in fp32)
  const PerplexityResult pb = perplexity_sliding(base, personal_eval, ctx, nullptr, 4, ws.get());
  const PerplexityResult gb = perplexity_sliding(base, general_eval, ctx, nullptr, 4, ws.get());
  rep.personal_before = pb.ppl();
  rep.general_before = gb.ppl();
  rep.personal_scored = pb.n_scored;
  rep.general_scored = gb.n_scored;
  rep.eval_before_seconds = seconds_since(t0);

  // --- train (the trajectory's evaluations are timed apart from training)
  const auto traj_eval = first(held, o.trajectory_tokens);
  auto trajectory_point = [&](int step) {
    const auto te = std::chrono::steady_clock::now();
    rep.trajectory.emplace_back(step, perplexity_sliding(trainer.model(), traj_eval, ctx, trainer.view(), 4, ws.get()).ppl());
    rep.trajectory_seconds += seconds_since(te);
  };
  if (o.trajectory_every > 0) trajectory_point(0);
  Progress bar(o.steps, std::string("personalize ") + kind_name(adapter.kind), "step", o.progress);
  std::vector<int32_t> tok, tgt;
  for (int s = 0; s < o.steps; ++s) {
    const auto ts = std::chrono::steady_clock::now();
    sample_windows(train, o.batch, o.seq, o.seed * 1000003ull + s, tok, tgt);
    rep.final_train_loss = trainer.step(*ws, Batch{tok.data(), tgt.data(), o.batch, o.seq}, rep.lr);
    const double step_seconds = seconds_since(ts);
    rep.train_seconds += step_seconds;
    if (s == 0) rep.first_step_seconds = step_seconds;
    if (!std::isfinite(rep.final_train_loss))
      throw Error("training diverged at step " + std::to_string(s + 1) + " (loss is not finite)", "lower --lr");
    const bool out_of_time = o.max_seconds > 0 && rep.train_seconds >= o.max_seconds;
    if (o.trajectory_every > 0 && ((s + 1) % o.trajectory_every == 0 || s + 1 == o.steps || out_of_time)) trajectory_point(s + 1);
    char status[64];
    std::snprintf(status, sizeof status, "loss %.3f", rep.final_train_loss);
    bar.update(s + 1, status);
    rep.steps = s + 1;
    if (out_of_time) break;
  }
  bar.finish();
  trainer.finish();
  // The recipe as run (a time budget may stop before o.steps).
  adapter.info.steps = rep.steps;
  adapter.info.batch = o.batch;
  adapter.info.seq = o.seq;
  adapter.info.lr = rep.lr;
  adapter.info.tokens = (int64_t)rep.steps * o.batch * o.seq;
  adapter.info.seed = o.seed;
  adapter.info.owner = o.owner;

  // --- after
  t0 = std::chrono::steady_clock::now();
  rep.personal_after = perplexity_sliding(trainer.model(), personal_eval, ctx, trainer.view(), 4, ws.get()).ppl();
  rep.general_after = perplexity_sliding(trainer.model(), general_eval, ctx, trainer.view(), 4, ws.get()).ppl();
  rep.eval_after_seconds = seconds_since(t0);
  rep.eval_seconds = rep.eval_before_seconds + rep.trajectory_seconds + rep.eval_after_seconds;
  rep.verdict = bet10_verdict(rep.personal_before, rep.personal_after, rep.general_before, rep.general_after);
  return rep;
}

}  // namespace heirloom
