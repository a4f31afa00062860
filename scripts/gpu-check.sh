#!/usr/bin/env bash
# The GPU checks, in one go, into OUTDIR (about 8 minutes on one H200):
#   1. nvidia-smi;
#   2. training-step throughput, skfac (`bench-step --device cuda`) beside PyTorch
#      (bench/pytorch_step.py --device cuda) on the same GPU: resnet8, resnet20, vgg11 and
#      resnet34 at batch 32 and 128, resnet50 (224x224) at batch 32  -> step.md;
#   3. CPU-vs-GPU agreement: every optimizer trained a few real steps on each device from the
#      same seed, the saved models compared tensor by tensor            -> agreement.md;
#   4. bench-gains of the six optimizers on vgg11 and resnet50 at the paper's periods
#      -> gains-*.txt, gains-*.svg, gains.db;
#   5. a short real-data training run on the GPU                        -> train.txt.
# Everything printed also lands in OUTDIR/log.txt.
#
# It runs from a carried, stripped `skfac` built with `just build-cuda` (no Rust toolchain
# needed there) and finds NVIDIA's libraries (cuBLAS, cuRAND, cuSOLVER, NVRTC) in the Python
# packages of $PYTHON. DATA is a CIFAR-10 folder (`skfac data cifar10`, or a few thousand
# records of each file: scripts/cifar-subset.sh). On a machine without a GPU, DEVICE=cpu
# QUICK=1 runs the same script small, which is how it is tested.
#
#   scripts/gpu-check.sh OUTDIR
#   env: SKFAC_BIN (target/release/skfac), PYTHON (python3), DATA (data), DEVICE (cuda),
#        QUICK (0; 1 = one small model, few steps)
set -euo pipefail
OUT=${1:?usage: scripts/gpu-check.sh OUTDIR}
cd "$(dirname "$0")/.."
SKFAC_BIN=${SKFAC_BIN:-target/release/skfac}
PYTHON=${PYTHON:-python3}
DATA=${DATA:-data}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
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
    SUBSET=320
    TRAIN_ARGS=(--model resnet8 --train-subset 640)
else
    STEP_MODELS=("resnet8 32" "resnet8 128" "resnet20 32" "resnet20 128" "vgg11 32" "vgg11 128"
        "resnet34 32" "resnet34 128" "resnet50 32")
    GAINS_MODELS=(vgg11 resnet50)
    GAINS_ARGS=(--cycles 2)
    SUBSET=640
    TRAIN_ARGS=(--model resnet20 --train-subset 10000)
fi

echo "== gpu-check.sh $OUT: $(date -u '+%Y-%m-%d %H:%M UTC'), device $DEVICE, $("$SKFAC_BIN" --version)"
section() { echo; echo "== $1 ($(date -u +%H:%M:%S))"; }

section "1. nvidia-smi"
if command -v nvidia-smi >/dev/null; then nvidia-smi | tee "$OUT/nvidia-smi.txt"; else echo "no nvidia-smi here"; fi

section "2. step throughput, skfac vs PyTorch"
# The number N of a benchmark's last line `N img/s`, its output echoed.
img_per_s() {
    local out
    out=$("$@") || { echo "failed: $*" >&2; echo "-"; return; }
    printf '%s\n' "$out" >&2
    [[ $(tail -n 1 <<<"$out") =~ ^([0-9.]+)\ img/s$ ]] && echo "${BASH_REMATCH[1]}" || echo "-"
}
{
    echo "| model | batch | skfac img/s | PyTorch img/s | skfac/PyTorch |"
    echo "| --- | ---: | ---: | ---: | ---: |"
} >"$OUT/step.md"
for mb in "${STEP_MODELS[@]}"; do
    read -r model batch <<<"$mb"
    s=$(img_per_s "$SKFAC_BIN" bench-step "$model" "$batch" 2 --device "$DEVICE")
    t=$(img_per_s "$PYTHON" bench/pytorch_step.py "$model" "$batch" 2 --device "$DEVICE")
    r=$(awk -v a="$s" -v b="$t" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')
    echo "| $model | $batch | $s | $t | $r |" >>"$OUT/step.md"
done
cat "$OUT/step.md"

section "3. CPU vs $DEVICE: the same seeded steps of every optimizer"
{
    echo "| optimizer | steps | largest relative difference of the trained weights |"
    echo "| --- | ---: | --- |"
} >"$OUT/agreement.md"
# Each entry: the optimizer, then extra flags (K-FAC's two cuSOLVER paths both).
for run in "sgd" "adam" "kfac" "kfac --dense-method cholesky" "kfac-sua" "skfac-rs" "skfac-ss"; do
    read -r opt extra <<<"$run"
    for dev in cpu "$DEVICE"; do
        # shellcheck disable=SC2086 # $extra is a list of flags
        "$SKFAC_BIN" train --model resnet8 --optimizer "$opt" $extra --data-dir "$DATA" \
            --device "$dev" --train-subset "$SUBSET" --epochs 1 --t-cov 1 --t-inv 2 \
            --damping 0.3 --threads 2 --quiet --save-model "$OUT/agree-${dev%%:*}.safetensors"
    done
    d=$("$PYTHON" bench/compare_models.py "$OUT/agree-cpu.safetensors" \
        "$OUT/agree-${DEVICE%%:*}.safetensors" --tolerance 1e-2 || true)
    echo "| $run | $((SUBSET / 32)) | $d |" >>"$OUT/agreement.md"
    rm -f "$OUT"/agree-*.safetensors
done
cat "$OUT/agreement.md"

section "4. bench-gains"
for model in "${GAINS_MODELS[@]}"; do
    "$SKFAC_BIN" bench-gains --model "$model" --device "$DEVICE" --db "$OUT/gains.db" \
        --plot "$OUT/gains-$model.svg" --threads 2 "${GAINS_ARGS[@]}" | tee "$OUT/gains-$model.txt"
done

section "5. real-data training on $DEVICE"
"$SKFAC_BIN" train "${TRAIN_ARGS[@]}" --optimizer skfac-rs --data-dir "$DATA" --device "$DEVICE" \
    --epochs 1 --threads 2 | tee "$OUT/train.txt"

section "done"
