#!/usr/bin/env bash
# Copies the first N records (default 1000) of each CIFAR-10 binary file from SRC's
# cifar-10-batches-bin/ into DST's: a small real data set to carry where the full 184 MB cannot
# go (the GPU machine takes 64 MiB per call; 1000 records of the six files are 18 MB). `skfac`
# reads it as CIFAR-10 with 5N training and N test images.
#
#   scripts/cifar-subset.sh SRC DST [N]
set -euo pipefail
SRC=${1:?usage: scripts/cifar-subset.sh SRC DST [N]}
DST=${2:?usage: scripts/cifar-subset.sh SRC DST [N]}
N=${3:-1000}
RECORD=3073
mkdir -p "$DST/cifar-10-batches-bin"
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
    src="$SRC/cifar-10-batches-bin/$f.bin"
    [[ -f $src ]] || { echo "cifar-subset.sh: $src missing; run 'skfac data cifar10 --dir $SRC'" >&2; exit 1; }
    head -c $((RECORD * N)) "$src" >"$DST/cifar-10-batches-bin/$f.bin"
done
echo "$DST/cifar-10-batches-bin: $((5 * N)) training and $N test records"
