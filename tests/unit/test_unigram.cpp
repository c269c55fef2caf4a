// The unigram baseline against a hand computation.
#include <gtest/gtest.h>

#include <cmath>

#include "heirloom/error.h"
#include "heirloom/eval.h"

namespace heirloom {
namespace {

TEST(Unigram, MatchesHandComputation) {
  const std::vector<int32_t> train = {0, 0, 1}, held = {2, 0, 2};  // counts with add-one: 3, 2, 1 of 6
  const PerplexityResult r = perplexity_unigram(train, held, 3);
  EXPECT_EQ(r.n_scored, 2);  // the first token has no prediction, as for a model
  EXPECT_NEAR(r.ppl(), std::exp(-(std::log(3.0 / 6) + std::log(1.0 / 6)) / 2), 1e-12);
  const std::vector<int32_t> bad = {0, 7};
  EXPECT_THROW(perplexity_unigram(train, bad, 3), Error);
}

}  // namespace
}  // namespace heirloom
