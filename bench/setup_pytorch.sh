#!/usr/bin/env bash
# Creates bench/.venv with PyTorch (used on the CPU) for bench/pytorch_step.py. Idempotent: does
# nothing once torch and numpy import from the venv.
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv
if [[ -x $venv/bin/python ]] && $venv/bin/python -c 'import torch, numpy' 2>/dev/null; then
    exit 0
fi
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# The CPU-only index avoids ~4 GB of CUDA wheels but may be unreachable (only PyPI is here), so
# fall back to PyPI's CUDA build; its CPU kernels are the same. numpy only silences a warning.
if ! "${pip[@]}" --retries 1 --timeout 30 torch numpy --index-url https://download.pytorch.org/whl/cpu; then
    echo "setup_pytorch: CPU index unreachable, installing torch from PyPI" >&2
    "${pip[@]}" torch numpy
fi
"$venv/bin/python" -c 'import torch; print("torch", torch.__version__)' >&2
