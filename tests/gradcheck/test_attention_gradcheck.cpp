// Attention: optimised vs reference on odd shapes (training layout, a KV cache, blocks of query rows), gradients
// vs double-precision finite differences, "backward accumulates", and a single decoded token against a direct softmax.
// The harness and its tolerance reasoning are in gradcheck.h.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"
#include "gradcheck.h"
#include "ops/attention.h"
#include "ops/rope.h"

namespace heirloom {
namespace {

using namespace gradcheck;

// ---------------------------------------------------------------------------------------------
// attention

struct AttnCase {
  int B, T, H, Hkv, D, pos0;
};

// pos0 = 0: q, k, v interleaved in one [B·T, (H + 2Hkv)·D] buffer, as the model's fused qkv projection writes
// them (dq, dk, dv likewise in one buffer). pos0 > 0: q from that buffer, k and v from a cache
// [B, n_ctx, 2·Hkv·D] (k | v per row) holding S = pos0 + T rows per sequence plus unused slack rows.
void run_attention_case(const AttnCase& c) {
  SCOPED_TRACE("B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " H=" + std::to_string(c.H) +
               " Hkv=" + std::to_string(c.Hkv) + " D=" + std::to_string(c.D) + " pos0=" + std::to_string(c.pos0));
  const int B = c.B, T = c.T, H = c.H, Hkv = c.Hkv, D = c.D, HD = H * D, QKV = (H + 2 * Hkv) * D;
  AttnShape s{};
  s.B = B, s.T = T, s.H = H, s.Hkv = Hkv, s.D = D, s.pos0 = c.pos0;
  const int S = s.S();
  Rng rng(41 + 7 * c.pos0 + H + Hkv);
  Vec qkv = randn((size_t)B * T * QKV, rng);
  Vec cache;
  const float* k;
  const float* v;
  s.ldq = QKV;
  int n_ctx = 0;
  if (c.pos0 == 0) {
    s.ldkv = QKV;
    s.kv_bstride = (int64_t)T * QKV;
  } else {
    n_ctx = S + 2;
    s.ldkv = 2 * Hkv * D;
    s.kv_bstride = (int64_t)n_ctx * s.ldkv;
    cache = randn((size_t)B * n_ctx * s.ldkv, rng);
  }
  auto kv_ptrs = [&](float* qkv_, float* cache_, float** k_, float** v_) {
    if (c.pos0 == 0) *k_ = qkv_ + HD, *v_ = qkv_ + HD + Hkv * D;
    else *k_ = cache_, *v_ = cache_ + Hkv * D;
  };
  {
    float *kk, *vv;
    kv_ptrs(qkv.data(), cache.data(), &kk, &vv);
    k = kk, v = vv;
  }
  const float* q = qkv.data();
  // A larger score scale than unit normals give, so the softmax is far from uniform.
  for (auto& e : qkv) e *= 1.5f;
  const size_t n_att = (size_t)B * H * T * S, n_out = (size_t)B * T * HD;
  Vec r = randn(n_out, rng);

  const size_t n_stats = (size_t)B * H * T * 2;
  Vec out(n_out, kNaN), stats(n_stats, kNaN), out_ref(n_out, kNaN), att(n_att, kNaN), stats_ref(n_stats, kNaN);
  attention_forward(out.data(), stats.data(), q, k, v, s);
  attention_forward_ref(out_ref.data(), att.data(), q, k, v, s, stats_ref.data());
  EXPECT_TRUE(all_close("attention out vs ref", out, out_ref, 1e-6, 1e-5));
  EXPECT_TRUE(all_close("attention row stats vs ref", stats, stats_ref, 1e-6, 1e-5));
  if (H == Hkv && c.pos0 == 0) {  // q and k rotated inside, head by head: as rope_forward over them first
    const RopeTable tab = make_rope_table(S + 4, D, 10000.f);
    Vec before = qkv, after = qkv, out_apart(n_out, kNaN), stats_apart(n_stats, kNaN);
    Vec out_inside(n_out, kNaN), stats_inside(n_stats, kNaN);
    rope_forward(after.data(), QKV, tab, B, T, H + Hkv, D, 0);
    attention_forward(out_apart.data(), stats_apart.data(), after.data(), after.data() + HD, after.data() + 2 * HD, s);
    attention_forward_rotating(out_inside.data(), stats_inside.data(), before.data(), before.data() + HD,
                               before.data() + 2 * HD, s, tab);
    EXPECT_TRUE(identical("attention rotating: q, k rotated in place", before, after));
    EXPECT_TRUE(identical("attention rotating: out", out_inside, out_apart));
    EXPECT_TRUE(identical("attention rotating: row stats", stats_inside, stats_apart));
  }
  {  // without row stats (forward only): the same output bit for bit
    Vec out_only(n_out, kNaN);
    attention_forward(out_only.data(), nullptr, q, k, v, s);
    EXPECT_EQ(out_only, out);
  }
  // Backward into buffers laid out like the inputs.
  auto zeros_like_inputs = [&](Vec& dqkv, Vec& dcache) {
    dqkv.assign(qkv.size(), 0.f);
    dcache.assign(cache.size(), 0.f);
  };
  Vec dqkv, dcache, dqkv_ref, dcache_ref;
  zeros_like_inputs(dqkv, dcache);
  zeros_like_inputs(dqkv_ref, dcache_ref);
  auto backward = [&](Vec& dqkv_, Vec& dcache_, bool ref) {
    float *dk, *dv;
    kv_ptrs(dqkv_.data(), dcache_.data(), &dk, &dv);
    if (ref) attention_backward_ref(dqkv_.data(), dk, dv, r.data(), att.data(), q, k, v, s);
    else attention_backward(dqkv_.data(), dk, dv, r.data(), stats.data(), q, k, v, s);
  };
  backward(dqkv, dcache, false);
  backward(dqkv_ref, dcache_ref, true);
  {  // with the rotation back inside: the same as rope_backward over dq's and dk's rows afterwards
    const RopeTable tab = make_rope_table(S + 4, D, 10000.f);
    Vec rotated = dqkv, rotated_cache = dcache;
    rope_backward(rotated.data(), QKV, tab, B, T, H, D, c.pos0);
    if (c.pos0 == 0) rope_backward(rotated.data() + HD, QKV, tab, B, T, Hkv, D, 0);
    else
      for (int b = 0; b < B; ++b) rope_backward(rotated_cache.data() + (size_t)b * s.kv_bstride, s.ldkv, tab, 1, S, Hkv, D, 0);
    Vec inside(qkv.size(), 0.f), inside_cache(cache.size(), 0.f);
    float *dk, *dv;
    kv_ptrs(inside.data(), inside_cache.data(), &dk, &dv);
    attention_backward(inside.data(), dk, dv, r.data(), stats.data(), q, k, v, s, false, &tab);
    EXPECT_TRUE(identical("attention dqkv rotated back inside", inside, rotated));
    EXPECT_TRUE(identical("attention dcache rotated back inside", inside_cache, rotated_cache));
  }
  if (c.pos0 == 0) {  // written (as the model's backward asks): every value over NaN, the same as added to zeros
    Vec written(qkv.size(), kNaN);
    float *dk, *dv;
    kv_ptrs(written.data(), nullptr, &dk, &dv);
    attention_backward(written.data(), dk, dv, r.data(), stats.data(), q, k, v, s, true);
    EXPECT_TRUE(identical("attention dqkv written over NaN", written, dqkv));
  }
  EXPECT_TRUE(all_close("attention dqkv vs ref", dqkv, dqkv_ref, 1e-6, 1e-5));
  EXPECT_TRUE(all_close("attention dcache vs ref", dcache, dcache_ref, 1e-6, 1e-5));

  Vec o_tmp(n_out), a_tmp(n_att);
  auto loss = [&] {
    attention_forward_ref(o_tmp.data(), a_tmp.data(), q, k, v, s);
    return dot_loss(o_tmp.data(), r.data(), n_out);
  };
  // Every element of every buffer: unused columns and slack cache rows must get exactly zero gradient.
  const auto num_qkv = numerical_grad(qkv.data(), qkv.size(), loss);
  EXPECT_TRUE(expect_grad("attention d(qkv buffer)", num_qkv, dqkv));
  EXPECT_TRUE(expect_grad("attention d(qkv buffer) (ref)", num_qkv, dqkv_ref));
  if (c.pos0 > 0) {
    const auto num_cache = numerical_grad(cache.data(), cache.size(), loss);
    EXPECT_TRUE(expect_grad("attention d(kv cache)", num_cache, dcache));
    EXPECT_TRUE(expect_grad("attention d(kv cache) (ref)", num_cache, dcache_ref));
    for (int b = 0; b < B; ++b)
      for (int j = S; j < n_ctx; ++j)
        for (int i = 0; i < s.ldkv; ++i) ASSERT_EQ(dcache[((size_t)b * n_ctx + j) * s.ldkv + i], 0.f);
  }
  std::vector<Vec*> grads{&dqkv};
  if (c.pos0 > 0) grads.push_back(&dcache);
  expect_accumulates("attention", grads, [&] { backward(dqkv, dcache, false); });
}

TEST(OpAttention, GqaTrainingLayoutGradCheck) { run_attention_case({2, 5, 4, 2, 8, 0}); }
TEST(OpAttention, MhaTrainingLayoutGradCheck) { run_attention_case({2, 5, 3, 3, 6, 0}); }
TEST(OpAttention, GqaKvCacheGradCheck) { run_attention_case({2, 5, 4, 2, 8, 3}); }
TEST(OpAttention, MhaKvCacheGradCheck) { run_attention_case({1, 3, 2, 2, 6, 4}); }
// Several blocks of query rows (32 each): each block uses only the keys up to its last row.
TEST(OpAttention, BlocksOfQueryRowsGradCheck) { run_attention_case({1, 100, 2, 1, 4, 0}); }
TEST(OpAttention, BlocksOfQueryRowsAfterACacheGradCheck) { run_attention_case({1, 70, 2, 1, 4, 9}); }

// A row that is one token at position pos0 (generation): its output is the softmax-weighted mean of the
// cached values — compare with a direct computation.
TEST(OpAttention, SingleTokenDecodeMatchesDirectSoftmax) {
  const int H = 4, Hkv = 2, D = 8, pos0 = 6, S = pos0 + 1, ldkv = 2 * Hkv * D;
  AttnShape s{};
  s.B = 1, s.T = 1, s.H = H, s.Hkv = Hkv, s.D = D, s.pos0 = pos0, s.ldq = H * D, s.ldkv = ldkv, s.kv_bstride = (int64_t)S * ldkv;
  Rng rng(47);
  Vec q = randn(H * D, rng), cache = randn((size_t)S * ldkv, rng), out(H * D), stats(2 * H);
  attention_forward(out.data(), stats.data(), q.data(), cache.data(), cache.data() + Hkv * D, s);
  for (int h = 0; h < H; ++h) {
    const int g = h / (H / Hkv);
    std::vector<double> sc(S);
    double mx = -1e300, sum = 0;
    for (int j = 0; j < S; ++j) {
      double d = 0;
      for (int i = 0; i < D; ++i) d += (double)q[h * D + i] * cache[j * ldkv + g * D + i];
      sc[j] = d / std::sqrt((double)D);
      mx = std::max(mx, sc[j]);
    }
    for (auto& e : sc) sum += (e = std::exp(e - mx));
    EXPECT_NEAR(stats[2 * h], mx, 1e-5);
    EXPECT_NEAR(stats[2 * h + 1], 1 / sum, 1e-6);
    for (int i = 0; i < D; ++i) {
      double o = 0;
      for (int j = 0; j < S; ++j) o += sc[j] / sum * cache[j * ldkv + Hkv * D + g * D + i];
      EXPECT_NEAR(out[h * D + i], o, 1e-5);
    }
  }
}

}  // namespace
}  // namespace heirloom
