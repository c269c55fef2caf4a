// Making heirs (issue 6): for every adapter kind, an average of an adapter with itself returns it and blend
// at λ = 1 / 0 returns the parent / child (LoRA compared on its products, after the factorisation back to
// LoRA); the factorisation is exact below its rank and keeps the dominant energy above it; incompatible
// adapters are refused; the lineage and a concatenated heir survive a file round trip; and a concatenated
// heir routes each domain's held-out text to that domain's adapter in most positions.
#include <gtest/gtest.h>

#include "adapter_fixtures.h"

#include <cmath>
#include <filesystem>

#include "core/gemm.h"
#include "core/rng.h"
#include "heirloom/error.h"
#include "heirloom/inherit.h"
#include "heirloom/personalize.h"
#include "heirloom/vocab.h"
#include "inherit/lora_refactor.h"

namespace heirloom {
namespace {

const Model& base() { return fixtures::tiny_random_base(); }
Adapter noisy(AdapterKind k, uint64_t seed, LoraShape shape = {}) { return fixtures::noisy_adapter(k, seed, shape); }

// The effect of an adapter as one flat delta (LoRA: its products), to compare heirs across ranks.
std::vector<float> effect(const Adapter& a) { return inherit::task_vector_of(a, base().config).v; }

void expect_near(const std::vector<float>& a, const std::vector<float>& b, float tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, (double)std::abs(a[i] - b[i]));
  EXPECT_LT(worst, tol) << what;
}

TEST(Inherit, SelfMergesAndBlendEndpointsForEveryKind) {
  LoraShape shape;
  shape.rank = 2;
  for (AdapterKind k : {AdapterKind::norm, AdapterKind::steer, AdapterKind::full, AdapterKind::lora}) {
    const Adapter p = noisy(k, 11, shape), c = noisy(k, 12, shape);
    const inherit::OverlapReport ov = inherit::overlap(p, c, base().config);
    for (const char* s : {"linear", "blend:0.3", "taskvec:0.5", "ties:1", "dare:1"})
      expect_near(effect(inherit::merge_heir(p, p, inherit::parse_scheme(s), base().config, ov)), effect(p), 2e-5f,
                  std::string(kind_name(k)) + " self-merge " + s);
    expect_near(effect(inherit::merge_heir(p, c, inherit::parse_scheme("blend:1"), base().config, ov)), effect(p), 2e-5f,
                std::string(kind_name(k)) + " blend:1");
    expect_near(effect(inherit::merge_heir(p, c, inherit::parse_scheme("blend:0"), base().config, ov)), effect(c), 2e-5f,
                std::string(kind_name(k)) + " blend:0");
    const Adapter h = inherit::merge_heir(p, c, inherit::parse_scheme("linear"), base().config, ov);
    EXPECT_EQ(h.lineage.generation, 1);
    EXPECT_EQ(h.lineage.parent_sha256, "sha-11");
    EXPECT_EQ(h.lineage.child_sha256, "sha-12");
    EXPECT_EQ(h.lineage.scheme, "linear");
    if (k == AdapterKind::lora) {
      EXPECT_EQ(h.lora.rank, 4);  // ranks concatenate
    }
  }
}

TEST(Inherit, LowRankFactorisationIsExactBelowItsRank) {
  const int out = 24, in = 20, r = 3;
  Rng rng(5);
  std::vector<float> B0(out * r), A0(r * in), dw(out * in);
  for (auto& x : B0) x = rng.normal();
  for (auto& x : A0) x = rng.normal();
  gemm(false, false, out, in, r, 1.f, B0.data(), r, A0.data(), in, 0.f, dw.data(), in);
  for (int k : {3, 6}) {
    std::vector<float> B(out * k), A(k * in), back(out * in);
    EXPECT_NEAR(inherit::factor_low_rank(dw.data(), out, in, k, 2.f, B.data(), A.data(), 1), 1.0, 1e-5);
    gemm(false, false, out, in, k, 2.f, B.data(), k, A.data(), in, 0.f, back.data(), in);
    expect_near(back, dw, 1e-3f, "rank-3 delta at k = " + std::to_string(k));
  }
  // A full-rank delta: rank 2 keeps part of the energy, never more than all of it.
  for (auto& x : dw) x = rng.normal();
  std::vector<float> B(out * 2), A(2 * in);
  const double kept = inherit::factor_low_rank(dw.data(), out, in, 2, 1.f, B.data(), A.data(), 1);
  EXPECT_GT(kept, 2.0 / 20 * 0.9);  // at least about its share of the spectrum
  EXPECT_LT(kept, 0.6);
}

TEST(Inherit, IncompatibleAdaptersAreRefused) {
  const Adapter n = noisy(AdapterKind::norm, 1), s = noisy(AdapterKind::steer, 2);
  const inherit::OverlapReport ov = inherit::overlap(n, n, base().config);
  EXPECT_THROW(inherit::merge_heir(n, s, inherit::parse_scheme("linear"), base().config, ov), Error);
  Adapter other = noisy(AdapterKind::norm, 3);
  other.info.base_fingerprint = "0123456789ab";
  try {
    inherit::merge_heir(n, other, inherit::parse_scheme("linear"), base().config, ov);
    ADD_FAILURE() << "adapters of different bases were merged";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("0123456789ab"), std::string::npos) << e.what();
  }
  LoraShape qk;
  qk.targets = parse_lora_targets("q,k");
  EXPECT_THROW(inherit::merge_heir(noisy(AdapterKind::lora, 4), noisy(AdapterKind::lora, 5, qk), inherit::parse_scheme("linear"),
                                   base().config, ov),
               Error);
  EXPECT_THROW(inherit::parse_scheme("average"), Error);
  EXPECT_THROW(inherit::parse_scheme("ties:0"), Error);
  EXPECT_THROW(inherit::parse_scheme("linear:2"), Error);
  EXPECT_EQ(inherit::parse_scheme("blend").spec(), "blend:0.5");
}

TEST(Inherit, LineageAndConcatenationSurviveTheFile) {
  const Adapter p = noisy(AdapterKind::norm, 21), c = noisy(AdapterKind::norm, 22);
  const inherit::OverlapReport ov = inherit::overlap(p, c, base().config);
  const std::string dir = std::filesystem::temp_directory_path() / ("heirloom_inherit_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  Adapter cat = inherit::merge_heir(p, c, inherit::parse_scheme("concat"), base().config, ov);
  cat.branches[0].info.owner = "Ada";
  cat.branches[1].info.owner = "Bo";
  ASSERT_EQ(cat.branches.size(), 2u);
  const std::string path = dir + "/cat.gguf";
  const std::string sum = save_adapter(cat, base().config, path, StorageType::f32);
  const Adapter back = load_adapter(path, base());
  EXPECT_EQ(back.info.sha256, sum);
  ASSERT_EQ(back.branches.size(), 2u);
  EXPECT_EQ(back.branches[0].params, p.params);
  EXPECT_EQ(back.branches[1].params, c.params);
  EXPECT_EQ(back.branches[1].info.owner, "Bo");
  EXPECT_EQ(back.lineage.generation, 1);
  EXPECT_EQ(back.lineage.scheme, "concat");
  EXPECT_EQ(back.lineage.regime, ov.regime);
  EXPECT_NEAR(back.lineage.overlap_cosine, ov.cosine, 1e-6);
  EXPECT_THROW(apply_adapters(base(), {{&back, 1.f}}), Error);  // a routed heir is never silently merged
  // The next generation by concatenation routes over all three; a merge of a routed parent is refused.
  const Adapter g = noisy(AdapterKind::norm, 23);
  const Adapter next = inherit::merge_heir(back, g, inherit::parse_scheme("concat"), base().config, ov);
  EXPECT_EQ(next.branches.size(), 3u);
  EXPECT_EQ(next.lineage.generation, 2);
  EXPECT_THROW(inherit::merge_heir(back, g, inherit::parse_scheme("linear"), base().config, ov), Error);
  std::filesystem::remove_all(dir);
}

std::vector<int32_t> repeat(const std::string& unit, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += unit;
  return encode(base().vocab, s, true);
}

TEST(Inherit, ConcatenationRoutesEachDomainToItsOwnAdapter) {
  // Two domains a tiny base tells apart after a little training: letters and digits.
  const std::vector<int32_t> letters = repeat("the quiet heron waits by the reeds. ", 120), digits = repeat("4711 0815 2048 1999 ", 200);
  const std::vector<int32_t> letters_held = repeat("a heron in the reeds waits quietly. ", 30), digits_held = repeat("0815 1999 4711 2048 ", 50);
  PersonalizeOptions o;
  o.kind = AdapterKind::full;
  o.steps = 40;
  o.seq = 32;
  o.lr = 3e-3f;
  o.eval_tokens = 128;
  o.trajectory_every = 0;
  o.progress = false;
  Adapter a = make_adapter(base(), AdapterKind::full), b = make_adapter(base(), AdapterKind::full);
  personalize_tokens(base(), a, letters, letters_held, digits_held, o);
  personalize_tokens(base(), b, digits, digits_held, letters_held, o);
  const inherit::OverlapReport ov = inherit::overlap(a, b, base().config);
  const Adapter heir = inherit::merge_heir(a, b, inherit::parse_scheme("concat"), base().config, ov);
  const inherit::AdapterPerplexity on_letters = inherit::adapter_perplexity(base(), &heir, letters_held, 32);
  const inherit::AdapterPerplexity on_digits = inherit::adapter_perplexity(base(), &heir, digits_held, 32);
  ASSERT_EQ(on_letters.routed.size(), 2u);
  EXPECT_GT(on_letters.routed[0], 3 * on_letters.routed[1]);
  EXPECT_GT(on_digits.routed[1], 3 * on_digits.routed[0]);
  // Routed, each domain scores close to its own adapter and far better than the other's.
  const double own_letters = inherit::adapter_perplexity(base(), &a, letters_held, 32).ppl();
  const double other_letters = inherit::adapter_perplexity(base(), &b, letters_held, 32).ppl();
  EXPECT_LT(own_letters, other_letters);
  EXPECT_LT(on_letters.ppl(), 1.1 * own_letters);
  EXPECT_LT(on_letters.ppl(), other_letters);
}

}  // namespace
}  // namespace heirloom
