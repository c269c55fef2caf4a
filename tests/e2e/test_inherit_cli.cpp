// `heirloom inherit` as a successor meets it: the report and recommendation come first and nothing is
// written without acceptance; accepted, the heir is measured against the pure parent and child and
// written with its lineage; a concatenated heir is routed by eval and generate; an adapter of another
// base is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_helpers.h"
#include "heirloom/adapter.h"
#include "heirloom/model.h"
#include "heirloom/vocab.h"

namespace heirloom {
namespace {

namespace fs = std::filesystem;

nlohmann::json json_of(const CliResult& r) { return nlohmann::json::parse(r.out.substr(r.out.find('{'))); }

struct Fixture {
  Dir d{"inherit"};
  std::string base = d / "base.gguf", general = d / "general.txt", parent_text = d / "parent.txt", child_text = d / "child.txt",
              parent = d / "parent.gguf", heir = d / "heir.gguf";
  Fixture() {
    save_model(init_model(preset_config("tiny"), byte_vocab(), 4), base);
    std::ofstream g(general), p(parent_text), c(child_text);
    for (int i = 0; i < 200; ++i) g << "The function returns a list of values for key " << i << ".\n";
    for (int i = 0; i < 300; ++i) p << "Dear Anna, the apple trees are in bloom again " << i % 7 << ".\n\n";
    for (int i = 0; i < 300; ++i) c << "fn main() { let x = " << i % 9 << "; println!(\"{}\", x); }\n\n";
    const CliResult r = run("personalize --base " + base + " --general " + general + " --text " + parent_text + " --out " + parent +
                            " --owner Anna --seq 32 --steps 4 --eval-tokens 256 --threads 1");
    EXPECT_EQ(r.code, 0) << r.out;
  }
  std::string args() const {
    return "inherit --base " + base + " --parent " + parent + " --child-text " + child_text + " --general " + general +
           " --out " + heir + " --owner Ben --steps 4 --ctx 32 --threads 1";
  }
};

TEST(InheritCli, NothingIsWrittenWithoutAcceptance) {
  Fixture f;
  const CliResult r = run(f.args() + " </dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("regime:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Nothing was written"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(f.heir));
  const CliResult j = run(f.args() + " --json </dev/null");
  ASSERT_EQ(j.code, 0) << j.out;
  EXPECT_EQ(json_of(j)["accepted"], false);
  EXPECT_FALSE(fs::exists(f.heir));
}

TEST(InheritCli, AcceptedHeirIsMeasuredAndCarriesItsLineage) {
  Fixture f;
  const CliResult r = run(f.args() + " --scheme blend:0.7 --parent-text " + f.parent_text + " --accept --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = json_of(r);
  EXPECT_EQ(j["scheme"], "blend:0.7");
  EXPECT_EQ(j["generation"], 1);
  ASSERT_EQ(j["measured"].size(), 2u);
  for (const auto& m : j["measured"]) {
    EXPECT_GT(m["heir_ppl"].get<double>(), 1.0);
    EXPECT_NEAR(m["ratio"].get<double>(),
                (m["domain"] == "parent" ? m["parent_ppl"] : m["child_ppl"]).get<double>() / m["heir_ppl"].get<double>(), 1e-9);
  }
  ASSERT_TRUE(fs::exists(f.heir));
  const Model b = load_model(f.base);
  const Adapter h = load_adapter(f.heir, b), p = load_adapter(f.parent, b);
  EXPECT_EQ(h.lineage.generation, 1);
  EXPECT_EQ(h.lineage.scheme, "blend:0.7");
  EXPECT_EQ(h.lineage.parent_sha256, p.info.sha256);
  EXPECT_EQ(h.lineage.child_sha256, j["child_sha256"]);
  EXPECT_EQ(h.lineage.parent_owner, "Anna");
  EXPECT_EQ(h.lineage.child_owner, "Ben");
  EXPECT_EQ(h.lineage.regime, j["overlap"]["regime"]);
}

TEST(InheritCli, ConcatenatedHeirIsRoutedAndOtherBasesRefused) {
  Fixture f;
  const CliResult r = run(f.args() + " --keep-both --accept --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json_of(r)["scheme"], "concat");
  const CliResult e = run("eval --base " + f.base + " --adapter " + f.heir + " --text " + f.child_text + " --ctx 32 --json --threads 1");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_EQ(json_of(e)["routed_targets"].size(), 2u);
  const CliResult g = run("generate --base " + f.base + " --adapter " + f.heir + " --prompt 'fn main() {' -n 4 --threads 1");
  EXPECT_EQ(g.code, 0) << g.out;
  EXPECT_NE(g.out.find("concatenated heir"), std::string::npos) << g.out;
  const CliResult both = run("eval --base " + f.base + " --adapter " + f.heir + " --adapter " + f.parent + " --text " + f.child_text + " --ctx 32 --threads 1");
  EXPECT_EQ(both.code, 2) << both.out;
  // The parent's adapter on another base: refused, nothing written.
  fs::remove(f.heir);
  const std::string other = f.d / "other.gguf";
  save_model(init_model(preset_config("tiny"), byte_vocab(), 5), other);
  const CliResult bad = run("inherit --base " + other + " --parent " + f.parent + " --child-text " + f.child_text + " --general " +
                            f.general + " --out " + f.heir + " --accept --steps 2 --ctx 32 --threads 1");
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("fingerprint"), std::string::npos) << bad.out;
  EXPECT_FALSE(fs::exists(f.heir));
}

}  // namespace
}  // namespace heirloom
