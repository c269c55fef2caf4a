#!/usr/bin/env bash
# Side-by-side speed of heirloom and PyTorch 1.13 (Debian's python3-torch) on the same moe-30m model, in one
# run: `build/heirloom bench --json`, then bench/pytorch/moe30m.py, then one markdown table.
#
#   bench/compare.sh [--threads N] [--repeats N] [--keep DIR] [--no-wait]
#
# python3-torch is a benchmark-only dependency (not part of scripts/setup): it is installed here with apt-get
# when Debian's /usr/bin/python3 cannot import torch (sudo only when not root). heirloom is built (Release)
# when build/heirloom is missing; an existing binary is used as it is, with a warning when it is older than
# the sources. Before each timed part the script waits (sleep 20, up to QUIET_MAX_WAIT=600 s) until the
# 1-minute load average is below QUIET_LOAD=0.7; it measures the CPU time other processes used while the part
# ran and re-measures the part (up to ATTEMPTS=3 in all) when that exceeds FOREIGN_MAX=0.05 of the machine's
# CPU time, keeping the quietest attempt; the table says the load and the foreign CPU time of what it shows.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

THREADS=2 REPEATS=5 KEEP="" WAIT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --repeats) REPEATS="$2"; shift 2 ;;
    --keep) KEEP="$2"; shift 2 ;;
    --no-wait) WAIT=0; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument '$1' (expected --threads N, --repeats N, --keep DIR or --no-wait)" >&2; exit 2 ;;
  esac
done
QUIET_LOAD="${QUIET_LOAD:-0.7}"
QUIET_MAX_WAIT="${QUIET_MAX_WAIT:-600}"
FOREIGN_MAX="${FOREIGN_MAX:-0.05}"  # re-measure a part when others used more than this share of all cores
ATTEMPTS="${ATTEMPTS:-3}"
PY=/usr/bin/python3  # Debian's: a pyenv python3 earlier on PATH does not see Debian's packages
HEIRLOOM=build/heirloom

log() { echo "compare: $*" >&2; }

# --- dependencies ---------------------------------------------------------------------------------------
if ! "$PY" -c 'import torch' 2>/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  log "installing python3-torch (benchmark-only dependency)"
  $SUDO apt-get update -q >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-torch >&2
fi
if [ ! -x "$HEIRLOOM" ]; then
  log "building heirloom (Release)"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >&2
  cmake --build build -j2 >&2
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' build/CMakeCache.txt 2>/dev/null || true)
[ "$build_type" = "Release" ] || log "warning: build/ is configured as '${build_type:-unknown}', not Release"
if [ -n "$(find src include apps -newer "$HEIRLOOM" -type f 2>/dev/null | head -1)" ]; then
  log "warning: $HEIRLOOM is older than some sources; rebuild for current numbers (cmake --build build -j2)"
fi

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# --- quiet-machine guard --------------------------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }
is_quiet() { "$PY" -c "import sys; sys.exit(0 if float('$(load1)') < float('$QUIET_LOAD') else 1)"; }
wait_quiet() {  # $1 = part name
  local waited=0
  if [ "$WAIT" = 1 ]; then
    until is_quiet; do
      if [ "$waited" -ge "$QUIET_MAX_WAIT" ]; then
        log "warning: load average still $(load1) after ${waited}s; timing $1 anyway"
        break
      fi
      log "load average $(load1) >= $QUIET_LOAD; waiting before $1 (${waited}s so far)"
      sleep 20
      waited=$((waited + 20))
    done
  fi
  log "timing $1 at load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
busy_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
children_cpu() {  # $1 = output of bash `times` (run in this shell, not a subshell): children's CPU seconds
  sed -n 2p "$1" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } print s }'
}
measure() {  # $1 = part name, $2 = attempt, rest = command; writes $OUT/$1.$2.{json,load,foreign}
  local name="$1" n="$2"; shift 2
  wait_quiet "$name"
  cut -d' ' -f1-3 /proc/loadavg > "$OUT/$name.$n.load"
  local b0 c0 t0 b1 c1 t1
  times > "$OUT/times0"; b0=$(busy_jiffies); t0=$(date +%s.%N)
  "$@" > "$OUT/$name.$n.json"
  times > "$OUT/times1"; b1=$(busy_jiffies); t1=$(date +%s.%N)
  c0=$(children_cpu "$OUT/times0"); c1=$(children_cpu "$OUT/times1")
  "$PY" - "$b0" "$b1" "$c0" "$c1" "$t0" "$t1" "$(getconf CLK_TCK)" > "$OUT/$name.$n.foreign" <<'PYEOF'
import sys
b0, b1, c0, c1, t0, t1, hz = map(float, sys.argv[1:])
print(f"{max(0.0, (b1 - b0) / hz - (c1 - c0)):.1f} {t1 - t0:.1f}")
PYEOF
}
run_timed() {  # $1 = part name, rest = command. Re-measures (up to ATTEMPTS) while other processes used more
  # than FOREIGN_MAX (a fraction of the machine's CPU time) during the part; keeps the quietest attempt.
  local name="$1"; shift
  local n best="" best_f="" f wall
  for n in $(seq 1 "$ATTEMPTS"); do
    measure "$name" "$n" "$@"
    read -r f wall < "$OUT/$name.$n.foreign"
    if [ -z "$best" ] || "$PY" -c "import sys; sys.exit(0 if $f < $best_f else 1)"; then best=$n best_f=$f; fi
    if "$PY" -c "import os, sys; sys.exit(0 if $f <= $FOREIGN_MAX * $wall * os.cpu_count() else 1)"; then break; fi
    log "other processes used $f CPU-s during the $wall s of $name (attempt $n of $ATTEMPTS)"
  done
  for x in json load foreign; do cp "$OUT/$name.$best.$x" "$OUT/$name.$x"; done
  echo "$best" > "$OUT/$name.attempts"
}

# --- OpenBLAS's kernel ------------------------------------------------------------------------------------
# Some machines here set OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) for older OpenBLAS builds that misdetect the
# CPU; on an AVX-512 CPU the forced kernel may be an AVX2 one (Haswell: PyTorch's products at a third of their
# speed). Both programs run with OpenBLAS's own choice when a product under it agrees with float64 (each at its
# best, on the same library); otherwise as the environment sets it. The table names the kernel.
BLAS_ENV=()
if [ -n "${OPENBLAS_CORETYPE:-}${OPENBLAS_L2_SIZE:-}" ]; then
  if env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" - <<'PYEOF'
import sys, torch
torch.manual_seed(0)
a, b = torch.randn(300, 257), torch.randn(257, 1000)
err = ((a @ b).double() - a.double() @ b.double()).abs().max() / (a.double() @ b.double()).abs().max()
sys.exit(0 if err < 1e-5 else 1)
PYEOF
  then
    BLAS_ENV=(-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
    log "OpenBLAS chooses its own kernel (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-} unset for both programs)"
  else
    log "OpenBLAS's own kernel choice failed a product check; keeping OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-}"
  fi
fi

run_timed heirloom env "${BLAS_ENV[@]}" "$HEIRLOOM" bench --json --threads "$THREADS" --repeats "$REPEATS"
run_timed pytorch env "${BLAS_ENV[@]}" OMP_WAIT_POLICY=PASSIVE "$PY" bench/pytorch/moe30m.py --threads "$THREADS" \
  --repeats "$REPEATS"
if [ -n "$KEEP" ]; then mkdir -p "$KEEP" && cp "$OUT"/* "$KEEP"/; fi

# --- the table ------------------------------------------------------------------------------------------
"$PY" - "$OUT" <<'EOF'
import json, sys, datetime
out = sys.argv[1]
h = json.load(open(f"{out}/heirloom.json"))
p = json.load(open(f"{out}/pytorch.json"))
load = {k: open(f"{out}/{k}.load").read().split() for k in ("heirloom", "pytorch")}
attempts = {k: open(f"{out}/{k}.attempts").read().strip() for k in ("heirloom", "pytorch")}
foreign = {k: open(f"{out}/{k}.foreign").read().split() for k in ("heirloom", "pytorch")}

def hrow(prefix, precision="fp32", required=True):
    for r in h["results"]:
        if r["name"].startswith(prefix) and r.get("precision", "fp32") == precision:
            return r
    if required:
        sys.exit(f"compare: heirloom's bench has no {precision} row starting with '{prefix}'")
    return None

tasks = [("train step full 8x128 (fwd, xent, bwd, AdamW)", "train step full", p["train_ms"]["full"]),
         ("train step norm-only 8x128 (with AdamW)", "train step norm-only", p["train_ms"]["norm"]),
         ("train step LoRA r8 q,k,v,o 8x128 (with AdamW)", "train step lora", p["train_ms"]["lora"]),
         (f"forward 1x{p['forward_len']}", "forward 1x", p["forward_ms"]),
         (f"generate {p['generate_tokens']} tokens after 16 (KV cache, batch 1)", "generate ", p["generate_ms"])]
bf16 = any(r.get("precision") == "bf16" for r in h["results"])

print(f"## heirloom vs PyTorch {p['torch']} — moe-30m, {datetime.date.today()}\n")
print(f"CPU: {h['cpu']}; heirloom {h['threads']} threads (OpenBLAS kernel {h.get('blas_kernel', 'unknown')}, gemm() on {h.get('gemm_fp32', 'OpenBLAS')}); PyTorch {p['threads']} threads "
      f"(OMP_WAIT_POLICY={p['omp_wait_policy'] or 'unset'}, BLAS: {p['blas']}, {p['blas_threads']} BLAS threads, "
      f"attention: {p['attention']}, fp32). Median of {p['repeats']} after a warm-up.\n")
if bf16:
    print("| task | heirloom fp32 ms | heirloom bf16 ms | PyTorch ms | speed-up fp32 | speed-up bf16 |")
    print("|---|---:|---:|---:|---:|---:|")
else:
    print("| task | heirloom ms | PyTorch ms | speed-up |\n|---|---:|---:|---:|")
for name, prefix, b in tasks:
    a = hrow(prefix)["ms"]
    if bf16:
        c = hrow(prefix, "bf16")["ms"]
        print(f"| {name} | {a:.1f} | {c:.1f} | {b:.1f} | {b / a:.2f}x | {b / c:.2f}x |")
    else:
        print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")
hg, pg = hrow("generate ")["tokens_per_s"], p["generate_tokens_per_s"]
if bf16:
    hb = hrow("generate ", "bf16")["tokens_per_s"]
    print(f"| generation tokens/s | {hg:.0f} | {hb:.0f} | {pg:.0f} | {hg / pg:.2f}x | {hb / pg:.2f}x |")
else:
    print(f"| generation tokens/s | {hg:.0f} | {pg:.0f} | {hg / pg:.2f}x |")
print()
for k in ("heirloom", "pytorch"):
    f, wall = foreign[k]
    print(f"- {k}: load average {' '.join(load[k])} (1, 5, 15 min) when it started; "
          f"other processes used {f} CPU-s during its {wall} s (attempt {attempts[k]})")
if not p["blas"].startswith("OpenBLAS"):
    print(f"- warning: PyTorch's BLAS is {p['blas']}, not OpenBLAS (libblas.so.3 may be the reference BLAS)")
if bf16:
    kernel = h.get("bf16_kernel") or "AMX"
    print(f"- heirloom bf16: the base's matrix products in bf16 with fp32 accumulation ({kernel}); what is trained "
          "keeps fp32 master values and AdamW (full: mixed precision, the weights repacked every step, inside the time)")

# Target 3: each step's FLOP rate against the GEMM peak on the model's shapes and the instruction ceiling.
print("\n| heirloom task | precision | GFLOP/s | of the GEMM peak | of the instruction ceiling |\n|---|---|---:|---:|---:|")
for name, prefix, _ in tasks[:4]:
    for prec in (("fp32", "bf16") if bf16 else ("fp32",)):
        r = hrow(prefix, prec)
        ceiling = f"{100 * r['ceiling_fraction']:.0f} %" if r.get("ceiling_fraction") else "not measured"
        print(f"| {name} | {prec} | {r['gflops']:.1f} | {100 * r['peak_fraction']:.0f} % | {ceiling} |")
print(f"\n- GEMM peak on the model's shapes: fp32 {h['sgemm_peak_gflops']:.1f} GFLOP/s"
      + (f", bf16 {h['bf16_peak_gflops']:.1f}" if bf16 else "")
      + f"; instruction ceiling (registers only): fp32 FMA {h.get('fp32_ceiling_gflops', 0):.1f}"
      + (f", bf16 dot products {h.get('bf16_ceiling_gflops', 0):.1f}" if bf16 else "") + " GFLOP/s")
EOF
