// The bets harness on a small corpus of eight synthetic voices and a tiny random base: every bet runs in
// --quick mode, writes its JSON and SVG, its flags follow from its numbers, and finished cells of an
// interrupted run are not recomputed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_helpers.h"
#include "heirloom/model.h"
#include "heirloom/personalize.h"
#include "heirloom/text.h"
#include "heirloom/vocab.h"

namespace heirloom {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct BetFixture {
  Dir d{"bets"};
  std::string base = d / "base.gguf", corpus = d / "corpora", out = d / "results";
  std::vector<std::string> people = {"ann", "bo", "cy", "di", "ed", "flo", "gus", "hal"};
  BetFixture() {
    save_model(init_model(preset_config("tiny"), byte_vocab(), 4), base);
    json manifest = {{"corpora", {{{"name", "general"}, {"kind", "general"}}}}};
    const char* words[] = {"apple", "river", "signal", "thread", "quartz", "velvet", "ember", "harbor", "lantern", "meadow"};
    auto write = [&](const std::string& name, int voice) {
      fs::create_directories(corpus + "/" + name);
      for (const char* split : {"train", "heldout"}) {
        std::ofstream f(corpus + "/" + name + "/" + split + ".txt");
        for (int i = 0; i < (split[0] == 't' ? 120 : 30); ++i)
          f << words[voice % 10] << " and " << words[(voice * 3 + i) % 10] << " number " << (i * (voice + 1)) % 17 << ".\n";
      }
    };
    write("general", 9);
    for (size_t i = 0; i < people.size(); ++i) {
      write(people[i], (int)i);
      manifest["corpora"].push_back({{"name", people[i]}, {"kind", "person"}});
    }
    std::ofstream(corpus + "/manifest.json") << manifest.dump();
  }
  CliResult bet(const std::string& n) const {
    return run("bet " + n + " --quick --base " + base + " --corpus-dir " + corpus + " --out-dir " + out + " --threads 1 --json");
  }
  json result(const std::string& stem) const { return json::parse(read_text_file(out + "/" + stem + ".json")); }
};

TEST(Bets, ListNamesEveryBet) {
  const CliResult r = run("bet list");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("specialist_per_person"), std::string::npos) << r.out;
  EXPECT_EQ(run("bet 999 --base /nonexistent").code, 2);
}

TEST(Bets, Bet10QuickWritesResultsWhoseFlagsFollowFromTheNumbers) {
  BetFixture f;
  const CliResult r = f.bet("10");
  ASSERT_EQ(r.code, 0) << r.out;
  const json j = f.result("10_specialist_per_person");
  EXPECT_EQ(j["bet"], 10);
  EXPECT_TRUE(j["quick"].get<bool>());
  EXPECT_EQ(j["people"].size(), f.people.size());
  EXPECT_EQ(j["cells"].size(), 2 * f.people.size());
  EXPECT_EQ(j["seed_claim"]["personal_drop"], 110);
  for (const char* kind : {"full", "norm"}) {
    int strict = 0, total = 0;
    for (const auto& p : f.people) {
      const json& c = j["cells"][std::string(kind) + "/" + p];
      EXPECT_EQ(c["verdict"], bet10_verdict(c["personal_ppl_before"], c["personal_ppl_after"], c["general_ppl_before"],
                                            c["general_ppl_after"])) << kind << " " << p;
      EXPECT_NEAR(c["personal_drop"].get<double>(), c["personal_ppl_before"].get<double>() / c["personal_ppl_after"].get<double>(), 1e-9);
      EXPECT_EQ(c["trajectory"].size(), 6u);  // steps 0..5
      strict += c["verdict"] == "STRICT";
      ++total;
    }
    const json& s = j["summary"][kind];
    EXPECT_EQ(s["verdicts"]["STRICT"], strict);
    int sum = 0;
    for (const auto& [k, v] : s["verdicts"].items()) sum += v.get<int>();
    EXPECT_EQ(sum, total);
    EXPECT_EQ(s["strict_all"].get<bool>(), strict == total);
  }
  const std::string svg = read_text_file(f.out + "/10_specialist_per_person.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("polyline"), std::string::npos);
  EXPECT_FALSE(fs::exists(f.out + "/10_specialist_per_person.partial.json"));
}

TEST(Bets, FollowUps43And60And61QuickFlagsFollowFromTheNumbers) {
  BetFixture f;
  ASSERT_EQ(f.bet("43").code, 0);
  const json b43 = f.result("43_replication");
  for (const char* kind : {"full", "norm"}) {
    int strict = 0, runs = 0;
    for (const auto& [key, c] : b43["cells"].items()) {
      if (key.rfind(kind, 0) != 0) continue;
      ASSERT_EQ(c["texts"].size(), 3u);
      for (const auto& t : c["texts"]) {
        EXPECT_EQ(t["verdict"], bet10_verdict(t["personal_ppl_before"], t["personal_ppl_after"], c["general_ppl_before"],
                                              c["general_ppl_after"]));
        strict += t["verdict"] == "STRICT";
        ++runs;
      }
    }
    EXPECT_EQ(runs, 2 * 3 * (int)f.people.size());  // quick: 2 seeds
    EXPECT_EQ(b43["summary"][kind]["strict"], strict);
    EXPECT_EQ(b43["summary"][kind]["runs"], runs);
  }

  ASSERT_EQ(f.bet("60").code, 0);
  const json b60 = f.result("60_noise_floor");
  for (const char* kind : {"full", "norm"}) {
    int wins = 0;
    for (const auto& p : f.people) {
      const double real = b60["cells"][std::string(kind) + "/" + p + "/real"]["personal_ppl_after"];
      const double rnd = b60["cells"][std::string(kind) + "/" + p + "/random"]["personal_ppl_after"];
      wins += rnd > real;
    }
    EXPECT_EQ(b60["summary"][kind]["real_wins"], wins);
  }

  ASSERT_EQ(f.bet("61").code, 0);
  const json b61 = f.result("61_confusion_matrix");
  int own_wins = 0;
  for (const auto& text : f.people) {
    const double own = b61["cells"]["adapter/" + text]["ppl_on"][text];
    double best_other = 1e300;
    for (const auto& a : f.people)
      if (a != text) best_other = std::min(best_other, b61["cells"]["adapter/" + a]["ppl_on"][text].get<double>());
    own_wins += own < best_other;
    EXPECT_NEAR(b61["summary"]["per_person"][text]["margin_vs_best_other"].get<double>(), best_other / own - 1.0, 1e-9);
  }
  EXPECT_EQ(b61["summary"]["own_adapter_wins"], own_wins);
  EXPECT_NE(read_text_file(f.out + "/61_confusion_matrix.svg").find("<rect"), std::string::npos);
}

TEST(Bets, ShootoutSampleEfficiencyAndSequentialQuick) {
  BetFixture f;
  ASSERT_EQ(f.bet("49").code, 0);
  const json b49 = f.result("49_adapter_shootout");
  EXPECT_EQ(b49["cells"].size(), 3 * f.people.size());
  for (const auto& [key, c] : b49["cells"].items()) {
    EXPECT_GE(c["train_seconds"].get<double>(), 0.5) << key;  // trained up to the budget
    EXPECT_GT(c["adapter_bytes"].get<double>(), 0) << key;
  }
  EXPECT_GT(b49["cells"]["full/ann"]["adapter_bytes"].get<double>(), b49["cells"]["norm/ann"]["adapter_bytes"].get<double>());
  EXPECT_GE(b49["summary"]["pareto_optimal"].size(), 1u);  // some kind is always undominated

  ASSERT_EQ(f.bet("28").code, 0);
  const json b28 = f.result("28_sample_efficiency");
  EXPECT_EQ(b28["cells"].size(), 3 * f.people.size());
  EXPECT_EQ(b28["cells"]["ann/400"]["train_tokens"], 400);

  ASSERT_EQ(f.bet("29").code, 0);
  const json b29 = f.result("29_sequential");
  EXPECT_EQ(b29["cells"].size(), 3 * f.people.size());
  EXPECT_FALSE(b29["cells"]["ann/day1"].contains("adapter"));
  const double base = b29["summary"]["ann"]["general_ppl_base"], last = b29["summary"]["ann"]["general_ppl_last_day"];
  EXPECT_EQ(last, b29["cells"]["ann/day3"]["general_ppl"]);
  EXPECT_GT(base, 1.0);
}

TEST(Bets, Bet69SyntheticNeedsNoBaseAndItsFlagsFollowFromTheRatios) {
  Dir d{"bet69"};
  const CliResult r = run("bet 69 --out-dir " + d / "out" + " --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const json j = json::parse(read_text_file(d / "out/69_generational_inheritance.json"));
  ASSERT_EQ(j["cells"].size(), 3u);  // overlaps 0.0, 0.5, 0.9
  std::vector<std::string> strict;
  for (const auto& sc : j["config"]["schemes"]) {
    int pass = 0;
    for (const auto& [ov, row] : j["cells"].items())
      pass += row[sc.get<std::string>()]["parent_ratio"] >= 0.8 && row[sc.get<std::string>()]["child_ratio"] >= 0.8;
    if (pass >= 2) strict.push_back(sc);
  }
  EXPECT_EQ(j["summary"]["strict_schemes"], json(strict));
  EXPECT_EQ(j["summary"]["strict"].get<bool>(), !strict.empty());
  // Identities the protocol implies: concatenation keeps the parent whole; task vector at 0.5 is the average.
  for (const auto& [ov, row] : j["cells"].items()) {
    EXPECT_NEAR(row["concat"]["parent_ratio"].get<double>(), 1.0, 1e-9) << ov;
    EXPECT_NEAR(row["taskvec:0.5"]["parent_ratio"].get<double>(), row["linear"]["parent_ratio"].get<double>(), 1e-4) << ov;
  }
}

TEST(Bets, FinishedCellsOfAnInterruptedRunAreKept) {
  BetFixture f;
  ASSERT_EQ(f.bet("10").code, 0);
  const json first = f.result("10_specialist_per_person");
  // An interrupted run left one finished cell (marked) in its partial file; the rerun must keep it.
  json cell = first["cells"]["norm/ann"];
  cell["train_seconds"] = 12345.0;
  const json partial = {{"config", first["config"]}, {"base_fingerprint", first["base_fingerprint"]}, {"cells", {{"norm/ann", cell}}}};
  std::ofstream(f.out + "/10_specialist_per_person.partial.json") << partial.dump();
  ASSERT_EQ(f.bet("10").code, 0);
  const json second = f.result("10_specialist_per_person");
  EXPECT_EQ(second["cells"]["norm/ann"]["train_seconds"], 12345.0);
  EXPECT_NE(second["cells"]["norm/bo"]["train_seconds"], 12345.0);
  EXPECT_EQ(second["cells"]["full/ann"]["personal_ppl_after"], first["cells"]["full/ann"]["personal_ppl_after"]);  // deterministic
}

}  // namespace
}  // namespace heirloom

namespace heirloom {
namespace {

TEST(Bets, Bet69RealAndChainQuickRatiosFollowFromThePerplexities) {
  BetFixture f;
  const CliResult r = f.bet("69-real");
  ASSERT_EQ(r.code, 0) << r.out;
  const json j = f.result("69_real_inheritance");
  EXPECT_EQ(j["id"], "69-real");
  ASSERT_EQ(j["cells"].size(), 3u);  // one pair, overlaps 0.0 / 0.5 / 0.9, one seed
  std::vector<std::string> strict;
  for (const auto& sc : j["config"]["schemes"]) {
    const std::string s = sc;
    int pass = 0;
    for (const auto& [key, c] : j["cells"].items()) {
      const json& h = c["schemes"][s];
      EXPECT_NEAR(h["parent_ratio"].get<double>(), c["parent"]["parent_domain_ppl"].get<double>() / h["parent_domain_ppl"].get<double>(), 1e-9);
      EXPECT_NEAR(h["child_ratio"].get<double>(), c["big_child"]["child_domain_ppl"].get<double>() / h["child_domain_ppl"].get<double>(), 1e-9);
      pass += h["parent_ratio"] >= 0.8 && h["child_ratio"] >= 0.8;
    }
    if (pass >= 2) strict.push_back(s);
  }
  EXPECT_EQ(j["summary"]["strict_schemes"], json(strict));
  // Concatenation at overlap 0: routing keeps each domain close to its own adapter.
  for (const auto& [key, c] : j["cells"].items())
    EXPECT_GT(c["schemes"]["concat"]["parent_ratio"].get<double>(), 0.9) << key;

  const CliResult ch = f.bet("69-chain");
  ASSERT_EQ(ch.code, 0) << ch.out;
  const json k = f.result("69_inheritance_chain");
  const json& run1 = k["cells"]["seed/1"];
  const double own0 = run1["first_generation"]["own_ppl"];
  for (const auto& sc : k["config"]["schemes"]) {
    const json& hops = run1["schemes"][sc.get<std::string>()];
    ASSERT_EQ(hops.size(), 2u);  // quick: three generations, two hops
    for (const auto& h : hops) EXPECT_NEAR(h["first_ratio"].get<double>(), own0 / h["first_voice_ppl"].get<double>(), 1e-9);
  }
  EXPECT_TRUE(fs::exists(f.out + "/69_inheritance_chain.svg"));
}

}  // namespace
}  // namespace heirloom
