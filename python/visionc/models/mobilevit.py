"""MobileViT (transformers' MobileViTModel / MobileViTForImageClassification; xx-small, x-small,
small and any other config with output stride 32) on the C MobileViT (csrc/models/mobilevit.c).

BatchNorm stays as in the checkpoint (not folded), so one model runs inference (running
statistics) and training (batch statistics; running statistics updated in place, as torch).
Parameters are the checkpoint's tensors, bound zero-copy; the running statistics and
num_batches_tracked are buffers (`model.buffers()`), saved by save_pretrained."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._native import _C
from .base import FeatureMapsMixin, PreTrainedModel
from .config_fields import (EPS, IMAGE, MAX_WIDTH, PROB, SIZE, STD, Bool, Float, Int, Ints, check_fields,
                            check_matches, write_labels, parse_id2label)
from .outputs import BaseModelOutputWithPoolingAndNoAttention, ImageClassifierOutputWithNoAttention

DEPTHS = (2, 4, 3)  # transformer layers in encoder layers 2, 3, 4 (fixed by the architecture)


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
    hidden_dropout_prob: float = 0.1            # training only: transformer attention and MLP outputs
    classifier_dropout_prob: float = 0.1        # training only: pooled features before the classifier
    attention_probs_dropout_prob: float = 0.0   # training only: on the softmax probabilities
    initializer_range: float = 0.02             # std of a re-initialised classifier
    id2label: dict = field(default_factory=dict)
    model_type: str = "mobilevit"
    extra: dict = field(default_factory=dict)

    _RULES = {"num_channels": Int(1, 1024), "image_size": IMAGE, "patch_size": Int(2, 2),
              "hidden_sizes": Ints(1, MAX_WIDTH, 3, 3), "neck_hidden_sizes": Ints(1, MAX_WIDTH, 7, 7),
              "num_attention_heads": SIZE, "mlp_ratio": Float(0.0, 64.0, lo_open=True),
              "expand_ratio": Float(0.0, 64.0, lo_open=True), "conv_kernel_size": Int(1, 31),
              "output_stride": Int(1, 1024), "layer_norm_eps": EPS, "qkv_bias": Bool(), "hidden_dropout_prob": PROB,
              "classifier_dropout_prob": PROB, "attention_probs_dropout_prob": PROB, "initializer_range": STD}

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @classmethod
    def from_dict(cls, d: dict, source: str) -> "MobileViTConfig":
        check_fields(d, cls._RULES, source)
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k not in ("id2label", "extra")}
        cfg = cls(**kw)
        if cfg.conv_kernel_size % 2 == 0:
            raise ValueError(f"{source}: conv_kernel_size must be odd, got {cfg.conv_kernel_size}")
        for i, h in enumerate(cfg.hidden_sizes):
            if h % cfg.num_attention_heads:
                raise ValueError(f"{source}: hidden_sizes[{i}] {h} is not a multiple of num_attention_heads "
                                 f"{cfg.num_attention_heads}")
        cfg.id2label = parse_id2label(d, source)
        cfg.extra = {k: v for k, v in d.items() if k not in cls.__dataclass_fields__ and k not in ("label2id",)}
        if cfg.output_stride != 32:
            raise NotImplementedError(f"{source}: output_stride {cfg.output_stride} (dilated, for segmentation) is not "
                                      f"supported; classification models use 32")
        if len(cfg.neck_hidden_sizes) != 7 or len(cfg.hidden_sizes) != 3:
            raise ValueError(f"{source}: neck_hidden_sizes needs 7 entries and hidden_sizes 3")
        return cfg


def _make_divisible(v: float, divisor: int = 8) -> int:
    """transformers' make_divisible (channel counts of the inverted residuals)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


# (config key, list index or None, tensor, axis): the sizes the weights fix
_SIZE_TENSORS = [("neck_hidden_sizes", 0, "conv_stem.convolution.weight", 0),
                 ("num_channels", None, "conv_stem.convolution.weight", 1),
                 ("neck_hidden_sizes", 1, "encoder.layer.0.layer.0.reduce_1x1.convolution.weight", 0),
                 ("neck_hidden_sizes", 2, "encoder.layer.1.layer.0.reduce_1x1.convolution.weight", 0),
                 ("neck_hidden_sizes", 3, "encoder.layer.2.fusion.convolution.weight", 0),
                 ("neck_hidden_sizes", 4, "encoder.layer.3.fusion.convolution.weight", 0),
                 ("neck_hidden_sizes", 5, "encoder.layer.4.fusion.convolution.weight", 0),
                 ("neck_hidden_sizes", 6, "conv_1x1_exp.convolution.weight", 0),
                 ("hidden_sizes", 0, "encoder.layer.2.conv_1x1.convolution.weight", 0),
                 ("hidden_sizes", 1, "encoder.layer.3.conv_1x1.convolution.weight", 0),
                 ("hidden_sizes", 2, "encoder.layer.4.conv_1x1.convolution.weight", 0),
                 ("conv_kernel_size", None, "encoder.layer.2.conv_kxk.convolution.weight", 2)]


def _check_against_weights(cfg: MobileViTConfig, state: dict, source: str):
    """Every size and ratio the weights fix, compared before the C model is built."""
    for key, index, tensor, axis in _SIZE_TENSORS:
        w = state.get(tensor)
        if w is None or w.ndim <= axis:
            continue  # the loader names a missing tensor
        value = getattr(cfg, key) if index is None else getattr(cfg, key)[index]
        check_matches(source, key if index is None else f"{key}[{index}]", value, int(w.shape[axis]), tensor)
    derived = [("expand_ratio", _make_divisible(round(cfg.neck_hidden_sizes[0] * cfg.expand_ratio)),
                "encoder.layer.0.layer.0.expand_1x1.convolution.weight"),
               ("mlp_ratio", int(cfg.hidden_sizes[0] * cfg.mlp_ratio),
                "encoder.layer.2.transformer.layer.0.intermediate.dense.weight")]
    for key, rows, tensor in derived:
        w = state.get(tensor)
        if w is not None and w.ndim >= 1 and w.shape[0] != rows:
            raise ValueError(f"{source}: {key} {getattr(cfg, key)!r} gives {rows} channels, but the weights have "
                             f"{w.shape[0]} (tensor {tensor})")


class MobileViTModel(FeatureMapsMixin, PreTrainedModel):
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
        config = MobileViTConfig.from_dict(raw, "config.json")
        stripped = {(k[len("mobilevit."):] if k.startswith("mobilevit.") else k): v for k, v in state.items()}
        _check_against_weights(config, stripped, "config.json")
        return config, stripped, {}

    def _checkpoint_name(self, name: str) -> str:
        if self._with_head and not name.startswith("classifier."):
            return "mobilevit." + name
        return name

    def _load(self, state, source, names=None):
        super()._load(state, source, names)
        # Buffers: writable float32 copies (training updates them in place; a loaded
        # checkpoint may be a read-only mapping), plus the int64 counters torch keeps.
        self._buffers = {}
        for i, (slot, shape) in enumerate(_C.mobilevit_buffer_specs(self._c)):
            if slot not in state:
                raise ValueError(f"{source}: missing tensor {self._checkpoint_name(slot)}")
            arr = np.array(self._checked_array(slot, state[slot], shape, source), dtype=np.float32, copy=True)
            _C.mobilevit_bind_buffer(self._c, i, arr)
            self._buffers[self._checkpoint_name(slot)] = arr
            if slot.endswith(".running_var"):
                count = slot[: -len("running_var")] + "num_batches_tracked"
                value = state.get(count)
                self._buffers[self._checkpoint_name(count)] = np.array(0 if value is None else np.asarray(value)
                                                                       .reshape(()), dtype=np.int64)

    def named_buffers(self):
        """(name, array) of the BatchNorm running statistics and num_batches_tracked counters."""
        return list(self._buffers.items())

    def buffers(self):
        return list(self._buffers.values())

    def state_dict(self) -> dict:
        return {**self._params, **self._buffers}

    # Training -------------------------------------------------------------------------
    _precisions = ("fp32", "bf16")

    def _regularisers(self):
        cfg = self.config
        return dict(hidden_dropout=float(cfg.hidden_dropout_prob),
                    attention_dropout=float(cfg.attention_probs_dropout_prob),
                    classifier_dropout=float(cfg.classifier_dropout_prob))

    def _train_forward(self, px, labels, seed):
        out = super()._train_forward(px, labels, seed)
        if self.training:  # torch counts every train-mode forward; eval leaves the statistics alone
            for name, buf in self._buffers.items():
                if name.endswith("num_batches_tracked"):
                    buf += 1
        return out

    def training_memory_for(self, batch: int, height: int, width: int, checkpointing: bool | None = None) -> int:
        """Bytes of activation memory a training step on (batch, C, height, width) would hold
        (what training_memory() reports after it), from the same planner, without running it.
        checkpointing: None follows gradient_checkpointing_enable/disable."""
        ckpt = self._checkpointing if checkpointing is None else bool(checkpointing)
        return int(_C.mobilevit_train_memory_for(self._c, int(batch), int(height), int(width), ckpt))

    def _save_layout(self):
        state = {name: np.asarray(p) for name, p in self._params.items()}
        state.update(self._buffers)
        cfg = self.config
        out = dict(cfg.extra)
        for k in cfg.__dataclass_fields__:
            if k not in ("id2label", "extra"):
                out[k] = getattr(cfg, k)
        out["hidden_sizes"], out["neck_hidden_sizes"] = list(cfg.hidden_sizes), list(cfg.neck_hidden_sizes)
        write_labels(out, cfg.id2label)
        out["architectures"] = ["MobileViTForImageClassification" if self._with_head else "MobileViTModel"]
        return state, out

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

    def _num_feature_stages(self) -> int:
        return self.NUM_STAGES

    def _stage_maps(self, pixel_values, stages: tuple) -> tuple:
        return self._run(pixel_values, stages)[0]

    def _pooled(self, pixel_values) -> np.ndarray:
        return self._run(pixel_values, (), pooled=True)[2]


class MobileViTForImageClassification(MobileViTModel):
    _with_head = True

    def __init__(self, config: MobileViTConfig):
        if config.num_labels <= 0:
            raise ValueError("MobileViTForImageClassification needs id2label / num_labels in the config")
        super().__init__(config)

    def __call__(self, pixel_values, labels=None, output_hidden_states: bool = False, return_dict: bool = True,
                 seed: int | None = None):
        from .vit import cross_entropy
        if self._keeps_graph():
            loss, logits = self._kept_call(pixel_values, labels, seed, output_hidden_states)
            out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits)
            return out if return_dict else out.to_tuple()
        stages = tuple(range(self.NUM_STAGES)) if output_hidden_states else ()
        self._remember_eval_input(pixel_values, labels)
        maps, _, _, logits = self._run(pixel_values, stages, logits=True)
        loss = cross_entropy(logits, labels, self.config.num_labels, self.label_smoothing) if labels is not None else None
        out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits,
                                                   hidden_states=maps if output_hidden_states else None)
        return out if return_dict else out.to_tuple()

    forward = __call__
