"""The machine's f32 matmul throughput through numpy's BLAS (OpenBLAS in the pip wheels), the
peak against which `archzoo bench` utilisation is read: the same `[batch, n, n] x [batch, n, n]`
products as `archzoo bench matmul`, timed the same way (2 warm-up products, then the median).

    python3 experiments/peers/matmul_numpy.py [--threads 2] [--batch 1] [--n 1024] [--repeats 20]

Needs `numpy` (pip install numpy); prints one JSON line.
"""

import argparse
import json
import os
import statistics
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    # BLAS reads its thread count when it loads: set it before the import.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((args.batch, args.n, args.n), dtype=np.float32)
    b = rng.random((args.batch, args.n, args.n), dtype=np.float32)
    samples = []
    for i in range(args.repeats + 2):
        started = time.perf_counter()
        np.matmul(a, b)
        if i >= 2:
            samples.append((time.perf_counter() - started) * 1e3)
    median_ms = statistics.median(samples)
    flops = 2.0 * args.batch * args.n**3
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    print(
        json.dumps(
            {
                "backend": f"numpy {np.__version__} ({blas.get('name')} {blas.get('version')})",
                "batch": args.batch,
                "n": args.n,
                "threads": args.threads,
                "median_ms": median_ms,
                "gflops": flops / (median_ms * 1e-3) / 1e9,
            }
        )
    )


if __name__ == "__main__":
    main()
