// Models as people already have them: every tensor type, both vocabulary kinds and odd shapes (grouped-query
// attention, tied output, widths that are not powers of two, rows not a multiple of 32) go
// load → forward → save → load with the logits and values of the in-memory model rounded the same way.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/rng.h"
#include "heirloom/error.h"
#include "ops/rope.h"
#include "heirloom/engine.h"
#include "heirloom/generate.h"
#include "heirloom/personalize.h"
#include "heirloom/export.h"
#include "heirloom/vocab.h"
#include "text/bpe.h"

namespace heirloom {
namespace {

Vocab tiny_gpt2_vocab() {
  Vocab v;
  v.model = "gpt2";
  v.pre = "llama3";
  v.tokens = {"<|begin|>", "<|end|>"};
  v.types = {kTokenControl, kTokenControl};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(bpe::bytes_to_symbols(std::string(1, (char)b)));
    v.types.push_back(kTokenNormal);
  }
  v.tokens.push_back("th");
  v.types.push_back(kTokenNormal);
  v.merges = {"t h"};
  v.scores.assign(v.tokens.size(), 0.f);
  v.bos_id = 0, v.eos_id = 1, v.unk_id = 0;
  v.add_space_prefix = false;
  return v;
}

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& tokens) {
  auto ws = make_workspace();
  forward(m, *ws, Batch{tokens.data(), nullptr, 1, (int)tokens.size()}, {}, ForwardOptions{});
  return {logits(*ws), logits(*ws) + tokens.size() * (size_t)m.config.n_vocab};
}

TEST(Import, EveryTypeVocabularyAndOddShapeLoadsRunsAndSavesBack) {
  ModelConfig gqa;  // grouped-query attention, tied output, 96 wide (rows of 96: Q8_0 fits; F = 40 does not)
  gqa.preset = "odd";
  gqa.n_embd = 96, gqa.n_layer = 2, gqa.n_head = 6, gqa.n_head_kv = 2, gqa.n_ff = 40, gqa.n_ctx = 48;
  gqa.tied_output = true, gqa.rope_base = 500000.f;
  ModelConfig moe = gqa;  // MoE, untied, with Llama 3.1-style RoPE frequency factors
  moe.n_expert = 3, moe.n_expert_used = 2, moe.tied_output = false, moe.n_head_kv = 3;
  moe.rope_freqs.assign(moe.n_embd / moe.n_head / 2, 1.f);
  for (size_t i = moe.rope_freqs.size() / 2; i < moe.rope_freqs.size(); ++i) moe.rope_freqs[i] = 8.f;
  const std::string path = (std::filesystem::temp_directory_path() / "heirloom_import.gguf").string();
  for (const ModelConfig& base_cfg : {gqa, moe})
    for (const Vocab& vocab : {byte_vocab(), tiny_gpt2_vocab()})
      for (StorageType st : {StorageType::f32, StorageType::f16, StorageType::bf16, StorageType::q8_0}) {
        SCOPED_TRACE(std::string(base_cfg.is_moe() ? "moe" : "gqa-tied") + " " + vocab.model + " " + storage_name(st));
        ModelConfig c = base_cfg;
        c.n_vocab = vocab.n_tokens();
        const Model m = init_model(c, vocab, 31);
        save_model(m, path, st);
        const Model a = load_model(path);
        EXPECT_EQ(a.config.n_head_kv, c.n_head_kv);
        EXPECT_EQ(a.config.tied_output, c.tied_output);
        EXPECT_EQ(a.config.rope_base, c.rope_base);
        EXPECT_EQ(a.config.n_ctx, c.n_ctx);
        EXPECT_EQ(a.config.rope_freqs, c.rope_freqs);
        EXPECT_EQ(a.vocab.model, vocab.model);
        const std::vector<int32_t> tokens = encode(a.vocab, "the theory, 12345 times", true);
        ASSERT_EQ(tokens, encode(vocab, "the theory, 12345 times", true));
        ASSERT_LE((int)tokens.size(), c.n_ctx);
        EXPECT_EQ(logits_of(a, tokens), logits_of(round_trip_storage(m, st), tokens));
        save_model(a, path, st);  // what was read, written again, reads back the same
        const Model b = load_model(path);
        EXPECT_EQ(b.data, a.data);
      }
  std::filesystem::remove(path);
}

// An imported base (byte-level BPE vocabulary, grouped-query attention, tied output) is personalised, merged
// and generated from exactly as our own.
TEST(Import, PersonaliseMergeAndGenerateOnAnImportedBase) {
  ModelConfig c;
  c.preset = "imported";
  c.n_embd = 64, c.n_layer = 2, c.n_head = 4, c.n_head_kv = 2, c.n_ff = 96, c.n_ctx = 64, c.tied_output = true;
  const Vocab vocab = tiny_gpt2_vocab();
  c.n_vocab = vocab.n_tokens();
  const auto dir = std::filesystem::temp_directory_path() / "heirloom_import_personalise";
  std::filesystem::create_directories(dir);
  save_model(init_model(c, vocab, 5), (dir / "base.gguf").string(), StorageType::f16);
  const Model base = load_model((dir / "base.gguf").string());
  std::string text;
  for (int i = 0; i < 60; ++i) text += "the thing that thinks, " + std::to_string(i) + " times over.\n\n";
  std::ofstream((dir / "me.txt").string()) << text;
  std::ofstream((dir / "general.txt").string()) << "A general text about other things entirely, and more of it.\n";
  PersonalizeOptions o;
  o.texts = {(dir / "me.txt").string()};
  o.general = (dir / "general.txt").string();
  o.steps = 20, o.seq = 32, o.eval_tokens = 256, o.progress = false;
  Adapter a = make_adapter(base, AdapterKind::norm);
  const PersonalizeReport r = personalize(base, a, o);
  EXPECT_LT(r.personal_after, r.personal_before);
  const ExportCheck x = export_merged(base, {{&a, 1.f}}, StorageType::f32, (dir / "merged.gguf").string());
  EXPECT_EQ(x.stored_diff, 0.0);
  EXPECT_LE(x.runtime_diff, 1e-4 * (1 + x.max_logit));
  const AdapterView view = a.view(base.config);
  SamplingOptions so;
  so.temperature = 0;
  const std::vector<int32_t> out = generate(base, encode(base.vocab, "the", true), 8, so, &view);
  EXPECT_FALSE(out.empty());
  std::filesystem::remove_all(dir);
}

// Frequency factors divide each pair's angle, as llama.cpp applies rope_freqs; all ones change nothing.
TEST(Import, RopeFrequencyFactorsDivideTheAngle) {
  const std::vector<float> f = {1.f, 2.f, 4.f, 0.5f};
  const RopeTable t = make_rope_table(16, 8, 10000.f, f), plain = make_rope_table(16, 8, 10000.f);
  for (int p = 0; p < 16; ++p)
    for (int i = 0; i < 4; ++i) {
      const double theta = p * std::pow(10000.0, -2.0 * i / 8) / f[i];
      EXPECT_NEAR(t.cs[(p * 4 + i) * 2], std::cos(theta), 1e-6);
      EXPECT_NEAR(t.cs[(p * 4 + i) * 2 + 1], std::sin(theta), 1e-6);
    }
  EXPECT_EQ(make_rope_table(16, 8, 10000.f, {1.f, 1.f, 1.f, 1.f}).cs, plain.cs);
  ModelConfig c = preset_config("tiny");
  Model m = init_model(c, byte_vocab(), 2);
  const std::vector<int32_t> tokens = encode(m.vocab, "rotary positions", true);
  const std::vector<float> before = logits_of(m, tokens);
  m.config.rope_freqs.assign(c.n_embd / c.n_head / 2, 1.f);
  EXPECT_EQ(logits_of(m, tokens), before);
  m.config.rope_freqs.back() = 16.f;
  EXPECT_NE(logits_of(m, tokens), before);
  m.config.rope_freqs.back() = -1.f;
  EXPECT_THROW(m.config.validate(), Error);
}

}  // namespace
}  // namespace heirloom
