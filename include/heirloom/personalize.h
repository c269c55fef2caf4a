// `heirloom personalize`, the Bet 10 job: a person's text → a specialist adapter, with the evidence.
// Held-out personal and held-out general perplexity are measured before and after training on the
// same tokens, and the Bet 10 verdict is drawn from the four numbers.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "heirloom/adapter.h"
#include "heirloom/adapter_train.h"

namespace heirloom {

struct PersonalizeOptions {
  std::vector<std::string> texts;  // the person's writing
  std::string heldout;             // their held-out text; empty = the last paragraphs of `texts`
  double heldout_fraction = 0.15;  // share of the text held out when `heldout` is empty
  std::string general;             // held-out general text (e.g. the general corpus's held-out split)
  AdapterKind kind = AdapterKind::norm;
  LoraShape lora;
  int steps = 100, batch = 1;
  int seq = 0;                     // tokens per window; 0 = 256, or the base's context when shorter
  float lr = 0;                    // 0 = the kind's default (default_lr)
  int eval_tokens = 8192;          // tokens of each held-out text scored before and after
  int trajectory_every = 10;       // personal ppl on the first trajectory_tokens every this many steps
  int trajectory_tokens = 1024;
  int64_t max_bytes = 256ll << 20;  // larger personal files are refused before reading
  double max_seconds = 0;          // stop training after this much training time (0 = run every step)
  uint64_t seed = 1;
  std::string owner;
  bool progress = true;
  Precision precision = Precision::automatic;  // of the base's products, in training and evaluation
};

// The learning rate each kind trains well with at 100 steps (documented in the README).
float default_lr(AdapterKind kind);

struct PersonalizeReport {
  AdapterKind kind = AdapterKind::norm;
  float lr = 0;
  int steps = 0, batch = 0, seq = 0;  // steps actually run
  int64_t train_tokens = 0, heldout_tokens = 0, general_tokens = 0;  // available (general: up to eval_tokens)
  int64_t personal_scored = 0, general_scored = 0;                   // scored per measurement
  int64_t invalid_utf8 = 0;
  double personal_before = 0, personal_after = 0, general_before = 0, general_after = 0;  // perplexities
  Precision precision = Precision::fp32;  // as run
  // Wall-clock of each part; eval_seconds = eval_before + trajectory + eval_after.
  double tokenize_seconds = 0, prepare_seconds = 0, eval_before_seconds = 0, train_seconds = 0, trajectory_seconds = 0,
         eval_after_seconds = 0, eval_seconds = 0;
  double first_step_seconds = 0;  // part of train_seconds: the first step also meets the training's fresh memory
  double final_train_loss = 0;
  int64_t n_values = 0;  // trainable values
  std::vector<std::pair<int, double>> trajectory;  // (step, personal ppl on the first trajectory_tokens)
  std::string verdict;   // STRICT, LENIENT, CATASTROPHIC or none
};

// Bet 10's pre-registered criteria. "Unchanged" personal ppl means a drop of less than 1 %.
std::string bet10_verdict(double personal_before, double personal_after, double general_before, double general_after);

// The person's text read, checked, split into train and held-out, and tokenised, with the general text.
struct PersonTokens {
  std::vector<int32_t> train, heldout, general;
  int64_t invalid_utf8 = 0;
};
PersonTokens person_tokens(const Model& base, const PersonalizeOptions& opt);

// Trains `adapter` (fresh from make_adapter, or any adapter to train further) in place and measures it. Errors (bad text, too short,
// missing general text) are thrown before any training.
PersonalizeReport personalize(const Model& base, Adapter& adapter, const PersonalizeOptions& opt);
// The same on token streams (BOS first): the person's training and held-out text and general held-out
// text. `texts`, `heldout`, `general` and `max_bytes` of the options are not used.
PersonalizeReport personalize_tokens(const Model& base, Adapter& adapter, const std::vector<int32_t>& train,
                                     const std::vector<int32_t>& heldout, const std::vector<int32_t>& general,
                                     const PersonalizeOptions& opt);

// Where the text is cut into train and held-out: at a paragraph break near (1 - fraction) of the bytes,
// else a line break, else a space, else a UTF-8 character boundary.
size_t heldout_cut(const std::string& text, double fraction);

}  // namespace heirloom
