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
  const double first = j["seconds"]["train_first_step"].get<double>(), train = j["seconds"]["train"].get<double>();
  EXPECT_GT(first, 0.0);
  EXPECT_LT(first, train) << "the first of 4 steps is part of the training time";
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

// HEIRLOOM_NO_AVX512=1 takes the paths of a CPU without AVX-512 (OpenBLAS products, attention through the
// BLAS, no packs): the same fp32 run agrees with this CPU's packed products to float noise, and bf16 is refused.
TEST(PersonalizeCli, WithoutAvx512TheSameRunAgrees) {
  Fixture f;
  for (const char* kind : {"norm", "lora"}) {
    SCOPED_TRACE(kind);
    const std::string args = f.args(f.me) + " --kind " + kind + " --precision fp32 --json";
    const CliResult here = run(args);
    setenv("HEIRLOOM_NO_AVX512", "1", 1);
    const CliResult plain = run(args);
    const CliResult bf16 = run(f.args(f.me) + " --precision bf16");
    unsetenv("HEIRLOOM_NO_AVX512");
    ASSERT_EQ(here.code, 0) << here.out;
    ASSERT_EQ(plain.code, 0) << plain.out;
    EXPECT_EQ(bf16.code, 2) << bf16.out;
    EXPECT_NE(bf16.out.find("AVX512-BF16"), std::string::npos) << bf16.out;
    const auto a = nlohmann::json::parse(here.out.substr(here.out.find('{')));
    const auto b = nlohmann::json::parse(plain.out.substr(plain.out.find('{')));
    for (const char* key : {"personal_ppl_before", "personal_ppl_after", "general_ppl_before", "general_ppl_after"}) {
      const double x = a[key].get<double>(), y = b[key].get<double>();
      EXPECT_NEAR(x, y, 1e-4 * x) << key;
    }
  }
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
