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

// The seed's Bet 10 protocol, shared by its follow-ups: 100 steps of one 256-token window, ~3,000 training
// tokens and ~500 held-out tokens per person, 4,096 general held-out tokens (quick: reduced).
struct Protocol {
  PersonalizeOptions o;
  int64_t train_tokens, heldout_tokens;
  json to_json() const;
};
Protocol seed_protocol(const Context& ctx);

// Held-out text i of a person: the i-th run of n tokens of the held-out split, BOS first.
std::vector<int32_t> heldout_slice(const Model& base, const Person& p, int i, int64_t n);
// The first n tokens of a stream (or all of it).
std::vector<int32_t> head(const std::vector<int32_t>& v, int64_t n);
// One personalisation as a cell result: before/after, change, verdict, trajectory, seconds, bytes.
json personalize_cell(const Context& ctx, AdapterKind kind, const std::vector<int32_t>& train,
                      const std::vector<int32_t>& heldout, const PersonalizeOptions& o, Adapter* out = nullptr);
// Perplexity of the base with an adapter (null = the base alone; a concatenated heir is routed) on tokens,
// windows of seq.
double adapter_ppl(const Context& ctx, const Adapter* a, const std::vector<int32_t>& tokens, int seq);
// mean, sd (population), min, max of values.
json spread(const std::vector<double>& v);

// The bets.
json bet10(Context& ctx);
json bet43(Context& ctx);
json bet60(Context& ctx);
json bet61(Context& ctx);
json bet49(Context& ctx);
json bet28(Context& ctx);
json bet29(Context& ctx);
json bet69(Context& ctx);
json bet69_real(Context& ctx);
json bet69_chain(Context& ctx);

}  // namespace heirloom::bets
