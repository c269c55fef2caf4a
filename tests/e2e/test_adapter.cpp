// Adapters: a zero adapter is the base, run-time application equals merging into the weights, stacked
// adapters equal their sum, files round-trip and refuse other bases, damage and NaN, the norm adapter of
// moe-30m fits in 10 KB, and training on real text lowers held-out loss.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "heirloom/cache_line.h"
#include "core/gemm_bf16.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "heirloom/adapter.h"
#include "heirloom/adapter_train.h"
#include "heirloom/error.h"
#include "heirloom/eval.h"
#include "heirloom/personalize.h"
#include "heirloom/text.h"
#include "heirloom/vocab.h"
#include "io/gguf.h"
#include "model/workspace.h"

namespace heirloom {
namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("heirloom_adapter_" + std::to_string(getpid()) + "_" + name)).string();
}

const Model& tiny_base() {
  static const Model m = init_model(preset_config("tiny"), byte_vocab(), 11);
  return m;
}

std::vector<float> run_logits(const Model& m, const AdapterView* view) {
  Rng r(5);
  const int B = 2, T = 24, V = m.config.n_vocab;
  std::vector<int32_t> tok(B * T);
  for (auto& t : tok) t = (int32_t)r.below(V);
  auto ws = make_workspace();
  const AdapterView* views[1] = {view};
  forward(m, *ws, Batch{tok.data(), nullptr, B, T}, view ? std::span<const AdapterView* const>(views, 1) : std::span<const AdapterView* const>(),
          ForwardOptions{});
  return {logits(*ws), logits(*ws) + (size_t)B * T * V};
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

// An adapter of `kind` with small random values everywhere (LoRA's B too, so it has an effect).
Adapter random_adapter(AdapterKind kind, uint64_t seed, LoraShape shape = {}) {
  Adapter a = make_adapter(tiny_base(), kind, shape, seed);
  Rng r(seed);
  for (auto& x : a.params) x += 0.05f * r.normal();
  if (kind == AdapterKind::steer) std::fill_n(a.params.begin(), tiny_base().config.n_embd, 0.f);
  return a;
}

TEST(Adapter, ZeroAdaptersGiveTheBaseLogitsExactly) {
  const Model& base = tiny_base();
  const std::vector<float> ref = run_logits(base, nullptr);
  for (AdapterKind k : {AdapterKind::norm, AdapterKind::lora, AdapterKind::steer}) {
    const Adapter a = make_adapter(base, k);
    const AdapterView v = a.view(base.config);
    EXPECT_EQ(max_abs_diff(run_logits(base, &v), ref), 0.f) << kind_name(k);
  }
  const Adapter full = make_adapter(base, AdapterKind::full);
  const AppliedAdapters ap = apply_adapters(base, {{&full, 1.f}});
  ASSERT_TRUE(ap.merged.has_value());
  EXPECT_EQ(max_abs_diff(run_logits(*ap.merged, nullptr), ref), 0.f);
}

TEST(Adapter, RunTimeApplicationEqualsMergedWeights) {
  const Model& base = tiny_base();
  LoraShape shape;
  shape.rank = 4;
  shape.targets = parse_lora_targets("q,k,v,o,router,gate,up,down");
  for (AdapterKind k : {AdapterKind::norm, AdapterKind::lora}) {
    const Adapter a = random_adapter(k, 3, shape);
    const AdapterView v = a.view(base.config);
    const std::vector<float> runtime = run_logits(base, &v);
    const AppliedAdapters merged = apply_adapters(base, {{&a, 1.f}}, /*merge_all=*/true);
    ASSERT_TRUE(merged.merged.has_value());
    EXPECT_FALSE(merged.has_view);
    const std::vector<float> m = run_logits(*merged.merged, nullptr);
    EXPECT_GT(max_abs_diff(runtime, run_logits(base, nullptr)), 1e-3f) << "the adapter must change something";
    EXPECT_LT(max_abs_diff(runtime, m), 2e-4f) << kind_name(k);
  }
  // A steering vector lives on the residual stream: merging it is refused, not faked.
  const Adapter s = random_adapter(AdapterKind::steer, 4);
  EXPECT_THROW(apply_adapters(base, {{&s, 1.f}}, true), Error);
}

TEST(Adapter, CombinedAdaptersEqualTheirScaledSum) {
  const Model& base = tiny_base();
  LoraShape r2, r3;
  r2.rank = 2;
  r3.rank = 3;
  r3.targets = parse_lora_targets("q,v,router,down");
  const Adapter l1 = random_adapter(AdapterKind::lora, 5, r2), l2 = random_adapter(AdapterKind::lora, 6, r3);
  const Adapter n1 = random_adapter(AdapterKind::norm, 7), n2 = random_adapter(AdapterKind::norm, 8);
  const std::vector<std::pair<const Adapter*, float>> list = {{&l1, 0.5f}, {&n1, 1.f}, {&l2, 2.f}, {&n2, -0.5f}};
  const AppliedAdapters stacked = apply_adapters(base, list);
  EXPECT_FALSE(stacked.merged.has_value());
  EXPECT_EQ(stacked.view.lora_rank, 5);
  const AppliedAdapters merged = apply_adapters(base, list, true);
  EXPECT_LT(max_abs_diff(run_logits(base, stacked.view_ptr()), run_logits(*merged.merged, nullptr)), 2e-4f);
}

TEST(Adapter, FileRoundTripsAndRefusesOtherBasesDamageAndNaN) {
  const Model& base = tiny_base();
  LoraShape every;
  every.rank = 2;
  every.targets = parse_lora_targets("q,k,v,o,router,gate,up,down");
  for (AdapterKind k : {AdapterKind::norm, AdapterKind::lora, AdapterKind::steer, AdapterKind::full}) {
    Adapter a = random_adapter(k, 9, every);
    a.info.owner = "Ada";
    a.info.steps = 100;
    a.info.lr = 0.01f;
    const std::string p = tmp_path(std::string(kind_name(k)) + ".gguf");
    save_adapter(a, base.config, p, StorageType::f32);
    const Adapter b = load_adapter(p, base);
    EXPECT_EQ(b.kind, k);
    EXPECT_EQ(b.params, a.params) << kind_name(k);
    EXPECT_EQ(b.info.owner, "Ada");
    EXPECT_EQ(b.info.steps, 100);
    if (k == AdapterKind::lora) {
      EXPECT_EQ(b.lora.rank, 2);
      EXPECT_EQ(b.lora.targets, every.targets);
    }
    std::filesystem::remove(p);
  }
  Adapter a = random_adapter(AdapterKind::norm, 10);
  const std::string p = tmp_path("norm16.gguf");
  save_adapter(a, base.config, p, StorageType::f16);
  const Adapter h = load_adapter(p, base);
  for (size_t i = 0; i < a.params.size(); ++i) EXPECT_NEAR(h.params[i], a.params[i], 1e-3f * std::abs(a.params[i]) + 1e-7f);

  // Another base: refused with both fingerprints in the message.
  const Model other = init_model(preset_config("tiny"), byte_vocab(), 12);
  try {
    load_adapter(p, other);
    ADD_FAILURE() << "an adapter for another base was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(base.fingerprint()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(other.fingerprint()), std::string::npos) << e.what();
  }
  // One flipped byte in the data, and a truncated file: both refused.
  std::string bytes;
  {
    std::ifstream in(p, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [&](const std::string& s) { std::ofstream(p, std::ios::binary | std::ios::trunc) << s; };
  std::string flipped = bytes;
  flipped[flipped.size() - 3] ^= 0x10;
  write(flipped);
  EXPECT_THROW(load_adapter(p, base), Error);
  write(bytes.substr(0, bytes.size() - 100));
  EXPECT_THROW(load_adapter(p, base), Error);
  // NaN with a checksum that matches (a file written by something that does not check).
  std::string nan_file = bytes;
  const gguf::File f = gguf::read_bytes(std::vector<uint8_t>(bytes.begin(), bytes.end()));
  const size_t data_at = f.data_offset + f.tensors[0].offset;
  nan_file[data_at] = 0x00, nan_file[data_at + 1] = 0x7E;  // f16 0x7E00 = NaN
  const std::string stored = f.get_string("heirloom.sha256");
  const std::string fixed = sha256_hex(std::string_view(nan_file).substr(data_at, f.tensors[0].nbytes()));
  nan_file.replace(nan_file.find(stored), stored.size(), fixed);
  write(nan_file);
  try {
    load_adapter(p, base);
    ADD_FAILURE() << "a NaN adapter was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
  std::filesystem::remove(p);
}

TEST(Adapter, NormAdapterForMoe30mIsAtMost10KB) {
  const ModelConfig c = preset_config("moe-30m", 8192);
  Adapter a;
  a.kind = AdapterKind::norm;
  a.params.assign(adapter_size(c, AdapterKind::norm), 0.01f);
  EXPECT_EQ(a.params.size(), 4352u);
  a.info = {"a person with a rather long name, to be safe", "2026-11-24T12:00:00Z", "0123456789abcdef", 100, 256, 1, 0.01f, 25600, 1, ""};
  const std::string p = tmp_path("moe30m-norm.gguf");
  save_adapter(a, c, p, StorageType::f16);
  const auto size = std::filesystem::file_size(p);
  EXPECT_LE(size, 10'000u);
  EXPECT_GE(size, 4352u * 2);
  std::filesystem::remove(p);
}

TEST(Adapter, ExpertTargetsNeedAnMoeBaseAndUseLlamaCppShapes) {
  const Model dense = init_model(preset_config("tiny-dense"), byte_vocab(), 2);
  LoraShape s;
  s.targets = parse_lora_targets("q,gate");
  EXPECT_THROW(make_adapter(dense, AdapterKind::lora, s), Error);
  EXPECT_THROW(parse_lora_targets("q,mlp"), Error);
  const Adapter a = make_adapter(tiny_base(), AdapterKind::lora, s);
  const std::string p = tmp_path("experts.gguf");
  save_adapter(a, tiny_base().config, p, StorageType::f32);
  const gguf::File f = gguf::read_file(p);
  const ModelConfig& c = tiny_base().config;
  const gguf::TensorInfo* ga = f.find_tensor("blk.0.ffn_gate_exps.weight.lora_a");
  const gguf::TensorInfo* gb = f.find_tensor("blk.0.ffn_gate_exps.weight.lora_b");
  ASSERT_TRUE(ga && gb);
  EXPECT_EQ(ga->ne, (std::vector<int64_t>{c.n_embd, s.rank, c.n_expert}));
  EXPECT_EQ(gb->ne, (std::vector<int64_t>{s.rank, c.n_ff, c.n_expert}));
  EXPECT_EQ(f.get_string("adapter.type"), "lora");
  std::filesystem::remove(p);
}

TEST(Adapter, ControlVectorHasLlamaCppLayout) {
  const Model& base = tiny_base();
  const Adapter s = random_adapter(AdapterKind::steer, 13);
  const std::string p = tmp_path("cvec.gguf");
  save_control_vector(s, base.config, p);
  const gguf::File f = gguf::read_file(p);
  EXPECT_EQ(f.get_string("general.architecture"), "controlvector");
  EXPECT_EQ(f.get_i32("controlvector.layer_count"), base.config.n_layer - 1);
  ASSERT_EQ((int)f.tensors.size(), base.config.n_layer - 1);
  EXPECT_EQ(f.tensors[0].name, "direction.1");
  const float* d1 = reinterpret_cast<const float*>(f.tensor_data(f.tensors[0]));
  EXPECT_EQ(d1[3], s.params[base.config.n_embd + 3]);
  std::filesystem::remove(p);
}

// Real text: a byte-level base briefly pretrained on the GPL, then a norm adapter trained on Vim's user
// manual. Its held-out perplexity on the manual must fall, and the base must not change.
TEST(Adapter, TrainingLowersHeldOutLossOnRealText) {
  std::string manual;
  for (const auto& e : std::filesystem::directory_iterator("/usr/share/vim")) {
    const auto doc = e.path() / "doc";
    for (const char* f : {"usr_01.txt", "usr_02.txt", "usr_03.txt", "usr_04.txt"})
      if (std::filesystem::exists(doc / f)) manual += read_text_file((doc / f).string());
  }
  ASSERT_GT(manual.size(), 50'000u) << "vim-runtime's user manual is missing (scripts/setup installs it)";
  const std::string gpl = read_text_file("/usr/share/common-licenses/GPL-3");
  Model base = init_model(preset_config("tiny"), byte_vocab(), 21);
  {
    BaseTrainer tr(base, trainable_mask(base, "all"), AdamwConfig{3e-3f});
    auto ws = make_workspace();
    const std::vector<int32_t> stream = encode(base.vocab, gpl, true);
    std::vector<int32_t> tok, tgt;
    for (int s = 0; s < 60; ++s) {
      sample_windows(stream, 8, 64, 100 + s, tok, tgt);
      tr.step(base, *ws, Batch{tok.data(), tgt.data(), 8, 64}, 3e-3f, 0.f);
    }
  }
  const WeightBuffer before_weights = base.data;
  const size_t cut = heldout_cut(manual, 0.15);
  const std::vector<int32_t> train = encode(base.vocab, manual.substr(0, cut), true);
  const std::vector<int32_t> held = encode(base.vocab, manual.substr(cut), true);
  const std::span<const int32_t> held_eval(held.data(), std::min<size_t>(held.size(), 4096));
  Adapter a = make_adapter(base, AdapterKind::norm);
  AdapterTrainer tr(base, a, AdamwConfig{default_lr(AdapterKind::norm), 0.9f, 0.999f});
  const double ppl0 = perplexity_sliding(base, held_eval, 64, tr.view()).ppl();
  auto ws = make_workspace();
  std::vector<int32_t> tok, tgt;
  for (int s = 0; s < 60; ++s) {
    sample_windows(train, 4, 64, 7 + s, tok, tgt);
    tr.step(*ws, Batch{tok.data(), tgt.data(), 4, 64}, default_lr(AdapterKind::norm));
  }
  tr.finish();
  const AdapterView v = a.view(base.config);
  const double ppl1 = perplexity_sliding(base, held_eval, 64, &v).ppl();
  EXPECT_LT(ppl1, 0.97 * ppl0) << "held-out personal ppl " << ppl0 << " -> " << ppl1;
  EXPECT_EQ(base.data, before_weights) << "training an adapter must not touch the base";
}

// bf16 products against the frozen base (AMX or AVX512-BF16) must train the same adapter as fp32: the same batches give
// per-step losses within 0.1% and final adapters within 3% of each other, for every adapter
// kind, on a dense and an MoE base (a full adapter repacks its weights as bf16 every step).
TEST(Adapter, Bf16TrainingTracksFp32) {
  EXPECT_EQ(parse_precision("auto"), Precision::automatic);
  EXPECT_THROW(parse_precision("fp16"), Error);
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16; only the fp32 path exists here";
  for (const char* preset : {"tiny", "tiny-dense"}) {
    const Model base = init_model(preset_config(preset), byte_vocab(), 3);
    const std::string gpl = read_text_file("/usr/share/common-licenses/GPL-3");
    const std::vector<int32_t> stream = encode(base.vocab, gpl, true);
    for (AdapterKind kind : {AdapterKind::norm, AdapterKind::lora, AdapterKind::steer, AdapterKind::full}) {
      SCOPED_TRACE(std::string(preset) + " " + kind_name(kind));
      std::vector<double> losses[2];
      std::vector<float> params[2];
      for (int p = 0; p < 2; ++p) {
        Adapter a = make_adapter(base, kind);
        AdapterTrainer tr(base, a, AdamwConfig{default_lr(kind), 0.9f, 0.999f}, p ? Precision::bf16 : Precision::fp32);
        ASSERT_EQ(tr.precision(), p ? Precision::bf16 : Precision::fp32);
        auto ws = make_workspace();
        std::vector<int32_t> tok, tgt;
        for (int s = 0; s < 30; ++s) {
          sample_windows(stream, 4, 64, 50 + s, tok, tgt);
          losses[p].push_back(tr.step(*ws, Batch{tok.data(), tgt.data(), 4, 64}, default_lr(kind)));
        }
        tr.finish();
        params[p] = a.params;
      }
      for (int s = 0; s < 30; ++s) EXPECT_NEAR(losses[1][s], losses[0][s], 1e-3 * losses[0][s]) << "step " << s;
      EXPECT_LT(losses[1].back(), losses[1].front()) << "bf16 training must still learn";
      double diff = 0, ref = 0;
      for (size_t i = 0; i < params[0].size(); ++i) {
        diff += std::pow(params[1][i] - params[0][i], 2);
        ref += std::pow(params[0][i], 2);
      }
      double worst = 0;
      for (int s = 0; s < 30; ++s) worst = std::max(worst, std::fabs(losses[1][s] / losses[0][s] - 1));
      std::printf("  %s %s: worst per-step loss difference %.2e, adapter difference %.2e\n", preset, kind_name(kind), worst,
                  std::sqrt(diff / ref));
      EXPECT_LT(std::sqrt(diff / ref), 0.03) << "adapters trained in bf16 and fp32 differ";
    }
  }
}

// personalize runs its evaluations and its training steps in one workspace (the memory the evaluation touched
// is then the first step's too): evaluating between steps must change nothing a step computes, and a step must
// leave the evaluation's packs in place. Batches larger and smaller than the evaluation's, for each kind of
// adapter: bit for bit the numbers of a workspace each.
TEST(Personalize, OneWorkspaceForTrainingAndEvaluationChangesNoNumber) {
  const Model& base = tiny_base();
  const std::vector<int32_t> stream = encode(base.vocab, read_text_file("/usr/share/common-licenses/GPL-3"), true);
  const std::span<const int32_t> held(stream.data() + 20000, 600);
  for (AdapterKind kind : {AdapterKind::norm, AdapterKind::lora, AdapterKind::full}) {
    SCOPED_TRACE(kind_name(kind));
    std::vector<double> numbers[2];
    for (int shared = 0; shared < 2; ++shared) {
      Adapter a = make_adapter(base, kind);
      AdapterTrainer tr(base, a, AdamwConfig{default_lr(kind), 0.9f, 0.999f});
      auto eval_ws = make_workspace(), own = make_workspace();
      Workspace& train_ws = shared ? *eval_ws : *own;
      eval_ws->frozen = tr.frozen_weights();
      std::vector<int32_t> tok, tgt;
      for (int s = 0; s < 4; ++s) {
        const int B = s % 2 ? 6 : 2;  // 6 x 48 rows against the evaluation's 4 x 63, then 2 x 48
        sample_windows(stream, B, 48, 9 + s, tok, tgt);
        numbers[shared].push_back(tr.step(train_ws, Batch{tok.data(), tgt.data(), B, 48}, default_lr(kind)));
        EXPECT_EQ(eval_ws->frozen, tr.frozen_weights()) << "a step took the evaluation's packs off";
        numbers[shared].push_back(perplexity_sliding(tr.model(), held, 64, tr.view(), 4, eval_ws.get()).ppl());
      }
    }
    EXPECT_EQ(numbers[0], numbers[1]);
  }
}

// A workspace's buffers and the packs leave new memory unset (heirloom/cache_line.h): nothing may read a value
// before writing it. With every new block filled with NaN (and −1 in the integer buffers), training steps whose
// batches grow the buffers and evaluations between them must give the numbers they give on ordinary memory,
// for each kind of adapter, in both precisions.
TEST(Personalize, NoStepReadsMemoryItDidNotWrite) {
  struct Poison {
    explicit Poison(bool on) { g_poison_new_blocks = on; }
    ~Poison() { g_poison_new_blocks = false; }
  };
  const Model& base = tiny_base();
  const std::vector<int32_t> stream = encode(base.vocab, read_text_file("/usr/share/common-licenses/GPL-3"), true);
  const std::span<const int32_t> held(stream.data() + 30000, 400);
  for (Precision p : {Precision::fp32, Precision::automatic})
    for (AdapterKind kind : {AdapterKind::norm, AdapterKind::lora, AdapterKind::steer, AdapterKind::full}) {
      SCOPED_TRACE(std::string(kind_name(kind)) + (p == Precision::fp32 ? " fp32" : " auto"));
      std::vector<double> numbers[2];
      std::vector<float> params[2];
      for (int poisoned = 0; poisoned < 2; ++poisoned) {
        const Poison poison(poisoned);
        Adapter a = make_adapter(base, kind);
        AdapterTrainer tr(base, a, AdamwConfig{default_lr(kind), 0.9f, 0.999f}, p);
        auto ws = make_workspace();
        ws->frozen = tr.frozen_weights();
        std::vector<int32_t> tok, tgt;
        for (int s = 0; s < 3; ++s) {
          const int B = 1 + 2 * s;  // each batch larger than the last: every step grows the buffers
          sample_windows(stream, B, 40, 3 + s, tok, tgt);
          numbers[poisoned].push_back(tr.step(*ws, Batch{tok.data(), tgt.data(), B, 40}, default_lr(kind)));
          numbers[poisoned].push_back(perplexity_sliding(tr.model(), held, 48, tr.view(), 4, ws.get()).ppl());
        }
        tr.finish();
        params[poisoned] = a.params;
      }
      for (double x : numbers[0]) ASSERT_TRUE(std::isfinite(x));
      EXPECT_EQ(numbers[1], numbers[0]);
      EXPECT_EQ(params[1], params[0]);
    }
}

TEST(Personalize, VerdictFollowsBet10) {
  EXPECT_EQ(bet10_verdict(114, 1.04, 89, 111), "STRICT");  // the seed's own numbers
  EXPECT_EQ(bet10_verdict(100, 9, 100, 160), "LENIENT");
  EXPECT_EQ(bet10_verdict(100, 40, 100, 190), "LENIENT");
  EXPECT_EQ(bet10_verdict(100, 60, 100, 100), "none");
  EXPECT_EQ(bet10_verdict(100, 99.5, 100, 100), "CATASTROPHIC");
  EXPECT_EQ(bet10_verdict(100, 5, 100, 600), "CATASTROPHIC");
}

TEST(Personalize, HeldOutCutFallsOnABreak) {
  std::string t;
  for (int i = 0; i < 20; ++i) t += "Paragraph " + std::to_string(i) + " has some words in it.\n\n";
  const size_t cut = heldout_cut(t, 0.15);
  EXPECT_EQ(t.substr(cut - 2, 2), "\n\n");
  EXPECT_NEAR((double)cut / t.size(), 0.85, 0.05);
  const std::string one_line(1000, 'x');
  EXPECT_EQ(heldout_cut(one_line, 0.1), 900u);
  const std::string accents = std::string(200, 'a') + "\xC3\xA9\xC3\xA9\xC3\xA9";  // no breaks; never cut inside é
  const size_t c2 = heldout_cut(accents, 0.015);
  EXPECT_NE((unsigned char)accents[c2] & 0xC0, 0x80);
}

}  // namespace
}  // namespace heirloom
