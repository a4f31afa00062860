#!/usr/bin/env bash
# The GPU checks, in one go, into OUTDIR (about 4 minutes on one H200, 2026-12-04):
#   1. nvidia-smi;
#   2. training-step throughput, skfac (`bench-step --device cuda`) beside PyTorch
#      (bench/pytorch_step.py --device cuda) on the same GPU: resnet8, resnet20, vgg11 and
#      resnet34 at batch 32 and 128, resnet50 (224x224) at batch 32  -> step.md;
#   3. CPU-vs-GPU agreement: every optimizer trained 1 and 5 real steps on each device from
#      the same seed, the saved models compared tensor by tensor        -> agreement.md;
#   4. bench-gains of every optimizer (K-FAC in its four factorisations) on vgg11 and
#      resnet50 at the paper's periods
#      -> gains-*.txt, gains-*.svg, gains.db;
#   5. a short real-data training run on the GPU                        -> train.txt;
#   6. bench-inverse: each damped inverse size cuSOLVER against a host round trip, and
#      how well cuSOLVER's inverse inverts                             -> inverse.txt.
# Everything printed also lands in OUTDIR/log.txt. Each command runs under a time limit; one
# that fails or runs over is listed at the end (and in OUTDIR/failed.txt) and the checks go on,
# so one bad step costs its own minutes, not the rest; past BUDGET seconds in all, the rest is
# skipped and listed. ONLY="2 4" reruns just those sections.
#
# It runs from a carried, stripped `skfac` built with `just build-cuda` (no Rust toolchain
# needed there) and finds NVIDIA's libraries (cuBLAS, cuRAND, cuSOLVER) in the Python
# packages of $PYTHON. DATA is a CIFAR-10 folder (`skfac data cifar10`, or a few thousand
# records of each file: scripts/cifar-subset.sh). On a machine without a GPU, DEVICE=cpu
# QUICK=1 runs the same script small, which is how it is tested.
#
#   scripts/gpu-check.sh OUTDIR
#   env: SKFAC_BIN (target/cuda/release/skfac; target/release/skfac with DEVICE=cpu),
#        PYTHON (python3), DATA (data), DEVICE (cuda),
#        QUICK (0; 1 = one small model, few steps), ONLY (the sections to run: "1 2 3 4 5 6"),
#        BUDGET (seconds for everything: 540)
set -euo pipefail
OUT=${1:?usage: scripts/gpu-check.sh OUTDIR}
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
# `just build-cuda` builds into target/cuda, `just build` into target/release.
if [[ $DEVICE == cpu ]]; then
    SKFAC_BIN=${SKFAC_BIN:-target/release/skfac}
else
    SKFAC_BIN=${SKFAC_BIN:-target/cuda/release/skfac}
fi
PYTHON=${PYTHON:-python3}
DATA=${DATA:-data}
QUICK=${QUICK:-0}
ONLY=${ONLY:-1 2 3 4 5 6}
BUDGET=${BUDGET:-540}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
[[ -x $SKFAC_BIN ]] || { echo "gpu-check.sh: $SKFAC_BIN missing; build it with 'just build-cuda'" >&2; exit 1; }

# NVIDIA's libraries from the Python packages (nvidia/<lib>/lib), for cudarc's loader.
if nvidia=$("$PYTHON" -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null); then
    for lib in "$nvidia"/*/lib "$nvidia"/cu*/lib; do
        [[ -d $lib ]] && LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
    done
    export LD_LIBRARY_PATH
fi

if [[ $QUICK == 1 ]]; then
    STEP_MODELS=("resnet8 32")
    GAINS_MODELS=(resnet8)
    GAINS_ARGS=(--cycles 1 --t-cov 2 --t-inv 4)
    STEPS=3
    TRAIN_ARGS=(--model resnet8 --train-subset 640)
    INVERSE_ARGS=(--sizes 8,32 --reps 1 --threads 2)
else
    STEP_MODELS=("resnet8 32" "resnet8 128" "resnet20 32" "resnet20 128" "vgg11 32" "vgg11 128"
        "resnet34 32" "resnet34 128" "resnet50 32")
    GAINS_MODELS=(vgg11 resnet50)
    GAINS_ARGS=(--cycles 2)
    STEPS=5
    TRAIN_ARGS=(--model resnet20 --train-subset 10000)
    # SKFAC's N×N systems (32, 128) and K-FAC's factors up to ResNet-50's 3·3·512+1; the
    # host side gets every core, as it would in training.
    INVERSE_ARGS=(--sizes 32,128,577,2305,4609 --reps 2)
fi

echo "== gpu-check.sh $OUT: $(date -u '+%Y-%m-%d %H:%M UTC'), device $DEVICE, $("$SKFAC_BIN" --version)"
# Whether section $1 is in ONLY; if so, its heading.
section() {
    [[ " $ONLY " == *" ${1%%.*} "* ]] || return 1
    echo
    echo "== $1 ($(date -u +%H:%M:%S))"
}
# attempt LIMIT NAME CMD...: CMD under a LIMIT-second limit (less when the budget has less
# left); a failure is recorded, not fatal.
FAILED=()
attempt() {
    local limit=$1 name=$2 rc=0 left=$((BUDGET - SECONDS))
    shift 2
    if ((left < 5)); then
        FAILED+=("$name: skipped, the ${BUDGET} s budget was spent")
        return 1
    fi
    ((limit > left)) && limit=$left
    timeout --kill-after=5 "$limit" "$@" || rc=$?
    ((rc == 0)) && return 0
    ((rc == 124)) && FAILED+=("$name: over its ${limit} s") || FAILED+=("$name: exit $rc")
    echo "gpu-check.sh: $name failed (exit $rc)" >&2
    return 1
}
# The N of the last line `N img/s` of file $1, or "-".
rate() {
    [[ $(tail -n 1 "$1") =~ ^([0-9.]+)\ img/s$ ]] && echo "${BASH_REMATCH[1]}" || echo "-"
}
set +e

if section "1. nvidia-smi"; then
    if command -v nvidia-smi >/dev/null; then
        attempt 30 nvidia-smi nvidia-smi >"$OUT/nvidia-smi.txt"
        cat "$OUT/nvidia-smi.txt"
    else
        echo "no nvidia-smi here"
    fi
fi

if section "2. step throughput, skfac vs PyTorch"; then
    {
        echo "| model | batch | skfac img/s | PyTorch img/s | skfac/PyTorch |"
        echo "| --- | ---: | ---: | ---: | ---: |"
    } >"$OUT/step.md"
    for mb in "${STEP_MODELS[@]}"; do
        read -r model batch <<<"$mb"
        attempt 120 "bench-step $model $batch" \
            "$SKFAC_BIN" bench-step "$model" "$batch" 2 --device "$DEVICE" >"$OUT/step.txt"
        cat "$OUT/step.txt"
        s=$(rate "$OUT/step.txt")
        attempt 120 "pytorch_step.py $model $batch" \
            "$PYTHON" bench/pytorch_step.py "$model" "$batch" 2 --device "$DEVICE" >"$OUT/step.txt"
        cat "$OUT/step.txt"
        t=$(rate "$OUT/step.txt")
        r=$(awk -v a="$s" -v b="$t" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')
        echo "| $model | $batch | $s | $t | $r |" >>"$OUT/step.md"
    done
    rm -f "$OUT/step.txt"
    cat "$OUT/step.md"
fi

if section "3. CPU vs $DEVICE: the same seeded steps of every optimizer"; then
    {
        echo "| optimizer | after 1 step | after $STEPS steps |"
        echo "| --- | --- | --- |"
    } >"$OUT/agreement.md"
    # Each entry: the optimizer, then extra flags (K-FAC's cuSOLVER paths: both methods, and
    # both precisions). With statistics every step and inverses every other, the steps cover
    # the statistics, each inverse refresh, the preconditioning and the momentum step; both
    # must agree to 1e-3. No more steps: training amplifies round-off (SGD's runs on 1 and 2 CPU
    # threads differ by 8e-7 after 5 steps, by 1e-1 after 20). Adam's step m/(√v + ε) is
    # about ±lr whatever the gradient's size, so where a gradient entry is round-off it
    # follows the round-off: after 5 steps the H200 differed from the CPU by 3e-3 (1 step:
    # 6e-5), and its tolerance then is 1e-2.
    for run in "sgd" "adam" "kfac" "kfac --dense-method cholesky" "kfac --inverse-dtype f64" \
        "kfac-sua" "skfac-rs" "skfac-ss"; do
        read -r opt extra <<<"$run"
        row="| $run"
        for steps in 1 "$STEPS"; do
            trained=0
            for dev in cpu "$DEVICE"; do
                # shellcheck disable=SC2086 # $extra is a list of flags
                attempt 180 "train $run on $dev, $steps step(s)" \
                    "$SKFAC_BIN" train --model resnet8 --optimizer "$opt" $extra --data-dir "$DATA" \
                    --device "$dev" --train-subset $((32 * steps)) --epochs 1 --t-cov 1 --t-inv 2 \
                    --damping 0.3 --threads 2 --quiet --save-model "$OUT/agree-${dev%%:*}.safetensors" &&
                    trained=$((trained + 1))
            done
            d="not compared: a run failed"
            if ((trained == 2)); then
                tol=1e-3
                [[ $opt == adam && $steps != 1 ]] && tol=1e-2
                d=$("$PYTHON" bench/compare_models.py "$OUT/agree-cpu.safetensors" \
                    "$OUT/agree-${DEVICE%%:*}.safetensors" --tolerance $tol 2>&1) ||
                    FAILED+=("agreement of $run after $steps step(s): ${d//$'\n'/ }")
            fi
            row+=" | ${d//$'\n'/ }"
            rm -f "$OUT"/agree-*.safetensors
        done
        echo "$row |" >>"$OUT/agreement.md"
    done
    cat "$OUT/agreement.md"
fi

if section "4. bench-gains"; then
    for model in "${GAINS_MODELS[@]}"; do
        attempt 300 "bench-gains $model" \
            "$SKFAC_BIN" bench-gains --model "$model" --device "$DEVICE" --db "$OUT/gains.db" \
            --plot "$OUT/gains-$model.svg" --threads 2 "${GAINS_ARGS[@]}" >"$OUT/gains-$model.txt"
        cat "$OUT/gains-$model.txt"
    done
fi

if section "5. real-data training on $DEVICE"; then
    attempt 240 "train on $DEVICE" \
        "$SKFAC_BIN" train "${TRAIN_ARGS[@]}" --optimizer skfac-rs --data-dir "$DATA" \
        --device "$DEVICE" --epochs 1 --threads 2 >"$OUT/train.txt"
    cat "$OUT/train.txt"
fi

if section "6. bench-inverse on $DEVICE"; then
    attempt 240 "bench-inverse" \
        "$SKFAC_BIN" bench-inverse --device "$DEVICE" "${INVERSE_ARGS[@]}" >"$OUT/inverse.txt"
    cat "$OUT/inverse.txt"
fi

echo
echo "== done ($(date -u +%H:%M:%S)): ${#FAILED[@]} failure(s)"
((${#FAILED[@]} == 0)) || printf '%s\n' "${FAILED[@]}" | tee "$OUT/failed.txt"
((${#FAILED[@]} == 0))
