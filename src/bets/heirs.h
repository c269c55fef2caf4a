// What the real-adapter inheritance bets (69-real, 69-chain) share: training a norm adapter on a token
// stream, making an heir by any scheme (distill included), and a child's text mixed from two voices.
#pragma once
#include <string>
#include <vector>

#include "bets/harness.h"
#include "heirloom/inherit.h"

namespace heirloom::bets {

// The generations' training budget, mirroring the synthetic protocol: parent and the big-child
// reference get `long_steps`, a child `short_steps` (quick: reduced).
struct HeirProtocol {
  int long_steps, short_steps, seq;
  int64_t train_tokens, heldout_tokens;
  Precision precision;  // resolved: fp32 or bf16
  json to_json() const;
};
HeirProtocol heir_protocol(const Context& ctx);

// A norm adapter trained for `steps` on `train` (from `start` when given), seed-protocol windows.
Adapter train_norm(const Context& ctx, const HeirProtocol& p, const std::vector<int32_t>& train, int steps, uint64_t seed,
                   const Adapter* start = nullptr);
// The heir of parent and child by `scheme`; distill trains the parent on the child's text for short_steps.
Adapter heir_by(const Context& ctx, const HeirProtocol& p, const Adapter& parent, const Adapter& child, const std::string& scheme,
                const std::vector<int32_t>& child_train, uint64_t seed);
// n tokens (BOS first) interleaving chunks of a and b so that `share_a` of them come from a, read from
// each stream's offset on.
std::vector<int32_t> mix(const Context& ctx, const std::vector<int32_t>& a, int64_t a_from, const std::vector<int32_t>& b,
                         int64_t b_from, double share_a, int64_t n);
// The schemes the bets sweep (the synthetic Bet 69's list).
std::vector<std::string> heir_schemes();

}  // namespace heirloom::bets
