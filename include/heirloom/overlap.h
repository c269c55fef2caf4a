// How much two adapters of one base overlap, and what inheritance would keep (issue 6): the cosine of the
// two task vectors overall and per tensor, the sign-conflict rate among the largest entries, the norm
// ratio, the regime, and the retention each merge scheme is predicted to give, read off the synthetic
// Bet 69 curves at the measured cosine.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "heirloom/adapter.h"

namespace heirloom::inherit {

// An adapter as a flat task vector (LoRA as its dense products scale·B·A), with named parts.
struct TaskVector {
  std::vector<float> v;
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> parts;  // name → (offset, length)
};
TaskVector task_vector_of(const Adapter& a, const ModelConfig& c);

struct OverlapReport {
  double cosine = 0, norm_ratio = 0, sign_conflict = 0;  // norm_ratio = |child| / |parent|
  std::vector<std::pair<std::string, double>> part_cosine, layer_cosine;  // per tensor; per block ("blk.N", "other")
  std::string regime;                  // orthogonal, partial or aligned
  double partial_from = 0, aligned_from = 0;  // the cosine thresholds used
  nlohmann::json predicted;            // scheme → {parent_ratio, child_ratio}
};

// Error when the adapters differ in kind or shape (they must come from the same base: load_adapter checks).
OverlapReport overlap(const Adapter& parent, const Adapter& child, const ModelConfig& c);
nlohmann::json to_json(const OverlapReport& r);

}  // namespace heirloom::inherit
