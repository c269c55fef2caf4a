// Attention with its products in bf16 on AMX or AVX512-BF16 (AttnShape::bf16, the base in bf16) against the
// double-precision reference: within bf16's rounding, the same causal mask and normalised rows, zero gradient
// for cache rows past the sequence, and really another arithmetic than fp32 (else the test proves nothing).
// Skipped only on CPUs without AVX512-BF16, where bf16 is refused before it reaches attention.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/gemm_bf16.h"
#include "gradcheck.h"
#include "ops/attention.h"

namespace heirloom {
namespace {

using namespace gradcheck;

// ‖a − b‖ / ‖b‖ over the whole buffer: bf16 keeps 8 bits; these cases measure 0.003-0.0045 (fp32: ~1e-7).
double relative_error(const Vec& a, const Vec& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
  return std::sqrt(num / den);
}

void run_bf16_case(int B, int T, int H, int Hkv, int D, int pos0) {
  SCOPED_TRACE("B=" + std::to_string(B) + " T=" + std::to_string(T) + " H=" + std::to_string(H) + " Hkv=" +
               std::to_string(Hkv) + " D=" + std::to_string(D) + " pos0=" + std::to_string(pos0));
  const int HD = H * D, KD = Hkv * D, QKV = HD + 2 * KD, S = pos0 + T, n_ctx = S + 3;
  Rng rng(9 + T + D + pos0);
  Vec qkv = randn((size_t)B * T * QKV, rng, 1.5f), cache = randn((size_t)B * n_ctx * 2 * KD, rng, 1.5f);
  AttnShape s{B, T, H, Hkv, D, pos0, QKV, 2 * KD, (int64_t)n_ctx * 2 * KD};
  const float *q = qkv.data(), *k = cache.data(), *v = cache.data() + KD;
  if (pos0 == 0) s.ldkv = QKV, s.kv_bstride = (int64_t)T * QKV, k = q + HD, v = q + HD + KD;
  const size_t n_att = (size_t)B * H * T * S, n_out = (size_t)B * T * HD;
  const Vec dout = randn(n_out, rng);

  const size_t n_stats = (size_t)B * H * T * 2;
  Vec out_ref(n_out), att_ref(n_att), stats_ref(n_stats), out32(n_out), stats32(n_stats);
  attention_forward_ref(out_ref.data(), att_ref.data(), q, k, v, s, stats_ref.data());
  attention_forward(out32.data(), stats32.data(), q, k, v, s);
  AttnShape s16 = s;
  s16.bf16 = true;
  Vec out(n_out, kNaN), stats(n_stats, kNaN);
  attention_forward(out.data(), stats.data(), q, k, v, s16);
  EXPECT_NE(out, out32) << "the bf16 flag left the arithmetic in fp32";
  EXPECT_LT(relative_error(out, out_ref), 1e-2);
  EXPECT_LT(relative_error(stats, stats_ref), 1e-2);
  Vec forward_only(n_out, kNaN);
  attention_forward(forward_only.data(), nullptr, q, k, v, s16);
  EXPECT_EQ(forward_only, out) << "without row stats, the same products give the same output";

  // Backward from each forward's own row stats, as a training step runs: the backward makes the forward's
  // probabilities again, so its error is theirs and its own products'.
  auto grads = [&](const AttnShape& sh, bool ref, Vec& dqkv, Vec& dcache) {
    dqkv.assign(qkv.size(), 0.f);
    dcache.assign(cache.size(), 0.f);
    float* dk = pos0 == 0 ? dqkv.data() + HD : dcache.data();
    float* dv = pos0 == 0 ? dqkv.data() + HD + KD : dcache.data() + KD;
    if (ref) attention_backward_ref(dqkv.data(), dk, dv, dout.data(), att_ref.data(), q, k, v, sh);
    else attention_backward(dqkv.data(), dk, dv, dout.data(), sh.bf16 ? stats.data() : stats32.data(), q, k, v, sh);
  };
  Vec dqkv_ref, dcache_ref, dqkv32, dcache32, dqkv, dcache;
  grads(s, true, dqkv_ref, dcache_ref);
  grads(s, false, dqkv32, dcache32);
  grads(s16, false, dqkv, dcache);
  EXPECT_NE(dqkv, dqkv32) << "the bf16 flag left the backward in fp32";
  EXPECT_LT(relative_error(dqkv, dqkv_ref), 1e-2);
  if (pos0 > 0) {
    EXPECT_LT(relative_error(dcache, dcache_ref), 1e-2);
    for (int b = 0; b < B; ++b)
      for (int j = S; j < n_ctx; ++j)
        for (int i = 0; i < 2 * KD; ++i) ASSERT_EQ(dcache[((size_t)b * n_ctx + j) * 2 * KD + i], 0.f);
  }
  // The forward keeping its bf16 probabilities (training rows only): the same output, and a backward that reads
  // them instead of making them again. Its gradients use p rounded to bf16 as the forward's p·v did: not the
  // same bits as the backward above, within bf16's rounding of the reference. After a cache nothing is kept.
  Vec kept_out(n_out, kNaN), kept_stats(n_stats, kNaN);
  std::vector<uint16_t> probs(attention_kept_size(B, H, T), 0xFFFF);  // NaN where nothing was written
  attention_forward(kept_out.data(), kept_stats.data(), q, k, v, s16, probs.data());
  EXPECT_EQ(kept_out, out) << "keeping the probabilities changed the forward";
  Vec kept_dqkv(qkv.size(), 0.f), kept_dcache(cache.size(), 0.f);
  attention_backward(kept_dqkv.data(), pos0 == 0 ? kept_dqkv.data() + HD : kept_dcache.data(),
                     pos0 == 0 ? kept_dqkv.data() + HD + KD : kept_dcache.data() + KD, dout.data(), kept_stats.data(), q, k,
                     v, s16, false, nullptr, probs.data());
  // Written instead of added to (a training step's backward): the same gradients over buffers full of NaN.
  Vec written_dqkv(qkv.size(), kNaN), written_dcache(cache.size(), kNaN);
  attention_backward(written_dqkv.data(), pos0 == 0 ? written_dqkv.data() + HD : written_dcache.data(),
                     pos0 == 0 ? written_dqkv.data() + HD + KD : written_dcache.data() + KD, dout.data(),
                     kept_stats.data(), q, k, v, s16, true, nullptr, probs.data());
  if (pos0 == 0) {
    EXPECT_EQ(written_dqkv, kept_dqkv) << "writing the gradients changed them";
  }
  const bool untouched = std::all_of(probs.begin(), probs.end(), [](uint16_t x) { return x == 0xFFFF; });
  if (pos0 == 0) {
    EXPECT_FALSE(untouched) << "the forward kept no probabilities";
    EXPECT_NE(kept_dqkv, dqkv) << "the backward made the probabilities again";
    EXPECT_LT(relative_error(kept_dqkv, dqkv_ref), 1e-2);
    EXPECT_LT(relative_error(kept_dqkv, dqkv), 5e-3) << "the kept probabilities are not the forward's";
  } else {
    EXPECT_TRUE(untouched) << "probabilities kept for rows after a cache";
    EXPECT_EQ(kept_dqkv, dqkv);
    EXPECT_EQ(kept_dcache, dcache);
  }
  // The fp32 path is itself held to the reference here, so the tolerance above is bf16's alone.
  EXPECT_TRUE(all_close("fp32 dqkv vs ref", dqkv32, dqkv_ref, 1e-5, 1e-4));
}

TEST(OpAttention, Bf16ProductsAgreeWithReferenceWithinRounding) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  run_bf16_case(1, 256, 4, 4, 32, 0);  // moe-30m's head size, the Bet 10 protocol's 256 tokens
  run_bf16_case(1, 270, 4, 2, 24, 0);  // grouped heads, a head size off the tiles, a partial last block
  run_bf16_case(2, 40, 2, 1, 16, 230); // after a cache (prefill), slack cache rows
}

// Where bf16 products would not pay (kAmxKeys, kDotKeys, kAmxRows in attention.cpp), bf16 attention is bit
// for bit the fp32 one: a generated token after 300 cached ones, and fewer keys than the threshold (AMX: 256,
// so the 8x128 training batch stays in fp32; dot products: 128).
TEST(OpAttention, Bf16StaysInFp32WhereItWouldNotPay) {
  const int H = 2, D = 32, ld = 2 * H * D;
  const int below = bf16_amx_available() ? 128 : 127;
  for (const auto& [T, S] : {std::pair{1, 301}, std::pair{below, below}}) {
    Rng rng(3 + T);
    Vec q = randn((size_t)T * H * D, rng), cache = randn((size_t)S * ld, rng), out32(q.size()), out16(q.size());
    AttnShape s{1, T, H, H, D, S - T, H * D, ld, (int64_t)S * ld};
    attention_forward(out32.data(), nullptr, q.data(), cache.data(), cache.data() + H * D, s);
    s.bf16 = true;
    attention_forward(out16.data(), nullptr, q.data(), cache.data(), cache.data() + H * D, s);
    EXPECT_EQ(out16, out32) << "T=" << T << " S=" << S;
  }
}

}  // namespace
}  // namespace heirloom
