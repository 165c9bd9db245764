"""ConvNeXt: timm checkpoints (convnext_atto ... convnext_xxlarge, any depths and widths read
from the weights) and transformers' ConvNextModel / ConvNextForImageClassification, on the C
ConvNeXt (csrc/models/convnext.c). The C model uses timm's tensor names; transformers names are
mapped onto them by one table."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .._native import _C
from .base import FeatureMapsMixin, PreTrainedModel
from .config_fields import (EPS, IMAGE, LAYERS, MAX_IMAGE, MAX_WIDTH, PROB, STD, Float, Int, Ints, check_fields, check_matches,
                            write_labels, parse_id2label)
from .outputs import BaseModelOutputWithPoolingAndNoAttention, ImageClassifierOutputWithNoAttention


@dataclass
class ConvNextConfig:
    depths: list = field(default_factory=lambda: [3, 3, 9, 3])
    hidden_sizes: list = field(default_factory=lambda: [96, 192, 384, 768])
    num_channels: int = 3
    patch_size: int = 4
    kernel_size: int = 7
    mlp_ratio: int = 4
    layer_scale: bool = True
    norm_eps: float = 1e-6       # stem, downsample and block norms (fixed at 1e-6 by both libraries)
    head_norm_eps: float = 1e-6  # timm: 1e-6; transformers: config.layer_norm_eps
    image_size: int = 224
    drop_path_rate: float = 0.0      # training only: stochastic depth, linear over the blocks
    initializer_range: float = 0.02  # std of a re-initialised classifier
    id2label: dict = field(default_factory=dict)
    model_type: str = "convnext"
    extra: dict = field(default_factory=dict)

    # transformers' config.json fields (timm's config.json does not shape the model: the weights do)
    _RULES = {"depths": Ints(0, LAYERS.hi, 1, 16), "hidden_sizes": Ints(1, MAX_WIDTH, 1, 16),
              "num_stages": Int(1, 16), "num_channels": Int(1, 1024), "patch_size": Int(1, 1024),
              "image_size": IMAGE, "layer_norm_eps": EPS, "drop_path_rate": PROB, "initializer_range": STD,
              "layer_scale_init_value": Float(-1e6, 1e6), "out_indices": Ints(-64, 64, 0, 64)}

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def num_stages(self) -> int:
        return len(self.depths)


# transformers ConvNext key -> timm key (the C model's names)
_HF_TO_TIMM = [
    (r"^embeddings\.patch_embeddings\.", "stem.0."),
    (r"^embeddings\.layernorm\.", "stem.1."),
    (r"^encoder\.stages\.(\d+)\.downsampling_layer\.(\d)\.", r"stages.\1.downsample.\2."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.dwconv\.", r"stages.\1.blocks.\2.conv_dw."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layernorm\.", r"stages.\1.blocks.\2.norm."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.pwconv1\.", r"stages.\1.blocks.\2.mlp.fc1."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.pwconv2\.", r"stages.\1.blocks.\2.mlp.fc2."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer_scale_parameter$", r"stages.\1.blocks.\2.gamma"),
    (r"^layernorm\.", "head.norm."),
    (r"^classifier\.", "head.fc."),
]


def is_timm_convnext(state: dict) -> bool:
    return "stem.0.weight" in state and "stages.0.blocks.0.conv_dw.weight" in state


def _shape_config(state: dict, source: str) -> dict:
    """Depths, widths, kernel and MLP ratio of timm-named weights."""
    bad = [k for k in state if ".grn." in k or k.startswith("norm_pre.") or k.startswith("head.pre_logits")]
    if bad:
        raise NotImplementedError(f"{source}: this ConvNeXt variant is not supported (has {bad[0]})")
    stages = sorted({int(k.split(".")[1]) for k in state if k.startswith("stages.")})
    if stages != list(range(len(stages))):
        raise ValueError(f"{source}: stage numbers {stages} are not consecutive")
    depths, dims = [], []
    for i in stages:
        blocks = {int(k.split(".")[3]) for k in state if k.startswith(f"stages.{i}.blocks.")}
        depths.append(len(blocks))
        if f"stages.{i}.blocks.0.conv_dw.weight" in state:
            dims.append(int(state[f"stages.{i}.blocks.0.conv_dw.weight"].shape[0]))
        elif f"stages.{i}.downsample.1.weight" in state:
            dims.append(int(state[f"stages.{i}.downsample.1.weight"].shape[0]))
        else:
            raise ValueError(f"{source}: cannot tell the width of stage {i}")
    dw = state["stages.0.blocks.0.conv_dw.weight"]
    stem = state["stem.0.weight"]
    if stem.shape[2] != stem.shape[3]:
        raise NotImplementedError(f"{source}: non-square stem kernel {tuple(stem.shape)}")
    fc1 = state["stages.0.blocks.0.mlp.fc1.weight"]
    if fc1.shape[0] % dims[0]:
        raise ValueError(f"{source}: mlp.fc1 rows {fc1.shape[0]} are not a multiple of the width {dims[0]}")
    return dict(depths=depths, hidden_sizes=dims, num_channels=int(stem.shape[1]), patch_size=int(stem.shape[2]),
                kernel_size=int(dw.shape[-1]), mlp_ratio=int(fc1.shape[0] // dims[0]),
                layer_scale="stages.0.blocks.0.gamma" in state)


def _check_against_weights(raw: dict, shape: dict, source: str):
    """transformers' sizes against those read from the weights (raw is already range-checked)."""
    stem = "embeddings.patch_embeddings.weight"
    for key, tensor in (("depths", "encoder.stages.*.layers.*"), ("hidden_sizes", "encoder.stages.*.layers.0.dwconv"),
                        ("num_channels", stem), ("patch_size", stem)):
        if key in raw:
            check_matches(source, key, list(raw[key]) if isinstance(raw[key], list) else raw[key], shape[key], tensor)
    if "num_stages" in raw:
        check_matches(source, "num_stages", raw["num_stages"], len(shape["depths"]), "encoder.stages.*")
    if "layer_scale_init_value" in raw and (raw["layer_scale_init_value"] > 0) != shape["layer_scale"]:
        raise ValueError(f"{source}: layer_scale_init_value {raw['layer_scale_init_value']!r} "
                         f"{'disables' if shape['layer_scale'] else 'enables'} the layer scales, but the weights "
                         f"{'have' if shape['layer_scale'] else 'lack'} them (layer_scale_parameter)")
    n = len(shape["depths"])
    bad = [i for i in raw.get("out_indices") or [] if not -(n + 1) <= i <= n]
    if bad:
        raise ValueError(f"{source}: out_indices {raw['out_indices']} name stages outside 0..{n}")


def hf_to_timm(state: dict) -> tuple[dict, dict]:
    out, names = {}, {}
    for k, v in state.items():
        key = k[len("convnext."):] if k.startswith("convnext.") else k
        for pat, rep in _HF_TO_TIMM:
            if re.match(pat, key):
                key = re.sub(pat, rep, key)
                break
        out[key] = v
        names[key] = k
    return out, names


class ConvNextModel(FeatureMapsMixin, PreTrainedModel):
    """ConvNeXt without its classifier: last_hidden_state (B, C, h, w), pooler_output (B, C)
    (global average pool + layer norm), hidden_states (stem output, then every stage)."""

    _with_head = False

    def __init__(self, config: ConvNextConfig):
        super().__init__()
        self.config = config
        self._c = _C.convnext_new(list(config.depths), list(config.hidden_sizes), config.num_channels,
                                  config.patch_size, config.kernel_size, config.mlp_ratio, bool(config.layer_scale),
                                  config.num_labels if self._with_head else 0, float(config.norm_eps),
                                  float(config.head_norm_eps))

    @classmethod
    def _prepare(cls, state, raw, source):
        raw = raw or {}
        if is_timm_convnext(state):
            shape = _shape_config(state, source)
            pre = raw.get("pretrained_cfg", {}) or {}
            n = int(state["head.fc.weight"].shape[0]) if "head.fc.weight" in state else 0
            labels = raw.get("label_names") or pre.get("label_names")
            id2label = {i: (labels[i] if labels and i < len(labels) else f"LABEL_{i}") for i in range(n)}
            check_fields(pre, {"input_size": Ints(1, MAX_IMAGE, 2, 3)}, "config.json pretrained_cfg")
            check_fields(raw, {"drop_path_rate": Float(0.0, 1.0, nullable=True)}, "config.json")
            size = (pre.get("input_size") or [3, 224, 224])[-1]
            cfg = ConvNextConfig(**shape, norm_eps=1e-6, head_norm_eps=1e-6, image_size=int(size), id2label=id2label,
                                 drop_path_rate=float(raw.get("drop_path_rate", 0.0) or 0.0),
                                 extra={"timm_architecture": raw.get("architecture", "convnext"),
                                        "timm_config": dict(raw)})
            return cfg, state, {}
        mt = raw.get("model_type")
        if mt != "convnext":
            raise ValueError(f"{source}: not a ConvNeXt checkpoint (model_type {mt!r})")
        if raw.get("hidden_act", "gelu") != "gelu":
            raise NotImplementedError(f"{source}: hidden_act {raw['hidden_act']!r} (only gelu)")
        check_fields(raw, ConvNextConfig._RULES, "config.json")
        timm_state, names = hf_to_timm(state)
        shape = _shape_config(timm_state, source)
        _check_against_weights(raw, shape, "config.json")
        cfg = ConvNextConfig(**shape, norm_eps=1e-6, head_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
                             image_size=int(raw.get("image_size", 224)), id2label=parse_id2label(raw),
                             drop_path_rate=float(raw.get("drop_path_rate", 0.0)),
                             initializer_range=float(raw.get("initializer_range", 0.02)),
                             extra={k: v for k, v in raw.items() if k not in ("id2label", "label2id")})
        return cfg, timm_state, names

    @property
    def source_format(self) -> str:
        return "timm" if "timm_architecture" in self.config.extra else "transformers"

    # Training -------------------------------------------------------------------------
    _head_prefixes = ("head.fc.",)
    _precisions = ("fp32", "bf16")

    def _checkpoint_name(self, name: str) -> str:
        if self.source_format == "transformers":  # only reached for a head the checkpoint lacks
            return "classifier." + name[len("head.fc."):] if name.startswith("head.fc.") else "convnext." + name
        return name

    def _regularisers(self):
        return dict(drop_path_rate=float(self.config.drop_path_rate))

    def _save_layout(self):
        state = {name: np.asarray(p) for name, p in self._params.items()}
        cfg = self.config
        if self.source_format == "timm":
            out = dict(cfg.extra.get("timm_config") or {})
            out.setdefault("architecture", cfg.extra["timm_architecture"])
            out["num_classes"] = cfg.num_labels
            out["num_features"] = cfg.hidden_sizes[-1]
            out["label_names"] = [cfg.id2label[i] for i in range(cfg.num_labels)]
            return state, out
        out = dict(cfg.extra)
        out.update(model_type="convnext", num_channels=cfg.num_channels, patch_size=cfg.patch_size,
                   hidden_sizes=list(cfg.hidden_sizes), depths=list(cfg.depths), num_stages=cfg.num_stages,
                   layer_norm_eps=cfg.head_norm_eps, image_size=cfg.image_size, drop_path_rate=cfg.drop_path_rate,
                   initializer_range=cfg.initializer_range)
        write_labels(out, cfg.id2label)
        out["architectures"] = ["ConvNextForImageClassification" if self._with_head else "ConvNextModel"]
        return state, out

    def _run(self, pixel_values, stages=(), pooled=False, logits=False, stem=False):
        px = self._pixel_values(pixel_values, self.config.num_channels)
        return _C.convnext_forward(self._c, px, tuple(stages), pooled, logits, stem)

    def __call__(self, pixel_values, output_hidden_states: bool = False, return_dict: bool = True):
        n = self.config.num_stages
        stages = tuple(range(n)) if output_hidden_states else (n - 1,)
        maps, pooled, _, stem = self._run(pixel_values, stages, pooled=True, stem=output_hidden_states)
        out = BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=maps[-1], pooler_output=pooled,
            hidden_states=(stem, *maps) if output_hidden_states else None)
        return out if return_dict else out.to_tuple()

    forward = __call__

    def _num_feature_stages(self) -> int:
        return self.config.num_stages

    def _stage_maps(self, pixel_values, stages: tuple) -> tuple:
        return self._run(pixel_values, stages)[0]

    def _pooled(self, pixel_values) -> np.ndarray:
        return self._run(pixel_values, (), pooled=True)[1]


class ConvNextForImageClassification(ConvNextModel):
    _with_head = True

    def __init__(self, config: ConvNextConfig):
        if config.num_labels <= 0:
            raise ValueError("ConvNextForImageClassification needs a classifier head (num_labels > 0)")
        super().__init__(config)

    def __call__(self, pixel_values, labels=None, output_hidden_states: bool = False, return_dict: bool = True,
                 seed: int | None = None):
        from .vit import cross_entropy
        if self._keeps_graph():
            loss, logits = self._kept_call(pixel_values, labels, seed, output_hidden_states)
            out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits)
            return out if return_dict else out.to_tuple()
        n = self.config.num_stages
        self._remember_eval_input(pixel_values, labels)
        maps, _, logits, stem = self._run(pixel_values, tuple(range(n)) if output_hidden_states else (),
                                          logits=True, stem=output_hidden_states)
        loss = cross_entropy(logits, labels, self.config.num_labels, self.label_smoothing) if labels is not None else None
        out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits,
                                                   hidden_states=(stem, *maps) if output_hidden_states else None)
        return out if return_dict else out.to_tuple()

    forward = __call__
