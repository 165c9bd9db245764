"""ViT-B/16-224 fp32 inference: visionc against transformers (PyTorch) and, where it can be
exported, ONNX Runtime, in the same run. Random weights with the real config.

    python benchmarks/bench_vit.py [--threads 2] [--batches 1 16] [--onnx]

Validates first (visionc logits vs transformers), then times each framework in its own
process: images/s, from_pretrained-to-first-output seconds, peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import export_onnx, machine, onnx_runner, peak_rss_mb, run_worker, time_calls  # noqa: E402

VIT_B = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, image_size=224,
             patch_size=16, num_labels=1000)


def make_checkpoint(path: Path):
    import torch
    import transformers
    torch.manual_seed(0)
    transformers.ViTForImageClassification(transformers.ViTConfig(**VIT_B)).save_pretrained(path)


def worker(framework: str, ckpt: str, batch: int, threads: int) -> dict:
    import time

    import numpy as np
    px = np.random.RandomState(0).randn(batch, 3, 224, 224).astype(np.float32)
    t0 = time.perf_counter()
    if framework == "visionc":
        import visionc
        visionc.set_num_threads(threads)
        model = visionc.AutoModelForImageClassification.from_pretrained(ckpt)
        run = lambda: model(px).logits  # noqa: E731
    elif framework == "torch":
        import torch
        import transformers
        torch.set_num_threads(threads)
        model = transformers.ViTForImageClassification.from_pretrained(ckpt).eval()
        tpx = torch.from_numpy(px)

        def run():
            with torch.inference_mode():
                return model(tpx).logits
    elif framework == "onnxruntime":
        run = onnx_runner(ckpt, px, threads)
    else:
        raise ValueError(framework)
    run()
    first = time.perf_counter() - t0
    per_call = time_calls(run, min_seconds=4.0 if batch == 1 else 8.0)
    return {"framework": framework, "batch": batch, "images_per_s": batch / per_call,
            "first_output_s": first, "peak_rss_mb": peak_rss_mb()}


def validate(ckpt: Path):
    import numpy as np
    import torch
    import transformers

    import visionc
    px = np.random.RandomState(1).randn(2, 3, 224, 224).astype(np.float32)
    ours = visionc.AutoModelForImageClassification.from_pretrained(ckpt)(px).logits
    with torch.inference_mode():
        ref = transformers.ViTForImageClassification.from_pretrained(ckpt).eval()(torch.from_numpy(px)).logits.numpy()
    err = float(np.abs(ours - ref).max())
    assert err < 1e-4, f"visionc disagrees with transformers: max abs logit diff {err}"
    return err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=4, metavar=("FRAMEWORK", "CKPT", "BATCH", "THREADS"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--onnx", action="store_true", help="also time ONNX Runtime")
    ap.add_argument("--json", help="write results here too")
    args = ap.parse_args()
    if args.worker:
        fw, ckpt, batch, threads = args.worker
        print(json.dumps(worker(fw, ckpt, int(batch), int(threads))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "vit-base-patch16-224-random"
        make_checkpoint(ckpt)
        err = validate(ckpt)
        frameworks = ["visionc", "torch"] + (["onnxruntime"] if args.onnx and export_onnx(ckpt, 224) else [])
        rows = [run_worker(__file__, [fw, str(ckpt), str(b), str(args.threads)])
                for b in args.batches for fw in frameworks]
    print(f"ViT-B/16-224 fp32, {args.threads} threads, {machine()}; validation: max |logit diff| {err:.2e}")
    print(f"{'batch':>5} {'framework':>12} {'img/s':>8} {'vs torch':>9} {'first out s':>11} {'peak RSS MB':>11}")
    for b in args.batches:
        base = next(r for r in rows if r["batch"] == b and r["framework"] == "torch")["images_per_s"]
        for r in (r for r in rows if r["batch"] == b):
            print(f"{b:>5} {r['framework']:>12} {r['images_per_s']:>8.2f} {r['images_per_s'] / base:>8.2f}x "
                  f"{r['first_output_s']:>11.2f} {r['peak_rss_mb']:>11.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
