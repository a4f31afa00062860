"""PyTorch's damped inverses (F + λI)⁻¹ of the statistic `skfac bench-inverse` times, the way
the reference K-FAC implementations compute them, for bench/inverse-compare.sh.

F = XᵀX/(4n) for a standard-normal 4n×n X, λ = 1e-3, on the CPU:
  eigen:    torch.linalg.eigh, then V·diag(1/(max(w, 0) + λ))·Vᵀ (kfac-pytorch's
            preconditioner; its `inv_dtype` defaults to float32)
  cholesky: torch.linalg.cholesky of F + λI, then torch.cholesky_inverse (ASDL)
  eigh:     torch.linalg.eigh alone, for reference

Usage: pytorch_inverse.py N METHOD PRECISION THREADS [REPS]
Prints one line: `N METHOD PRECISION MS residual R`, the median milliseconds of REPS
(default 3) after one warm-up, and the largest entry of (F + λI)·X − I in f64.
"""

import statistics
import sys
import time

import torch

DAMPING = 1e-3


def statistic(n, dtype):
    x = torch.randn(4 * n, n, dtype=torch.float32)
    return (x.T @ x / (4 * n)).to(dtype)


def eigen(f):
    w, v = torch.linalg.eigh(f)
    return (v / (w.clamp(min=0) + DAMPING)) @ v.T


def cholesky(f):
    eye = torch.eye(f.shape[0], dtype=f.dtype)
    return torch.cholesky_inverse(torch.linalg.cholesky(f + DAMPING * eye))


def eigh(f):
    return torch.linalg.eigh(f)[1]


def main():
    n, method, precision, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    reps = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    n = int(n)
    dtype = {"f32": torch.float32, "f64": torch.float64}[precision]
    fn = {"eigen": eigen, "cholesky": cholesky, "eigh": eigh}[method]
    f = statistic(n, dtype)
    out = fn(f)
    secs = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn(f)
        secs.append(time.perf_counter() - t)
    residual = float("nan")
    if method != "eigh":
        damped = f.double() + DAMPING * torch.eye(n, dtype=torch.float64)
        residual = (damped @ out.double() - torch.eye(n, dtype=torch.float64)).abs().max().item()
    print(f"{n} {method} {precision} {statistics.median(secs) * 1e3:.3f} residual {residual:.1e}")


if __name__ == "__main__":
    main()
