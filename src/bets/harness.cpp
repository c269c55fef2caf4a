// The bets harness. See include/heirloom/bets.h and harness.h.
#include "bets/harness.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "heirloom/corpus.h"
#include "heirloom/error.h"
#include "heirloom/eval.h"
#include "heirloom/inherit.h"
#include "heirloom/text.h"

namespace heirloom {

const std::vector<BetInfo>& bet_list() {
  static const std::vector<BetInfo> list = {
      {"10", 10, "specialist_per_person",
       "a specialist per person: held-out personal and general ppl before/after 100 steps (full fine-tune and norm-only)"},
      {"43", 43, "replication", "Bet 10 over 5 seeds x 3 held-out texts per person: how many pass STRICT"},
      {"60", 60, "noise_floor", "negative control: the same adapter trained on uniformly random tokens; real vs random per person"},
      {"61", 61, "confusion_matrix", "one adapter per person evaluated on every person's held-out text; the own-adapter margin"},
      {"49", 49, "adapter_shootout", "norm-only vs LoRA vs full fine-tune at an equal training-time budget; which is Pareto-optimal"},
      {"28", 28, "sample_efficiency", "held-out personal ppl after training on 250 to 8,000 tokens of the person's text"},
      {"29", 29, "sequential", "the adapter retrained daily on each new day's text for 30 days: general drift, first-day ppl"},
      {"69", 69, "generational_inheritance", "synthetic D=256 adapters: every merge scheme at overlap 0.0/0.5/0.9, retention ratios", false},
      {"69-real", 69, "real_inheritance",
       "real norm adapters: a parent's voice inherited by children whose text is 0/50/90 % that voice; every scheme, measured ppl"},
      {"69-chain", 69, "inheritance_chain", "parent -> child -> grandchild -> great-grandchild: the first generation's skill after each hop, per scheme"},
  };
  return list;
}

std::string bet_stem(const BetInfo& b) {
  char n[8];
  std::snprintf(n, sizeof n, "%02d", b.number);
  return std::string(n) + "_" + b.name;
}

const BetInfo& find_bet(const std::string& id) {
  for (const auto& b : bet_list())
    if (b.id == id) return b;
  std::string known;
  for (const auto& b : bet_list()) known += (known.empty() ? "" : ", ") + b.id;
  throw Error("there is no bet '" + id + "'", "known bets: " + known + " (heirloom bet list)");
}

nlohmann::json run_bet(const std::string& id, const BetOptions& opt) {
  using Runner = nlohmann::json (*)(bets::Context&);
  static const std::map<std::string, Runner> runners = {
      {"10", bets::bet10}, {"43", bets::bet43}, {"60", bets::bet60}, {"61", bets::bet61}, {"49", bets::bet49},
      {"28", bets::bet28}, {"29", bets::bet29}, {"69", bets::bet69}, {"69-real", bets::bet69_real}, {"69-chain", bets::bet69_chain}};
  bets::Context ctx(find_bet(id), opt);
  const auto it = runners.find(id);
  if (it == runners.end()) throw Error("bet " + id + " is listed but not implemented");
  return it->second(ctx);
}

namespace bets {

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

Context::Context(const BetInfo& i, const BetOptions& o) : info(i), opt(o), t0_(now()) {
  std::filesystem::create_directories(opt.out_dir);
  if (!info.needs_base) return;
  base_path = opt.base;
  base = load_model(base_path);
  fingerprint = base.fingerprint();
  const CorpusDir cd{opt.corpus_dir.empty() ? default_corpus_dir() : opt.corpus_dir};
  for (const std::string& name : cd.people())
    people.push_back({name, encode(base.vocab, read_text_file(cd.train_path(name)), true),
                      encode(base.vocab, read_text_file(cd.heldout_path(name)), true)});
  if (people.size() < 2) throw Error(cd.dir + " has " + std::to_string(people.size()) + " person corpora; the bets need several",
                                     "build them with: heirloom corpus build");
  general = encode(base.vocab, read_text_file(cd.heldout_path("general")), true);
}

std::string Context::partial_path() const { return opt.out_dir + "/" + bet_stem(info) + ".partial.json"; }
double Context::seconds() const { return now() - t0_; }

void Context::resume() {
  std::error_code ec;
  if (!std::filesystem::exists(partial_path(), ec)) return;
  try {
    const json p = json::parse(read_text_file(partial_path()));
    if (p.at("config") == config && p.at("base_fingerprint") == fingerprint) {
      cells = p.at("cells");
      std::fprintf(stderr, "resuming %s: %zu finished cells\n", bet_stem(info).c_str(), cells.size());
      return;
    }
    std::fprintf(stderr, "%s was made with another config or base; starting over\n", partial_path().c_str());
  } catch (const std::exception&) {
    std::fprintf(stderr, "%s is damaged; starting over\n", partial_path().c_str());
  }
}

json Context::cell(const std::string& key, const std::function<json()>& run) {
  if (cells.contains(key)) return cells[key];
  json r = run();
  cells[key] = r;
  write_file_atomic(partial_path(), json{{"config", config}, {"base_fingerprint", fingerprint}, {"cells", cells}}.dump(1));
  return r;
}

json Context::finish(json summary, json seed_claim, const std::string& svg) {
  json r = {{"bet", info.number}, {"id", info.id},
            {"name", info.name},
            {"summary_line", info.summary},
            {"heirloom_version", HEIRLOOM_VERSION},
            {"base", base_path},
            {"base_fingerprint", fingerprint},
            {"base_preset", info.needs_base ? base.config.preset : "none (synthetic)"},
            {"quick", opt.quick},
            {"config", config},
            {"cells", cells},
            {"summary", std::move(summary)},
            {"seed_claim", std::move(seed_claim)},
            {"wall_clock_seconds", seconds()}};
  for (const Person& p : people)  // none for a synthetic bet
    r["people"].push_back({{"name", p.name}, {"train_tokens", p.train.size()}, {"heldout_tokens", p.heldout.size()}});
  const std::string stem = opt.out_dir + "/" + bet_stem(info);
  write_file_atomic(stem + ".json", r.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  write_file_atomic(stem + ".svg", svg);
  std::filesystem::remove(partial_path());
  return r;
}

Protocol seed_protocol(const Context& ctx) {
  const bool q = ctx.opt.quick;
  Protocol p;
  p.o.steps = q ? 5 : 100;
  p.o.batch = 1;
  p.o.seq = std::min(q ? 64 : 256, ctx.base.config.n_ctx);
  p.o.eval_tokens = q ? 256 : 4096;  // of the general held-out text; the personal held-out is scored whole
  p.o.trajectory_every = q ? 1 : 10;
  p.o.trajectory_tokens = 1 << 20;
  p.o.seed = 1;
  p.o.progress = false;
  p.o.precision = resolve_precision(ctx.opt.precision);
  p.train_tokens = q ? 600 : 3000;
  p.heldout_tokens = q ? 200 : 500;
  return p;
}

json Protocol::to_json() const {
  return {{"steps", o.steps}, {"batch", o.batch}, {"seq", o.seq}, {"train_tokens", train_tokens},
          {"heldout_tokens", heldout_tokens}, {"general_eval_tokens", o.eval_tokens},
          {"precision", precision_name(o.precision)}};
}

double adapter_ppl(const Context& ctx, const Adapter* a, const std::vector<int32_t>& tokens, int seq) {
  return inherit::adapter_perplexity(ctx.base, a, tokens, seq).ppl();
}

std::vector<int32_t> heldout_slice(const Model& base, const Person& p, int i, int64_t n) {
  std::vector<int32_t> t{base.vocab.bos_id};
  const int64_t from = 1 + i * (n - 1), to = std::min<int64_t>(from + n - 1, (int64_t)p.heldout.size());
  if (from < to) t.insert(t.end(), p.heldout.begin() + from, p.heldout.begin() + to);
  return t;
}

std::vector<int32_t> head(const std::vector<int32_t>& v, int64_t n) {
  return {v.begin(), v.begin() + std::min<int64_t>(n, (int64_t)v.size())};
}

json personalize_cell(const Context& ctx, AdapterKind kind, const std::vector<int32_t>& train,
                      const std::vector<int32_t>& heldout, const PersonalizeOptions& o, Adapter* out) {
  Adapter a = make_adapter(ctx.base, kind, o.lora, o.seed);
  const PersonalizeReport r = personalize_tokens(ctx.base, a, train, heldout, ctx.general, o);
  json traj = json::array();
  for (auto [s, p] : r.trajectory) traj.push_back({s, p});
  if (out) *out = std::move(a);
  return {{"kind", kind_name(kind)},
          {"lr", r.lr},
          {"steps", r.steps},
          {"seq", r.seq},
          {"train_tokens", r.train_tokens},
          {"heldout_tokens", r.heldout_tokens},
          {"personal_ppl_before", r.personal_before},
          {"personal_ppl_after", r.personal_after},
          {"general_ppl_before", r.general_before},
          {"general_ppl_after", r.general_after},
          {"personal_drop", r.personal_before / r.personal_after},
          {"general_rise", r.general_after / r.general_before - 1.0},
          {"verdict", r.verdict},
          {"trajectory", traj},
          {"train_seconds", r.train_seconds},
          {"precision", precision_name(r.precision)},
          {"adapter_values", r.n_values}};
}

json spread(const std::vector<double>& v) {
  if (v.empty()) return {{"n", 0}};
  double sum = 0, sq = 0;
  for (double x : v) sum += x;
  const double mean = sum / v.size();
  for (double x : v) sq += (x - mean) * (x - mean);
  return {{"n", v.size()},
          {"mean", mean},
          {"sd", std::sqrt(sq / v.size())},
          {"min", *std::min_element(v.begin(), v.end())},
          {"max", *std::max_element(v.begin(), v.end())}};
}

}  // namespace bets
}  // namespace heirloom
