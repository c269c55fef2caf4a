#!/usr/bin/env bash
# How long each thread of a heirloom run waits for the other: samples the run with `perf record -g`, counts each
# thread's samples waiting (libgomp's own code outside GOMP_parallel, or heirloom's team threads idle or joining),
# and names what the other thread was doing at the nearest sample (its innermost frames), most frequent first.
#
#   bench/omp-waits.sh [--freq HZ] [--delay MS] [--top N] HEIRLOOM [heirloom arguments...]
#
# Example, the protocol's step after the setup (the first 4 s are not sampled):
#   bench/omp-waits.sh --delay 4000 build/heirloom bench --precision bf16 --only norm --batch 1 --seq 256 --repeats 150
# A build with frame pointers (-DCMAKE_CXX_FLAGS=-fno-omit-frame-pointer) names more of the callers.
set -euo pipefail

FREQ=3000 DELAY=0 TOP=12
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi
while [[ "${1:-}" == --* ]]; do
  case "$1" in
    --freq|--delay|--top)
      [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "omp-waits.sh: $1 takes a number, found '${2:-}'" >&2; exit 2; }
      case "$1" in --freq) FREQ=$2 ;; --delay) DELAY=$2 ;; --top) TOP=$2 ;; esac
      shift 2 ;;
    *) echo "omp-waits.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
(( $# >= 1 )) || { echo "omp-waits.sh: expected the heirloom binary and its arguments (see --help)" >&2; exit 2; }
command -v perf > /dev/null || { echo "omp-waits.sh: needs perf (Debian: linux-perf)" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

perf record -q -D "$DELAY" -F "$FREQ" -g -o "$OUT/perf.data" -- "$@" > "$OUT/run.out" 2> "$OUT/run.err" ||
  { echo "omp-waits.sh: the run failed:" >&2; tail -5 "$OUT/run.err" >&2; exit 1; }
perf script -i "$OUT/perf.data" -F tid,time,ip,sym,dso 2> /dev/null > "$OUT/samples.txt"

python3 - "$OUT/samples.txt" "$TOP" <<'EOF'
import bisect, collections, re, sys

samples, cur = [], None  # [tid, time, [frames, innermost first]]
for line in open(sys.argv[1]):
    if re.match(r'^\s*\d+\s+[\d.]+:\s*$', line):
        if cur: samples.append(cur)
        tid, t = line.split()
        cur = [int(tid), float(t.rstrip(':')), []]
    elif line.strip() and cur:
        parts = line.strip().split(None, 1)
        if len(parts) > 1: cur[2].append(parts[1])
if cur: samples.append(cur)
threads = [t for t, _ in collections.Counter(s[0] for s in samples).most_common(2)]
if len(threads) < 2:
    sys.exit("omp-waits.sh: fewer than two threads were sampled")

# libgomp's own code (an OpenMP team's barriers and dock), or heirloom's team threads idle or joining
# (core/thread_team.cpp: a worker between teams, the caller waiting for the others, a barrier)
TEAM_WAITS = ('next_generation', 'run_team_erased', 'Barrier::wait')
def waiting(frames):
    if not frames: return False
    if 'libgomp' in frames[0]: return 'GOMP_parallel' not in frames[0]
    return any(w in frames[0] for w in TEAM_WAITS)

def name(frames):
    names = []
    for f in frames:
        f = f.split(' (')[0]
        if f.startswith('[unknown]') or re.fullmatch(r'[0-9a-f]+', f): continue
        names.append(f.replace('heirloom::', '').replace('(anonymous namespace)::', '')[:60])
        if len(names) == 4: break
    return ' < '.join(names) or '(unnamed)'

top = int(sys.argv[2])
for me, other in ((threads[0], threads[1]), (threads[1], threads[0])):
    mine = [s for s in samples if s[0] == me]
    theirs = [s for s in samples if s[0] == other]
    times = [s[1] for s in theirs]
    waits = [s for s in mine if waiting(s[2])]
    print(f"thread {me}: {len(waits)} of {len(mine)} samples waiting ({100 * len(waits) / max(1, len(mine)):.1f} %)")
    doing = collections.Counter()
    for s in waits:
        i = bisect.bisect_left(times, s[1])
        near = min((j for j in (i - 1, i) if 0 <= j < len(theirs)), key=lambda j: abs(times[j] - s[1]), default=None)
        doing[name(theirs[near][2]) if near is not None and abs(times[near] - s[1]) < 5e-4 else '(no sample near)'] += 1
    for what, n in doing.most_common(top):
        print(f"  {n:6d} {100 * n / max(1, len(waits)):5.1f} %  the other thread in {what}")
EOF
