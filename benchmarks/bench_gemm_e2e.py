"""End to end, visionc's fp32 GEMM against OpenBLAS: ViT-B/16 inference (bench_vit.py's worker)
and training steps of ViT-B/16 and ConvNeXt-femto (bench_train.py's worker), each run with the
default GEMM and with VISIONC_GEMM=openblas.

    PYTHONPATH=python python benchmarks/bench_gemm_e2e.py [--threads 2] [--rounds 3]

Each measurement is a worker process of those scripts (median time per call over several
seconds); the two GEMM settings alternate, round after round, and the best round of each is
kept, so that a busy spell of a shared machine does not land on one setting only. Run it as the
environment is and again under `env -u OPENBLAS_CORETYPE` to see both OpenBLAS configurations.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import bench_train  # noqa: E402
import bench_vit  # noqa: E402
from common import machine  # noqa: E402

# (label, script, checkpoint, batch, unit)
CASES = {
    "vit_b1": ("ViT-B/16 inference, batch 1", "bench_vit.py", "vit", 1, "images_per_s"),
    "vit_b16": ("ViT-B/16 inference, batch 16", "bench_vit.py", "vit", 16, "images_per_s"),
    "train_vit": ("ViT-B/16 training, batch 8", "bench_train.py", "vit_b16", 8, "images_per_s"),
    "train_convnext": ("ConvNeXt-femto training, batch 32", "bench_train.py", "convnext_femto", 32, "images_per_s"),
}


def run(script: str, ckpt: Path, batch: int, threads: int, gemm: str | None) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("VISIONC_GEMM", None)
    if gemm:
        env["VISIONC_GEMM"] = gemm
    out = subprocess.run([sys.executable, str(HERE / script), "--worker", "visionc", str(ckpt), str(batch),
                          str(threads)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{script} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = ap.parse_args()
    print(f"{machine()}; {args.threads} threads; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = {}
        for key in args.cases:
            name = CASES[key][2]
            if name not in ckpts:
                ckpts[name] = Path(tmp) / name
                if name == "vit":
                    bench_vit.make_checkpoint(ckpts[name])
                else:
                    bench_train.make_checkpoint(name, ckpts[name])
        best = {}
        for r in range(args.rounds):
            for key in args.cases:
                label, script, name, batch, unit = CASES[key]
                for gemm in (None, "openblas"):
                    got = run(script, ckpts[name], batch, args.threads, gemm)[unit]
                    best[key, gemm] = max(best.get((key, gemm), 0.0), got)
                    print(f"  round {r + 1}: {label:<36} {'ours' if gemm is None else 'openblas':<9}"
                          f"{got:8.2f} img/s", flush=True)
    print(f"\n{'':<36}{'visionc GEMM':>13}{'OpenBLAS':>10}{'ratio':>7}   (img/s, best of {args.rounds})")
    for key in args.cases:
        ours, theirs = best[key, None], best[key, "openblas"]
        print(f"{CASES[key][0]:<36}{ours:>13.2f}{theirs:>10.2f}{ours / theirs:>6.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
