#!/usr/bin/env bash
# Installs the CUDA 13.0 toolkit pieces that building the `cuda` feature needs (nvcc, cicc,
# the headers, the static CUDA runtime) from PyPI into DIR (default .cuda/; no root, no system CUDA) and
# writes DIR/env.sh, which `just build-cuda` and `just check-cuda` source. Safe to run again.
#
# Pinned to 13.0.x: the GPU machines' driver (580, CUDA 13.0) rejects PTX from newer
# toolkits. The built binary needs no toolkit: at run time cudarc loads the driver and
# NVIDIA's libraries (cuBLAS, cuRAND, cuSOLVER) from LD_LIBRARY_PATH.
#
#   scripts/setup-cuda.sh [DIR]
#   env: CUDA_COMPUTE_CAP (90, Hopper), CUDAFORGE_THREADS (all cores)
set -euo pipefail
DIR=${1:-.cuda}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
WHEELS=(
    nvidia-cuda-nvcc==13.0.88    # nvcc, ptxas
    nvidia-nvvm==13.0.88         # cicc
    nvidia-cuda-runtime==13.0.96 # cuda_runtime.h, cuda_fp16.h, ..., libcudart_static.a
    nvidia-cuda-crt==13.0.88     # crt/
    nvidia-cuda-cccl==13.0.85    # cub, thrust, cuda/std
)
find_nvcc() { find "$DIR/py" -path '*/bin/nvcc' -type f 2>/dev/null | head -n 1; }
if [[ -z $(find_nvcc) ]]; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$DIR/py" "${WHEELS[@]}"
fi
nvcc=$(find_nvcc)
[[ -n $nvcc ]] || { echo "setup-cuda.sh: no nvcc under $DIR/py after installing ${WHEELS[*]}" >&2; exit 1; }
root=$(dirname "$(dirname "$nvcc")")
cudart=$(find "$DIR/py" -name 'libcudart_static.a' | head -n 1)
[[ -n $cudart ]] || { echo "setup-cuda.sh: no libcudart_static.a under $DIR/py" >&2; exit 1; }
# candle-kernels links `cudart` by name; offered only the static archive under that name, the
# linker takes it, and the binary needs no libcudart where it runs (with libcudart.so.13 it
# would not even start on a machine without one, for a CPU run).
mkdir -p "$DIR/lib"
rm -f "$DIR/lib/libcudart.so"
ln -sf "$cudart" "$DIR/lib/libcudart.a"
cat >"$DIR/env.sh" <<EOS
# Written by scripts/setup-cuda.sh: the toolkit the \`cuda\` feature compiles with.
export PATH="$root/bin:\$PATH"
export CUDA_HOME="$root"
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
export CUDAFORGE_THREADS=\${CUDAFORGE_THREADS:-$(nproc)}
export CUDARC_CUDA_VERSION=13000
export LIBRARY_PATH="$DIR/lib\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
EOS
echo "setup-cuda.sh: $("$nvcc" --version | tail -n 2 | head -n 1); environment in $DIR/env.sh"
