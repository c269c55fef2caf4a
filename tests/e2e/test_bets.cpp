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
