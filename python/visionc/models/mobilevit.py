"""MobileViT (transformers' MobileViTModel / MobileViTForImageClassification; xx-small, x-small,
small and any other config with output stride 32) on the C MobileViT (csrc/models/mobilevit.c).

BatchNorm is folded into the preceding convolution at load time, for inference:
w' = w * g / sqrt(var + eps), b' = beta - mean * g / sqrt(var + eps). The folded tensors are new
arrays; everything else is bound zero-copy."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._native import _C
from .base import PreTrainedModel, parse_id2label
from .outputs import ModelOutput

BN_EPS = 1e-5  # MobileViTConvLayer's nn.BatchNorm2d(eps=1e-5)
DEPTHS = (2, 4, 3)  # transformer layers in encoder layers 2, 3, 4 (fixed by the architecture)


class BaseModelOutputWithPoolingAndNoAttention(ModelOutput):
    _fields = ("last_hidden_state", "pooler_output", "hidden_states")


class ImageClassifierOutputWithNoAttention(ModelOutput):
    _fields = ("loss", "logits", "hidden_states")


@dataclass
class MobileViTConfig:
    num_channels: int = 3
    image_size: int = 256
    patch_size: int = 2
    hidden_sizes: list = field(default_factory=lambda: [144, 192, 240])
    neck_hidden_sizes: list = field(default_factory=lambda: [16, 32, 64, 96, 128, 160, 640])
    num_attention_heads: int = 4
    mlp_ratio: float = 2.0
    expand_ratio: float = 4.0
    hidden_act: str = "silu"
    conv_kernel_size: int = 3
    output_stride: int = 32
    layer_norm_eps: float = 1e-5
    qkv_bias: bool = True
    id2label: dict = field(default_factory=dict)
    model_type: str = "mobilevit"
    extra: dict = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @classmethod
    def from_dict(cls, d: dict, source: str) -> "MobileViTConfig":
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k not in ("id2label", "extra")}
        cfg = cls(**kw)
        cfg.id2label = parse_id2label(d)
        cfg.extra = {k: v for k, v in d.items() if k not in cls.__dataclass_fields__ and k not in ("label2id",)}
        if cfg.output_stride != 32:
            raise NotImplementedError(f"{source}: output_stride {cfg.output_stride} (dilated, for segmentation) is not "
                                      f"supported; classification models use 32")
        if len(cfg.neck_hidden_sizes) != 7 or len(cfg.hidden_sizes) != 3:
            raise ValueError(f"{source}: neck_hidden_sizes needs 7 entries and hidden_sizes 3")
        return cfg


def fold_batchnorm(state: dict, source: str) -> dict:
    """Folds every '<p>.normalization.*' into '<p>.convolution.weight' and a new '.bias'."""
    out = {}
    for k, v in state.items():
        if ".normalization." in k:
            continue
        out[k] = v
    for k in state:
        if not k.endswith(".normalization.weight"):
            continue
        p = k[: -len(".normalization.weight")]
        try:
            g, beta = state[f"{p}.normalization.weight"], state[f"{p}.normalization.bias"]
            mean, var = state[f"{p}.normalization.running_mean"], state[f"{p}.normalization.running_var"]
            w = state[f"{p}.convolution.weight"]
        except KeyError as e:
            raise ValueError(f"{source}: batch norm of {p} is incomplete (missing {e.args[0]})") from None
        if not (g.shape == beta.shape == mean.shape == var.shape == (w.shape[0],)):
            raise ValueError(f"{source}: tensor {p}.normalization.* shapes do not match {p}.convolution.weight "
                             f"{tuple(w.shape)}")
        scale = g.astype(np.float64) / np.sqrt(var.astype(np.float64) + BN_EPS)
        out[f"{p}.convolution.weight"] = (w.astype(np.float64) * scale[:, None, None, None]).astype(np.float32)
        out[f"{p}.convolution.bias"] = (beta.astype(np.float64) - mean.astype(np.float64) * scale).astype(np.float32)
    return out


class MobileViTModel(PreTrainedModel):
    """MobileViT without its classifier: last_hidden_state (B, 640, h, w) after conv_1x1_exp,
    pooler_output (B, 640), hidden_states: the outputs of encoder layers 0..4."""

    _with_head = False
    NUM_STAGES = 5

    def __init__(self, config: MobileViTConfig):
        super().__init__()
        self.config = config
        self._c = _C.mobilevit_new(config.num_channels, list(config.neck_hidden_sizes), list(config.hidden_sizes),
                                   list(DEPTHS), config.num_attention_heads, config.patch_size,
                                   config.conv_kernel_size, float(config.expand_ratio), float(config.mlp_ratio),
                                   float(config.layer_norm_eps), bool(config.qkv_bias), str(config.hidden_act),
                                   config.num_labels if self._with_head else 0)

    @classmethod
    def _prepare(cls, state, raw, source):
        if raw is None:
            raise FileNotFoundError(f"{source}: no config.json beside it (needed for MobileViT checkpoints)")
        if raw.get("model_type") != "mobilevit":
            raise ValueError(f"{source}: not a MobileViT checkpoint (model_type {raw.get('model_type')!r})")
        config = MobileViTConfig.from_dict(raw, source)
        stripped = {(k[len("mobilevit."):] if k.startswith("mobilevit.") else k): v for k, v in state.items()
                    if not k.endswith("num_batches_tracked")}
        return config, fold_batchnorm(stripped, source), {}

    def _checkpoint_name(self, name: str) -> str:
        if self._with_head and not name.startswith("classifier."):
            return "mobilevit." + name
        return name

    def _run(self, pixel_values, stages=(), last=False, pooled=False, logits=False):
        px = self._pixel_values(pixel_values, self.config.num_channels)
        return _C.mobilevit_forward(self._c, px, tuple(stages), last, pooled, logits)

    def __call__(self, pixel_values, output_hidden_states: bool = False, return_dict: bool = True):
        stages = tuple(range(self.NUM_STAGES)) if output_hidden_states else ()
        maps, last, pooled, _ = self._run(pixel_values, stages, last=True, pooled=True)
        out = BaseModelOutputWithPoolingAndNoAttention(last_hidden_state=last, pooler_output=pooled,
                                                       hidden_states=maps if output_hidden_states else None)
        return out if return_dict else out.to_tuple()

    forward = __call__

    def features(self, pixel_values, out_indices=None) -> list:
        """Feature maps of encoder layers (0..4, strides 2..32), (B, C_i, H_i, W_i) each."""
        n = self.NUM_STAGES
        idx = tuple(range(n)) if out_indices is None else tuple(int(i) + n if int(i) < 0 else int(i)
                                                                  for i in out_indices)
        order = sorted(set(idx))
        maps, _, _, _ = self._run(pixel_values, order)
        by_stage = dict(zip(order, maps))
        return [by_stage[i] for i in idx]

    def embed(self, pixel_values, pooling: str = "mean", normalize: bool = False) -> np.ndarray:
        if pooling != "mean":
            raise ValueError("MobileViT embeddings are mean-pooled (pooling='mean')")
        _, _, emb, _ = self._run(pixel_values, (), pooled=True)
        if normalize:
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb


class MobileViTForImageClassification(MobileViTModel):
    _with_head = True

    def __init__(self, config: MobileViTConfig):
        if config.num_labels <= 0:
            raise ValueError("MobileViTForImageClassification needs id2label / num_labels in the config")
        super().__init__(config)

    def __call__(self, pixel_values, labels=None, output_hidden_states: bool = False, return_dict: bool = True):
        from .vit import cross_entropy
        stages = tuple(range(self.NUM_STAGES)) if output_hidden_states else ()
        maps, _, _, logits = self._run(pixel_values, stages, logits=True)
        loss = cross_entropy(logits, labels, self.config.num_labels) if labels is not None else None
        out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits,
                                                   hidden_states=maps if output_hidden_states else None)
        return out if return_dict else out.to_tuple()

    forward = __call__
