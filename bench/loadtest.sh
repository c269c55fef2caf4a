#!/usr/bin/env bash
# `make loadtest`: the server under load. Builds an estate of four people on the moe-30m base (their
# adapters trained on texts every clone has: norm, lora and steer kinds), starts `heirloom serve`, and
# runs heirloom_loadtest: CLIENTS concurrent clients for SECONDS, every response checked against the
# same request alone. Prints the loadtest's JSON; results go in bench/RESULTS.md by hand, with the machine.
# Usage: bench/loadtest.sh BUILD_DIR   (env: CLIENTS=16 SECONDS_=60 TOKENS=32 PRECISION=auto)
set -euo pipefail
build="$(cd "${1:-build}" && pwd)"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
heirloom="$build/heirloom"
work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export HEIRLOOM_DATA="$work/data"
base="$root/models/moe-30m.gguf"
cat "$root"/include/heirloom/*.h > "$work/general.txt"
cp "$root/README.md" "$work/ann.txt"
cat "$root"/src/model/*.cpp > "$work/ben.txt"
cat "$root"/web/app.js "$root"/web/style.css > "$work/cy.txt"
cat "$root"/scripts/* "$root"/bench/*.sh > "$work/dee.txt"
"$heirloom" estate init >/dev/null
kinds=(ann:norm ben:lora cy:steer dee:norm)
for pk in "${kinds[@]}"; do
  who="${pk%%:*}" kind="${pk##*:}"
  echo "training $who's $kind adapter" >&2
  "$heirloom" personalize --base "$base" --text "$work/$who.txt" --general "$work/general.txt" --kind "$kind" --steps 40 \
    --eval-tokens 512 --owner "$who" --out "$work/$who.gguf" >/dev/null 2>>"$work/train.log"
  "$heirloom" estate person add "$who" >/dev/null
  "$heirloom" estate add "$work/$who.gguf" --owner "$who" >/dev/null
done
"$heirloom" serve --base "$base" --port 0 --read-only --precision "${PRECISION:-auto}" --json > "$work/serve.json" 2>"$work/serve.err" &
server=$!
for _ in $(seq 1 200); do grep -q '"port"' "$work/serve.json" 2>/dev/null && break; sleep 0.1; done
port="$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$work/serve.json" | head -1)"
[ -n "$port" ] || { echo "heirloom serve did not start"; cat "$work/serve.err"; exit 1; }
echo "loadtest: ${CLIENTS:-16} clients for ${SECONDS_:-60} s on port $port ($(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'))" >&2
"$build/heirloom_loadtest" --port "$port" --models ann,ben,cy,dee,base --clients "${CLIENTS:-16}" --seconds "${SECONDS_:-60}" \
  --tokens "${TOKENS:-32}"
