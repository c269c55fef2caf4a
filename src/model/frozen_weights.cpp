// pack_frozen(). See frozen_weights.h.
#include "model/frozen_weights.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/thread_team.h"
#include "heirloom/error.h"
#include "model/workspace.h"

namespace heirloom {

bool bf16_available() { return bf16_gemm_available(); }

Precision resolve_precision(Precision p) {
  if (p == Precision::bf16 && !bf16_available())
    throw Error("--precision bf16 needs a CPU with AVX512-BF16; this one has none",
                "use --precision fp32 or auto");
  if (p != Precision::automatic) return p;
  return bf16_available() ? Precision::bf16 : Precision::fp32;
}

Precision parse_precision(const std::string& name) {
  if (name == "auto") return Precision::automatic;
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  throw Error("unknown precision '" + name + "'", "choose auto, fp32 or bf16");
}

const char* precision_name(Precision p) {
  return p == Precision::bf16 ? "bf16" : p == Precision::fp32 ? "fp32" : "auto";
}

namespace {

// Calls fn(pack, weight, O, I) for every matrix the packs cover, after sizing the per-expert lists.
template <class Fn>
void for_each_matrix(FrozenWeights& p, const Model& m, Fn fn) {
  const ModelConfig& c = m.config;
  const int C = c.n_embd, F = c.n_ff, HD = c.n_head * c.head_dim(), QKV = HD + 2 * c.n_head_kv * c.head_dim();
  p.layers.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& W = m.w.layers[l];
    FrozenLayer& f = p.layers[l];
    fn(f.wq, W.wq, QKV, C);
    fn(f.wo, W.wo, C, HD);
    if (c.is_moe()) {
      const int64_t fc = (int64_t)F * C;
      f.gate.resize(c.n_expert);
      f.up.resize(c.n_expert);
      f.down.resize(c.n_expert);
      for (int e = 0; e < c.n_expert; ++e) {
        fn(f.gate[e], W.ffn_gate + e * fc, F, C);
        fn(f.up[e], W.ffn_up + e * fc, F, C);
        fn(f.down[e], W.ffn_down + e * fc, C, F);
      }
    } else {
      fn(f.ffn_gate, W.ffn_gate, F, C);
      fn(f.ffn_up, W.ffn_up, F, C);
      fn(f.ffn_down, W.ffn_down, C, F);
    }
  }
  fn(p.output, m.w.output, c.n_vocab, C);
}

}  // namespace

std::shared_ptr<FrozenWeights> pack_frozen(const Model& m, Precision precision, bool for_backward) {
  const Precision p = resolve_precision(precision);
  if (p == Precision::fp32 && !f32_packed_available()) return nullptr;  // fp32 through the BLAS, unpacked
  auto packs = std::make_shared<FrozenWeights>();
  packs->source = m.data.data();
  const bool bf16 = p == Precision::bf16;
  // The matrices side by side, each packed whole on one thread: a pack's allocation (its page faults) is as
  // long as its packing, and one thread allocating while the other waits left half the machine idle.
  struct Job { PackedWeight* w; const float* src; int O, I; };
  std::vector<Job> jobs;
  for_each_matrix(*packs, m, [&](PackedWeight& w, const float* src, int O, int I) { jobs.push_back({&w, src, O, I}); });
  std::stable_sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return (int64_t)a.O * a.I > (int64_t)b.O * b.I; });
  std::atomic<size_t> next{0};  // the largest first, each to the first thread free
  run_team(omp_get_max_threads(), [&](int, int) {
    for (size_t j; (j = next.fetch_add(1, std::memory_order_relaxed)) < jobs.size();)
      *jobs[j].w = pack_weight(jobs[j].src, jobs[j].O, jobs[j].I, bf16, for_backward);
  });
  return packs;
}

void repack_frozen(FrozenWeights& p, const Model& m) {
  if (p.source != m.data.data()) throw Error("internal: repacking packed weights from another model", "report this as a bug");
  for_each_matrix(p, m, [](PackedWeight& w, const float* src, int O, int I) { repack_weight(w, src, O, I); });
}

std::vector<PackedMatrix> packed_matrices(FrozenWeights& p, const Model& m) {
  if (p.source != m.data.data()) throw Error("internal: listing packed weights against another model", "report this as a bug");
  std::vector<PackedMatrix> out;
  for_each_matrix(p, m, [&](PackedWeight& w, const float* src, int O, int I) {
    out.push_back({&w, src - m.data.data(), O, I});
  });
  return out;
}

MoeWeights moe_weights(const LayerWeights& w, const FrozenLayer* packs) {
  MoeWeights mw{w.router, w.ffn_gate, w.ffn_up, w.ffn_down};
  if (packs) {
    mw.packed_gate = packs->gate.data();
    mw.packed_up = packs->up.data();
    mw.packed_down = packs->down.data();
  }
  return mw;
}

ScopedPacks::ScopedPacks(Workspace& ws, std::shared_ptr<const FrozenWeights> packs) : ws_(ws), before_(ws.frozen) {
  ws_.frozen = std::move(packs);
}
ScopedPacks::~ScopedPacks() { ws_.frozen = std::move(before_); }

const FrozenWeights* frozen_for(const Workspace& ws, const Model& m) {
  if (!ws.frozen) return nullptr;
  if (ws.frozen->source != m.data.data())
    throw Error("internal: the workspace's packed weights were packed from another model", "report this as a bug");
  return ws.frozen.get();
}

}  // namespace heirloom
