"""One fine-tuning step (forward with labels + backward + AdamW + zero_grad) of ViT-B/16 at
batch 8 and ConvNeXt-femto at batch 32 (224x224), and MobileViT-small at batch 8 (256x256),
visionc against transformers + torch.optim.AdamW in the same run; visionc also with gradient
checkpointing.

    python benchmarks/bench_train.py [--threads 2] [--models vit_b16 convnext_femto]

Validates first: the loss of a first step, and of a second step after one AdamW update, equal
between visionc and PyTorch (random weights, same checkpoint, same batch). Then each
(model, framework) is timed in its own process: steps/s, images/s and peak RSS (so the RSS
belongs to one framework; visionc with and without checkpointing shows the activation memory
saved). Needs the model training API (model.backward).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, peak_rss_mb, run_worker, time_calls  # noqa: E402

NUM_LABELS = 10
MODELS = {
    "vit_b16": dict(kind="vit", batch=8, config=dict(num_labels=NUM_LABELS)),  # ViTConfig defaults: B/16 224
    "convnext_femto": dict(kind="convnext", batch=32,
                           config=dict(depths=[2, 2, 6, 2], hidden_sizes=[48, 96, 192, 384], layer_norm_eps=1e-6,
                                       num_labels=NUM_LABELS)),
    # MobileViTConfig defaults are MobileViT-small; dropout off so the validation can compare
    # losses (the masks differ from torch's), BatchNorm in train mode as in fine-tuning.
    "mobilevit_small": dict(kind="mobilevit", batch=8, size=256,
                            config=dict(num_labels=NUM_LABELS, hidden_dropout_prob=0.0,
                                        classifier_dropout_prob=0.0)),
}
KINDS = {"vit": ("ViTForImageClassification", "ViTConfig"),
         "convnext": ("ConvNextForImageClassification", "ConvNextConfig"),
         "mobilevit": ("MobileViTForImageClassification", "MobileViTConfig")}
LR, WD = 1e-4, 0.05


def make_checkpoint(name: str, path: Path):
    import torch
    import transformers
    torch.manual_seed(0)
    spec = MODELS[name]
    model_cls, config_cls = KINDS[spec["kind"]]
    model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**spec["config"]))
    model.save_pretrained(path)


def image_size(name: str) -> int:
    return MODELS[name].get("size", 224)


def batch(n: int, size: int, seed: int = 0):
    import numpy as np
    rng = np.random.RandomState(seed)
    return rng.rand(n, 3, size, size).astype(np.float32), rng.randint(0, NUM_LABELS, n).astype(np.int64)


def visionc_step_fn(ckpt: str, n: int, size: int, checkpointing: bool):
    import visionc
    model = visionc.AutoModelForImageClassification.from_pretrained(ckpt)
    if checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    opt = visionc.optim.AdamW([p for _, p in model.named_parameters()], lr=LR, weight_decay=WD)
    px, y = batch(n, size)

    def step():
        out = model(px, labels=y)
        model.backward()
        opt.step()
        model.zero_grad(set_to_none=False)
        return float(out.loss)
    return step


def torch_step_fn(ckpt: str, n: int, size: int):
    import torch
    import transformers
    model = transformers.AutoModelForImageClassification.from_pretrained(ckpt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    px, y = (torch.from_numpy(a) for a in batch(n, size))

    def step():
        out = model(pixel_values=px, labels=y)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)
        return float(out.loss)
    return step


def worker(framework: str, ckpt: str, n: int, size: int, threads: int) -> dict:
    if framework.startswith("visionc"):
        import visionc
        visionc.set_num_threads(threads)
        step = visionc_step_fn(ckpt, n, size, checkpointing=framework == "visionc-ckpt")
    else:
        import torch
        torch.set_num_threads(threads)
        step = torch_step_fn(ckpt, n, size)
    per_step = time_calls(step, min_seconds=10.0, min_calls=3)
    return {"framework": framework, "batch": n, "steps_per_s": 1 / per_step, "images_per_s": n / per_step,
            "peak_rss_mb": peak_rss_mb()}


def validate(ckpt: Path, n: int, size: int) -> float:
    """Max relative difference of the first two steps' losses (the second follows an update)."""
    ours = visionc_step_fn(str(ckpt), n, size, checkpointing=False)
    ref = torch_step_fn(str(ckpt), n, size)
    a, b = [ours(), ours()], [ref(), ref()]
    err = max(abs(x - y) / abs(y) for x, y in zip(a, b))
    assert err < 1e-4, f"visionc and PyTorch training steps disagree: losses {a} vs {b}"
    return err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=5, metavar=("FRAMEWORK", "CKPT", "BATCH", "SIZE", "THREADS"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--json", help="write results here too")
    args = ap.parse_args()
    if args.worker:
        fw, ckpt, n, size, threads = args.worker
        print(json.dumps(worker(fw, ckpt, int(n), int(size), int(threads))))
        return
    import visionc
    if not hasattr(visionc.ViTForImageClassification, "backward"):
        sys.exit("bench_train: this visionc build has no model training API (model.backward) yet")
    print(f"{args.threads} threads, fp32, {machine()}")
    print(f"{'model':>15} {'batch':>5} {'size':>4} {'framework':>13} {'steps/s':>8} {'img/s':>7} {'vs torch':>8} "
          f"{'peak RSS':>9}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            ckpt, n, size = Path(tmp) / name, MODELS[name]["batch"], image_size(name)
            make_checkpoint(name, ckpt)
            err = validate(ckpt, n, size)
            res = {fw: run_worker(__file__, [fw, str(ckpt), str(n), str(size), str(args.threads)])
                   for fw in ("torch", "visionc", "visionc-ckpt")}
            for fw, r in res.items():
                ratio = r["steps_per_s"] / res["torch"]["steps_per_s"]
                print(f"{name:>15} {n:>5} {size:>4} {fw:>13} {r['steps_per_s']:>8.3f} {r['images_per_s']:>7.1f} "
                      f"{ratio:>7.2f}x {r['peak_rss_mb']:>7.0f}MB", flush=True)
            saved = res["visionc"]["peak_rss_mb"] - res["visionc-ckpt"]["peak_rss_mb"]
            print(f"{name:>15}: loss rel diff {err:.2g}; gradient checkpointing saves {saved:.0f} MB peak RSS")
            rows.append(dict(model=name, batch=n, size=size, loss_rel_diff=err, activation_mb_saved=saved, **res))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
