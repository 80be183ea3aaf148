"""The matrix products of a training step timed alone through PyTorch's or numpy's BLAS: the
same list and the same timing as `archzoo bench gemm-floor` (each repetition runs every product
once on inputs allocated once; 2 warm-up repetitions, then the median of the repetitions' sums),
so the floor under a step can be read for every matmul library on the machine, not only flex's.

    python3 experiments/peers/gemm_floor.py --library torch|numpy --products 2688x512x512,...
        [--gradients] [--threads 2] [--repeats 20]

A product is `MxKxN` (`[m, k] x [k, n]`) or `BxMxKxN`; with `--gradients` each is followed by
its two backward products, `dC B^T` (`[m, n] x [n, k]`) and `A^T dC` (`[k, m] x [m, n]`).
Needs `torch` or `numpy` (pip install torch numpy); prints one JSON line.
"""

import argparse
import json
import os
import statistics
import time


def product(text):
    sides = [int(side) for side in text.split("x")]
    if len(sides) not in (3, 4) or min(sides) <= 0:
        raise argparse.ArgumentTypeError(f"`{text}`: a product is MxKxN or BxMxKxN")
    return tuple(sides) if len(sides) == 4 else (1, *sides)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", choices=["torch", "numpy"], required=True)
    parser.add_argument("--products", required=True,
                        type=lambda text: [product(p) for p in text.split(",")])
    parser.add_argument("--gradients", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    # BLAS reads its thread count when it loads: set it before the import.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    listed = []
    for batch, m, k, n in args.products:
        listed.append((batch, m, k, n))
        if args.gradients:
            listed.append((batch, m, n, k))  # dA = dC B^T
            listed.append((batch, k, m, n))  # dB = A^T dC

    if args.library == "torch":
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        factors = [(torch.rand(b, m, k), torch.rand(b, k, n)) for b, m, k, n in listed]
        matmul = torch.matmul
        backend = f"torch {torch.__version__}"
    else:
        import numpy as np

        rng = np.random.default_rng(0)
        factors = [
            (rng.random((b, m, k), dtype=np.float32), rng.random((b, k, n), dtype=np.float32))
            for b, m, k, n in listed
        ]
        matmul = np.matmul
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        backend = f"numpy {np.__version__} ({blas.get('name')} {blas.get('version')})"

    totals = []
    for repeat in range(args.repeats + 2):
        total = 0.0
        for a, b in factors:
            started = time.perf_counter()
            matmul(a, b)
            total += (time.perf_counter() - started) * 1e3
        if repeat >= 2:
            totals.append(total)
    median_ms = statistics.median(totals)
    flops = sum(2.0 * b * m * k * n for b, m, k, n in listed)
    print(json.dumps({
        "backend": backend,
        "threads": args.threads,
        "products": len(listed),
        "median_ms": median_ms,
        "min_ms": min(totals),
        "max_ms": max(totals),
        "flops": flops,
        "gflops": flops / (median_ms * 1e-3) / 1e9,
    }))


if __name__ == "__main__":
    main()
