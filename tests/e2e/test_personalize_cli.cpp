// `heirloom personalize` as a user meets it: a run that writes a checked adapter and a JSON report,
// and every bad input refused with a message, exit code 2 and no adapter file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_helpers.h"
#include "heirloom/model.h"
#include "heirloom/vocab.h"

namespace heirloom {
namespace {

namespace fs = std::filesystem;

struct Fixture {
  Dir d{"personalize"};
  std::string base = d / "base.gguf", general = d / "general.txt", me = d / "me.txt", out = d / "me.gguf";
  Fixture() {
    save_model(init_model(preset_config("tiny"), byte_vocab(), 4), base);
    std::ofstream g(general), m(me);
    for (int i = 0; i < 200; ++i) g << "The function returns a list of values for key " << i << ".\n";
    for (int i = 0; i < 300; ++i) m << "Dear Anna, the apple trees are in bloom again " << i % 7 << ".\n\n";
  }
  std::string args(const std::string& text) const {
    return "personalize --base " + base + " --general " + general + " --text " + text + " --out " + out +
           " --seq 32 --steps 4 --eval-tokens 256 --threads 1";
  }
};

TEST(PersonalizeCli, WritesAnAdapterAndReportsBet10) {
  Fixture f;
  const CliResult r = run(f.args(f.me) + " --json --owner Anna");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["kind"], "norm");
  EXPECT_EQ(j["steps"], 4);
  EXPECT_GT(j["personal_ppl_before"].get<double>(), 1.0);
  EXPECT_GT(j["general_ppl_after"].get<double>(), 1.0);
  EXPECT_EQ(j["trajectory"].size(), 2u);  // step 0 and the last step
  EXPECT_TRUE(fs::exists(f.out));
  EXPECT_EQ(j["adapter_bytes"].get<uintmax_t>(), fs::file_size(f.out));
  // The adapter applies in eval; on another base it is refused, naming both fingerprints.
  const CliResult e = run("eval --base " + f.base + " --text " + f.me + " --adapter " + f.out + ":0.5 --ctx 32 --threads 1");
  EXPECT_EQ(e.code, 0) << e.out;
  const std::string other = f.d / "other.gguf";
  save_model(init_model(preset_config("tiny"), byte_vocab(), 5), other);
  const CliResult bad = run("eval --base " + other + " --text " + f.me + " --adapter " + f.out + " --ctx 32");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("fingerprint"), std::string::npos) << bad.out;
  // Merged into a standalone model (how a norm adapter reaches llama.cpp): the same perplexity.
  const std::string merged = f.d / "merged.gguf";
  const CliResult x = run("export --base " + f.base + " --adapter " + f.out + " --out " + merged);
  ASSERT_EQ(x.code, 0) << x.out;
  auto ppl = [](const CliResult& r) { return nlohmann::json::parse(r.out.substr(r.out.find('{')))["ppl"].get<double>(); };
  const double with_adapter = ppl(run("eval --base " + f.base + " --adapter " + f.out + " --text " + f.me + " --ctx 32 --json"));
  const double from_merged = ppl(run("eval --base " + merged + " --text " + f.me + " --ctx 32 --json"));
  EXPECT_NEAR(from_merged, with_adapter, 1e-4 * with_adapter);
  // Q8_0, read back and checked by export itself; a norm adapter is not a llama.cpp LoRA.
  const CliResult q = run("export --base " + f.base + " --adapter " + f.out + " --out " + (f.d / "q8.gguf") +
                          " --type q8_0 --json");
  ASSERT_EQ(q.code, 0) << q.out;
  const auto qj = nlohmann::json::parse(q.out.substr(q.out.find('{')));
  EXPECT_EQ(qj["stored_max_abs_diff"].get<double>(), 0.0);
  EXPECT_GT(qj["runtime_max_abs_diff"].get<double>(), 0.0);
  EXPECT_EQ(qj["bytes"].get<uintmax_t>(), fs::file_size(f.d / "q8.gguf"));
  const CliResult notlora = run("export --base " + f.base + " --adapter " + f.out + " --lora " + (f.d / "l.gguf"));
  EXPECT_EQ(notlora.code, 2);
  EXPECT_NE(notlora.out.find("only a LoRA adapter"), std::string::npos) << notlora.out;
  EXPECT_FALSE(fs::exists(f.d / "l.gguf"));
  EXPECT_EQ(run("export --base " + f.base).code, 2);
  // The table, for people.
  const CliResult t = run(f.args(f.me) + " --kind steer");
  EXPECT_EQ(t.code, 0) << t.out;
  EXPECT_NE(t.out.find("Bet 10 verdict"), std::string::npos) << t.out;
}

TEST(PersonalizeCli, RefusesBadTextAndWritesNothing) {
  Fixture f;
  auto refused = [&](const std::string& file, const std::string& needle) {
    const CliResult r = run(f.args(file));
    EXPECT_EQ(r.code, 2) << file << ": " << r.out;
    EXPECT_NE(r.out.find(needle), std::string::npos) << file << ": " << r.out;
    EXPECT_FALSE(fs::exists(f.out)) << file;
  };
  std::ofstream(f.d / "empty.txt") << "  \n\n";
  refused(f.d / "empty.txt", "empty");
  {
    std::ofstream b(f.d / "binary.bin", std::ios::binary);
    for (int i = 0; i < 5000; ++i) b.put((char)(i * 37 % 256));
  }
  refused(f.d / "binary.bin", "binary");
  std::ofstream(f.d / "short.txt") << "Too short to learn from.";
  refused(f.d / "short.txt", "fewer than one training window");
  // 1 GB: refused before it is read (a sparse file, so the test costs no disk).
  {
    std::ofstream(f.d / "huge.txt") << "x";
    fs::resize_file(f.d / "huge.txt", 1ull << 30);
  }
  refused(f.d / "huge.txt", "MiB");
  refused(f.d / "missing.txt", "does not exist");
}

TEST(PersonalizeCli, InvalidUtf8IsAcceptedAsByteTokensAndSaidSo) {
  Fixture f;
  {
    std::ofstream l(f.d / "latin1.txt", std::ios::binary);
    for (int i = 0; i < 300; ++i) l << "Caf\xe9 na\xefve r\xe9sum\xe9 number " << i << ".\n";
  }
  const CliResult r = run(f.args(f.d / "latin1.txt"));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("not valid UTF-8"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(f.out));
}

}  // namespace
}  // namespace heirloom
