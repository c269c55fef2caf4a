// BaseTrainer: AdamW on the base model's own trainable tensors (pretraining, full fine-tuning,
// norm-only fine-tuning). Gradients are zeroed and clipped only over trainable tensors, so a norm-only
// step touches a few thousand values, not the whole model. See include/heirloom/train.h.
#include <algorithm>
#include <cmath>

#include "core/op_time.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "heirloom/error.h"
#include "heirloom/train.h"
#include "model/frozen_weights.h"
#include "model/workspace.h"
#include "ops/adamw.h"

namespace heirloom {

std::vector<bool> trainable_mask(const Model& m, const std::string& regime) {
  std::vector<bool> t(m.tensors.size(), false);
  for (size_t i = 0; i < t.size(); ++i) {
    if (regime == "all") t[i] = true;
    else if (regime == "norm") t[i] = m.tensors[i].is_norm();
    else if (regime == "none") t[i] = false;
    else throw Error("unknown trainable regime '" + regime + "'", "use all, norm or none");
  }
  return t;
}

BaseTrainer::BaseTrainer(const Model& m, std::vector<bool> trainable, AdamwConfig cfg, Precision precision)
    : grads(m.data.size(), 0.f), m1(m.data.size(), 0.f), m2(m.data.size(), 0.f), trainable_(std::move(trainable)),
      cfg_(cfg) {
  if (resolve_precision(precision) == Precision::bf16) packs_ = pack_frozen(m, Precision::bf16);
  plan_update(m);
}

// Pieces: blocks of kRepackRows rows of each packed matrix (one matrix may hold several tensors: q|k|v), and
// chunks of whatever else is trainable; every trainable value in exactly one piece.
void BaseTrainer::plan_update(const Model& m) {
  std::vector<PackedMatrix> mats;
  if (packs_) mats = packed_matrices(*packs_, m);
  std::vector<int> by_offset(mats.size());
  for (size_t j = 0; j < mats.size(); ++j) by_offset[j] = (int)j;
  std::sort(by_offset.begin(), by_offset.end(), [&](int a, int b) { return mats[a].offset < mats[b].offset; });
  auto end_of = [&](const PackedMatrix& x) { return x.offset + (int64_t)x.O * x.I; };
  std::vector<int64_t> starts;  // tensors' offsets, ascending
  for (const TensorSpec& t : m.tensors) starts.push_back(t.offset);
  if (!std::is_sorted(starts.begin(), starts.end()))
    throw Error("internal: the model's tensors are out of order", "report this as a bug");
  auto tensor_at = [&](int64_t o) {
    return (int)(std::upper_bound(starts.begin(), starts.end(), o) - starts.begin()) - 1;
  };
  for (int j : by_offset) {
    const PackedMatrix& x = mats[j];
    for (int r0 = 0; r0 < x.O; r0 += kRepackRows) {
      const int r1 = std::min(r0 + kRepackRows, x.O);
      const int64_t offset = x.offset + (int64_t)r0 * x.I, n = (int64_t)(r1 - r0) * x.I;
      const int first = tensor_at(offset);
      for (int i = first; i <= tensor_at(offset + n - 1); ++i)
        if (trainable_[i] != trainable_[first] || m.tensors[i].is_norm() != m.tensors[first].is_norm())
          throw Error("internal: rows " + std::to_string(r0) + "-" + std::to_string(r1) +
                          " of a packed matrix span tensors trained differently (" + m.tensors[i].name + ")",
                      "report this as a bug");
      if (trainable_[first]) pieces_.push_back({offset, n, first, j, r0, r1});
    }
  }
  constexpr int64_t kChunk = 16384;
  size_t next = 0;  // the first matrix (in offset order) that ends after `at`
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const int64_t end = m.tensors[i].offset + m.tensors[i].numel;
    for (int64_t at = m.tensors[i].offset; at < end;) {
      while (next < by_offset.size() && end_of(mats[by_offset[next]]) <= at) ++next;
      const PackedMatrix* x = next < by_offset.size() ? &mats[by_offset[next]] : nullptr;
      if (x && x->offset <= at) {  // inside a matrix: its pieces cover this
        at = end_of(*x);
        continue;
      }
      const int64_t to = x ? std::min(end, x->offset) : end;
      for (int64_t o = at; trainable_[i] && o < to; o += kChunk)
        pieces_.push_back({o, std::min(kChunk, to - o), (int)i, -1, 0, 0});
      at = to;
    }
  }
  int64_t placed = 0, want = 0;
  for (const Piece& p : pieces_) placed += p.n;
  for (size_t i = 0; i < m.tensors.size(); ++i) want += trainable_[i] ? m.tensors[i].numel : 0;
  if (placed != want)
    throw Error("internal: the update covers " + std::to_string(placed) + " of " + std::to_string(want) +
                    " trainable values", "report this as a bug");
}

BaseTrainer::StepStats BaseTrainer::step(Model& m, Workspace& ws, const Batch& batch, float lr, float aux_coef) {
  if (packs_ && !packs_current_) {
    const TimedOp timed("optimizer");
    repack_frozen(*packs_, m);
  }
  packs_current_ = false;
  ForwardOptions fo;
  fo.for_backward = true;
  fo.base_grads = true;
  fo.aux_coef = aux_coef;
  const ForwardResult r = [&] {
    const ScopedPacks packs(ws, packs_);
    const ForwardResult f = forward(m, ws, batch, {}, fo);
    // written, not added to: the gradients are never cleared between steps (nor after a step that stopped)
    backward(m, ws, {}, trainable_, grads.data(), nullptr, nullptr, aux_coef, true);
    return f;
  }();
  const TimedOp timed("optimizer");  // with the repacking of the weights it updates
  // The gradient norm from per-piece sums added in piece order: the same for any thread count.
  const int P = (int)pieces_.size();
  std::vector<double> part(P);
  parallel_for(P, true, [&](int64_t p) { part[p] = sum_squares_serial(grads.data() + pieces_[p].offset, pieces_[p].n); });
  double ss = 0;
  for (double x : part) ss += x;
  const double norm = std::sqrt(ss);
  const float scale = cfg_.clip > 0 && norm > cfg_.clip ? (float)(cfg_.clip / norm) : 1.f;
  ++steps_done;
  // No weight decay on gains: decaying them pulls the norms towards zero, not towards "simpler".
  const AdamwStep decayed({lr, cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay, scale}, steps_done, lr);
  const AdamwStep gains({lr, cfg_.beta1, cfg_.beta2, cfg_.eps, 0.f, scale}, steps_done, lr);
  std::vector<PackedMatrix> mats;
  if (packs_) mats = packed_matrices(*packs_, m);
  float* w = m.data.data();
  parallel_for(P, true, [&](int64_t p) {
    const Piece& x = pieces_[p];
    (m.tensors[x.tensor].is_norm() ? gains : decayed)
        .apply(w + x.offset, grads.data() + x.offset, m1.data() + x.offset, m2.data() + x.offset, x.n);
    if (x.matrix >= 0) {  // the rows just written are still in this core's cache
      const PackedMatrix& mat = mats[x.matrix];
      repack_weight_rows(*mat.pack, w + mat.offset, mat.O, mat.I, x.r0, x.r1);
    }
  });
  packs_current_ = packs_ != nullptr;
  return {r.mean_loss(), r.aux, norm, lr};
}

void sample_windows(const std::vector<int32_t>& stream, int B, int T, uint64_t seed, std::vector<int32_t>& tokens,
                    std::vector<int32_t>& targets) {
  if ((int64_t)stream.size() < T + 1)
    throw Error("the text has " + std::to_string(stream.size()) + " tokens, fewer than one training window of " +
                    std::to_string(T + 1),
                "give more text or a shorter --seq");
  Rng rng(seed);
  tokens.resize((size_t)B * T);
  targets.resize((size_t)B * T);
  for (int b = 0; b < B; ++b) {
    const uint64_t off = rng.below(stream.size() - T);
    for (int t = 0; t < T; ++t) {
      tokens[(size_t)b * T + t] = stream[off + t];
      targets[(size_t)b * T + t] = stream[off + t + 1];
    }
  }
}

}  // namespace heirloom
