// What every bet uses: the base, the people's token streams, resumable cells, summaries and output.
#pragma once
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "heirloom/bets.h"
#include "heirloom/model.h"
#include "heirloom/personalize.h"

namespace heirloom::bets {

using nlohmann::json;

struct Person {
  std::string name;
  std::vector<int32_t> train, heldout;  // BOS first
};

struct Context {
  const BetInfo& info;
  BetOptions opt;
  std::string base_path;
  Model base;
  std::string fingerprint;
  std::vector<Person> people;  // every person corpus, in manifest order
  std::vector<int32_t> general;  // the general corpus's held-out split
  json config;                   // what the bet ran with; a partial file from another config is not resumed
  json cells = json::object();   // key → result, saved after each cell

  Context(const BetInfo& info, const BetOptions& opt);
  // The result of cell `key`, computed by `run` unless a resumed partial file already has it.
  json cell(const std::string& key, const std::function<json()>& run);
  // Loads finished cells of an interrupted run with the same config (call after setting config).
  void resume();
  // Writes NN_name.json and NN_name.svg atomically and removes the partial file; returns the JSON.
  json finish(json summary, json seed_claim, const std::string& svg);

  std::string partial_path() const;
  double seconds() const;

 private:
  double t0_;
};

// The first n tokens of a stream (or all of it).
std::vector<int32_t> head(const std::vector<int32_t>& v, int64_t n);
// One personalisation as a cell result: before/after, change, verdict, trajectory, seconds, bytes.
json personalize_cell(const Context& ctx, AdapterKind kind, const std::vector<int32_t>& train,
                      const std::vector<int32_t>& heldout, const PersonalizeOptions& o, Adapter* out = nullptr);
// mean, sd (population), min, max of values.
json spread(const std::vector<double>& v);

// The bets.
json bet10(Context& ctx);

}  // namespace heirloom::bets
