// Shared by the real-adapter inheritance bets. See heirs.h.
#include "bets/heirs.h"

#include <algorithm>

#include "inherit/synthetic.h"

namespace heirloom::bets {

HeirProtocol heir_protocol(const Context& ctx) {
  const bool q = ctx.opt.quick;
  return {q ? 8 : 200, q ? 2 : 50, std::min(q ? 64 : 256, ctx.base.config.n_ctx), q ? 600 : 3000, q ? 200 : 1000,
          resolve_precision(ctx.opt.precision)};
}

json HeirProtocol::to_json() const {
  return {{"kind", "norm"}, {"parent_and_big_child_steps", long_steps}, {"child_steps", short_steps}, {"seq", seq},
          {"batch", 1}, {"lr", default_lr(AdapterKind::norm)}, {"train_tokens", train_tokens}, {"heldout_tokens", heldout_tokens},
          {"precision", precision_name(precision)}};
}

std::vector<std::string> heir_schemes() { return inherit::SyntheticConfig{}.schemes; }

Adapter train_norm(const Context& ctx, const HeirProtocol& p, const std::vector<int32_t>& train, int steps, uint64_t seed,
                   const Adapter* start) {
  PersonalizeOptions o;
  o.kind = AdapterKind::norm;
  o.steps = steps;
  o.seq = p.seq;
  o.seed = seed;
  o.eval_tokens = 32;  // personalize's own before/after check is not used here: keep it small
  o.trajectory_every = 0;
  o.progress = false;
  o.precision = p.precision;
  Adapter a = start ? *start : make_adapter(ctx.base, AdapterKind::norm);
  const std::vector<int32_t> probe = head(train, 64);
  personalize_tokens(ctx.base, a, train, probe, probe, o);
  a.info.sha256 = adapter_checksum(a, ctx.base.config, StorageType::f16);
  return a;
}

Adapter heir_by(const Context& ctx, const HeirProtocol& p, const Adapter& parent, const Adapter& child, const std::string& scheme,
                const std::vector<int32_t>& child_train, uint64_t seed) {
  const inherit::OverlapReport ov = inherit::overlap(parent.routed() ? parent.branches.back() : parent, child, ctx.base.config);
  if (scheme == "distill") {
    Adapter h = train_norm(ctx, p, child_train, p.short_steps, seed, &parent);
    h.lineage = inherit::lineage_of(parent, child, inherit::parse_scheme(scheme), ov);
    return h;
  }
  return inherit::merge_heir(parent, child, inherit::parse_scheme(scheme), ctx.base.config, ov, nullptr, seed);
}

std::vector<int32_t> mix(const Context& ctx, const std::vector<int32_t>& a, int64_t a_from, const std::vector<int32_t>& b,
                         int64_t b_from, double share_a, int64_t n) {
  constexpr int64_t kChunk = 64;  // a paragraph's worth of tokens
  std::vector<int32_t> out{ctx.base.vocab.bos_id};
  int64_t ia = std::max<int64_t>(1, a_from), ib = std::max<int64_t>(1, b_from), from_a = 0;
  while ((int64_t)out.size() < n) {
    // Take the next chunk from a while a's share so far is below share_a (an even interleave).
    const bool take_a = (double)from_a < share_a * (double)(out.size() - 1 + kChunk) - 1e-9;
    const std::vector<int32_t>& src = take_a ? a : b;
    int64_t& at = take_a ? ia : ib;
    if (at + kChunk > (int64_t)src.size()) at = 1;  // a short stream wraps around
    const int64_t k = std::min<int64_t>({kChunk, n - (int64_t)out.size(), (int64_t)src.size() - at});
    out.insert(out.end(), src.begin() + at, src.begin() + at + k);
    at += k;
    if (take_a) from_a += k;
  }
  return out;
}

}  // namespace heirloom::bets
