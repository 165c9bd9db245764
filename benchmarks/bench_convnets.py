"""ConvNeXt-femto (224 and 288) and MobileViT-small (256): visionc against transformers (PyTorch)
in the same run, random weights with the real architectures.

    python benchmarks/bench_convnets.py [--threads 2] [--batches 1 16]

Validates first (logits vs transformers), then times each (model, size, batch, framework) in its
own process: images/s and peak RSS. convnext_femto is built with transformers' ConvNext classes
(the same computation as timm's; timm does not import here).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import export_onnx, machine, onnx_runner, peak_rss_mb, run_worker, time_calls  # noqa: E402

MODELS = {
    "convnext_femto": dict(kind="convnext", sizes=(224, 288),
                           config=dict(depths=[2, 2, 6, 2], hidden_sizes=[48, 96, 192, 384], layer_norm_eps=1e-6,
                                       num_labels=1000)),
    "mobilevit-small": dict(kind="mobilevit", sizes=(256,), config=dict(num_labels=1000)),
}


def make_checkpoint(name: str, path: Path):
    import torch
    import transformers
    torch.manual_seed(0)
    spec = MODELS[name]
    if spec["kind"] == "convnext":
        model = transformers.ConvNextForImageClassification(transformers.ConvNextConfig(**spec["config"]))
    else:
        model = transformers.MobileViTForImageClassification(transformers.MobileViTConfig(**spec["config"]))
    model.eval().save_pretrained(path)


def worker(framework: str, ckpt: str, size: int, batch: int, threads: int) -> dict:
    import numpy as np
    px = np.random.RandomState(0).rand(batch, 3, size, size).astype(np.float32)
    if framework == "visionc":
        import visionc
        visionc.set_num_threads(threads)
        model = visionc.AutoModelForImageClassification.from_pretrained(ckpt)
        run = lambda: model(px).logits  # noqa: E731
    elif framework == "onnxruntime":
        run = onnx_runner(ckpt, px, threads)
    else:
        import torch
        import transformers
        torch.set_num_threads(threads)
        model = transformers.AutoModelForImageClassification.from_pretrained(ckpt).eval()
        tpx = torch.from_numpy(px)

        def run():
            with torch.inference_mode():
                return model(tpx).logits
    per_call = time_calls(run, min_seconds=3.0 if batch == 1 else 6.0, min_calls=5)
    return {"framework": framework, "size": size, "batch": batch, "images_per_s": batch / per_call,
            "peak_rss_mb": peak_rss_mb()}


def validate(ckpt: Path, size: int) -> float:
    import numpy as np
    import torch
    import transformers

    import visionc
    px = np.random.RandomState(1).rand(2, 3, size, size).astype(np.float32)
    ours = visionc.AutoModelForImageClassification.from_pretrained(ckpt)(px).logits
    with torch.inference_mode():
        ref = transformers.AutoModelForImageClassification.from_pretrained(ckpt).eval()(torch.from_numpy(px))
    err = float(np.abs(ours - ref.logits.numpy()).max())
    assert err < 1e-4, f"visionc disagrees with transformers: max abs logit diff {err}"
    return err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=5, metavar=("FRAMEWORK", "CKPT", "SIZE", "BATCH", "THREADS"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--onnx", action="store_true", help="also time ONNX Runtime")
    ap.add_argument("--json", help="write results here too")
    args = ap.parse_args()
    if args.worker:
        fw, ckpt, size, batch, threads = args.worker
        print(json.dumps(worker(fw, ckpt, int(size), int(batch), int(threads))))
        return
    rows = []
    print(f"{args.threads} threads, fp32, {machine()}")
    print(f"{'model':>16} {'size':>4} {'batch':>5} {'visionc img/s':>13} {'torch img/s':>11} {'ratio':>6} "
          f"{'RSS visionc':>11} {'RSS torch':>9} {'onnxrt img/s':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            ckpt = Path(tmp) / name
            make_checkpoint(name, ckpt)
            for size in MODELS[name]["sizes"]:
                err = validate(ckpt, size)
                onnx = args.onnx and export_onnx(ckpt, size)
                for b in args.batches:
                    ours = run_worker(__file__, ["visionc", str(ckpt), str(size), str(b), str(args.threads)])
                    ref = run_worker(__file__, ["torch", str(ckpt), str(size), str(b), str(args.threads)])
                    ort_row = run_worker(__file__, ["onnxruntime", str(ckpt), str(size), str(b), str(args.threads)]) \
                        if onnx else None
                    ratio = ours["images_per_s"] / ref["images_per_s"]
                    rows.append(dict(model=name, size=size, batch=b, visionc=ours, torch=ref, onnxruntime=ort_row,
                                     ratio=ratio, max_logit_diff=err))
                    ort_txt = f"{ort_row['images_per_s']:>12.1f}" if ort_row else f"{'-':>12}"
                    print(f"{name:>16} {size:>4} {b:>5} {ours['images_per_s']:>13.1f} {ref['images_per_s']:>11.1f} "
                          f"{ratio:>5.2f}x {ours['peak_rss_mb']:>9.0f}MB {ref['peak_rss_mb']:>7.0f}MB {ort_txt}",
                          flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
