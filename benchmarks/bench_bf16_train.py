"""Training step time, fp32 vs mixed precision (bf16 GEMMs), on a small ViT.

    PYTHONPATH=python python benchmarks/bench_bf16_train.py [--threads 1] [--hidden 192] [--layers 4]

Random-init transformers-layout ViT written to a temp dir (no network); one step = training
forward + backward (the optimizer is the same in both modes and left out)."""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import visionc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--image", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    visionc.set_num_threads(a.threads)
    C, L, P = a.hidden, a.layers, 16
    rng = np.random.default_rng(0)
    state = {"vit.embeddings.cls_token": np.zeros((1, 1, C)),
             "vit.embeddings.position_embeddings": rng.normal(0, .02, (1, 1 + (a.image // P) ** 2, C)),
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
    d = Path(tempfile.mkdtemp())
    visionc.io.save_state_dict(d / "model.safetensors", {k: v.astype(np.float32) for k, v in state.items()})
    (d / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": C, "num_hidden_layers": L,
                                               "num_attention_heads": C // 64, "intermediate_size": 4 * C,
                                               "image_size": a.image, "patch_size": P, "num_labels": 10}))
    px = rng.standard_normal((a.batch, 3, a.image, a.image), dtype=np.float32)
    lab = rng.integers(0, 10, a.batch)
    print(f"ViT C={C} layers={L} image={a.image} batch={a.batch} threads={a.threads} "
          f"bf16 kernel: {'AVX512_BF16' if visionc.ops.bf16_native() else 'fallback'}")
    times = {}
    for prec in ("fp32", "bf16"):
        m = visionc.AutoModelForImageClassification.from_pretrained(d).train().set_precision(prec)
        best = 1e9
        for _ in range(a.steps + 1):
            t0 = time.perf_counter()
            m(px, labels=lab)
            m.backward()
            best = min(best, time.perf_counter() - t0)
            m.zero_grad()
        times[prec] = best
        print(f"{prec}: {best * 1e3:.0f} ms / step")
    print(f"speedup {times['fp32'] / times['bf16']:.2f}x")


if __name__ == "__main__":
    main()
