#!/usr/bin/env bash
# Side-by-side damped inverses (F + λI)⁻¹, ours (`skfac bench-inverse`, faer) against PyTorch
# (bench/pytorch_inverse.py: eigh + V·diag·Vᵀ as kfac-pytorch, cholesky + cholesky_inverse as
# ASDL), for each size, method and precision, as a markdown table on stdout; the benchmarks'
# own output goes to stderr. Both sides invert F = XᵀX/(4n), X a 4n×n Gaussian, λ = 1e-3, and
# report the median of REPS after one warm-up; size by size, ours then PyTorch's, never at
# once. Override THREADS, SIZES, REPS and SKFAC_BIN via the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
SIZES=${SIZES:-577 2305 4609}
REPS=${REPS:-3}
SKFAC_BIN=${SKFAC_BIN:-target/release/skfac}
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

bash bench/setup_pytorch.sh
[[ -x $SKFAC_BIN ]] || { echo "inverse-compare.sh: $SKFAC_BIN missing; run 'just build'" >&2; exit 1; }
py=bench/.venv/bin/python

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
simd=$(grep -o -m1 -w 'avx512f' /proc/cpuinfo || grep -o -m1 -w 'avx2' /proc/cpuinfo || echo "no AVX2")
echo "THREADS=$THREADS SIZES='$SIZES' REPS=$REPS SKFAC_BIN=$SKFAC_BIN bench/inverse-compare.sh"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $cpu ($simd), $(nproc --all) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $($py -c 'import torch; print("torch", torch.__version__)')"
echo
echo "| n | method | precision | ours ms | PyTorch ms | ours/PyTorch | ours residual | PyTorch residual |"
echo "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"
for n in $SIZES; do
    ours=$("$SKFAC_BIN" bench-inverse --sizes "$n" --reps "$REPS" --threads "$THREADS")
    printf '%s\n' "$ours" >&2
    for method in cholesky eigen; do
        for precision in f32 f64; do
            # The row `n method precision ms — — — residual`.
            row=$(awk -v n="$n" -v m="$method" -v p="$precision" \
                '$1 == n && $2 == m && $3 == p { print $4, $NF }' <<<"$ours")
            [[ -n $row ]] || { echo "inverse-compare.sh: no row for $n $method $precision" >&2; exit 1; }
            read -r ms res <<<"$row"
            theirs=$($py bench/pytorch_inverse.py "$n" "$method" "$precision" "$THREADS" "$REPS")
            echo "$theirs" >&2
            read -r _ _ _ tms _ tres <<<"$theirs"
            ratio=$(awk -v a="$ms" -v b="$tms" 'BEGIN { printf "%.2f", a / b }')
            echo "| $n | $method | $precision | $ms | $tms | $ratio | $res | $tres |"
        done
    done
    # PyTorch's eigendecomposition alone, for how much of eigen is the product V·diag·Vᵀ.
    for precision in f32 f64; do
        $py bench/pytorch_inverse.py "$n" eigh "$precision" "$THREADS" "$REPS" >&2
    done
done
