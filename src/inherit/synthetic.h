// The seed's synthetic inheritance protocol (Bet 69): adapters are D-dimensional vectors trained by SGD
// toward a target with Gaussian gradient noise (loss ½‖a − t‖², a starts at 0). Parent: parent_steps toward
// its target; child: child_steps toward its own; big child (the reference): big_child_steps on the child's
// target; child target = normalise(overlap·parent + (1 − overlap)·orthogonal); quality = cosine(adapter,
// target). parent_ratio = q(heir, parent target) / q(parent, parent target); child_ratio =
// q(heir, child target) / q(big child, child target). Used by `heirloom bet 69` and by the overlap
// report's predictions.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace heirloom::inherit {

struct SyntheticConfig {
  int D = 256;
  float lr = 0.05f, noise = 0.15f;  // a 200-step adapter reaches cosine ~0.95 with its target
  int parent_steps = 200, child_steps = 50, big_child_steps = 200, seeds = 5;
  std::vector<double> overlaps{0.0, 0.5, 0.9};
  std::vector<std::string> schemes{"linear", "blend:0.3", "blend:0.7", "taskvec:0.5", "taskvec:1.0", "taskvec:1.5",
                                   "distill", "concat", "ties:0.2", "dare:0.5"};
  nlohmann::json to_json() const;
};

struct Synthetic {
  nlohmann::json table = nlohmann::json::object();        // ["0.5"]["linear"] = {parent_ratio, child_ratio, ...}
  nlohmann::json task_cosine = nlohmann::json::object();  // ["0.5"] = mean cosine(parent adapter, child adapter)
};

Synthetic synthetic_inheritance(const SyntheticConfig& c);

}  // namespace heirloom::inherit
