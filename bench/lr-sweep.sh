#!/usr/bin/env bash
# How the default learning rate of each adapter kind was chosen: personalize two people (a prose writer
# and the programmer) with each kind at three rates and print personal and general perplexity change.
# Usage: bench/lr-sweep.sh BASE.gguf [CORPUS_DIR]   (about 10 minutes on 2 cores)
set -euo pipefail
base="$1"
corpora="${2:-${HEIRLOOM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/heirloom}/corpora}"
bin="$(dirname "$0")/../build/heirloom"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for spec in "norm 3e-3" "norm 1e-2" "norm 3e-2" "lora 1e-3" "lora 3e-3" "lora 1e-2" "steer 3e-3" "steer 1e-2" "steer 3e-2" "full 5e-5" "full 3e-4"; do
  set -- $spec
  for who in bierce python-asyncio; do
    "$bin" personalize --base "$base" --text "$corpora/$who/train.txt" --heldout "$corpora/$who/heldout.txt" \
      --general "$corpora/general/heldout.txt" --kind "$1" --lr "$2" --eval-tokens 4096 --out "$out/a.gguf" --json 2>/dev/null |
      python3 -c "
import json, sys
j = json.load(sys.stdin)
print('| %s | %s | %g | %.1f → %.1f (%.2fx) | %.1f → %.1f (%+.1f %%) | %.1f | %d | %s |' % ('$who', j['kind'], j['lr'],
      j['personal_ppl_before'], j['personal_ppl_after'], j['personal_drop'], j['general_ppl_before'],
      j['general_ppl_after'], 100 * j['general_rise'], j['train_seconds'], j['adapter_bytes'], j['verdict']))"
  done
done
