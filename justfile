# Entry points of the SKFAC harness. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Threads for training and benchmarks; results are reproducible for a fixed count.
threads := env("SKFAC_THREADS", "2")
skfac := "target/release/skfac"

# Run the test suite (release build: tests that train are fast, and it shares the binary's build),
# with the `mpi` feature so the two-process tests run (scripts/setup.sh installs Open MPI).
# The thread count is fixed up front so parallel tests never change the environment mid-run.
test:
    RAYON_NUM_THREADS=2 cargo test --release --workspace --features harness/mpi

# The test suite without MPI (no Open MPI or libclang needed).
test-local:
    RAYON_NUM_THREADS=2 cargo test --release --workspace

# Build the `skfac` binary.
build:
    cargo build --release -p harness

# Build `skfac` with data-parallel training over MPI (`mpirun -np P target/release/skfac train ...`).
build-mpi:
    cargo build --release -p harness --features mpi

# Install the CUDA 13.0 toolkit pieces the `cuda` feature compiles with into .cuda/ (pip, no root).
setup-cuda:
    bash scripts/setup-cuda.sh .cuda

# Build `skfac` with the CUDA backend (`--device cuda`) into target/cuda/release/skfac, apart
# from the CPU build. It runs where an NVIDIA driver (CUDA 13.0+) and NVIDIA's libraries are on
# LD_LIBRARY_PATH; scripts/gpu-check.sh runs the GPU checks with it.
build-cuda: setup-cuda
    source .cuda/env.sh && cargo build --release -p harness --features cuda --target-dir target/cuda

# What a GPU machine without a Rust toolchain needs, in gpu-bundle/ (about 35 MB): the CUDA
# build stripped and compressed, and 1,000 records of each CIFAR-10 file (from data/, which
# `just data` fills). There: `gunzip -k gpu-bundle/skfac.gz && SKFAC_BIN=gpu-bundle/skfac
# DATA=gpu-bundle/data scripts/gpu-check.sh OUTDIR`.
gpu-bundle: build-cuda
    rm -rf gpu-bundle && mkdir -p gpu-bundle
    strip -o gpu-bundle/skfac target/cuda/release/skfac && gzip -9 gpu-bundle/skfac
    bash scripts/cifar-subset.sh data gpu-bundle/data 1000
    du -sh gpu-bundle

# Compile the `cuda` feature and its tests without a GPU (CI runs this so the CUDA code cannot
# rot; `cargo check`, since a fresh machine may have no clippy).
check-cuda: setup-cuda
    source .cuda/env.sh && cargo check --release -p harness --all-targets --features cuda --target-dir target/cuda

# Obtain and verify a data set (cifar10 or fashion-mnist) into data/; does nothing if present.
data name="cifar10": build
    {{skfac}} data {{name}} --dir data

# The default quick job: ResNet-8 with SGD for one epoch on 5,000 real CIFAR-10 images.
train *args="--model resnet8 --optimizer sgd --epochs 1 --train-subset 5000": build
    dataset=cifar10; if [[ "{{args}}" == *"--model mlp"* || "{{args}}" == *"fashion-mnist"* ]]; then dataset=fashion-mnist; fi; \
    {{skfac}} data "$dataset" --dir data
    {{skfac}} train --data-dir data --threads {{threads}} {{args}}

# Run sweeps/NAME.toml into results/runs.db (obtains its data first); run again to resume.
sweep name="cifar10" *args="": build
    {{skfac}} sweep sweeps/{{name}}.toml --threads {{threads}} {{args}}

# Write the report of sweep NAME (every sweep if empty) into results/reports/NAME/.
report name="":
    cargo build --release -p harness
    if [ -n "{{name}}" ]; then {{skfac}} report --sweep "{{name}}"; else {{skfac}} report; fi

# Time every optimizer on fixed shapes and store the stage times with the git commit.
bench-gains *args="": build
    {{skfac}} bench-gains --threads {{threads}} {{args}}

# Compare the newest bench-gains record with a baseline; fails on a regressed ratio.
regress *args="": build
    {{skfac}} regress {{args}}

# Benchmarks: the K-FAC family's inverse and precondition stages on ResNet-34's layer shapes.
bench:
    RAYON_NUM_THREADS={{threads}} cargo bench -p harness --bench curvature

# Time training steps of MODEL at BATCH on THREADS threads (median of 8 after 3 warm-up).
bench-step model="resnet8" batch="32" threads=threads: build
    {{skfac}} bench-step {{model}} {{batch}} {{threads}}

# Fault-injection soak: a `--jobs 2` sweep killed KILLS times at random moments (the process
# group, the main process alone, SIGTERM) and restarted until it finishes; prints the figures.
soak kills="20":
    SOAK_KILLS={{kills}} RAYON_NUM_THREADS=2 cargo test --release -p harness --test faults soak -- --ignored --nocapture

# Lints as CI would like them, and the API docs without a warning (missing docs included).
lint:
    cargo fmt --all --check
    cargo clippy --release --workspace --all-targets -- -D warnings
    cargo clippy --release --workspace --all-targets --features harness/mpi -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace

# Train a convnet written as user code (`harness/examples/own_model.rs`) with SKFAC-RS.
own-model *args="":
    cargo run --release --example own_model -- {{args}}
