#!/bin/bash
# The tuning measurements of 2026-11-26 (issue 11): what each minute of tuning buys on this CPU,
# measured as cuts of one database (run --tuned-after), from scratch and warm-started from the
# committed znver3 database. Run on a quiet machine from the repository root:
#   results/reference/tuning-curves-20261126/run.sh default|gpt2
# Every database goes to a fresh cache under $C (default /tmp/curves).
set -u
B=.venv/bin/gptbench
C=${C:-/tmp/curves}
O=results/reference/tuning-curves-20261126
ZNVER3=results/tuning/tvm-0.27.0.post1/llvm-znver3-2c/gpt2-prefill-b1-t128-prepack
step() { echo "=== $* ($(date -u +%H:%M:%S))"; }
mkdir -p "$C"

default_model() {  # as make bench tunes it: 5 minutes, --fast-math; cut at 0..5 minutes
    step default model
    $B run --model nanogpt-shakespeare-char --frontend export --seq-len 128 --fast-math --tune-budget 5m --tune-cache "$C/new" \
        --tuned-after 0,1m,2m,3m,all --baselines eager --name default-tuning-curve --out $O
}

gpt2() {  # GPT-2 124M prefill 128 (random init): warm-started (10-minute budget), then from scratch (30)
    step GPT-2 warm start
    $B tune --model gpt2 --weights random --frontend export --seq-len 128 --prepack --budget 10m --warm-start $ZNVER3 --db "$C/gpt2-warm"
    local w  # the warm start's seconds: the cut holding its replayed records only
    w=$(awk -F, 'NR == 2 && $5 == "warm start" {print $2}' "$C/gpt2-warm/tuning-progress.csv")
    $B run --model gpt2 --weights random --frontend export --seq-len 128 --db "$C/gpt2-warm" --tuned-after "${w}s,5m,all" \
        --baselines eager --name gpt2-prefill-warm-start-curve --out $O
    step GPT-2 from scratch
    $B run --model gpt2 --weights random --frontend export --seq-len 128 --tune-budget 30m --tune-cache "$C/new" \
        --tuned-after 2m,5m,10m,all --baselines eager --name gpt2-prefill-tuning-curve --out $O
}

case ${1:-} in
    default) default_model ;;
    gpt2) gpt2 ;;
    *) echo "usage: $0 default|gpt2" >&2; exit 2 ;;
esac
step done
