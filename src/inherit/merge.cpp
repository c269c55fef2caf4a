// Delta-space merge schemes. See merge.h.
#include "inherit/merge.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "heirloom/error.h"

namespace heirloom::merge {

namespace {
size_t common_size(const std::vector<const Vec*>& v) {
  if (v.empty()) throw Error("merge: no adapters to merge");
  for (const Vec* x : v)
    if (x->size() != v[0]->size())
      throw Error("merge: adapters of different sizes (" + std::to_string(v[0]->size()) + " and " + std::to_string(x->size()) +
                      " values)",
                  "only adapters of the same kind and shape on the same base can be merged");
  return v[0]->size();
}

void check_density(float d) {
  if (!(d > 0.f && d <= 1.f)) throw Error("merge: density must be in (0, 1], found " + std::to_string(d));
}
}  // namespace

Vec linear(const std::vector<const Vec*>& v) {
  const size_t n = common_size(v);
  Vec out(n, 0.f);
  for (const Vec* x : v)
    for (size_t i = 0; i < n; ++i) out[i] += (*x)[i];
  for (float& o : out) o /= (float)v.size();
  return out;
}

Vec blend(const Vec& parent, const Vec& child, float lambda) {
  const size_t n = common_size({&parent, &child});
  Vec out(n);
  for (size_t i = 0; i < n; ++i) out[i] = lambda * parent[i] + (1.f - lambda) * child[i];
  return out;
}

Vec task_vector(const Vec& parent, const Vec& child, float alpha) {
  const size_t n = common_size({&parent, &child});
  Vec out(n);
  for (size_t i = 0; i < n; ++i) out[i] = parent[i] + alpha * (child[i] - parent[i]);
  return out;
}

Vec ties(const std::vector<const Vec*>& v, float density) {
  const size_t n = common_size(v);
  check_density(density);
  // Trim: keep the k largest magnitudes of each vector (ties at the threshold kept).
  std::vector<Vec> trimmed;
  for (const Vec* x : v) {
    Vec t = *x;
    const size_t k = std::max<size_t>(1, (size_t)std::ceil(density * (double)n - 1e-6));  // 1/3 of 3 is 1, not 2
    if (k < n) {
      Vec mag(n);
      for (size_t i = 0; i < n; ++i) mag[i] = std::abs(t[i]);
      std::nth_element(mag.begin(), mag.begin() + (n - k), mag.end());
      const float threshold = mag[n - k];
      for (float& y : t)
        if (std::abs(y) < threshold) y = 0.f;
    }
    trimmed.push_back(std::move(t));
  }
  Vec out(n, 0.f);
  for (size_t i = 0; i < n; ++i) {
    double sum = 0;
    for (const Vec& t : trimmed) sum += t[i];
    const float sign = sum > 0 ? 1.f : sum < 0 ? -1.f : 0.f;
    double agree = 0;
    int count = 0;
    for (const Vec& t : trimmed)
      if (t[i] != 0.f && (t[i] > 0) == (sign > 0) && sign != 0) agree += t[i], ++count;
    out[i] = count ? (float)(agree / count) : 0.f;
  }
  return out;
}

Vec dare(const std::vector<const Vec*>& v, float density, uint64_t seed) {
  const size_t n = common_size(v);
  check_density(density);
  Rng rng(seed);
  Vec out(n, 0.f);
  for (const Vec* x : v)
    for (size_t i = 0; i < n; ++i)
      if (rng.uniform() < density) out[i] += (*x)[i] / density;
  for (float& o : out) o /= (float)v.size();
  return out;
}

}  // namespace heirloom::merge
