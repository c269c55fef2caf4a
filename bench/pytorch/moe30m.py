#!/usr/bin/python3
"""heirloom's `moe-30m` preset in plain PyTorch (written for 1.13, Debian's python3-torch), timed the way
`heirloom bench` times the engine, so the two can be compared side by side (bench/compare.sh).

The model is the llama.cpp "llama" architecture as heirloom implements it (src/model/forward.cpp,
src/model/tensors.cpp): vocab 8192, C=256, 8 layers, 8 heads of 32 (8 KV heads), RMSNorm (eps 1e-5,
x * rsqrt(mean(x^2) + eps) * g), RoPE on adjacent pairs (2i, 2i+1) with theta = p * 10000^(-2i/D), causal
attention scaled by 1/sqrt(D), a Mixtral-style MoE of 8 SwiGLU experts of hidden 512 (softmax over all 8
router logits, keep the top 2, renormalise them to sum to 1), an untied output head, no biases anywhere.
Initialisation as heirloom's init_model: N(0, 0.02), the residual projections (attn_output, ffn_down)
scaled by 1/sqrt(2L), gains 1. 31,478,016 parameters (checked at start-up).

Implementation choices a competent PyTorch user would make (none changes the FLOPs):
- q, k, v are one fused [768, 256] projection (heirloom also runs q|k|v as one GEMM).
- experts are separate [F, C] parameters (one per expert and matrix, like HF's Mixtral), so autograd never
  materialises a full [E, F, C] gradient for a slice; tokens are grouped by expert once per layer (a stable
  sort of the N*K routing slots, index_select to gather, one GEMM chain per expert, index_add_ to scatter),
  no per-token loop.
- attention is the fastest variant measured on 1.13's CPU build (see --attention; the default "baddbmm"
  folds the 1/sqrt(D) scale and the additive causal mask into the q.k^T GEMM, then softmax, then bmm).
  1.13 has no public scaled_dot_product_attention; its private F._scaled_dot_product_attention is offered
  as --attention sdpa.
- training: mean cross-entropy + 0.01 x the switch load-balancing loss E * sum_e f_e * P_e (as heirloom's
  bench passes aux 0.01 to full and norm-only steps; 0 for LoRA), global grad-norm clip 1.0 (full and
  norm-only; heirloom's BaseTrainer default), AdamW(lr 1e-5, betas 0.9/0.95, eps 1e-8, weight decay 0).
- generation: a preallocated KV cache, prompt in one forward, then one token per forward, head on the last
  row only, greedy argmax; 128 forwards after the 16-token prompt as heirloom's generate() does. A one-token
  MoE calls its two chosen experts directly instead of grouping (same FLOPs, ~10% faster decoding).
- AdamW's default single-tensor implementation: foreach=True measured 30-60 ms slower per full step here.

Prints one JSON object on stdout; diagnostics go to stderr. Run with OMP_WAIT_POLICY=PASSIVE set.
"""
import argparse
import ctypes
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CFG = dict(n_vocab=8192, n_embd=256, n_layer=8, n_head=8, n_head_kv=8, n_ff=512, n_expert=8, n_expert_used=2,
           n_ctx=512, rope_base=10000.0, norm_eps=1e-5)
EXPECTED_PARAMS = 31_478_016
EXPECTED_ACTIVE = 10_506_496


def rmsnorm(x, g, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def rope(x, cos, sin):
    """x [B, T, h, D]; cos/sin [T, 1, D/2]; rotates the adjacent pairs (2i, 2i+1)."""
    xp = x.unflatten(-1, (-1, 2))
    x0, x1 = xp[..., 0], xp[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Lora(nn.Module):
    def __init__(self, n_in, n_out, rank, scale, gen):
        super().__init__()
        self.a = nn.Parameter(torch.randn(rank, n_in, generator=gen) * 0.01)  # A random, B zero: as LoRA starts
        self.b = nn.Parameter(torch.zeros(n_out, rank))
        self.scale = scale

    def forward(self, x):
        return F.linear(F.linear(x, self.a), self.b) * self.scale


class Block(nn.Module):
    def __init__(self, c, gen):
        super().__init__()
        C, D, H, Hkv, F_, E = c["n_embd"], c["n_embd"] // c["n_head"], c["n_head"], c["n_head_kv"], c["n_ff"], c["n_expert"]
        resid = 0.02 / math.sqrt(2.0 * c["n_layer"])

        def normal(*shape, std=0.02):
            return nn.Parameter(torch.randn(*shape, generator=gen) * std)

        self.attn_norm = nn.Parameter(torch.ones(C))
        self.wqkv = normal((H + 2 * Hkv) * D, C)  # attn_q | attn_k | attn_v, as heirloom stores and runs them
        self.wo = normal(C, H * D, std=resid)
        self.ffn_norm = nn.Parameter(torch.ones(C))
        self.router = normal(E, C)
        self.gate = nn.ParameterList([normal(F_, C) for _ in range(E)])
        self.up = nn.ParameterList([normal(F_, C) for _ in range(E)])
        self.down = nn.ParameterList([normal(C, F_, std=resid) for _ in range(E)])
        self.lora = None  # nn.ModuleDict(q, k, v, o) when LoRA is attached


class MoE30m(nn.Module):
    def __init__(self, c=CFG, seed=1, attention="baddbmm"):
        super().__init__()
        self.c = c
        gen = torch.Generator().manual_seed(seed)
        C, V, D = c["n_embd"], c["n_vocab"], c["n_embd"] // c["n_head"]
        self.H, self.Hkv, self.D = c["n_head"], c["n_head_kv"], D
        self.E, self.K, self.eps = c["n_expert"], c["n_expert_used"], c["norm_eps"]
        self.attention = attention
        self.decode_fast_path = True
        self.token_embd = nn.Parameter(torch.randn(V, C, generator=gen) * 0.02)
        self.layers = nn.ModuleList([Block(c, gen) for _ in range(c["n_layer"])])
        self.output_norm = nn.Parameter(torch.ones(C))
        self.output = nn.Parameter(torch.randn(V, C, generator=gen) * 0.02)
        # RoPE table, computed in double as heirloom's make_rope_table
        pos = torch.arange(c["n_ctx"], dtype=torch.float64)[:, None]
        inv = c["rope_base"] ** (-2.0 * torch.arange(D // 2, dtype=torch.float64) / D)
        theta = pos * inv
        self.register_buffer("cos", theta.cos().float()[:, None, :], persistent=False)  # [n_ctx, 1, D/2]
        self.register_buffer("sin", theta.sin().float()[:, None, :], persistent=False)
        mask = torch.full((c["n_ctx"], c["n_ctx"]), float("-inf")).triu(1)
        self.register_buffer("mask", mask, persistent=False)

    # ------------------------------------------------------------------ parts
    def add_lora(self, rank=8, scale=2.0, seed=3):
        gen = torch.Generator().manual_seed(seed)
        C, HD, KD = self.c["n_embd"], self.H * self.D, self.Hkv * self.D
        for blk in self.layers:
            blk.lora = nn.ModuleDict(dict(q=Lora(C, HD, rank, scale, gen), k=Lora(C, KD, rank, scale, gen),
                                          v=Lora(C, KD, rank, scale, gen), o=Lora(HD, C, rank, scale, gen)))

    def attend(self, q, k, v, pos0):
        """q [B, H, T, D]; k, v [B, Hkv, S, D] with S = pos0 + T. Returns [B, H, T, D]."""
        B, H, T, D = q.shape
        S = k.shape[2]
        scale = 1.0 / math.sqrt(D)
        if self.Hkv != H:  # grouped-query attention (not used by moe-30m: 8 KV heads)
            k = k.repeat_interleave(H // self.Hkv, dim=1)
            v = v.repeat_interleave(H // self.Hkv, dim=1)
        need_mask = T > 1
        mask = self.mask[pos0:pos0 + T, :S] if need_mask else None
        if self.attention == "sdpa":
            out = F._scaled_dot_product_attention(q, k, v, attn_mask=mask, need_attn_weights=False)
            return out[0] if isinstance(out, tuple) else out
        if self.attention == "matmul":
            att = (q @ k.transpose(-1, -2)) * scale
            if need_mask:
                att = att + mask
            return att.softmax(-1) @ v
        # baddbmm: scale and mask folded into the GEMM
        q3, k3, v3 = q.reshape(B * H, T, D), k.reshape(B * H, S, D), v.reshape(B * H, S, D)
        if need_mask:
            att = torch.baddbmm(mask.expand(B * H, T, S), q3, k3.transpose(1, 2), beta=1.0, alpha=scale)
        else:
            att = torch.bmm(q3, k3.transpose(1, 2)).mul_(scale) if not torch.is_grad_enabled() \
                else torch.bmm(q3, k3.transpose(1, 2)) * scale
        return torch.bmm(att.softmax(-1), v3).view(B, H, T, D)

    def moe(self, blk, x):
        """x [N, C] -> (out [N, C], load-balancing loss)."""
        N = x.shape[0]
        E, K = self.E, self.K
        probs = F.linear(x, blk.router).softmax(-1)  # [N, E]
        topv, topi = probs.topk(K, dim=-1)  # [N, K]
        w = topv / topv.sum(-1, keepdim=True)  # softmax over the kept logits
        if N == 1 and self.decode_fast_path and not torch.is_grad_enabled():  # one token: no grouping needed
            out = None
            for wk, e in zip(w[0].tolist(), topi[0].tolist()):
                y = F.linear(F.silu(F.linear(x, blk.gate[e])) * F.linear(x, blk.up[e]), blk.down[e]) * wk
                out = y if out is None else out + y
            return out, None
        flat = topi.reshape(-1)
        _, order = torch.sort(flat, stable=True)  # slots grouped by expert, rows ascending inside
        counts_t = torch.bincount(flat, minlength=E)
        counts = counts_t.tolist()
        rows = torch.div(order, K, rounding_mode="floor")
        xg = x.index_select(0, rows)
        ys = []
        for e, xe in enumerate(xg.split(counts)):
            if counts[e] == 0:
                continue
            h = F.silu(F.linear(xe, blk.gate[e])) * F.linear(xe, blk.up[e])
            ys.append(F.linear(h, blk.down[e]))
        y = torch.cat(ys) if len(ys) > 1 else ys[0]
        y = y * w.reshape(-1).index_select(0, order).unsqueeze(1)
        out = torch.zeros_like(x).index_add_(0, rows, y)
        aux = None
        if torch.is_grad_enabled():
            f = counts_t.to(x.dtype) / (N * K)
            aux = E * (f * probs.mean(0)).sum()
        return out, aux

    # ------------------------------------------------------------------ forward
    def forward(self, tokens, cache=None, pos0=0, last_only=False):
        """tokens [B, T] -> (logits [B, T or 1, V], mean aux loss or None)."""
        B, T = tokens.shape
        H, Hkv, D = self.H, self.Hkv, self.D
        HD, KD = H * D, Hkv * D
        x = F.embedding(tokens, self.token_embd)  # [B, T, C]
        cos, sin = self.cos[pos0:pos0 + T], self.sin[pos0:pos0 + T]
        aux_total = 0.0
        for li, blk in enumerate(self.layers):
            h = rmsnorm(x, blk.attn_norm, self.eps)
            qkv = F.linear(h, blk.wqkv)
            lo = blk.lora
            if lo is not None:
                qkv = qkv + torch.cat((lo["q"](h), lo["k"](h), lo["v"](h)), dim=-1)
            q, k, v = qkv.split((HD, KD, KD), dim=-1)
            q = rope(q.view(B, T, H, D), cos, sin).transpose(1, 2)
            k = rope(k.view(B, T, Hkv, D), cos, sin).transpose(1, 2)
            v = v.view(B, T, Hkv, D).transpose(1, 2)
            if cache is not None:
                ck, cv = cache[li]
                ck[:, :, pos0:pos0 + T] = k
                cv[:, :, pos0:pos0 + T] = v
                k, v = ck[:, :, :pos0 + T], cv[:, :, :pos0 + T]
            y = self.attend(q, k, v, pos0).transpose(1, 2).reshape(B, T, HD)
            a = F.linear(y, blk.wo)
            if lo is not None:
                a = a + lo["o"](y)
            x = x + a
            h = rmsnorm(x, blk.ffn_norm, self.eps)
            m, aux = self.moe(blk, h.reshape(B * T, -1))
            if aux is not None:
                aux_total = aux_total + aux
            x = x + m.view(B, T, -1)
        if last_only:
            x = x[:, -1:]
        x = rmsnorm(x, self.output_norm, self.eps)
        logits = F.linear(x, self.output)
        return logits, (aux_total / len(self.layers) if torch.is_grad_enabled() else None)

    def new_cache(self, B=1):
        n = self.c["n_ctx"]
        return [(torch.empty(B, self.Hkv, n, self.D), torch.empty(B, self.Hkv, n, self.D)) for _ in self.layers]


def count(model, active=False):
    n = sum(p.numel() for name, p in model.named_parameters() if ".lora." not in name)
    if not active:
        return n
    c = model.c
    per_expert = 3 * c["n_embd"] * c["n_ff"]
    return n - model.token_embd.numel() - c["n_layer"] * (c["n_expert"] - c["n_expert_used"]) * per_expert


# ---------------------------------------------------------------------- timing
def median_ms(repeats, f):
    f()  # warm-up
    t = []
    for _ in range(repeats):
        a = time.perf_counter()
        f()
        t.append((time.perf_counter() - a) * 1e3)
    t.sort()
    return t[len(t) // 2], t


def set_regime(model, regime):
    """regime: all | norm | lora. Returns the trainable parameters."""
    for name, p in model.named_parameters():
        if regime == "all":
            p.requires_grad_(".lora." not in name)
        elif regime == "norm":
            p.requires_grad_(name.endswith("_norm"))  # attn_norm, ffn_norm of every layer, output_norm
        elif regime == "lora":
            p.requires_grad_(".lora." in name)
        else:
            raise ValueError(regime)
    return [p for p in model.parameters() if p.requires_grad]


def make_step(model, params, tokens, targets, aux_coef, clip, foreach):
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0, foreach=foreach)
    V = model.c["n_vocab"]

    def step():
        opt.zero_grad(set_to_none=True)
        logits, aux = model(tokens)
        loss = F.cross_entropy(logits.view(-1, V), targets.view(-1))
        if aux_coef:
            loss = loss + aux_coef * aux
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        return loss

    return step, opt


def generate(model, prompt, n_new):
    """Greedy KV-cache generation at batch 1, as heirloom's generate(): n_new sampled tokens, each fed back."""
    with torch.inference_mode():
        cache = model.new_cache(1)
        logits, _ = model(prompt.view(1, -1), cache=cache, pos0=0, last_only=True)
        pos, out = prompt.numel(), []
        for _ in range(n_new):
            tok = int(logits[0, -1].argmax())
            out.append(tok)
            if pos >= model.c["n_ctx"]:
                break
            logits, _ = model(torch.tensor([[tok]]), cache=cache, pos0=pos, last_only=True)
            pos += 1
        return out


# ---------------------------------------------------------------------- self-check
def self_check():
    """Small, quick consistency checks: KV-cache decoding matches the full forward, the attention variants
    agree, the grouped MoE matches a per-token reference, RoPE matches the formula."""
    torch.manual_seed(0)
    model = MoE30m()
    ok = True
    with torch.inference_mode():
        toks = torch.randint(0, CFG["n_vocab"], (1, 24))
        full = {}
        for att in ("baddbmm", "matmul", "sdpa"):
            model.attention = att
            full[att], _ = model(toks)
        for att in ("matmul", "sdpa"):
            d = (full[att] - full["baddbmm"]).abs().max().item()
            print(f"check attention {att} vs baddbmm: max |diff| {d:.2e}", file=sys.stderr)
            ok &= d < 1e-4
        model.attention = "baddbmm"
        cache = model.new_cache(1)
        a, _ = model(toks[:, :16], cache=cache, pos0=0, last_only=True)
        rows = [a[0, -1]]
        for p in range(16, 24):
            b, _ = model(toks[:, p:p + 1], cache=cache, pos0=p, last_only=True)
            rows.append(b[0, -1])
        d = (torch.stack(rows[:-1]) - full["baddbmm"][0, 15:23]).abs().max().item()
        print(f"check KV-cache decode vs full forward: max |diff| {d:.2e}", file=sys.stderr)
        ok &= d < 1e-4
        # MoE against a per-token, per-expert reference
        blk = model.layers[0]
        x = torch.randn(37, CFG["n_embd"])
        got, _ = model.moe(blk, x)
        ref = torch.zeros_like(x)
        for n in range(x.shape[0]):
            p = F.linear(x[n], blk.router).softmax(-1)
            v, i = p.topk(2)
            for wk, e in zip((v / v.sum()).tolist(), i.tolist()):
                hh = F.silu(blk.gate[e] @ x[n]) * (blk.up[e] @ x[n])
                ref[n] += wk * (blk.down[e] @ hh)
        d = (got - ref).abs().max().item()
        print(f"check grouped MoE vs per-token reference: max |diff| {d:.2e}", file=sys.stderr)
        ok &= d < 1e-5
        # RoPE: pair (2i, 2i+1) at position p rotated by p * base^(-2i/D)
        xr = torch.randn(1, 5, 1, 32)
        r = rope(xr, model.cos[:5], model.sin[:5])
        p, i = 3, 4
        th = p * 10000.0 ** (-2.0 * i / 32)
        e0 = xr[0, p, 0, 2 * i] * math.cos(th) - xr[0, p, 0, 2 * i + 1] * math.sin(th)
        e1 = xr[0, p, 0, 2 * i] * math.sin(th) + xr[0, p, 0, 2 * i + 1] * math.cos(th)
        d = max(abs(r[0, p, 0, 2 * i] - e0).item(), abs(r[0, p, 0, 2 * i + 1] - e1).item())
        print(f"check RoPE adjacent pairs: max |diff| {d:.2e}", file=sys.stderr)
        ok &= d < 1e-5
    # LoRA starts as the identity (B = 0) and only LoRA parameters get gradients
    model.add_lora(8)
    params = set_regime(model, "lora")
    logits, _ = model(toks)
    logits.sum().backward()
    ok &= all(p.grad is not None for p in params) and model.token_embd.grad is None
    print("self-check", "passed" if ok else "FAILED", file=sys.stderr)
    return ok


# ---------------------------------------------------------------------- main
def blas_info():
    for name in ("libopenblas.so.0", "libopenblas.so"):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p  # the kernel in use (OPENBLAS_CORETYPE or chosen)
            config = f"{lib.openblas_get_config().decode()}, kernel {lib.openblas_get_corename().decode()}"
            return config, int(lib.openblas_get_num_threads())
        except (OSError, AttributeError):
            continue
    return "unknown", 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--forward-len", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--attention", choices=("baddbmm", "matmul", "sdpa"), default="baddbmm")
    ap.add_argument("--foreach", choices=("auto", "on", "off"), default="auto",
                    help="AdamW foreach implementation (auto = single-tensor on CPU in 1.13; measured faster here)")
    ap.add_argument("--only", default="full,norm,lora,forward,generate", help="comma-separated subset of tasks")
    ap.add_argument("--check", action="store_true", help="run the consistency self-check and exit")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print("warning: OMP_WAIT_POLICY=PASSIVE is not set; OpenMP threads will spin", file=sys.stderr)
    if a.check:
        sys.exit(0 if self_check() else 1)

    model = MoE30m(attention=a.attention)
    n_params, n_active = count(model), count(model, active=True)
    if n_params != EXPECTED_PARAMS or n_active != EXPECTED_ACTIVE:
        sys.exit(f"parameter count {n_params} / active {n_active} differs from heirloom's "
                 f"{EXPECTED_PARAMS} / {EXPECTED_ACTIVE}")
    foreach = {"auto": None, "on": True, "off": False}[a.foreach]
    only = set(a.only.split(","))
    V = CFG["n_vocab"]
    g = torch.Generator().manual_seed(7)
    stream = torch.randint(0, V, (1 << 16,), generator=g)
    starts = torch.randint(0, stream.numel() - a.seq - 1, (a.batch,), generator=g).tolist()
    win = torch.stack([stream[s:s + a.seq + 1] for s in starts])
    tokens, targets = win[:, :-1].contiguous(), win[:, 1:].contiguous()

    res = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""), "attention": a.attention,
           "adamw_foreach": a.foreach, "params": n_params, "active_params": n_active,
           "batch": a.batch, "seq": a.seq, "repeats": a.repeats}
    res["blas"], res["blas_threads"] = blas_info()
    try:
        res["debian_package"] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"],
                                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        res["debian_package"] = ""
    train, samples = {}, {}
    regimes = (("full", "all", 0.01, 1.0), ("norm", "norm", 0.01, 1.0), ("lora", "lora", 0.0, 0.0))
    for key, regime, aux_coef, clip in regimes:
        if key not in only:
            continue
        if key == "lora":
            model.add_lora(a.lora_rank)  # attached only for this regime: full and norm-only run without it
        params = set_regime(model, regime)
        step, opt = make_step(model, params, tokens, targets, aux_coef, clip, foreach)
        train[key], samples[key] = median_ms(a.repeats, step)
        if key == "lora":  # heirloom's bench times LoRA as forward + backward only: report the update's cost
            res["lora_adamw_ms"], _ = median_ms(a.repeats, opt.step)
        del opt, step
        for blk in model.layers:
            blk.lora = None
        print(f"train {key}: {train[key]:.1f} ms", file=sys.stderr)
    for p in model.parameters():
        p.requires_grad_(False)
        p.grad = None
    res["train_ms"] = train
    if "forward" in only:
        T = min(a.forward_len, CFG["n_ctx"])
        t1 = stream[:T].view(1, T)

        def fwd():
            with torch.inference_mode():
                return model(t1)

        res["forward_len"] = T
        res["forward_ms"], samples["forward"] = median_ms(a.repeats, fwd)
        print(f"forward 1x{T}: {res['forward_ms']:.1f} ms", file=sys.stderr)
    if "generate" in only:
        n = min(a.gen_tokens, CFG["n_ctx"] - 17)
        prompt = stream[:16]
        ms, samples["generate"] = median_ms(a.repeats, lambda: generate(model, prompt, n))
        res["generate_tokens"] = n
        res["generate_ms"] = ms
        res["generate_tokens_per_s"] = n / (ms / 1e3)
        print(f"generate {n}: {ms:.1f} ms, {res['generate_tokens_per_s']:.0f} tokens/s", file=sys.stderr)
    res["samples_ms"] = samples
    print(json.dumps(res))


if __name__ == "__main__":
    main()
