// `heirloom pretrain`: a base model from text. The text stream is split by position (the last 5% is
// held out, never trained on); batches are random windows drawn from a generator seeded by (seed, step),
// so a resumed run continues exactly as an uninterrupted one would. Checkpoints (weights + AdamW
// moments + step) are written atomically next to the output as OUT.ckpt.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/progress.h"
#include "heirloom/text.h"
#include "heirloom/corpus.h"
#include "heirloom/error.h"
#include "heirloom/train.h"
#include "io/gguf.h"
#include "io/model_file.h"
#include "ops/adamw.h"
#include "heirloom/vocab.h"

namespace heirloom {

namespace {

std::string checkpoint_path(const PretrainOptions& o) { return o.out + ".ckpt"; }

Metadata recipe(const PretrainOptions& o, int step) {
  return {{"train.step", std::to_string(step)},   {"train.data", o.texts.empty() ? "corpus:" + o.corpus : "text files"},
          {"train.seed", std::to_string(o.seed)},
          {"train.batch", std::to_string(o.batch)}, {"train.seq", std::to_string(o.seq)},
          {"train.steps", std::to_string(o.steps)}, {"train.lr", std::to_string(o.lr)}};
}

double heldout_loss(const Model& m, Workspace& ws, const std::vector<int32_t>& stream, int T) {
  // Fixed, non-overlapping windows from the start of the held-out part (at most 16).
  const int n = std::min<int64_t>(16, ((int64_t)stream.size() - 1) / T);
  double sum = 0;
  int count = 0;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> tok(stream.begin() + (int64_t)i * T, stream.begin() + (int64_t)i * T + T);
    std::vector<int32_t> tgt(stream.begin() + (int64_t)i * T + 1, stream.begin() + (int64_t)i * T + T + 1);
    const ForwardResult r = forward(m, ws, Batch{tok.data(), tgt.data(), 1, T}, {}, ForwardOptions{});
    sum += r.loss_sum;
    count += r.n_scored;
  }
  return count ? sum / count : 0.0;
}

}  // namespace

PretrainReport pretrain(const PretrainOptions& o) {
  if (o.steps < 1 || o.batch < 1 || o.seq < 2) throw Error("pretrain: --steps, --batch must be ≥ 1 and --seq ≥ 2");
  Vocab vocab;
  std::vector<int32_t> train, held;
  if (!o.texts.empty()) {
    // Plain files: the byte-level vocabulary, and the last 5% of the text held out.
    vocab = byte_vocab();
    const std::vector<int32_t> all = encode(vocab, read_text_files(o.texts), false);
    const int64_t n_held = std::max<int64_t>((int64_t)all.size() / 20, 2 * (o.seq + 1));
    if ((int64_t)all.size() < n_held + 4 * (o.seq + 1))
      throw Error("the training text is too short: " + std::to_string(all.size()) + " tokens",
                  "pretraining needs at least " + std::to_string(n_held + 4 * (o.seq + 1)) + " tokens at --seq " + std::to_string(o.seq));
    train.assign(all.begin(), all.end() - n_held);
    held.assign(all.end() - n_held, all.end());
  } else {
    const CorpusDir cd{o.corpus_dir.empty() ? default_corpus_dir() : o.corpus_dir};
    if (!std::filesystem::exists(cd.manifest_path()))
      throw Error("no built corpus in '" + cd.dir + "'", "build it first: heirloom corpus build" +
                  (o.corpus_dir.empty() ? std::string() : " --out " + cd.dir) + ", or pass --text FILE");
    vocab = cd.vocab();
    train = encode(vocab, read_text_file(cd.train_path(o.corpus)), true);
    held = encode(vocab, read_text_file(cd.heldout_path(o.corpus)), true);
    if ((int64_t)held.size() < o.seq + 1 || (int64_t)train.size() < 4 * (o.seq + 1))
      throw Error("corpus '" + o.corpus + "' is too small for --seq " + std::to_string(o.seq));
  }
  ModelConfig cfg = preset_config(o.preset, vocab.n_tokens());
  if (o.seq > cfg.n_ctx)
    throw Error("--seq " + std::to_string(o.seq) + " is longer than the " + o.preset + " context of " + std::to_string(cfg.n_ctx));

  Model m = init_model(cfg, vocab, o.seed);
  BaseTrainer tr(m, trainable_mask(m, "all"), AdamwConfig{o.lr, 0.9f, 0.95f, 1e-8f, o.weight_decay, o.clip});
  const std::string ckpt = checkpoint_path(o);
  if (o.resume && std::filesystem::exists(ckpt)) {
    const gguf::File f = gguf::read_file(ckpt);
    const Metadata want = recipe(o, 0);
    for (size_t i = 1; i < want.size(); ++i)
      if (f.get_string("heirloom." + want[i].first) != want[i].second)
        throw Error(ckpt + ": checkpoint was made with " + want[i].first + " = " + f.get_string("heirloom." + want[i].first) +
                        ", this run has " + want[i].second,
                    "rerun with the original flags, or delete the checkpoint to start over");
    load_tensors_into(f, m.tensors, m.data.data());
    for (auto [name, vec] : {std::pair{"heirloom.adam_m", &tr.m1}, std::pair{"heirloom.adam_v", &tr.m2}}) {
      const gguf::TensorInfo* t = f.find_tensor(name);
      if (!t || t->numel() != (int64_t)vec->size()) throw Error(ckpt + ": optimizer state '" + std::string(name) + "' is missing or mis-sized");
      dequantize_row(t->type, f.tensor_data(*t), vec->data(), t->numel());
    }
    tr.steps_done = std::stoi(f.get_string("heirloom.train.step"));
    std::fprintf(stderr, "resuming from %s at step %d\n", ckpt.c_str(), tr.steps_done);
  }

  auto ws = make_workspace();
  auto eval_ws = make_workspace();
  PretrainReport rep;
  rep.n_params = m.n_params();
  rep.train_tokens = (int64_t)train.size();
  rep.heldout_tokens = (int64_t)held.size();
  Progress bar(o.steps, "pretrain " + o.preset, "step", o.progress);
  std::vector<int32_t> tok, tgt;
  double loss = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const int first = tr.steps_done;
  bar.start_at(first);
  while (tr.steps_done < o.steps) {
    const int step = tr.steps_done;
    sample_windows(train, o.batch, o.seq, o.seed * 1000003ull + step, tok, tgt);
    const float lr = lr_schedule(step, o.warmup, o.steps, o.lr, o.min_lr);
    loss = tr.step(m, *ws, Batch{tok.data(), tgt.data(), o.batch, o.seq}, lr, o.aux_coef).loss;
    const bool last = tr.steps_done == o.steps;
    const bool stopping = o.stop_at > 0 && tr.steps_done >= o.stop_at && !last;
    if ((o.eval_every > 0 && tr.steps_done % o.eval_every == 0) || last)
      rep.heldout_curve.emplace_back(tr.steps_done, heldout_loss(m, *eval_ws, held, o.seq));
    if ((o.checkpoint_every > 0 && tr.steps_done % o.checkpoint_every == 0) || last || stopping)
      save_model(m, ckpt, StorageType::f32, recipe(o, tr.steps_done), {{"heirloom.adam_m", tr.m1}, {"heirloom.adam_v", tr.m2}});
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char held_text[32] = "-";
    if (!rep.heldout_curve.empty()) std::snprintf(held_text, sizeof held_text, "%.3f", rep.heldout_curve.back().second);
    char status[160];
    std::snprintf(status, sizeof status, "loss %.3f held-out %s %.0f tok/s", loss, held_text,
                  (double)(tr.steps_done - first) * o.batch * o.seq / std::max(secs, 1e-9));
    bar.update(tr.steps_done, status);
    if (stopping) break;
  }
  bar.finish();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rep.steps = tr.steps_done;
  rep.steps_run = tr.steps_done - first;
  rep.final_train_loss = loss;
  rep.heldout_loss = rep.heldout_curve.empty() ? heldout_loss(m, *eval_ws, held, o.seq) : rep.heldout_curve.back().second;
  rep.tokens_per_second = (double)(tr.steps_done - first) * o.batch * o.seq / std::max(rep.seconds, 1e-9);
  if (tr.steps_done == o.steps) save_model(m, o.out, o.f16 ? StorageType::f16 : StorageType::f32, recipe(o, tr.steps_done));
  return rep;
}

PretrainOptions pretrain_options_from_recipe(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + " is not valid JSON: " + e.what(), "fix the recipe file");
  }
  PretrainOptions o;
  try {
    for (const auto& [k, v] : j.items()) {
      if (k == "about") continue;
      else if (k == "preset") o.preset = v.get<std::string>();
      else if (k == "corpus") o.corpus = v.get<std::string>();
      else if (k == "steps") o.steps = v.get<int>();
      else if (k == "batch") o.batch = v.get<int>();
      else if (k == "seq") o.seq = v.get<int>();
      else if (k == "lr") o.lr = v.get<float>();
      else if (k == "min_lr") o.min_lr = v.get<float>();
      else if (k == "warmup") o.warmup = v.get<int>();
      else if (k == "weight_decay") o.weight_decay = v.get<float>();
      else if (k == "clip") o.clip = v.get<float>();
      else if (k == "aux") o.aux_coef = v.get<float>();
      else if (k == "eval_every") o.eval_every = v.get<int>();
      else if (k == "checkpoint_every") o.checkpoint_every = v.get<int>();
      else if (k == "seed") o.seed = v.get<uint64_t>();
      else throw Error(source + ": unknown recipe key '" + k + "'",
                       "known keys: preset corpus steps batch seq lr min_lr warmup weight_decay clip aux eval_every checkpoint_every seed");
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": a recipe value has the wrong type: " + e.what());
  }
  return o;
}

}  // namespace heirloom
