#!/usr/bin/env bash
# The estate page in a real browser (ctest: browser.InheritanceFlow). Builds a small estate with the
# heirloom program (a tiny base, two people's adapters, a designation), starts `heirloom serve` on a free
# loopback port, and runs inheritance.mjs in headless Chromium. Exit 77 = skipped (Chromium cannot start).
# Usage: run.sh HEIRLOOM_BINARY SCREENSHOT.png
set -euo pipefail
heirloom="$1"
shot="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "SKIP: no Chromium at ${CHROMIUM:-/usr/bin/chromium} (scripts/setup installs Debian's chromium)"; exit 77
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  echo "FAIL: playwright-core is not installed in $here (scripts/setup runs npm ci there)"; exit 1
fi
work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export HEIRLOOM_DATA="$work/data" OMP_NUM_THREADS=1

# Two people's texts and a general one, from files every clone has.
cp "$root/README.md" "$work/ann.txt"
cat "$root"/src/model/*.cpp > "$work/ben.txt"
cat "$root"/include/heirloom/*.h > "$work/general.txt"
"$heirloom" pretrain --preset tiny --text "$work/general.txt" --steps 20 --out "$work/base.gguf" >/dev/null 2>"$work/train.log"
for who in ann ben; do
  "$heirloom" personalize --base "$work/base.gguf" --text "$work/$who.txt" --general "$work/general.txt" --steps 20 \
    --seq 64 --eval-tokens 256 --owner "$who" --out "$work/$who.gguf" >/dev/null 2>>"$work/train.log"
done
"$heirloom" estate init >/dev/null
for who in ann ben; do
  "$heirloom" estate person add "$who" >/dev/null
  "$heirloom" estate add "$work/$who.gguf" --owner "$who" --label "$who's letters" >/dev/null
done
"$heirloom" estate designate ann --successor ben >/dev/null

"$heirloom" serve --base "$work/base.gguf" --port 0 --token browser-test --results "$root/experiments/bets/results" --json \
  > "$work/serve.json" 2> "$work/serve.err" &
server=$!
for _ in $(seq 1 100); do
  grep -q '"port"' "$work/serve.json" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { echo "FAIL: heirloom serve exited"; cat "$work/serve.err"; exit 1; }
  sleep 0.1
done
url="$(sed -n 's/.*"url": *"\([^"]*\)".*/\1/p' "$work/serve.json" | head -1)"
[ -n "$url" ] || { echo "FAIL: heirloom serve printed no address"; cat "$work/serve.json" "$work/serve.err"; exit 1; }
mkdir -p "$(dirname "$shot")"
node "$here/inheritance.mjs" "$url" browser-test "$shot"
