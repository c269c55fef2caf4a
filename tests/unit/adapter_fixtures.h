// Adapters for tests: a tiny random base and adapters with random, non-zero deltas.
#pragma once
#include <string>

#include "core/rng.h"
#include "heirloom/adapter.h"
#include "heirloom/vocab.h"

namespace heirloom::fixtures {

inline const Model& tiny_random_base() {
  static const Model m = init_model(preset_config("tiny"), byte_vocab(), 3);
  return m;
}

// A fresh adapter of a kind plus N(0, 0.1) noise on every value; its identity is "sha-<seed>".
inline Adapter noisy_adapter(AdapterKind k, uint64_t seed, LoraShape shape = {}) {
  Adapter a = make_adapter(tiny_random_base(), k, shape, seed);
  Rng r(seed);
  for (auto& x : a.params) x += 0.1f * r.normal();
  a.info.sha256 = "sha-" + std::to_string(seed);
  return a;
}

}  // namespace heirloom::fixtures
