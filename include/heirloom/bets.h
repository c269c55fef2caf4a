// The bets harness: each of the seeds' pre-registered experiments, reproduced with one command.
// A bet runs "cells" (one personalisation, one evaluation, ...); every finished cell is saved at once to
// a partial results file, so an interrupted run resumes without redoing finished cells. At the end the
// bet writes NN_name.json (config, every measured value, summary, pre-registered flags, the seed's
// claim beside heirloom's result) and NN_name.svg, atomically.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "heirloom/engine.h"

namespace heirloom {

struct BetOptions {
  std::string base;        // model file (resolved by the caller)
  std::string corpus_dir;  // built corpora (person and general splits)
  std::string out_dir = "experiments/bets/results";
  int seeds = 0;           // 0 = the bet's default
  bool quick = false;      // a reduced run (fewer steps, fewer tokens) for tests
  bool progress = true;
  Precision precision = Precision::automatic;  // of the frozen base's products while adapters train
};

struct BetInfo {
  std::string id;       // what `heirloom bet` takes: "10", "69-real"
  int number;
  std::string name;     // file stem after the number, e.g. "specialist_per_person"
  std::string summary;  // one line for `heirloom bet list`
  bool needs_base = true;  // false: a synthetic bet (no model, no corpora)
};

const std::vector<BetInfo>& bet_list();
// The bet with this id; Error naming the known ones otherwise.
const BetInfo& find_bet(const std::string& id);
// Runs a bet and returns the results JSON it wrote. Error for an unknown bet.
nlohmann::json run_bet(const std::string& id, const BetOptions& opt);
// "10_specialist_per_person": the file stem of a bet's results.
std::string bet_stem(const BetInfo& b);

}  // namespace heirloom
