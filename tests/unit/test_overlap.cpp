// The overlap report: an adapter against itself is aligned with no sign conflicts; against its negation
// the cosine is -1; independent adapters are orthogonal; LoRA compares its products, so the same product
// from other factors is identical; different kinds are refused; predictions follow the regime.
#include <gtest/gtest.h>

#include "adapter_fixtures.h"

#include "adapter/lora_layout.h"
#include "core/rng.h"
#include "heirloom/error.h"
#include "heirloom/overlap.h"
#include "heirloom/vocab.h"

namespace heirloom {
namespace {

const Model& base() { return fixtures::tiny_random_base(); }
Adapter noisy(AdapterKind k, uint64_t seed, LoraShape shape = {}) { return fixtures::noisy_adapter(k, seed, shape); }

TEST(Overlap, SelfNegationAndIndependentAdapters) {
  const Adapter a = noisy(AdapterKind::norm, 1), b = noisy(AdapterKind::norm, 2);
  const inherit::OverlapReport self = inherit::overlap(a, a, base().config);
  EXPECT_NEAR(self.cosine, 1.0, 1e-9);
  EXPECT_NEAR(self.norm_ratio, 1.0, 1e-9);
  EXPECT_EQ(self.sign_conflict, 0.0);
  EXPECT_EQ(self.regime, "aligned");
  for (const auto& [name, cos] : self.layer_cosine) EXPECT_NEAR(cos, 1.0, 1e-9) << name;
  Adapter neg = a;
  for (auto& x : neg.params) x = -x;
  const inherit::OverlapReport opp = inherit::overlap(a, neg, base().config);
  EXPECT_NEAR(opp.cosine, -1.0, 1e-9);
  EXPECT_EQ(opp.sign_conflict, 1.0);
  EXPECT_EQ(opp.regime, "orthogonal");
  const inherit::OverlapReport ind = inherit::overlap(a, b, base().config);
  EXPECT_LT(std::abs(ind.cosine), 0.2);
  EXPECT_EQ(ind.regime, "orthogonal");
  // Predictions: the aligned pair keeps more of the parent under averaging than the orthogonal one.
  EXPECT_GT(self.predicted["linear"]["parent_ratio"].get<double>(), ind.predicted["linear"]["parent_ratio"].get<double>());
  EXPECT_NEAR(ind.predicted["concat"]["parent_ratio"].get<double>(), 1.0, 1e-9);
}

TEST(Overlap, LoraComparesProductsAndKindsMustMatch) {
  LoraShape s;
  s.rank = 2;
  const Adapter a = noisy(AdapterKind::lora, 4, s);
  Adapter b = a;  // the same product from rescaled factors: A·2, B/2
  for (const LoraBlock& blk : lora_blocks(base().config, a.lora)) {
    for (int64_t i = 0; i < (int64_t)blk.copies * s.rank * blk.in; ++i) b.params[blk.a_offset + i] *= 2.f;
    for (int64_t i = 0; i < (int64_t)blk.copies * blk.out * s.rank; ++i) b.params[blk.b_offset + i] *= 0.5f;
  }
  EXPECT_NE(a.params, b.params);
  EXPECT_NEAR(inherit::overlap(a, b, base().config).cosine, 1.0, 1e-6);
  EXPECT_THROW(inherit::overlap(a, noisy(AdapterKind::norm, 5), base().config), Error);
}

}  // namespace
}  // namespace heirloom
