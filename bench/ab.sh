#!/usr/bin/env bash
# Two builds of heirloom (or one build under two settings) against each other on a noisy machine: runs
# `heirloom bench --json` with the given arguments, A then B, for a number of rounds, and prints every
# round's milliseconds per task, the medians, the best rounds, and in how many rounds B was faster.
#
#   bench/ab.sh [--rounds N] A B [heirloom bench arguments...]
#
# A and B are commands that run heirloom: a path (/tmp/base/build/heirloom), or a setting before one
# ('HEIRLOOM_NO_AMX=1 build/heirloom'), run through bash. Example:
#   bench/ab.sh --rounds 6 /tmp/base/build/heirloom build/heirloom --precision bf16 --only norm personalize --repeats 5
# On this project's 2-core VM the same binary moves 10-20 % between runs: alternate, and read the medians.
set -euo pipefail

ROUNDS=5
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi
if [[ "${1:-}" == "--rounds" ]]; then
  [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "ab.sh: --rounds takes a positive number, found '${2:-}'" >&2; exit 2; }
  ROUNDS="$2"; shift 2
fi
if (( $# < 2 )); then
  echo "ab.sh: expected two commands A and B (then heirloom bench's arguments); see bench/ab.sh --help" >&2
  exit 2
fi
A="$1"; B="$2"; shift 2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

for ((r = 1; r <= ROUNDS; r++)); do
  for side in A B; do
    cmd=$A; [[ $side == B ]] && cmd=$B
    if ! bash -c "$cmd bench --json $(printf '%q ' "$@")" > "$OUT/$side.$r.json" 2> "$OUT/$side.$r.err"; then
      echo "ab.sh: round $r, $side ($cmd) failed:" >&2
      tail -5 "$OUT/$side.$r.err" >&2
      exit 1
    fi
    echo "ab.sh: round $r/$ROUNDS, $side done" >&2
  done
done

python3 - "$OUT" "$ROUNDS" "$A" "$B" <<'EOF'
import json, statistics, sys
out, rounds, a_cmd, b_cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ms = {"A": {}, "B": {}}
names = []
for side in ("A", "B"):
    for r in range(1, rounds + 1):
        for row in json.load(open(f"{out}/{side}.{r}.json"))["results"]:
            ms[side].setdefault(row["name"], []).append(row["ms"])
            if row["name"] not in names:
                names.append(row["name"])
print(f"A: {a_cmd}\nB: {b_cmd}\n{rounds} rounds, A then B in each\n")
# The best round too: a neighbour's load only ever adds time, so the fastest rounds are the least disturbed.
print("| task | A ms (each round) | B ms (each round) | A median | B median | B/A | A best | B best | B faster in |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for n in names:
    a, b = ms["A"].get(n, []), ms["B"].get(n, [])
    if len(a) != rounds or len(b) != rounds:
        print(f"| {n} | (missing in a run) | | | | | | | |")
        continue
    ma, mb = statistics.median(a), statistics.median(b)
    wins = sum(y < x for x, y in zip(a, b))
    print(f"| {n} | {' '.join(f'{x:.1f}' for x in a)} | {' '.join(f'{y:.1f}' for y in b)} | {ma:.1f} | {mb:.1f} "
          f"| {mb / ma:.3f} | {min(a):.1f} | {min(b):.1f} | {wins} of {rounds} |")
EOF
