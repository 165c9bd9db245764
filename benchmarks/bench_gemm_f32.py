"""fp32 GEMM, one thread: visionc's AVX-512 kernel against OpenBLAS on the GEMMs the models run.

    PYTHONPATH=python python benchmarks/bench_gemm_f32.py [--reps 15] [--save ours.json]
    env -u OPENBLAS_CORETYPE PYTHONPATH=python python benchmarks/bench_gemm_f32.py --compare ours.json

OpenBLAS reads OPENBLAS_CORETYPE when it loads, so one process times one OpenBLAS configuration:
run the script once as the environment is (here OPENBLAS_CORETYPE=Haswell: AVX2 kernels) and
once without the variable (OpenBLAS's own choice: its AVX-512 "SkylakeX" kernels on this CPU).
--save writes this run's figures; --compare adds a column with the OpenBLAS figures of a saved
run, so the second run prints ours vs both OpenBLAS configurations.

--cold rotates each call over enough copies of a and b (64 MB or more) that they come from
memory, as a model's weights do (ViT-B's 340 MB cannot stay in cache between two uses);
without it the operands stay in cache from one call to the next.

Every shape is validated first (ours against OpenBLAS, within the fp32 rounding bound), then
timed with ours and OpenBLAS interleaved in this process, best of --reps samples each (the
machine is shared: the best sample is the one least disturbed). GFLOP/s = 2MNK / time. "ours"
is visionc's kernel called directly; for shapes of at most 1e6 multiply-adds, where vc_sgemm
sends some GEMMs to OpenBLAS when OpenBLAS runs its AVX-512 kernels, the "vc_sgemm" column
times what the layers get. Each call from Python costs ~0.5 us more than the GEMM: figures of
the small shapes are lower than in C for both libraries.

Shapes (row-major, c[M,N] = op(a)[M,K] . op(b)[K,N]; NT = b transposed, as nn.Linear weights):
  ViT-B/16 forward, batch 1 and 8 (M = 197 / 1576 tokens): qkv, attention output, fc1, fc2
  ViT-B/16 backward, batch 8: dX = dY . W (NN), dW = dY^T . X (TN)
  attention, T = 197 tokens, head size 64: S = Q K^T, O = P V, backward dV = P^T dO
  ConvNeXt-femto 1x1 convolutions per image (M = out channels, N = H*W, K = in channels), and
  their backward (dW: NT with K = H*W, dX: TN)
  small shapes: attention at short sequences and small squares (where a kernel's fixed costs
  show, and OpenBLAS's SkylakeX build has dedicated small-matrix kernels)."""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads its BLAS: no threads spinning beside us
import numpy as np  # noqa: E402

import visionc  # noqa: E402
from visionc import _C  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine  # noqa: E402

SHAPES = [
    # (group, name, trans_a, trans_b, M, N, K)
    ("vit-b b1", "qkv", 0, 1, 197, 2304, 768),
    ("vit-b b1", "attn out", 0, 1, 197, 768, 768),
    ("vit-b b1", "fc1", 0, 1, 197, 3072, 768),
    ("vit-b b1", "fc2", 0, 1, 197, 768, 3072),
    ("vit-b b8", "qkv", 0, 1, 1576, 2304, 768),
    ("vit-b b8", "attn out", 0, 1, 1576, 768, 768),
    ("vit-b b8", "fc1", 0, 1, 1576, 3072, 768),
    ("vit-b b8", "fc2", 0, 1, 1576, 768, 3072),
    ("vit-b b8 bwd", "dX fc1", 0, 0, 1576, 768, 3072),
    ("vit-b b8 bwd", "dX fc2", 0, 0, 1576, 3072, 768),
    ("vit-b b8 bwd", "dW qkv", 1, 0, 2304, 768, 1576),
    ("vit-b b8 bwd", "dW fc1", 1, 0, 3072, 768, 1576),
    ("vit-b b8 bwd", "dW fc2", 1, 0, 768, 3072, 1576),
    ("attention", "S = Q K^T", 0, 1, 197, 197, 64),
    ("attention", "O = P V", 0, 0, 197, 64, 197),
    ("attention", "dV = P^T dO", 1, 0, 197, 64, 197),
    ("convnext-f", "s0 pw1", 0, 0, 192, 3136, 48),
    ("convnext-f", "s0 pw2", 0, 0, 48, 3136, 192),
    ("convnext-f", "s1 pw1", 0, 0, 384, 784, 96),
    ("convnext-f", "s1 pw2", 0, 0, 96, 784, 384),
    ("convnext-f", "s2 pw1", 0, 0, 768, 196, 192),
    ("convnext-f", "s2 pw2", 0, 0, 192, 196, 768),
    ("convnext-f", "s3 pw1", 0, 0, 1536, 49, 384),
    ("convnext-f", "s3 pw2", 0, 0, 384, 49, 1536),
    ("convnext-f bwd", "s0 dW pw1", 0, 1, 192, 48, 3136),
    ("convnext-f bwd", "s0 dX pw1", 1, 0, 48, 3136, 192),
    ("convnext-f bwd", "s2 dW pw2", 0, 1, 192, 768, 196),
    ("convnext-f bwd", "s2 dX pw2", 1, 0, 768, 196, 192),
    ("small", "attn T=8", 0, 1, 8, 8, 64),
    ("small", "attn T=16", 0, 1, 16, 16, 64),
    ("small", "attn T=32", 0, 1, 32, 32, 64),
    ("small", "attn T=64", 0, 1, 64, 64, 64),
    ("small", "attn T=100", 0, 1, 100, 100, 64),
    ("small", "PV T=8", 0, 0, 8, 64, 8),
    ("small", "PV T=16", 0, 0, 16, 64, 16),
    ("small", "PV T=32", 0, 0, 32, 64, 32),
    ("small", "PV T=64", 0, 0, 64, 64, 64),
    ("small", "square 4", 0, 0, 4, 4, 4),
    ("small", "square 8", 0, 0, 8, 8, 8),
    ("small", "square 16", 0, 0, 16, 16, 16),
    ("small", "square 32", 0, 0, 32, 32, 32),
]

U = 2.0 ** -24
SMALL_MNK = 1e6  # at or below, vc_sgemm hands some GEMMs to OpenBLAS when it runs AVX-512 kernels


def openblas_core() -> str:
    import scipy_openblas32
    lib = ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), "lib" + scipy_openblas32.get_library() + ".so"))
    fn = lib.scipy_openblas_get_corename
    fn.restype = ctypes.c_char_p
    return fn().decode()


def sample(fn, min_seconds=0.004):
    """Seconds per call, averaged over enough calls to fill min_seconds."""
    n, t = 1, 0.0
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - start
        if t >= min_seconds:
            return t / n
        n *= 2


def validate(a, b, ta, tb):
    ours = _C.gemm_f32(a, b, ta, tb, backend="avx512")
    ref = _C.gemm_f32(a, b, ta, tb, backend="openblas")
    a_op, b_op = (a.T if ta else a), (b.T if tb else b)
    bound = 2 * (a_op.shape[1] + 2) * U * (np.abs(a_op) @ np.abs(b_op)) + 1e-30
    worst = float((np.abs(ours - ref) / bound).max())
    if worst > 1:
        raise SystemExit(f"validation failed: ours vs OpenBLAS at {worst:.3g} of the rounding bound")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=15, help="samples per shape and GEMM (best is kept)")
    ap.add_argument("--groups", nargs="*", help="only these shape groups (e.g. 'vit-b b1' attention)")
    ap.add_argument("--cold", action="store_true", help="operands from memory (rotate over copies), not cache")
    ap.add_argument("--save", help="write this run's figures (JSON)")
    ap.add_argument("--compare", help="a saved run: add its OpenBLAS GFLOP/s and our ratio to it")
    args = ap.parse_args()
    if not _C.cpu_features()["avx512f"]:
        raise SystemExit("this CPU has no AVX-512F: visionc uses OpenBLAS for every GEMM")
    visionc.set_num_threads(1)
    other = json.load(open(args.compare)) if args.compare else None
    core = openblas_core()
    print(f"machine: {machine()}; 1 thread; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
          f"(OpenBLAS core: {core}); operands {'from memory' if args.cold else 'in cache'}; "
          f"load average {os.getloadavg()[0]:.2f}")
    if other:
        print(f"compare: OpenBLAS core {other['openblas_core']} from {args.compare}")
    head = f"{'group':<15}{'shape':<13}{'op':<4}{'M':>6}{'N':>6}{'K':>6}{'ours':>8}{core:>10}{'ratio':>7}"
    if other:
        head += f"{other['openblas_core']:>10}{'ratio':>7}"
    print(head + "   (GFLOP/s)")
    rng = np.random.default_rng(0)
    results = []
    for group, name, ta, tb, M, N, K in SHAPES:
        if args.groups and group not in args.groups:
            continue
        a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
        b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
        c = np.empty((M, N), np.float32)
        validate(a, b, ta, tb)
        copies = [(a, b)]
        if args.cold:
            copies += [(a.copy(), b.copy()) for _ in range(int(64e6 // (a.nbytes + b.nbytes)))]
        turn = [0]

        def call(backend):
            x, y = copies[turn[0] % len(copies)]
            turn[0] += 1
            _C.gemm_f32(x, y, ta, tb, c=c, backend=backend)

        best = {"avx512": float("inf"), "openblas": float("inf")}
        if M * N * K <= SMALL_MNK:  # where vc_sgemm may pick OpenBLAS (csrc/backends/cpu/sgemm.c)
            best["auto"] = float("inf")
        for _ in range(args.reps):
            for backend in best:  # interleaved: a disturbance hits both alike
                best[backend] = min(best[backend], sample(lambda: call(backend)))
        flops = 2.0 * M * N * K
        g_ours, g_blas = flops / best["avx512"] / 1e9, flops / best["openblas"] / 1e9
        g_auto = flops / best["auto"] / 1e9 if "auto" in best else None
        row = dict(group=group, name=name, ta=ta, tb=tb, M=M, N=N, K=K, ours=g_ours, openblas=g_blas,
                   vc_sgemm=g_auto)
        results.append(row)
        op = ("T" if ta else "N") + ("T" if tb else "N")
        line = f"{group:<15}{name:<13}{op:<4}{M:>6}{N:>6}{K:>6}{g_ours:>8.1f}{g_blas:>10.1f}{g_ours / g_blas:>6.2f}x"
        if other:
            match = [r for r in other["results"] if (r["group"], r["name"]) == (group, name)]
            if match:
                line += f"{match[0]['openblas']:>10.1f}{g_ours / match[0]['openblas']:>6.2f}x"
        if g_auto is not None:
            line += f"   vc_sgemm {g_auto:.1f}"
        print(line, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.save:
        with open(args.save, "w") as f:
            json.dump(dict(openblas_core=core, coretype=os.environ.get("OPENBLAS_CORETYPE"), cold=args.cold,
                           results=results), f, indent=1)


if __name__ == "__main__":
    main()
