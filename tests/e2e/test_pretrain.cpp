// Pretraining end to end through the library and the command-line program: determinism for a fixed
// seed and thread count, resume equal to an uninterrupted run, and bad input answered with a message,
// a non-zero exit and no output file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "heirloom/error.h"
#include "heirloom/train.h"

namespace heirloom {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path p;
  TempDir() : p(fs::temp_directory_path() / ("heirloom_pt_" + std::to_string(getpid()) + "_" + std::to_string(rand()))) {
    fs::create_directories(p);
  }
  ~TempDir() { fs::remove_all(p); }
  std::string operator/(const std::string& f) const { return (p / f).string(); }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string write_text(const TempDir& d) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "line " + std::to_string(i * 7 % 13) + ": the quick brown fox jumps over the lazy dog.\n";
  std::ofstream(d / "text.txt") << text;
  return d / "text.txt";
}

PretrainOptions small(const std::string& text, const std::string& out) {
  PretrainOptions o;
  o.preset = "tiny";
  o.texts = {text};
  o.out = out;
  o.steps = 6;
  o.batch = 2;
  o.seq = 32;
  o.warmup = 2;
  o.eval_every = 3;
  o.checkpoint_every = 3;
  o.progress = false;
  return o;
}

TEST(Pretrain, DeterministicForASeedAndResumeEqualsOneRun) {
  TempDir d;
  const std::string text = write_text(d);
  const PretrainReport a = pretrain(small(text, d / "a.gguf"));
  pretrain(small(text, d / "b.gguf"));
  EXPECT_EQ(slurp(d / "a.gguf"), slurp(d / "b.gguf"));
  EXPECT_LT(a.heldout_loss, 5.0);  // ln(259) = 5.56 at initialisation
  ASSERT_EQ(a.heldout_curve.size(), 2u);

  // Interrupted after step 3 (checkpoint written), then resumed: the same bytes as the straight run.
  PretrainOptions cut = small(text, d / "c.gguf");
  cut.stop_at = 3;
  pretrain(cut);
  EXPECT_FALSE(fs::exists(d / "c.gguf"));
  EXPECT_TRUE(fs::exists(d / "c.gguf.ckpt"));
  PretrainOptions resumed = small(text, d / "c.gguf");
  resumed.resume = true;
  const PretrainReport r = pretrain(resumed);
  EXPECT_EQ(r.steps, 6);
  EXPECT_EQ(slurp(d / "a.gguf"), slurp(d / "c.gguf"));
  // A checkpoint from another recipe is refused by name.
  PretrainOptions other = small(text, d / "c.gguf");
  other.resume = true;
  other.seed = 99;
  EXPECT_THROW(pretrain(other), Error);
}

TEST(Pretrain, RefusesTooLittleTextAndWritesNothing) {
  TempDir d;
  std::ofstream(d / "short.txt") << "too short";
  EXPECT_THROW(pretrain(small(d / "short.txt", d / "x.gguf")), Error);
  EXPECT_FALSE(fs::exists(d / "x.gguf"));
  EXPECT_THROW(pretrain(small(d / "missing.txt", d / "x.gguf")), Error);
}

}  // namespace
}  // namespace heirloom

namespace heirloom {
namespace {

TEST(Pretrain, RecipesParseAndRejectTypos) {
  const PretrainOptions o = pretrain_options_from_recipe(
      R"({"about": "x", "preset": "moe-30m", "steps": 12, "batch": 3, "seq": 64, "lr": 0.5, "seed": 9, "aux": 0.25})", "r.json");
  EXPECT_EQ(o.preset, "moe-30m");
  EXPECT_EQ(o.steps, 12);
  EXPECT_EQ(o.batch, 3);
  EXPECT_EQ(o.seq, 64);
  EXPECT_FLOAT_EQ(o.lr, 0.5f);
  EXPECT_EQ(o.seed, 9u);
  EXPECT_FLOAT_EQ(o.aux_coef, 0.25f);
  EXPECT_THROW(pretrain_options_from_recipe(R"({"stpes": 5})", "r.json"), Error);
  EXPECT_THROW(pretrain_options_from_recipe(R"({"steps": "many"})", "r.json"), Error);
  EXPECT_THROW(pretrain_options_from_recipe("{", "r.json"), Error);
  // The committed recipes parse.
  for (const char* f : {"tiny.json", "moe-30m.json"}) {
    const std::string path = std::string(HEIRLOOM_SOURCE_DIR) + "/recipes/" + f;
    EXPECT_NO_THROW(pretrain_options_from_recipe(slurp(path), path)) << f;
  }
}

TEST(Pretrain, WithoutACorpusSaysHowToBuildOne) {
  TempDir d;
  PretrainOptions o = small("", d / "m.gguf");
  o.texts.clear();
  o.corpus_dir = d / "no-corpus";
  try {
    pretrain(o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.hint()).find("heirloom corpus build"), std::string::npos) << e.hint();
  }
}

}  // namespace
}  // namespace heirloom
