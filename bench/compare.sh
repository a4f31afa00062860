#!/usr/bin/env bash
# Side-by-side training-step throughput, candle (`skfac bench-step`) vs PyTorch
# (bench/pytorch_step.py), as a markdown table on stdout after a header naming the CPU and each
# side's instruction set; the benchmarks' own output goes to stderr. Run from anywhere;
# override THREADS, MODELS, BATCHES, REPEAT and SKFAC_BIN via the environment, and PYTHON to
# use an interpreter that already has torch (the GPU machine's) instead of bench/.venv. With REPEAT=n
# each pair is measured n times, alternating candle and PyTorch, and the table gives the
# medians: on a shared machine one pair can be off by 30%. With OP_TIMES=1 it then lists, for
# each model and batch, the time per step of each of candle's kernels (`bench-step --op-times`):
# where the step goes on a machine without a profiler.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
MODELS=${MODELS:-resnet8 resnet20 vgg11}
BATCHES=${BATCHES:-32 128}
REPEAT=${REPEAT:-1}
SKFAC_BIN=${SKFAC_BIN:-target/release/skfac}
PYTHON=${PYTHON:-}
# Both runtimes size their pools from these, so each side gets the same cores.
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

if [[ -z $PYTHON ]]; then
    bash bench/setup_pytorch.sh
    PYTHON=bench/.venv/bin/python
fi
[[ -x $SKFAC_BIN ]] || { echo "compare.sh: $SKFAC_BIN missing; run 'just build'" >&2; exit 1; }

# Runs a benchmark, echoes its output to stderr, and prints N from its last line `N img/s`.
img_per_s() {
    local out last
    out=$("$@")
    printf '%s\n' "$out" >&2
    last=$(tail -n 1 <<<"$out")
    [[ $last =~ ^([0-9.]+)\ img/s$ ]] || { echo "compare.sh: '$*' ended with '$last'" >&2; exit 1; }
    echo "${BASH_REMATCH[1]}"
}

# The median of its arguments (numbers).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "THREADS=$THREADS MODELS='$MODELS' BATCHES='$BATCHES' REPEAT=$REPEAT OP_TIMES=${OP_TIMES:-0} SKFAC_BIN=$SKFAC_BIN PYTHON=$PYTHON bench/compare.sh"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc --all) cores, $("$PYTHON" -c 'import torch; print("torch", torch.__version__, "with", torch.backends.cpu.get_cpu_capability(), "kernels")')"
# The CPU and the kernels candle's matrix products run on (AVX-512 or AVX2, chosen at run time).
"$SKFAC_BIN" bench-step mlp 1 1 --steps 1 --warmup 0 | grep '^CPU: '
echo
echo "| model | batch | threads | candle img/s | PyTorch img/s | candle/PyTorch |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for model in $MODELS; do
    for batch in $BATCHES; do
        cs=() ts=() rs=()
        for ((r = 0; r < REPEAT; r++)); do
            # One after the other, never concurrently: they would share the cores.
            c=$(img_per_s "$SKFAC_BIN" bench-step "$model" "$batch" "$THREADS")
            t=$(img_per_s "$PYTHON" bench/pytorch_step.py "$model" "$batch" "$THREADS")
            cs+=("$c") ts+=("$t") rs+=("$(awk -v a="$c" -v b="$t" 'BEGIN { print a / b }')")
        done
        candle=$(median "${cs[@]}") torch=$(median "${ts[@]}")
        ratio=$(awk -v r="$(median "${rs[@]}")" 'BEGIN { printf "%.2f", r }')
        echo "| $model | $batch | $THREADS | $candle | $torch | $ratio |"
    done
done

if [[ ${OP_TIMES:-0} == 1 ]]; then
    for model in $MODELS; do
        for batch in $BATCHES; do
            printf '\n%s, batch %s, candle by kernel:\n\n```\n' "$model" "$batch"
            "$SKFAC_BIN" bench-step "$model" "$batch" "$THREADS" --op-times |
                sed -n '/^mean time per step/,/the rest/p'
            echo '```'
        done
    done
fi
