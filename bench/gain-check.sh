#!/usr/bin/env bash
# End-to-end check that the wall-clock gain `skfac bench-gains` predicts is the one training
# gets: trains K-FAC and SKFAC-RS on IMAGES real CIFAR-10 images (one epoch, several inverse
# refreshes at T_cov/T_inv) and compares the ratio of their training seconds (evaluation
# excluded) with the ratio of the amortised iteration times bench-gains composes for the same
# periods, for K-FAC as its peers run it (eigen, f32) and for its fastest configuration here
# (bench-gains' choice). Each row trains REPEAT times, the rounds in alternating order, and keeps
# its median. Exits 1 when a ratio differs by more than TOLERANCE. Override THREADS, MODEL,
# IMAGES, T_COV, T_INV, CYCLES, REPEAT, DATA, SKFAC_BIN and TOLERANCE via the environment. The
# defaults (50 steps of VGG-11, two refreshes, three rounds) take about half an hour on 2 cores.
# Run it on a quiet machine.
# Training takes bench-gains' damping and the paper's SKFAC rows (moving average of M rows).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
MODEL=${MODEL:-vgg11}
IMAGES=${IMAGES:-1600}
T_COV=${T_COV:-5}
T_INV=${T_INV:-25}
DATA=${DATA:-data}
SKFAC_BIN=${SKFAC_BIN:-target/release/skfac}
TOLERANCE=${TOLERANCE:-0.15}
CYCLES=${CYCLES:-2}
REPEAT=${REPEAT:-3}
[[ -x $SKFAC_BIN ]] || { echo "gain-check.sh: $SKFAC_BIN missing; run 'just build'" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "THREADS=$THREADS MODEL=$MODEL IMAGES=$IMAGES T_COV=$T_COV T_INV=$T_INV CYCLES=$CYCLES REPEAT=$REPEAT bench/gain-check.sh"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc --all) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$SKFAC_BIN" data cifar10 --dir "$DATA" >&2

gains=$("$SKFAC_BIN" bench-gains --db "$tmp/gains.db" --model "$MODEL" --t-cov "$T_COV" \
    --t-inv "$T_INV" --cycles "$CYCLES" --threads "$THREADS")
printf '%s\n' "$gains" >&2
# The amortised iteration (ms) of row $1 (`skfac-rs`, `kfac (eigen, f32)`): the first number
# after the `|` of bench-gains' table.
iteration() {
    awk -F'|' -v o="$1" 'index($1, o " ") == 1 { split($2, f, " "); print f[1] }' <<<"$gains"
}
# The K-FAC rows to check: as its peers run it, and the fastest configuration that trains.
fastest=$(sed -n 's/^fastest K-FAC that trains: \(kfac (.*)\)$/\1/p' <<<"$gains")
rows=("kfac (eigen, f32)")
[[ -n $fastest && $fastest != "${rows[0]}" ]] && rows+=("$fastest")

# Training seconds of one epoch of row $1, from `skfac train`'s closing line: a K-FAC row
# trains in its configuration.
train_seconds() {
    local out opt=$1 extra=()
    if [[ $1 =~ ^kfac\ \((eigen|cholesky),\ (f32|f64)\)$ ]]; then
        opt=kfac extra=(--dense-method "${BASH_REMATCH[1]}" --inverse-dtype "${BASH_REMATCH[2]}")
    fi
    out=$("$SKFAC_BIN" train --model "$MODEL" --optimizer "$opt" ${extra[@]+"${extra[@]}"} --data-dir "$DATA" \
        --train-subset "$IMAGES" --epochs 1 --t-cov "$T_COV" --t-inv "$T_INV" \
        --lr 0.05 --damping 0.3 --damping-split each --row-average ema --threads "$THREADS" --quiet)
    printf '%s\n' "$out" >&2
    sed -n 's/^finished:.* steps, .* training (\([0-9.]*\) s)$/\1/p' <<<"$out"
}

steps=$((IMAGES / 32))
all=("${rows[@]}" skfac-rs)
declare -A predicted measured seconds
for row in "${all[@]}"; do
    predicted[$row]=$(iteration "$row")
    [[ -n ${predicted[$row]} ]] || { echo "gain-check.sh: no $row row in bench-gains' table" >&2; exit 1; }
done
# REPEAT rounds of training runs, each round in the reverse order of the one before, so that a
# slow spell of the machine falls on every row alike; each row keeps its median.
for ((r = 0; r < REPEAT; r++)); do
    order=("${all[@]}")
    if ((r % 2)); then
        order=()
        for ((i = ${#all[@]} - 1; i >= 0; i--)); do order+=("${all[i]}"); done
    fi
    for row in "${order[@]}"; do
        s=$(train_seconds "$row")
        [[ -n $s ]] || { echo "gain-check.sh: could not read $row's training seconds" >&2; exit 1; }
        seconds[$row]+="$s "
    done
done
echo
echo "| optimizer | predicted ms/iteration | measured ms/step (median of $REPEAT: training s / $steps steps) | each run's ms/step |"
echo "| --- | ---: | ---: | --- |"
for row in "${all[@]}"; do
    runs=$(for s in ${seconds[$row]}; do awk -v s="$s" -v n="$steps" 'BEGIN { printf "%.1f\n", 1e3 * s / n }'; done)
    measured[$row]=$(sort -g <<<"$runs" | awk '{ v[NR] = $1 } END { printf "%.1f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    echo "| $row | ${predicted[$row]} | ${measured[$row]} | $(paste -sd' ' <<<"$runs") |"
done
echo
status=0
for row in "${rows[@]}"; do
    what=$row
    [[ $row == "$fastest" && $row != "${rows[0]}" ]] && what="$row, the fastest"
    awk -v pk="${predicted[$row]}" -v ps="${predicted[skfac-rs]}" -v mk="${measured[$row]}" \
        -v ms="${measured[skfac-rs]}" -v tol="$TOLERANCE" -v what="$what" 'BEGIN {
        p = pk / ps; m = mk / ms; d = m / p - 1
        printf "%s / skfac-rs: predicted %.2f, measured %.2f, difference %+.1f%% (tolerance %.0f%%)\n",
            what, p, m, 100 * d, 100 * tol
        exit (d < -tol || d > tol) ? 1 : 0
    }' || status=1
done
[[ -n $fastest ]] || echo "(no K-FAC configuration trained without a failed refresh)"
exit $status
