"""A stand-in for the real trainable models: the exact training API the Trainer codes against,
implemented in NumPy with an analytic backward, plus synthetic image folders.

Model: x' = x * s[channel] (a per-channel "embedding" scale, so freezing has something to
freeze), logits = flatten(x') @ W.T + b, cross-entropy (optionally label-smoothed, as
torch.nn.functional.cross_entropy). All float32 and single-threaded NumPy, so repeated runs
are bit-identical.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from visionc.io import load_state_dict, save_state_dict
from visionc.nn import Parameter


class DoubleConfig(SimpleNamespace):
    def to_dict(self):
        return {"num_labels": self.num_labels, "in_features": self.in_features,
                "id2label": {str(k): v for k, v in self.id2label.items()}}


class SoftmaxRegression:
    def __init__(self, num_labels: int, in_features: int, seed: int = 0, id2label=None):
        rng = np.random.default_rng(seed)
        id2label = id2label or {i: f"LABEL_{i}" for i in range(num_labels)}
        self.config = DoubleConfig(num_labels=num_labels, in_features=in_features,
                                   id2label={int(k): v for k, v in id2label.items()})
        self._params = {
            "embeddings.channel_scale": Parameter(np.ones(3, np.float32)),
            "classifier.weight": Parameter((rng.standard_normal((num_labels, in_features)) * 0.01).astype(np.float32)),
            "classifier.bias": Parameter(np.zeros(num_labels, np.float32)),
        }
        self.training = True
        self.local_dir = None
        self.checkpointing = False
        self.forward_calls = 0
        self._cache = None

    # -- the contract --
    def named_parameters(self):
        return list(self._params.items())

    def parameters(self):
        return list(self._params.values())

    def state_dict(self):
        return dict(self._params)

    def train(self, mode: bool = True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def freeze(self, until: str | None = None, head_only: bool = False):
        """head_only: only classifier.* trains; until=prefix: parameters before the first one
        named with that prefix are frozen."""
        reached = False
        for name, p in self._params.items():
            reached = reached or (until is not None and name.startswith(until))
            p.requires_grad = name.startswith("classifier") if head_only else reached
        return self

    def unfreeze(self):
        for p in self._params.values():
            p.requires_grad = True

    def gradient_checkpointing_enable(self):
        self.checkpointing = True

    def zero_grad(self, set_to_none: bool = False):
        for p in self._params.values():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def __call__(self, pixel_values, labels=None, label_smoothing: float = 0.0):
        self.forward_calls += 1
        x = np.asarray(pixel_values, np.float32)
        n = x.shape[0]
        s = self._params["embeddings.channel_scale"]
        xs = (x * s[None, :, None, None]).reshape(n, -1)
        w, b = self._params["classifier.weight"], self._params["classifier.bias"]
        if xs.shape[1] != w.shape[1]:
            raise ValueError(f"expected {w.shape[1]} input features, got {xs.shape[1]}")
        logits = (xs @ np.asarray(w).T + b).astype(np.float32)
        loss = None
        if labels is not None:
            labels = np.asarray(labels)
            k = logits.shape[1]
            z = logits - logits.max(1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(1, keepdims=True))
            target = np.full_like(logp, label_smoothing / k)
            target[np.arange(n), labels] += np.float32(1.0 - label_smoothing)
            loss = float(-(target * logp).sum(1).mean())
            self._cache = (x, xs, np.exp(logp), target)
        return SimpleNamespace(loss=loss, logits=logits)

    def backward(self):
        if self._cache is None:
            raise RuntimeError("backward() needs a forward pass with labels first")
        x, xs, prob, target = self._cache
        n = x.shape[0]
        dlogits = ((prob - target) / np.float32(n)).astype(np.float32)
        w = self._params["classifier.weight"]
        grads = {"classifier.weight": dlogits.T @ xs, "classifier.bias": dlogits.sum(0)}
        if self._params["embeddings.channel_scale"].requires_grad:
            dxs = (dlogits @ np.asarray(w)).reshape(x.shape)
            grads["embeddings.channel_scale"] = (dxs * x).sum((0, 2, 3))
        for name, g in grads.items():
            p = self._params[name]
            if not p.requires_grad:
                continue
            g = np.ascontiguousarray(g, np.float32)
            if p.grad is None:
                p.grad = g
            else:
                p.grad += g
        self._cache = None

    def save_pretrained(self, directory):
        os.makedirs(directory, exist_ok=True)
        save_state_dict(os.path.join(directory, "model.safetensors"), {k: np.asarray(v) for k, v in self._params.items()})
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(self.config.to_dict(), f)

    @classmethod
    def from_pretrained(cls, directory):
        with open(os.path.join(directory, "config.json")) as f:
            cfg = json.load(f)
        m = cls(cfg["num_labels"], cfg["in_features"], id2label={int(k): v for k, v in cfg["id2label"].items()})
        for k, v in load_state_dict(directory).items():
            m._params[k][...] = v
        m.local_dir = Path(directory)
        return m


# ---- data ------------------------------------------------------------------------------

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def make_image_folder(root, per_class: int = 12, size=(20, 24), seed: int = 0, classes=("blue", "green", "red")):
    """root/<class>/<k>.png: noisy images whose dominant colour is the class (learnable)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        base = np.array(COLOURS[c % len(COLOURS)], np.int16)
        for k in range(per_class):
            noise = rng.integers(-60, 60, size=(size[0], size[1], 3))
            img = np.clip(base + noise, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{k:03d}.png")
    return root


def processor(size: int = 8):
    from visionc.image_processing import ViTImageProcessor
    return ViTImageProcessor(size={"height": size, "width": size})
