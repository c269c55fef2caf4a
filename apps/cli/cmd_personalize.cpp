// `heirloom personalize`: train a person's adapter and print the Bet 10 table.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "commands.h"
#include "heirloom/corpus.h"
#include "heirloom/error.h"
#include "heirloom/model.h"
#include "heirloom/personalize.h"

namespace heirloom::cli {

namespace {

std::string default_out(const std::string& first_text, AdapterKind kind) {
  return std::filesystem::path(first_text).stem().string() + "." + kind_name(kind) + ".gguf";
}

std::string ratio_text(double before, double after) {
  char b[64];
  if (after <= before) std::snprintf(b, sizeof b, "%.2fx lower", before / after);
  else std::snprintf(b, sizeof b, "%+.1f %%", 100.0 * (after / before - 1.0));
  return b;
}

void print_table(const PersonalizeReport& r, const std::string& out, uintmax_t bytes, const std::string& cvec,
                 double write_seconds) {
  std::printf("\n%-26s %12s %12s   %s\n", "", "before", "after", "change");
  std::printf("%-26s %12.2f %12.2f   %s\n", "personal held-out ppl", r.personal_before, r.personal_after,
              ratio_text(r.personal_before, r.personal_after).c_str());
  std::printf("%-26s %12.2f %12.2f   %s\n", "general held-out ppl", r.general_before, r.general_after,
              ratio_text(r.general_before, r.general_after).c_str());
  std::printf("  (%lld personal and %lld general tokens scored, window %d)\n", (long long)r.personal_scored,
              (long long)r.general_scored, r.seq);
  std::printf("%-26s %d steps x %d x %d tokens, lr %g, %s: %.2f s (the first step %.3f s)\n", "training", r.steps,
              r.batch, r.seq, r.lr, precision_name(r.precision), r.train_seconds, r.first_step_seconds);
  std::printf("%-26s tokenise %.2f s, prepare %.2f s, evaluate before %.2f s, trajectory %.2f s, after %.2f s, write %.3f s\n",
              "the rest of the run", r.tokenize_seconds, r.prepare_seconds, r.eval_before_seconds, r.trajectory_seconds,
              r.eval_after_seconds, write_seconds);
  std::printf("%-26s %s, %lld values, %ju bytes -> %s\n", "adapter", kind_name(r.kind), (long long)r.n_values, bytes,
              out.c_str());
  if (!cvec.empty()) std::printf("%-26s %s\n", "llama.cpp control vector", cvec.c_str());
  const char* why = r.verdict == "STRICT"         ? "personal ppl fell more than 10x, general rose less than 50 %"
                    : r.verdict == "LENIENT"      ? "personal ppl fell more than 2x, general rose less than 100 %"
                    : r.verdict == "CATASTROPHIC" ? "personal ppl unchanged, or general ppl rose more than 5x"
                                                  : "neither STRICT (>10x, <50 %) nor LENIENT (>2x, <100 %)";
  std::printf("%-26s %s (%s)\n", "Bet 10 verdict", r.verdict.c_str(), why);
}

}  // namespace

Action add_personalize(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("personalize", "train a person's specialist adapter on their text and prove it (Bet 10)");
  struct Opts {
    std::string base, heldout, general, corpus_dir, kind = "norm", targets = "q,k,v,o", out, owner, cvec, precision = "auto";
    std::vector<std::string> texts;
    PersonalizeOptions p;
    int max_mib = 256;
    bool f32 = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--text", o->texts, "the person's text files (plain UTF-8)")->required()->expected(1, -1);
  sub->add_option("--heldout", o->heldout, "held-out text of the same person (default: the last 15% of --text, cut at a paragraph)");
  sub->add_option("--general", o->general, "held-out general text (default: the general corpus's held-out split)");
  sub->add_option("--corpus-dir", o->corpus_dir, "built corpus directory (default: " + default_corpus_dir() + ")");
  sub->add_option("--base,--model", o->base, "base model (GGUF); default: the moe-30m base under models/ or the cache");
  sub->add_option("--kind", o->kind, "adapter kind: norm (RMSNorm gains), lora, steer (control vector) or full")
      ->check(CLI::IsMember({"norm", "lora", "steer", "full"}))->capture_default_str();
  sub->add_option("--steps", o->p.steps, "training steps")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--lr", o->p.lr, "learning rate (default per kind: norm 1e-2, lora 1e-3, steer 1e-2, full 5e-5)");
  sub->add_option("--batch", o->p.batch, "windows per step")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--seq", o->p.seq, "tokens per window, also the evaluation window (default 256, or the base's context when shorter)");
  sub->add_option("--rank", o->p.lora.rank, "LoRA rank")->capture_default_str()->check(CLI::Range(1, 256));
  sub->add_option("--alpha", o->p.lora.alpha, "LoRA alpha (scale = alpha / rank)")->capture_default_str();
  sub->add_option("--targets", o->targets, "LoRA projections: any of q,k,v,o and, on an MoE base, router,gate,up,down (the experts' FFNs)")->capture_default_str();
  sub->add_option("--eval-tokens", o->p.eval_tokens, "tokens of each held-out text scored before and after")
      ->capture_default_str()->check(CLI::Range(16, 1 << 30));
  sub->add_option("--seed", o->p.seed, "seed for the training windows and LoRA init")->capture_default_str();
  sub->add_option("--owner", o->owner, "owner name written into the adapter (default: $USER)");
  sub->add_option("--max-mib", o->max_mib, "refuse personal text larger than this")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--out", o->out, "adapter file to write (default: <first text>.<kind>.gguf)");
  sub->add_option("--control-vector", o->cvec, "steer only: also write a llama.cpp control vector here");
  add_precision_option(*sub, o->precision);
  sub->add_flag("--f32", o->f32, "store fp32 values (default fp16: a norm adapter for moe-30m is ~9 KB)");
  add_common_flags(*sub, common);
  return [o, &common] {
    const std::string base_path = resolve_model(o->base);
    const Model base = load_model(base_path);
    PersonalizeOptions p = o->p;
    p.texts = o->texts;
    p.heldout = o->heldout;
    p.kind = parse_adapter_kind(o->kind);
    p.lora.targets = parse_lora_targets(o->targets);
    p.max_bytes = (int64_t)o->max_mib << 20;
    p.precision = parse_precision(o->precision);
    p.progress = !common.json;
    const char* user = std::getenv("USER");
    p.owner = !o->owner.empty() ? o->owner : user ? user : "";
    p.general = general_text_or_default(o->general, o->corpus_dir);
    if (!o->cvec.empty() && p.kind != AdapterKind::steer) throw Error("--control-vector needs --kind steer");
    const std::string out = o->out.empty() ? default_out(p.texts[0], p.kind) : o->out;
    Adapter adapter = make_adapter(base, p.kind, p.lora, p.seed);
    const PersonalizeReport r = personalize(base, adapter, p);
    const auto tw = std::chrono::steady_clock::now();
    save_adapter(adapter, base.config, out, o->f32 ? StorageType::f32 : StorageType::f16);
    if (!o->cvec.empty()) save_control_vector(adapter, base.config, o->cvec);
    const double write_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - tw).count();
    const uintmax_t bytes = std::filesystem::file_size(out);
    if (common.json) {
      nlohmann::json traj = nlohmann::json::array();
      for (auto [s, ppl] : r.trajectory) traj.push_back({{"step", s}, {"personal_ppl", ppl}});
      print_json({{"base", base_path}, {"base_fingerprint", base.fingerprint()}, {"kind", kind_name(r.kind)},
                  {"adapter", out}, {"adapter_bytes", bytes}, {"adapter_values", r.n_values}, {"steps", r.steps},
                  {"batch", r.batch}, {"seq", r.seq}, {"lr", r.lr}, {"train_tokens_available", r.train_tokens},
                  {"heldout_tokens_available", r.heldout_tokens}, {"personal_scored", r.personal_scored},
                  {"general_scored", r.general_scored}, {"invalid_utf8_bytes", r.invalid_utf8},
                  {"personal_ppl_before", r.personal_before}, {"personal_ppl_after", r.personal_after},
                  {"general_ppl_before", r.general_before}, {"general_ppl_after", r.general_after},
                  {"personal_drop", r.personal_before / r.personal_after},
                  {"general_rise", r.general_after / r.general_before - 1.0}, {"train_seconds", r.train_seconds},
                  {"eval_seconds", r.eval_seconds}, {"precision", precision_name(r.precision)},
                  {"seconds", {{"tokenize", r.tokenize_seconds}, {"prepare", r.prepare_seconds},
                               {"eval_before", r.eval_before_seconds}, {"train", r.train_seconds},
                               {"train_first_step", r.first_step_seconds},
                               {"trajectory", r.trajectory_seconds}, {"eval_after", r.eval_after_seconds},
                               {"write", write_seconds}}},
                  {"final_train_loss", r.final_train_loss}, {"verdict", r.verdict},
                  {"trajectory", traj}, {"control_vector", o->cvec}});
    } else {
      std::printf("base %s (fingerprint %s)\n", base_path.c_str(), base.fingerprint().c_str());
      std::printf("personal text: %lld training tokens, %lld held-out tokens%s\n", (long long)r.train_tokens,
                  (long long)r.heldout_tokens, o->heldout.empty() ? " (the last paragraphs)" : "");
      if (r.invalid_utf8 > 0)
        std::printf("note: %lld bytes are not valid UTF-8; they were kept as byte tokens\n", (long long)r.invalid_utf8);
      print_table(r, out, bytes, o->cvec, write_seconds);
      if (!r.trajectory.empty()) {
        std::printf("personal ppl by step (first %d held-out tokens):", p.trajectory_tokens);
        for (auto [s, ppl] : r.trajectory) std::printf(" %d:%.1f", s, ppl);
        std::printf("\n");
      }
    }
    return 0;
  };
}

}  // namespace heirloom::cli
