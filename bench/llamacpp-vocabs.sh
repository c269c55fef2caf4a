#!/usr/bin/env bash
# Does `heirloom tokenize` give llama.cpp's token ids on real vocabularies? llama.cpp's source tree ships
# vocabulary-only GGUF files with test texts and the ids llama.cpp expects (models/ggml-vocab-NAME.gguf with
# .inp and .out; llama.cpp's test-tokenizer-0 reads them, without BOS). This runs each test text through
# `heirloom tokenize --no-bos --ids` and counts agreements. llama.cpp is not a Debian package: point the
# script at a llama.cpp checkout.
#
#   bench/llamacpp-vocabs.sh /path/to/llama.cpp [NAME ...]     (default: llama-spm llama-bpe gpt-2 phi-3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -ge 1 ] && [ "$1" != "-h" ] && [ "$1" != "--help" ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
SRC="$1"; shift
[ -d "$SRC/models" ] || { echo "llamacpp-vocabs.sh: no models/ folder in $SRC (expected a llama.cpp checkout)" >&2; exit 2; }
[ -x build/heirloom ] || { echo "llamacpp-vocabs.sh: build heirloom first (./run test or make -C build)" >&2; exit 2; }
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(llama-spm llama-bpe gpt-2 phi-3)
/usr/bin/python3 - "$SRC/models" build/heirloom "${NAMES[@]}" <<'PYEOF'
import os, subprocess, sys, tempfile
models, heirloom, names = sys.argv[1], sys.argv[2], sys.argv[3:]
total = agree = 0
for name in names:
    base = f"{models}/ggml-vocab-{name}.gguf"
    texts = open(base + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
    wanted = [line.strip() for line in open(base + ".out", encoding="utf-8").read().split("\n")]
    ok = 0
    for i, text in enumerate(texts):
        with tempfile.NamedTemporaryFile("wb", delete=False) as f:
            f.write(text.encode())
        r = subprocess.run([heirloom, "tokenize", "--model", base, "--text", f.name, "--ids", "--no-bos"],
                           capture_output=True, text=True)
        os.unlink(f.name)
        if r.returncode != 0:
            print(f"{name}: refused: {r.stderr.strip().splitlines()[0]}")
            break
        if r.stdout.strip() == wanted[i]:
            ok += 1
        else:
            print(f"  {name} #{i} {text[:40]!r}\n    llama.cpp {wanted[i][:80]}\n    heirloom  {r.stdout.strip()[:80]}")
    print(f"{name}: {ok} of {len(texts)} texts give llama.cpp's ids")
    total += len(texts)
    agree += ok
print(f"all: {agree} of {total}")
PYEOF
