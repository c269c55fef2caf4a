// The overlap report. See overlap.h.
#include "heirloom/overlap.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "adapter/lora_layout.h"
#include "core/gemm.h"
#include "heirloom/error.h"
#include "inherit/synthetic.h"

namespace heirloom::inherit {

TaskVector task_vector_of(const Adapter& a, const ModelConfig& c) {
  TaskVector t;
  const int64_t C = c.n_embd;
  switch (a.kind) {
    case AdapterKind::norm:
      t.v = a.params;
      for (int j = 0; j < 2 * c.n_layer + 1; ++j)
        t.parts.push_back({j == 2 * c.n_layer ? "output_norm" : "blk." + std::to_string(j / 2) + (j % 2 ? ".ffn_norm" : ".attn_norm"),
                           {j * C, C}});
      break;
    case AdapterKind::steer:
      t.v = a.params;
      for (int l = 0; l < c.n_layer; ++l) t.parts.push_back({"blk." + std::to_string(l) + ".steer", {l * C, C}});
      break;
    case AdapterKind::full:
      t.v = a.params;
      for (const TensorSpec& s : model_tensors(c)) t.parts.push_back({s.name, {s.offset, s.numel}});
      break;
    case AdapterKind::lora:
      for (const LoraBlock& b : lora_blocks(c, a.lora)) {
        const int64_t n = (int64_t)b.copies * b.out * b.in, at = (int64_t)t.v.size();
        t.v.resize(at + n, 0.f);
        for (int e = 0; e < b.copies; ++e)  // ΔW_e = scale · B_e · A_e
          gemm(false, false, b.out, b.in, a.lora.rank, a.lora.scale(), a.params.data() + b.b_offset + (int64_t)e * b.out * a.lora.rank,
               a.lora.rank, a.params.data() + b.a_offset + (int64_t)e * a.lora.rank * b.in, b.in, 0.f,
               t.v.data() + at + (int64_t)e * b.out * b.in, b.in);
        t.parts.push_back({"blk." + std::to_string(b.layer) + "." + lora_base_name(b.target), {at, n}});
      }
      break;
  }
  return t;
}

namespace {
double cosine(const float* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}
double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += (double)x * x;
  return std::sqrt(s);
}
// Linear interpolation of ys over increasing xs at x, clamped to the ends.
double interpolate(const std::vector<double>& xs, const std::vector<double>& ys, double x) {
  if (x <= xs.front()) return ys.front();
  for (size_t i = 1; i < xs.size(); ++i)
    if (x <= xs[i]) return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1]);
  return ys.back();
}
}  // namespace

OverlapReport overlap(const Adapter& parent, const Adapter& child, const ModelConfig& c) {
  if (parent.kind != child.kind)
    throw Error(std::string("the adapters are of different kinds (") + kind_name(parent.kind) + " and " + kind_name(child.kind) + ")",
                "train the child's adapter with the parent's kind (--kind " + std::string(kind_name(parent.kind)) + ")");
  if (parent.kind == AdapterKind::lora && parent.lora.targets != child.lora.targets)
    throw Error("the LoRA adapters adapt different projections", "train the child's adapter with the parent's --targets");
  const TaskVector p = task_vector_of(parent, c), q = task_vector_of(child, c);
  if (p.v.size() != q.v.size())
    throw Error("the adapters have different shapes (" + std::to_string(p.v.size()) + " and " + std::to_string(q.v.size()) + " values)");
  OverlapReport r;
  const int64_t n = (int64_t)p.v.size();
  r.cosine = cosine(p.v.data(), q.v.data(), n);
  const double np = norm(p.v);
  r.norm_ratio = np > 0 ? norm(q.v) / np : 0.0;
  std::vector<std::pair<std::string, std::array<double, 3>>> layers;  // block → (p·q, p·p, q·q)
  for (const auto& [name, span] : p.parts) {
    r.part_cosine.push_back({name, cosine(p.v.data() + span.first, q.v.data() + span.first, span.second)});
    const std::string block = name.rfind("blk.", 0) == 0 ? name.substr(0, name.find('.', 4)) : "other";
    if (layers.empty() || layers.back().first != block) layers.push_back({block, {0, 0, 0}});
    for (int64_t i = span.first; i < span.first + span.second; ++i) {
      layers.back().second[0] += (double)p.v[i] * q.v[i];
      layers.back().second[1] += (double)p.v[i] * p.v[i];
      layers.back().second[2] += (double)q.v[i] * q.v[i];
    }
  }
  for (const auto& [block, s] : layers)
    r.layer_cosine.push_back({block, s[1] > 0 && s[2] > 0 ? s[0] / std::sqrt(s[1] * s[2]) : 0.0});
  // Sign conflicts among the largest entries: the top 10% of each vector by magnitude, where both are non-zero.
  auto top = [&](const std::vector<float>& v) {
    std::vector<float> m(v.size());
    for (size_t i = 0; i < v.size(); ++i) m[i] = std::abs(v[i]);
    const size_t k = std::max<size_t>(1, v.size() / 10);
    std::nth_element(m.begin(), m.begin() + (m.size() - k), m.end());
    return m[m.size() - k];
  };
  const float tp = top(p.v), tq = top(q.v);
  int64_t big = 0, conflicts = 0;
  for (int64_t i = 0; i < n; ++i)
    if ((std::abs(p.v[i]) >= tp || std::abs(q.v[i]) >= tq) && p.v[i] != 0.f && q.v[i] != 0.f) {
      ++big;
      conflicts += (p.v[i] > 0) != (q.v[i] > 0);
    }
  r.sign_conflict = big ? (double)conflicts / big : 0.0;
  // Regime thresholds: halfway between the task-vector cosines the synthetic protocol measures at
  // overlaps 0.0, 0.5 and 0.9; predictions interpolate its retention curves at this cosine.
  static const Synthetic syn = synthetic_inheritance(SyntheticConfig{});  // fixed config: once per process
  std::vector<double> xs;
  for (const char* ov : {"0.0", "0.5", "0.9"}) xs.push_back(syn.task_cosine[ov].get<double>());
  r.partial_from = (xs[0] + xs[1]) / 2;
  r.aligned_from = (xs[1] + xs[2]) / 2;
  r.regime = r.cosine < r.partial_from ? "orthogonal" : r.cosine < r.aligned_from ? "partial" : "aligned";
  for (const std::string& sc : SyntheticConfig{}.schemes) {
    std::vector<double> pr, cr;
    for (const char* ov : {"0.0", "0.5", "0.9"}) {
      pr.push_back(syn.table[ov][sc]["parent_ratio"]);
      cr.push_back(syn.table[ov][sc]["child_ratio"]);
    }
    r.predicted[sc] = {{"parent_ratio", interpolate(xs, pr, r.cosine)}, {"child_ratio", interpolate(xs, cr, r.cosine)}};
  }
  return r;
}

nlohmann::json to_json(const OverlapReport& r) {
  nlohmann::json parts = nlohmann::json::object(), layers = nlohmann::json::object();
  for (const auto& [name, cos] : r.part_cosine) parts[name] = cos;
  for (const auto& [name, cos] : r.layer_cosine) layers[name] = cos;
  return {{"cosine", r.cosine}, {"norm_ratio", r.norm_ratio}, {"sign_conflict_rate", r.sign_conflict},
          {"regime", r.regime}, {"thresholds", {{"partial_from", r.partial_from}, {"aligned_from", r.aligned_from}}},
          {"per_layer_cosine", layers}, {"per_tensor_cosine", parts}, {"predicted_retention", r.predicted}};
}

}  // namespace heirloom::inherit
