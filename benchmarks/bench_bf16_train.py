"""Training step time, fp32 vs mixed precision (bf16 GEMMs), on a small ViT, ConvNeXt-femto or MobileViT-small.

    PYTHONPATH=python python benchmarks/bench_bf16_train.py [--model vit] [--threads 1 2] [--hidden 192] [--layers 4]
    PYTHONPATH=python python benchmarks/bench_bf16_train.py --model convnext_femto --threads 1 2   # batch 32
    PYTHONPATH=python python benchmarks/bench_bf16_train.py --model mobilevit_small --threads 1 2  # batch 8, 256x256

Random-init checkpoints written to a temp dir (no network): the ViT from NumPy, ConvNeXt-femto
(depths 2-2-6-2, widths 48-96-192-384, as timm's convnext_femto) and MobileViT-small (apple/mobilevit-small's
config) from transformers. One step =
training forward + backward (the optimizer is the same in both modes and left out). Validates
first: the bf16 step's loss must be within 2% of the fp32 step's. Each figure is the best of
--repeats steps after a warm-up step (the best, not the median: on a shared machine other jobs
only ever slow a step down); the load average is printed before and after."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import visionc

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

LOSS_RTOL = 2e-2  # bf16 vs fp32 loss of one step (measured ~1e-4 at init)


def write_vit(d: Path, C: int, L: int, image: int, rng):
    P = 16
    state = {"vit.embeddings.cls_token": np.zeros((1, 1, C)),
             "vit.embeddings.position_embeddings": rng.normal(0, .02, (1, 1 + (image // P) ** 2, C)),
             "vit.embeddings.patch_embeddings.projection.weight": rng.normal(0, .02, (C, 3, P, P)),
             "vit.embeddings.patch_embeddings.projection.bias": np.zeros(C),
             "vit.layernorm.weight": np.ones(C), "vit.layernorm.bias": np.zeros(C),
             "classifier.weight": rng.normal(0, .02, (10, C)), "classifier.bias": np.zeros(10)}
    for i in range(L):
        p = f"vit.encoder.layer.{i}."
        for n, (o, k) in {"attention.attention.query": (C, C), "attention.attention.key": (C, C),
                          "attention.attention.value": (C, C), "attention.output.dense": (C, C),
                          "intermediate.dense": (4 * C, C), "output.dense": (C, 4 * C)}.items():
            state[p + n + ".weight"] = rng.normal(0, .02, (o, k))
            state[p + n + ".bias"] = np.zeros(o)
        for n in ("layernorm_before", "layernorm_after"):
            state[p + n + ".weight"], state[p + n + ".bias"] = np.ones(C), np.zeros(C)
    visionc.io.save_state_dict(d / "model.safetensors", {k: v.astype(np.float32) for k, v in state.items()})
    (d / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": C, "num_hidden_layers": L,
                                               "num_attention_heads": C // 64, "intermediate_size": 4 * C,
                                               "image_size": image, "patch_size": P, "num_labels": 10}))
    return f"ViT C={C} layers={L}"


def write_convnext_femto(d: Path):
    """In a child process: torch's OpenMP threads must not share the timed process with ours."""
    code = ("import sys, torch, transformers; torch.manual_seed(0); transformers.ConvNextForImageClassification("
            "transformers.ConvNextConfig(depths=[2, 2, 6, 2], hidden_sizes=[48, 96, 192, 384], layer_norm_eps=1e-6,"
            " num_labels=10)).save_pretrained(sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(d)], check=True, capture_output=True)
    return "ConvNeXt-femto"


def write_mobilevit_small(d: Path):
    """In a child process, as write_convnext_femto; transformers' MobileViTConfig defaults are
    apple/mobilevit-small's architecture."""
    code = ("import sys, torch, transformers; torch.manual_seed(0); transformers.MobileViTForImageClassification("
            "transformers.MobileViTConfig(num_labels=10)).save_pretrained(sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(d)], check=True, capture_output=True)
    return "MobileViT-small"


def step_time(model, px, lab, repeats: int):
    """(best seconds of forward + backward over `repeats` after one warm-up, first loss)."""
    best, loss = float("inf"), None
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        out = model(px, labels=lab)
        model.backward()
        dt = time.perf_counter() - t0
        loss = out.loss if loss is None else loss
        if i:
            best = min(best, dt)
        model.zero_grad()
    return best, loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=("vit", "convnext_femto", "mobilevit_small"), default="vit")
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--hidden", type=int, default=192, help="ViT width")
    ap.add_argument("--layers", type=int, default=4, help="ViT depth")
    ap.add_argument("--image", type=int, help="default: 224 (256 for MobileViT)")
    ap.add_argument("--batch", type=int, help="default: 8 (ViT, MobileViT), 32 (ConvNeXt)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    batch = a.batch or (32 if a.model == "convnext_femto" else 8)
    a.image = a.image or (256 if a.model == "mobilevit_small" else 224)
    rng = np.random.default_rng(0)
    d = Path(tempfile.mkdtemp())
    if a.model == "vit":
        name = write_vit(d, a.hidden, a.layers, a.image, rng)
    else:
        name = (write_convnext_femto if a.model == "convnext_femto" else write_mobilevit_small)(d)
    px = rng.standard_normal((batch, 3, a.image, a.image), dtype=np.float32)
    lab = rng.integers(0, 10, batch)
    kernel = "AVX512_BF16" if visionc.ops.bf16_native() else "fallback (fp32 GEMM of rounded inputs)"
    print(f"{name} image={a.image} batch={batch}, forward + backward per step, best of {a.repeats}; "
          f"bf16 kernel: {kernel}\n{machine()}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    model = visionc.AutoModelForImageClassification.from_pretrained(d).train()  # one model: same activations
    print(f"{'threads':>7} {'precision':>9} {'ms/step':>8} {'steps/s':>8} {'img/s':>7} {'bf16 speed-up':>13}")
    for nt in a.threads:
        visionc.set_num_threads(nt)
        times, losses = {}, {}
        for prec in ("fp32", "bf16"):
            times[prec], losses[prec] = step_time(model.set_precision(prec), px, lab, a.repeats)
        rel = abs(losses["bf16"] - losses["fp32"]) / abs(losses["fp32"])
        assert rel <= LOSS_RTOL, f"bf16 loss {losses['bf16']} vs fp32 {losses['fp32']} (rel {rel:.3g})"
        for prec in ("fp32", "bf16"):
            t = times[prec]
            speed = f"{times['fp32'] / t:.2f}x" if prec == "bf16" else ""
            print(f"{nt:>7} {prec:>9} {t * 1e3:>8.0f} {1 / t:>8.3f} {batch / t:>7.1f} {speed:>13}", flush=True)
        print(f"{'':>7} loss fp32 {losses['fp32']:.5f}, bf16 {losses['bf16']:.5f} (rel diff {rel:.2g})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
