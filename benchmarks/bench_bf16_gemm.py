"""bf16 GEMM (fp32 accumulation) vs the fp32 OpenBLAS GEMM on ViT-B linear shapes.

    PYTHONPATH=python python benchmarks/bench_bf16_gemm.py [--threads 1] [--batch 8]

M = 197 * batch tokens; (N, K) = QKV fused (2304, 768), attention output / QKV each (768, 768),
MLP fc1 (3072, 768), fc2 (768, 3072). Reports GFLOP/s = 2MNK / best time."""
import argparse
import time

import numpy as np

import visionc
from visionc import ops


def best(fn, reps):
    fn()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    visionc.set_num_threads(args.threads)
    M = 197 * args.batch
    rng = np.random.default_rng(0)
    print(f"threads={args.threads} M={M} bf16 kernel: {'AVX512_BF16' if ops.bf16_native() else 'fallback'}")
    print(f"{'N':>5} {'K':>5} {'fp32 GF/s':>10} {'bf16 GF/s':>10} {'speedup':>8}")
    for N, K in [(768, 768), (2304, 768), (3072, 768), (768, 3072)]:
        x = rng.standard_normal((M, K), dtype=np.float32)
        w = rng.standard_normal((N, K), dtype=np.float32)
        flops = 2.0 * M * N * K
        t32 = best(lambda: ops.linear(x, w), args.reps)
        t16 = best(lambda: ops.linear(x, w, dtype="bf16"), args.reps)
        print(f"{N:>5} {K:>5} {flops / t32 / 1e9:>10.1f} {flops / t16 / 1e9:>10.1f} {t32 / t16:>7.2f}x")


if __name__ == "__main__":
    main()
