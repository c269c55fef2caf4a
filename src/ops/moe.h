// Mixture of SwiGLU experts with top-K routing (Mixtral / llama.cpp semantics):
// softmax over all E router logits, keep the K largest (ties: lower index), renormalise those K weights
// to sum to 1 (= a softmax over the K kept logits), out = Σ_k w_k · expert_k(x).
// Tokens are grouped by expert once per call (a counting sort, rows ascending inside each expert) so every
// expert runs as three GEMMs over its rows; there is no per-token dispatch.
// Also returns the switch-style load-balancing loss E · Σ_e f_e · P_e (f_e: share of routed slots,
// P_e: mean router probability); its gradient flows into the router when aux_coef > 0.
#pragma once
#include <cstdint>

namespace heirloom {

struct MoeShape {
  int N, C, F, E, K;
};

struct PackedWeight;
struct PackedB;

struct MoeWeights {
  const float* router;  // [E, C]
  const float* gate;    // [E, F, C]
  const float* up;      // [E, F, C]
  const float* down;    // [E, C, F]
  // Optional bf16 packs of the frozen experts, E of each (see matmul.h): the expert GEMMs then run in bf16.
  const PackedWeight* packed_gate = nullptr;
  const PackedWeight* packed_up = nullptr;
  const PackedWeight* packed_down = nullptr;
};

struct MoeGrads {  // null = frozen (weight-gradient work skipped)
  float* router;
  float* gate;
  float* up;
  float* down;
  bool write = false;  // every gradient here is written, not added to (an expert no row reached: zeros)
};

// Buffers kept from forward for backward. Slots are the N·K (row, k) pairs grouped by expert.
struct MoeSaved {
  float* probs;        // [N, E] full softmax
  int32_t* topk;       // [N, K] chosen experts (input when routing is fixed)
  float* weights;      // [N, K] renormalised weights
  int32_t* offsets;    // [E + 1] first slot of each expert
  int32_t* slot_row;   // [N·K] row of each slot
  int32_t* slot_of;    // [N·K] slot of (n, k)
  float* xg;           // [N·K, C] gathered inputs
  float* hg;           // [N·K, F] gate projections
  float* hu;           // [N·K, F] up projections
  float* h;            // [N·K, F] silu(hg) ⊙ hu
  float* y;            // [N·K, C] expert outputs (unweighted)
  float* logits;       // [N, E] router logits
  int32_t* cursor;     // [E] work space of the grouping sort
  // E each, or null: where a trainer's forward on bf16 packs keeps the weight gradients' B operands packed as
  // it makes their rows, in place of xg (the gate and up gradients') and h (the down gradient's) in fp32.
  PackedB* xg_packs = nullptr;
  PackedB* h_packs = nullptr;
  // [N·K, F] each, or null: hg and hu in bf16, written in their place where the experts' products run on bf16
  // packs and no LoRA adds to gate or up (ops/moe.cpp: keeps_h16). Only the SwiGLU reads them, and it rounds
  // its output to bf16 for the down product anyway: half the bytes to memory and back, twice a step.
  uint16_t* hg16 = nullptr;
  uint16_t* hu16 = nullptr;
};

struct MoeScratch {  // backward work space
  float* dy;       // [N·K, C]
  float* dh;       // [N·K, F]
  float* dhg;      // [N·K, F]
  float* dhu;      // [N·K, F]
  float* dxg;      // [N·K, C]
  float* dlogits;  // [N, E]
  float* dw;       // [N, K]
  float* gaux;     // [E] load-balancing gradient per expert
  uint16_t* dhu16 = nullptr;  // [N·K, F]: dhu in bf16, for the up product on bf16 packs when nothing else reads dhu
};

// LoRA on the experts' gate, up and down projections for the rows of one segment (sequences sharing an
// adapter). Pointers per projection j (0 gate, 1 up, 2 down): A [E, R, in], B [E, out, R]; null = none.
struct MoeLoraPart {
  int row0, row1;  // rows [row0, row1) of x
  int R;
  float scale;
  const float* a[3];
  const float* b[3];
  float* da[3];  // gradients (null = not trained)
  float* db[3];
};
struct MoeLora {
  const MoeLoraPart* parts = nullptr;
  int n_parts = 0;
  int rmax = 0;
  float* u[3] = {};     // [N·K, rmax] per projection: the slot's input times Aᵀ (kept for backward)
  float* du = nullptr;  // [N·K, rmax] backward scratch
};

// out[N, C] = MoE(x[N, C]). With logits_ready the router logits are taken from s.logits as the caller
// left them (to add a router LoRA); otherwise they are computed here. lora may be null. With fixed_routing the experts in s.topk are kept (the weights are still
// recomputed from the current logits) — used to hold routing fixed across finite-difference probes.
// Returns the load-balancing loss value.
// keep_h: keep h = silu(hg) ⊙ hu for the down weight's gradient (else, on packs, the down product makes h's rows
// as it goes and h is not kept; ops/moe.cpp), and the gathered input rows for the gate and up weights' (else,
// on bf16 packs with no LoRA on gate or up, each expert gathers them into bf16 only). Kept in s.h and s.xg, or
// on bf16 packs, where s has them and no LoRA reads them, packed in s.h_packs and s.xg_packs.
// residual: out = residual + the experts' sum (the block's skip connection added as each row is combined, the
// same arithmetic as adding it after).
float moe_forward(float* out, const MoeSaved& s, const float* x, const MoeWeights& w, const MoeShape& sh,
                  bool fixed_routing, const MoeLora* lora = nullptr, bool logits_ready = false, bool keep_h = false,
                  const float* residual = nullptr);
// dx[N, C] += ...; weight gradients += ... ; dout[N, C]. aux_coef scales the load-balancing loss.
// The router logits' gradient is left in scratch.dlogits (for a router LoRA).
// h_kept: the forward ran with keep_h (else a down weight's gradient makes h again from hg and hu; gate and up
// gradients on bf16 packs need it).
// write_dx: dx is written (=) instead of added to.
void moe_backward(float* dx, const MoeGrads& g, const MoeScratch& scratch, const float* dout, float aux_coef,
                  const MoeSaved& s, const float* x, const MoeWeights& w, const MoeShape& sh,
                  const MoeLora* lora = nullptr, bool h_kept = false, bool write_dx = false);

// The K largest of p[E] into idx, ties to the lower index: the experts a row is routed to.
void top_k_experts(int32_t* idx, const float* p, int E, int K);

// Naive twins (ops/moe_ref.cpp): per token, per chosen expert, in double. The backward uses s.topk from the forward.
float moe_forward_ref(float* out, const MoeSaved& s, const float* x, const MoeWeights& w, const MoeShape& sh,
                      bool fixed_routing);
void moe_backward_ref(float* dx, const MoeGrads& g, const float* dout, float aux_coef, const MoeSaved& s,
                      const float* x, const MoeWeights& w, const MoeShape& sh);

}  // namespace heirloom
