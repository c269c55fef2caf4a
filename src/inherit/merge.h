// Merging task vectors in delta space: adapters of one base are deltas from it, so schemes combine flat
// vectors of equal length (norm, steer and full adapters as they are; LoRA through its B·A products).
// The foundation of inheritance (Bet 69); see issue 6.
#pragma once
#include <cstdint>
#include <vector>

namespace heirloom::merge {

using Vec = std::vector<float>;

// The mean of the vectors.
Vec linear(const std::vector<const Vec*>& v);
// λ·parent + (1 − λ)·child: λ is the parent's weight (λ = 1 keeps the parent, λ = 0 the child).
Vec blend(const Vec& parent, const Vec& child, float lambda);
// Task-vector extrapolation: parent + α·(child − parent) (α = 0 the parent, α = 1 the child).
Vec task_vector(const Vec& parent, const Vec& child, float alpha);

// TIES: trim each vector to its `density` fraction of largest magnitudes, elect each coordinate's sign
// by the sign of the trimmed sum, and average only the entries that agree with it (zeros abstain).
// With density 1 and no sign conflict this is the linear average.
Vec ties(const std::vector<const Vec*>& v, float density);
// DARE: drop each entry with probability 1 − density and rescale the kept ones by 1/density (so each
// vector is unbiased), then average. Deterministic for a seed.
Vec dare(const std::vector<const Vec*>& v, float density, uint64_t seed);

}  // namespace heirloom::merge
