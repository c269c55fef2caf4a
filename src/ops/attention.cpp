// Attention forward/backward. See attention.h.
//   p = softmax(q·kᵀ·scale) (causal) = exp(q·kᵀ·scale − m)·inv, m the row's largest scaled score, inv 1/Σ exp;
//   out = p·v
//   dv += pᵀ·dout;  dp = dout·vᵀ;  ds = p ⊙ (dp − rowsum(p ⊙ dp));  dq += ds·k·scale;  dk += dsᵀ·q·scale
// The forward keeps only each row's m and inv; the backward makes p again from q·kᵀ block by block, with the
// forward's products and arithmetic, so bit for bit the p the forward used. Kept whole,
// p and its gradient were B·H·T·S floats each per layer, written and read back from memory (4 MB each at
// 8x128): attention's forward + backward took 3.10 ms per layer with sixteen layers' buffers in turn
// (heirloom_microbench BM_attention, fp32), against 2.07 ms on one layer's buffers kept in cache.
// Where the products run in bf16 the forward converts p to bf16 for p·v anyway; it keeps those rows (the causal
// blocks only, half of fp32's bytes per entry) and the backward reads them: no q·kᵀ and no exp a second time.
// The protocol's steps took 0.979–0.995 of their time with them in four trials (heirloom bench --experiment).
// Rows from position 0 (training, prefills) run in transposed blocks instead (ops/attention_transposed.h: keys
// down the rows, each block's queries across the lanes) in fp32 on AVX-512 and in bf16 on dot products; this
// file's blocks serve generation after a cache, AMX tiles, and CPUs without AVX-512.
#include "ops/attention.h"
#include "ops/attention_transposed.h"

#include "core/gemm.h"
#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/parallel.h"
#include "heirloom/error.h"
#include "ops/vec_math.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <tuple>
#include <vector>

namespace heirloom {

// Both passes run per (sequence, head) as small products on strided views of q, k, v, single-threaded inside
// the parallel loop, in blocks of kRows query rows: a block needs only the keys up to its last row, so the
// masked upper triangle is skipped block by block. Inside a block the few masked entries are computed and
// then zeroed: with 32-row blocks that is 1/(2·blocks) more than the triangle
// (25 % at T = 128; 64-row blocks computed 50 % more and took 1.2x the time of attention's forward + backward).
// With AVX-512 the products run on gemm_f32_panel's micro-tiles (no BLAS call, no packing of q or the
// probabilities; products whose columns are keys read kᵀ or vᵀ, transposed once per (sequence, head));
// without it, through the BLAS on the same views.
namespace {
constexpr int kRows = kAttnRows;
constexpr int kPanel = 32;  // columns per gemm_f32_panel call

int round_up(int x, int m) { return (x + m - 1) / m * m; }

// xᵀ [D, ld_out] of rows 0..n-1 of x (row stride ldx), keys n..ld_out-1 zero.
void transpose_rows(float* out, int ld_out, const float* x, int ldx, int n, int D) {
  for (int j0 = 0; j0 < n; j0 += 16) {  // 16 rows at a time: what they read and write stays in L1
    const int j1 = std::min(n, j0 + 16);
    for (int d = 0; d < D; ++d) {
      float* o = out + (int64_t)d * ld_out;
#pragma omp simd
      for (int j = j0; j < j1; ++j) o[j] = x[(int64_t)j * ldx + d];
    }
  }
  for (int d = 0; d < D; ++d) std::fill(out + (int64_t)d * ld_out + n, out + (int64_t)(d + 1) * ld_out, 0.f);
}

// Keys transposed for the micro-tiles: xᵀ of rows 0..n-1 of x into `buf`, or null on the BLAS path.
const float* keys_t(std::vector<float>& buf, int ld_out, const float* x, int ldx, int n, int D) {
  if (!f32_packed_available()) return nullptr;
  if (buf.size() < (size_t)D * ld_out) buf.resize((size_t)D * ld_out);
  transpose_rows(buf.data(), ld_out, x, ldx, n, D);
  return buf.data();
}

// C[M, D] (+)= A · X[K, D] for A(r, k) = A[r·ars + k·aks] with ars or aks = 1, X with row stride ldx.
void times_rows_f32(float* C, int ldc, const float* A, int ars, int aks, const float* X, int ldx, int M, int K, int D,
                    bool accumulate) {
  if (!f32_packed_available())  // aks = 1: A row-major with stride ars; ars = 1: A stored transposed
    return gemm(ars == 1 && aks != 1, false, M, D, K, 1.f, A, aks == 1 ? ars : aks, X, ldx, accumulate ? 1.f : 0.f,
                C, ldc);
  for (int d0 = 0; d0 < D; d0 += kPanel)
    gemm_f32_panel(M, K, A, ars, aks, X + d0, ldx, std::min(kPanel, D - d0), C + d0, ldc, accumulate);
}

// The products of one (sequence, head) against its keys x and value-side rows y (both [S, D], row stride ld; y
// null for a head that only multiplies by the keys):
// in fp32 on the micro-tiles (or the BLAS), or, when the frozen base runs in bf16 (AttnShape::bf16) on a CPU
// with AMX, in bf16 with fp32 accumulation on AMX tiles, with x and y packed once per head. Packing and
// converting cost about what AMX saves at 128 keys (heirloom_microbench BM_attention, D = 32, while the
// backward still read stored probabilities: fp32 0.83 / 2.09 ms forward / forward + backward, AMX 0.88 / 2.10
// with the transposes in registers), so sequences shorter than
// kAmxKeys stay in fp32; at 256 keys AMX takes 1.30 / 2.98 against fp32's 1.45 / 3.59 (measured earlier), at
// 512 keys 2.19 / 5.14 against 2.55 / 6.84 (before the in-register transposes). A call with
// fewer than kAmxRows query rows (a generated token) stays in fp32 too: packing would cost more than the product.
constexpr int kAmxKeys = 256, kAmxRows = 16;
constexpr int kDotKeys = 128;  // the same on AVX512-BF16 dot products (no AMX)
int bf16_keys() { return bf16_amx_available() ? kAmxKeys : kDotKeys; }
bool bf16_products(const AttnShape& s) {
  return s.bf16 && bf16_gemm_available() && s.S() >= bf16_keys() && s.T >= kAmxRows;
}

// The probabilities a bf16 forward keeps for the backward (attention.h), per (sequence, head): block i's kRows
// rows of round_up(nk_i, 32) values (nk_i its keys, pos0 = 0), the blocks one after another (on dot products,
// its keys' rows of kRows values in the same room), found by attention_kept_block (ops/attention_transposed.h).
// Whether this call keeps (forward) or reads (backward) them: bf16 products, training rows (pos0 = 0).
bool keeps_probs(const void* probs, const AttnShape& s) { return probs && s.pos0 == 0 && bf16_products(s); }
class HeadProducts {
 public:
  // `slot` picks this thread's buffers: two heads alive at once on a thread need two (the backward's).
  // The AMX tiles are configured by the slot-0 head, which must outlive any other.
  HeadProducts(const AttnShape& s, const float* x, const float* y, int slot = 0)
      : amx_(bf16_products(s)),
        x_(x), y_(y), ld_(s.ldkv), S_(s.S()), D_(s.D), b_(bufs(slot)) {
    if (amx_) {
      if (slot == 0) tiles_.emplace();
      pack_b_bf16_into(b_.xt, x, ld_, true, D_, S_);  // B = xᵀ [D, S]
      if (y) pack_b_bf16_into(b_.y, y, ld_, false, S_, D_);  // B = y [S, D]; null: only times_keys follows
    } else {
      xt_ = keys_t(b_.f32_xt, round_up(S_, kPanel), x, ld_, S_, D_);
    }
  }
  // C[R, n] = A[R, D] · x[0:n]ᵀ
  void times_keys(float* C, int ldc, const float* A, int lda, int R, int n) {
    if (amx_) {
      const int ldo = round_up(D_, 32);
      gemm_bf16_small(R, n, D_, b_.rows(A, lda, false, R, D_, ldo), ldo, b_.xt, C, ldc, false);
    } else if (!xt_) {
      gemm(false, true, R, n, D_, 1.f, A, lda, x_, ld_, 0.f, C, ldc);
    } else {
      for (int j0 = 0; j0 < n; j0 += kPanel)
        gemm_f32_panel(R, D_, A, lda, 1, xt_ + j0, round_up(S_, kPanel), std::min(kPanel, n - j0), C + j0, ldc, false);
    }
  }
  // C[R, D] (+)= A[R, n] · y[0:n]
  void times_values(float* C, int ldc, const float* A, int lda, int R, int n, bool accumulate) {
    if (!amx_) return times_rows_f32(C, ldc, A, lda, 1, y_, ld_, R, n, D_, accumulate);
    const int ldo = round_up(S_, 32);
    gemm_bf16_small(R, D_, n, b_.rows(A, lda, false, R, n, ldo), ldo, b_.y, C, ldc, accumulate);
  }
  // The same for A already in bf16 rows (to_bf16_rows, row stride lda); bf16() only.
  void times_values(float* C, int ldc, const uint16_t* a, int lda, int R, int n, bool accumulate) {
    gemm_bf16_small(R, D_, n, a, lda, b_.y, C, ldc, accumulate);
  }
  // C[n, D] += A[R, n]ᵀ · Y[R, D] (row stride ldy): the key-side gradients
  void transposed_times(float* C, int ldc, const float* A, int lda, const float* Y, int ldy, int R, int n) {
    if (!amx_) return times_rows_f32(C, ldc, A, 1, lda, Y, ldy, n, R, D_, true);
    pack_b_bf16_into(b_.yr, Y, ldy, false, R, D_);
    const int ldo = round_up(R, 32);
    gemm_bf16_small(n, D_, R, b_.rows(A, lda, true, n, R, ldo), ldo, b_.yr, C, ldc, true);
  }

 private:
  struct Buffers {  // per thread, reused across heads and calls
    PackedB xt, y, yr;
    std::vector<uint16_t> a;
    std::vector<float> f32_xt;
    const uint16_t* rows(const float* A, int lda, bool trans, int M, int K, int ldo) {
      if (a.size() < (size_t)round_up(M, 32) * ldo) a.resize((size_t)round_up(M, 32) * ldo);
      to_bf16_rows(A, lda, trans, M, K, a.data(), ldo);
      return a.data();
    }
  };
  static Buffers& bufs(int slot) {
    thread_local Buffers b[2];
    return b[slot];
  }
  const bool amx_;
  const float *x_, *y_, *xt_ = nullptr;
  const int ld_, S_, D_;
  Buffers& b_;
  std::optional<Bf16Tiles> tiles_;
};

// A per-thread block of kRows rows of S values (fp32, or bf16 rows of round_up(S, 32)): probabilities or their
// gradients, kept in cache.
template <class T = float>
T* block_scratch(int slot, int S) {
  thread_local std::vector<T> b[2];
  const size_t n = (size_t)kRows * round_up(S, 32);
  if (b[slot].size() < n) b[slot].resize(n);
  return b[slot].data();
}

// A row's exp(scale·score − mx) over its n_keys keys, times inv, and the rest of the block's nk keys zero: its
// probabilities. The forward (inv from this row's sum) and the backward (inv kept by the forward) both end
// here after the same row_exp, so the backward's probabilities are the forward's bit for bit.
void finish_probabilities(float* p, int n_keys, int nk, float inv) {
  scale_row(p, p, inv, n_keys);
  std::fill(p + n_keys, p + nk, 0.f);
}
// The same into bf16 rows (rounded as to_bf16_rows rounds), zero from n_keys to ld.
void finish_probabilities(uint16_t* out, const float* p, int n_keys, int ld, float inv) {
  scale_row(out, p, inv, n_keys);
  std::fill(out + n_keys, out + ld, (uint16_t)0);
}
// ds = p ⊙ (dp − rowsum(p ⊙ dp))·scale over a row's n_keys keys (d holds dp), zero to nk.
void softmax_grad_row(float* d, const float* p, int n_keys, int nk, float scale) {
  const float pdp = row_dot(p, d, n_keys);
  int j = 0;
  for (; j + 16 <= n_keys; j += 16) store16(d + j, load16(p + j) * (load16(d + j) - pdp) * scale);
  if (const int r = n_keys - j; r > 0) store_first(d + j, load_first(p + j, r) * (load_first(d + j, r) - pdp) * scale, r);
  std::fill(d + n_keys, d + nk, 0.f);
}

}  // namespace

namespace {
// rope: q (= qm) and k (= km) are rotated in place by each (b, h) unit first (attention_forward_rotating).
void forward_units(float* out, float* row_stats, const float* q, const float* k, const float* v, const AttnShape& s,
                   const RopeTable* rope, float* qm, float* km, uint16_t* probs) {
  const int S = s.S(), D = s.D, HD = s.H * s.D, group = s.H / s.Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
  // (b, h) units in shares that a thread done first takes from: the two cores do not run at one speed.
  // Each unit keeps its caller's RowExact: on CPUs without AVX-512 its products go through gemm().
  const bool exact = row_exact();
  parallel_for((int64_t)s.B * s.H, true, [&](int64_t unit) {
    RowExact mode(exact);
    const int b = (int)(unit / s.H), h = (int)(unit % s.H), g = h / group;
    if (rope) {
      rope_forward(qm + (int64_t)b * s.T * s.ldq + h * D, s.ldq, *rope, 1, s.T, 1, D, 0);
      rope_forward(km + b * s.kv_bstride + g * D, s.ldkv, *rope, 1, S, 1, D, 0);
    }
    const float* qb = q + (int64_t)b * s.T * s.ldq + h * D;
    float* ob = out + (int64_t)b * s.T * HD + h * D;
    const bool kept = keeps_probs(probs, s);
    if (attention_transposed(s, bf16_products(s))) {
      float* stats = row_stats ? row_stats + 2 * ((int64_t)b * s.H + h) * s.T : nullptr;
      const float *kb = k + b * s.kv_bstride + g * D, *vb = v + b * s.kv_bstride + g * D;
      if (bf16_products(s))
        return transposed_forward(ob, HD, stats, qb, kb, vb, s,
                                  kept ? attention_kept_block(probs, s, b, h, 0) : nullptr);
      return transposed_forward_f32(ob, HD, stats, qb, kb, vb, s);
    }
    float* pb = block_scratch(0, S);
    HeadProducts head(s, k + b * s.kv_bstride + g * D, v + b * s.kv_bstride + g * D);
    // On bf16 products the probabilities go into bf16 rows as they are made: the kept ones, or else a block of
    // this thread's (the same bits as converting them after: finish_probabilities rounds as to_bf16_rows).
    uint16_t* own = !kept && bf16_products(s) ? block_scratch<uint16_t>(0, S) : nullptr;
    for (int t0 = 0; t0 < s.T; t0 += kRows) {
      const int t1 = std::min(s.T, t0 + kRows), nk = s.pos0 + t1, ldk = round_up(nk, 32);
      head.times_keys(pb, S, qb + (int64_t)t0 * s.ldq, s.ldq, t1 - t0, nk);
      uint16_t* a = kept ? attention_kept_block(probs, s, b, h, t0) : own;
      for (int t = t0; t < t1; ++t) {
        float* p = pb + (int64_t)(t - t0) * S;
        const int n_keys = s.pos0 + t + 1;
        const float mx = scale * row_max(p, n_keys);  // scale > 0: the max of the scaled scores
        const float inv = 1.0f / row_exp(p, p, n_keys, mx, scale);
        if (a) finish_probabilities(a + (int64_t)(t - t0) * ldk, p, n_keys, ldk, inv);  // where the backward finds them
        else finish_probabilities(p, n_keys, nk, inv);
        if (row_stats) {
          float* st = row_stats + 2 * (((int64_t)b * s.H + h) * s.T + t);
          st[0] = mx, st[1] = inv;
        }
      }
      if (a) {  // kept: rows past the block's last (T not a multiple of kRows) are zeros
        if (kept) std::fill(a + (int64_t)(t1 - t0) * ldk, a + (int64_t)kRows * ldk, (uint16_t)0);
        head.times_values(ob + (int64_t)t0 * HD, HD, a, ldk, t1 - t0, nk, false);
      } else {
        head.times_values(ob + (int64_t)t0 * HD, HD, pb, S, t1 - t0, nk, false);
      }
    }
  });
}
}  // namespace

int64_t attention_kept_size(int B, int H, int T) { return (int64_t)B * H * attention_kept_per_head(T); }

void attention_forward(float* out, float* row_stats, const float* q, const float* k, const float* v, const AttnShape& s,
                       uint16_t* probs) {
  forward_units(out, row_stats, q, k, v, s, nullptr, nullptr, nullptr, probs);
}

void attention_forward_rotating(float* out, float* row_stats, float* q, float* k, const float* v,
                                const AttnShape& s, const RopeTable& rope, uint16_t* probs) {
  if (s.H != s.Hkv || s.pos0 != 0)
    throw Error("internal: attention_forward_rotating with shared key heads or a cache", "report this as a bug");
  forward_units(out, row_stats, q, k, v, s, &rope, q, k, probs);
}

namespace {
// One (sequence b, key head g) unit of the backward where it does not take the transposed blocks: after a
// cache, without AVX-512, on AMX tiles, or in bf16 without kept probabilities (making p again from row_stats).
void backward_unit(float* dq, float* dk, float* dv, const float* dout, const float* row_stats, const float* q,
                   const float* k, const float* v, const AttnShape& s, bool write, const uint16_t* probs, int b, int g) {
  const int S = s.S(), D = s.D, HD = s.H * s.D, group = s.H / s.Hkv;
  const float scale = 1.0f / std::sqrt((float)D);
  const float* kb = k + b * s.kv_bstride + g * D;
  const float* vb = v + b * s.kv_bstride + g * D;
  float* dkb = dk + b * s.kv_bstride + g * D;
  float* dvb = dv + b * s.kv_bstride + g * D;
  const bool kept = keeps_probs(probs, s);
  if (write) {  // dq's, dk's and dv's rows are added to below
    for (int t = 0; t < s.T; ++t) std::fill_n(dq + ((int64_t)b * s.T + t) * s.ldq + g * group * D, group * D, 0.f);
    for (int j = 0; j < S; ++j) {
      std::fill_n(dkb + (int64_t)j * s.ldkv, D, 0.f);
      std::fill_n(dvb + (int64_t)j * s.ldkv, D, 0.f);
    }
  }
  std::optional<HeadProducts> scores;  // p again: q·kᵀ (no values), unless the forward kept it
  if (!kept) scores.emplace(s, kb, nullptr, 0);
  HeadProducts grads(s, vb, kb, kept ? 0 : 1);  // dp is a product against v (its "keys"), dq one over k (its "values")
  float* pb = block_scratch(0, S);
  float* ds = block_scratch(1, S);
  for (int h = g * group; h < (g + 1) * group; ++h) {  // heads sharing k, v run in order: no races
    for (int t0 = 0; t0 < s.T; t0 += kRows) {
      const int t1 = std::min(s.T, t0 + kRows), nk = s.pos0 + t1, R = t1 - t0;
      const float* st = row_stats + 2 * (((int64_t)b * s.H + h) * s.T + t0);
      const float* dob = dout + ((int64_t)b * s.T + t0) * HD + h * D;
      const float* qb = q + ((int64_t)b * s.T + t0) * s.ldq + h * D;
      float* dqb = dq + ((int64_t)b * s.T + t0) * s.ldq + h * D;
      if (kept) {  // the forward's bf16 probabilities (AMX), zero past each row's keys, in fp32 for the products
        const uint16_t* p16 = attention_kept_block(probs, s, b, h, t0);
        for (int t = 0; t < R; ++t)
          for (int j = 0; j < nk; ++j) pb[(int64_t)t * S + j] = load1(p16 + (int64_t)t * round_up(nk, 32) + j);
      } else {
        scores->times_keys(pb, S, qb, s.ldq, R, nk);
        for (int t = 0; t < R; ++t) {
          float* p = pb + (int64_t)t * S;
          const int n_keys = s.pos0 + t0 + t + 1;
          row_exp(p, p, n_keys, st[2 * t], scale);
          finish_probabilities(p, n_keys, nk, st[2 * t + 1]);
        }
      }
      grads.transposed_times(dvb, s.ldkv, pb, S, dob, HD, R, nk);  // dv += pᵀ·dout
      grads.times_keys(ds, S, dob, HD, R, nk);  // dp = dout·vᵀ
      for (int t = 0; t < R; ++t) {
        float* d = ds + (int64_t)t * S;
        const int n_keys = s.pos0 + t0 + t + 1;
        softmax_grad_row(d, pb + (int64_t)t * S, n_keys, nk, scale);
      }
      grads.times_values(dqb, s.ldq, ds, S, R, nk, true);  // dq += ds·k
      grads.transposed_times(dkb, s.ldkv, ds, S, qb, s.ldq, R, nk);  // dk += dsᵀ·q
    }
  }
}
}  // namespace

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* row_stats, const float* q,
                        const float* k, const float* v, const AttnShape& s, bool write, const RopeTable* rope,
                        const uint16_t* probs) {
  const int group = s.H / s.Hkv;
  parallel_for((int64_t)s.B * s.Hkv, true, [&](int64_t unit) {  // (b, g) units, as the forward's
    const int b = (int)(unit / s.Hkv), g = (int)(unit % s.Hkv);
    if (keeps_probs(probs, s) && attention_transposed(s, true))
      transposed_backward(dq, dk, dv, dout, q, k, v, s, b, g, write, probs);
    else if (!bf16_products(s) && attention_transposed(s, false))
      transposed_backward_f32(dq, dk, dv, dout, row_stats, q, k, v, s, b, g, write);
    else
      backward_unit(dq, dk, dv, dout, row_stats, q, k, v, s, write, probs, b, g);
    if (rope) {  // this unit's dq (its group's heads) and dk, still in its cache
      rope_backward(dq + (int64_t)b * s.T * s.ldq + g * group * s.D, s.ldq, *rope, 1, s.T, group, s.D, s.pos0);
      rope_backward(dk + b * s.kv_bstride + g * s.D, s.ldkv, *rope, 1, s.S(), 1, s.D, 0);
    }
  });
}

void attention_forward_ref(float* out, float* att, const float* q, const float* k, const float* v,
                           const AttnShape& s, float* row_stats) {
  const int S = s.S(), D = s.D, HD = s.H * s.D, group = s.H / s.Hkv;
  const double scale = 1.0 / std::sqrt((double)D);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h)
      for (int t = 0; t < s.T; ++t) {
        const int g = h / group;
        std::vector<double> sc(S, 0.0);
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j <= s.pos0 + t; ++j) {
          double d = 0;
          for (int i = 0; i < D; ++i)
            d += (double)q[((int64_t)b * s.T + t) * s.ldq + h * D + i] * k[b * s.kv_bstride + (int64_t)j * s.ldkv + g * D + i];
          sc[j] = d * scale;
          mx = std::max(mx, sc[j]);
        }
        for (int j = 0; j <= s.pos0 + t; ++j) sum += (sc[j] = std::exp(sc[j] - mx));
        if (row_stats) {
          float* st = row_stats + 2 * (((int64_t)b * s.H + h) * s.T + t);
          st[0] = (float)mx, st[1] = (float)(1.0 / sum);
        }
        float* p = att + (((int64_t)b * s.H + h) * s.T + t) * S;
        for (int j = 0; j < S; ++j) p[j] = j <= s.pos0 + t ? (float)(sc[j] / sum) : 0.f;
        for (int i = 0; i < D; ++i) {
          double o = 0;
          for (int j = 0; j <= s.pos0 + t; ++j) o += sc[j] / sum * v[b * s.kv_bstride + (int64_t)j * s.ldkv + g * D + i];
          out[((int64_t)b * s.T + t) * HD + h * D + i] = (float)o;
        }
      }
}

void attention_backward_ref(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                            const float* k, const float* v, const AttnShape& s) {
  const int S = s.S(), D = s.D, HD = s.H * s.D, group = s.H / s.Hkv;
  const double scale = 1.0 / std::sqrt((double)D);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h)
      for (int t = 0; t < s.T; ++t) {
        const int g = h / group, n_keys = s.pos0 + t + 1;
        const float* p = att + (((int64_t)b * s.H + h) * s.T + t) * S;
        const float* go = dout + ((int64_t)b * s.T + t) * HD + h * D;
        std::vector<double> dp(n_keys);
        double pdp = 0;
        for (int j = 0; j < n_keys; ++j) {
          const float* vj = v + b * s.kv_bstride + (int64_t)j * s.ldkv + g * D;
          double d = 0;
          for (int i = 0; i < D; ++i) d += (double)go[i] * vj[i];
          dp[j] = d;
          pdp += p[j] * d;
          for (int i = 0; i < D; ++i) dv[b * s.kv_bstride + (int64_t)j * s.ldkv + g * D + i] += (float)(p[j] * go[i]);
        }
        for (int j = 0; j < n_keys; ++j) {
          const double d = p[j] * (dp[j] - pdp) * scale;
          for (int i = 0; i < D; ++i) {
            dq[((int64_t)b * s.T + t) * s.ldq + h * D + i] += (float)(d * k[b * s.kv_bstride + (int64_t)j * s.ldkv + g * D + i]);
            dk[b * s.kv_bstride + (int64_t)j * s.ldkv + g * D + i] += (float)(d * q[((int64_t)b * s.T + t) * s.ldq + h * D + i]);
          }
        }
      }
}

}  // namespace heirloom
