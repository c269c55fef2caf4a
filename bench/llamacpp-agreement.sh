#!/usr/bin/env bash
# Does llama.cpp run what heirloom exports, and agree with it? For one person's norm, lora and steer adapters:
# exports a merged model (F32, F16, Q8_0), a llama.cpp LoRA and a control vector, then sets llama.cpp's
# llama-perplexity beside `heirloom eval --protocol llama` on the person's held-out text, and llama-completion
# beside `heirloom generate` at temperature 0. llama.cpp is not a Debian package, so bring your own build:
#
#   LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin bench/llamacpp-agreement.sh [--person bierce] [--ctx 512]
#
# llama.cpp is run twice per file: with its defaults, and with the arithmetic heirloom uses (no flash
# attention, F32 K/V cache: -fa off -ctk f32 -ctv f32). Adapters are trained here with `heirloom personalize`
# on the corpora that `./run demo` builds (~/.cache/heirloom/corpora).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PERSON=bierce CTX=512
while [ $# -gt 0 ]; do
  case "$1" in
    --person) PERSON="$2"; shift 2 ;;
    --ctx) CTX="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "llamacpp-agreement.sh: unknown argument '$1' (expected --person NAME or --ctx N)" >&2; exit 2 ;;
  esac
done
H=build/heirloom
BIN="${LLAMA_CPP_BIN:-}"
for t in llama-perplexity llama-completion; do
  [ -n "$BIN" ] && [ -x "$BIN/$t" ] || { echo "llamacpp-agreement.sh: set LLAMA_CPP_BIN to a folder with llama.cpp's $t" >&2; exit 2; }
done
[ -x "$H" ] || { echo "llamacpp-agreement.sh: build heirloom first (./run test or make -C build)" >&2; exit 2; }
CORPUS="$HOME/.cache/heirloom/corpora/$PERSON"
[ -f "$CORPUS/heldout.txt" ] || { echo "llamacpp-agreement.sh: no corpus at $CORPUS (run ./run demo first)" >&2; exit 2; }
BASE=models/moe-30m.gguf
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
log() { echo "llamacpp-agreement: $*" >&2; }

for k in norm lora steer; do
  log "training $PERSON's $k adapter"
  "$H" personalize --base "$BASE" --text "$CORPUS/train.txt" --heldout "$CORPUS/heldout.txt" --kind "$k" \
    --out "$W/$k.gguf" >/dev/null 2>&1
done
log "training $PERSON's lora adapter on the MoE experts and router"
"$H" personalize --base "$BASE" --text "$CORPUS/train.txt" --heldout "$CORPUS/heldout.txt" --kind lora \
  --targets q,v,router,gate,up,down --out "$W/lora-moe.gguf" >/dev/null 2>&1
# An F32 base, so that the LoRA and control-vector rows compare the same arithmetic on both sides.
"$H" export --base "$BASE" --out "$W/base-f32.gguf" --type f32 >/dev/null
for t in f32 f16 q8_0; do "$H" export --base "$BASE" --adapter "$W/norm.gguf" --out "$W/norm-$t.gguf" --type "$t" >/dev/null; done
"$H" export --base "$W/base-f32.gguf" --adapter "$W/lora.gguf" --lora "$W/lora.llama.gguf" >/dev/null
"$H" export --base "$W/base-f32.gguf" --adapter "$W/lora-moe.gguf" --lora "$W/lora-moe.llama.gguf" >/dev/null
"$H" export --base "$W/base-f32.gguf" --adapter "$W/steer.gguf" --control-vector "$W/steer.cv.gguf" >/dev/null

TEXT="$CORPUS/heldout.txt"
ours() {
  "$H" eval --protocol llama --ctx "$CTX" --text "$TEXT" --json "$@" 2>/dev/null |
    sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p' | xargs printf '%.4f'
}
theirs() {  # llama-perplexity's final estimate; Q8_0 without repacking (see RESULTS: its AMX Q8_0 path crashes here)
  "$BIN/llama-perplexity" -c "$CTX" -f "$TEXT" -t 2 "$@" 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'
}
EXACT=(-fa off -ctk f32 -ctv f32)
row() {  # $1 label, $2 heirloom args, rest llama.cpp args
  local label="$1" h="$2"; shift 2
  log "perplexity: $label"
  # shellcheck disable=SC2086
  printf '| %s | %s | %s | %s |\n' "$label" "$(ours $h)" "$(theirs "$@" "${EXACT[@]}" || true)" "$(theirs "$@" || true)"
}
echo "Held-out perplexity of $PERSON ($(wc -c < "$TEXT") bytes), llama protocol, ctx $CTX"
echo
echo "| file | heirloom eval | llama-perplexity -fa off -ctk f32 -ctv f32 | llama-perplexity (defaults) |"
echo "|---|---:|---:|---:|"
row "merged norm, F32" "--model $W/norm-f32.gguf" -m "$W/norm-f32.gguf"
row "merged norm, F16" "--model $W/norm-f16.gguf" -m "$W/norm-f16.gguf"
row "merged norm, Q8_0 (llama.cpp --no-repack)" "--model $W/norm-q8_0.gguf" -m "$W/norm-q8_0.gguf" -nr
row "F32 base + --lora (q, k, v, o)" "--model $W/base-f32.gguf --adapter $W/lora.gguf" -m "$W/base-f32.gguf" --lora "$W/lora.llama.gguf"
row "F32 base + --lora (q, v, router, experts' gate/up/down, 3-D)" "--model $W/base-f32.gguf --adapter $W/lora-moe.gguf" \
  -m "$W/base-f32.gguf" --lora "$W/lora-moe.llama.gguf"
row "F32 base + control vector (--control-vector)" "--model $W/base-f32.gguf --adapter $W/steer.gguf" \
  -m "$W/base-f32.gguf" --control-vector "$W/steer.cv.gguf"

PROMPT="PATIENCE, n."
log "greedy generation"
a=$("$H" generate --model "$W/norm-f32.gguf" --prompt "$PROMPT" -n 40 --temperature 0 --precision fp32 2>/dev/null)
b=$("$BIN/llama-completion" -m "$W/norm-f32.gguf" -p "$PROMPT" -n 40 --temp 0 "${EXACT[@]}" -t 2 -no-cnv 2>/dev/null)
echo
if [ "$(echo "$a" | sed 's/^ *//')" = "$(echo "$b" | sed 's/^ *//')" ]; then
  echo "Greedy generation of 40 tokens from \"$PROMPT\" on the merged F32 model: the same text from both."
else
  echo "Greedy generation of 40 tokens from \"$PROMPT\" on the merged F32 model DIFFERS:"
  echo "heirloom:  $a"
  echo "llama.cpp: $b"
fi
