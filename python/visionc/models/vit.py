"""ViT: transformers' ViTModel / ViTForImageClassification layouts and timm's
VisionTransformer layout, on the C ViT (csrc/models/vit.c)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .._native import _C
from .base import PreTrainedModel
from .config_fields import (EPS, IMAGE, LAYERS, MAX_WIDTH, PROB, SIZE, STD, Bool, Int, check_fields, check_matches,
                            write_labels, parse_id2label)
from .outputs import BaseModelOutputWithPooling, ImageClassifierOutput


@dataclass
class ViTConfig:
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    qkv_bias: bool = True
    pooler_output_size: int | None = None
    pooler_act: str = "tanh"
    hidden_dropout_prob: float = 0.0           # training only: embeddings, attention and MLP outputs
    attention_probs_dropout_prob: float = 0.0  # training only: on the softmax probabilities
    initializer_range: float = 0.02            # std of a re-initialised classifier
    id2label: dict = field(default_factory=dict)
    model_type: str = "vit"
    extra: dict = field(default_factory=dict)  # keys we carry but do not use, written back on save

    _RULES = {"hidden_size": SIZE, "num_hidden_layers": LAYERS, "num_attention_heads": SIZE,
              "intermediate_size": Int(1, 1 << 18), "image_size": IMAGE, "patch_size": Int(1, 1024),
              "num_channels": Int(1, 1024), "layer_norm_eps": EPS, "qkv_bias": Bool(),
              "pooler_output_size": Int(1, MAX_WIDTH, nullable=True), "hidden_dropout_prob": PROB,
              "attention_probs_dropout_prob": PROB, "initializer_range": STD}

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def label2id(self) -> dict:
        return {v: k for k, v in self.id2label.items()}

    @classmethod
    def from_dict(cls, d: dict, source: str = "config.json") -> "ViTConfig":
        known = {f.name for f in fields(cls)} - {"id2label", "extra"}
        d = dict(d)
        for k in ("image_size", "patch_size"):  # transformers accepts a square [h, w] pair too
            v = d.get(k)
            if isinstance(v, (list, tuple)) and len(v) == 2 and v[0] == v[1]:
                d[k] = v[0]
        check_fields(d, cls._RULES, source)
        cfg = cls(**{k: d[k] for k in known if k in d and d[k] is not None})
        cfg.check(source)
        cfg.id2label = parse_id2label(d, source)
        cfg.extra = {k: v for k, v in d.items() if k not in known and k not in ("id2label", "label2id", "num_labels")}
        if cfg.pooler_act != "tanh":
            raise NotImplementedError(f"{source}: pooler_act '{cfg.pooler_act}' is not supported (tanh)")
        return cfg

    def check(self, source: str):
        """The relations between fields (each one already in range)."""
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"{source}: hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                             f"{self.num_attention_heads}")
        grid = self.image_size // self.patch_size
        if grid < 1 or grid * grid > MAX_PATCHES:
            raise ValueError(f"{source}: image_size {self.image_size} with patch_size {self.patch_size} gives "
                             f"{grid}x{grid} patches (1 to {MAX_PATCHES} supported)")

    def to_dict(self) -> dict:
        d = dict(self.extra)
        for f in fields(self):
            if f.name in ("extra", "id2label"):
                continue
            d[f.name] = getattr(self, f.name)
        return write_labels(d, self.id2label)


# --- timm's VisionTransformer keys -> transformers' ViT keys (one table, applied once) ---
_TIMM_RENAMES = [
    (r"^cls_token$", "embeddings.cls_token"),
    (r"^pos_embed$", "embeddings.position_embeddings"),
    (r"^patch_embed\.proj\.(weight|bias)$", r"embeddings.patch_embeddings.projection.\1"),
    (r"^blocks\.(\d+)\.norm1\.(weight|bias)$", r"encoder.layer.\1.layernorm_before.\2"),
    (r"^blocks\.(\d+)\.attn\.proj\.(weight|bias)$", r"encoder.layer.\1.attention.output.dense.\2"),
    (r"^blocks\.(\d+)\.norm2\.(weight|bias)$", r"encoder.layer.\1.layernorm_after.\2"),
    (r"^blocks\.(\d+)\.mlp\.fc1\.(weight|bias)$", r"encoder.layer.\1.intermediate.dense.\2"),
    (r"^blocks\.(\d+)\.mlp\.fc2\.(weight|bias)$", r"encoder.layer.\1.output.dense.\2"),
    (r"^norm\.(weight|bias)$", r"layernorm.\1"),
    (r"^head\.(weight|bias)$", r"classifier.\1"),
]
_TIMM_QKV = re.compile(r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")
MAX_PATCHES = 1 << 16  # what the C forward accepts (csrc/models/vit.c)
# Heads per width for timm's named ViT sizes (all others: 64-wide heads).
_TIMM_HEADS = {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16, "giant": 16, "gigantic": 16}


def is_timm_vit(state: dict) -> bool:
    return "patch_embed.proj.weight" in state and any(k.startswith("blocks.") for k in state)


def timm_to_hf(state: dict, source: str) -> tuple[dict, dict]:
    """Renames timm keys: (state under the C model's names, {C name: timm name}). The fused qkv
    stays in the state under its timm name and each of query/key/value maps to
    (timm name, first row, end row): one Parameter whose row blocks the C slots view."""
    out, names = {}, {}
    unsupported = [k for k in state if k.startswith(("reg_token", "fc_norm", "attn_pool", "norm_pre"))
                   or ".ls1." in k or ".ls2." in k or ".q_norm." in k or ".k_norm." in k]
    if unsupported:
        raise NotImplementedError(f"{source}: this timm ViT variant is not supported (has {unsupported[0]})")
    for k, v in state.items():
        m = _TIMM_QKV.match(k)
        if m:
            layer, kind = m.groups()
            if v.shape[0] % 3:
                raise ValueError(f"{source}: tensor {k} has shape {v.shape}, not three stacked blocks")
            n = v.shape[0] // 3
            out[k] = v
            for i, part in enumerate(("query", "key", "value")):
                slot = f"encoder.layer.{layer}.attention.attention.{part}.{kind}"
                out[slot] = v[i * n:(i + 1) * n]
                names[slot] = (k, i * n, (i + 1) * n)
            continue
        for pat, rep in _TIMM_RENAMES:
            if re.match(pat, k):
                slot = re.sub(pat, rep, k)
                out[slot] = v
                names[slot] = k
                break
        else:
            raise ValueError(f"{source}: unexpected tensor {k} in a timm ViT checkpoint")
    return out, names


def timm_config(state: dict, timm_cfg: dict | None, source: str) -> ViTConfig:
    """A ViTConfig for timm weights, from the shapes plus the architecture name for the head count."""
    timm_cfg = timm_cfg or {}
    arch = str(timm_cfg.get("architecture", "") or Path(source).stem)
    C = int(state["cls_token"].shape[-1])
    P = int(state["patch_embed.proj.weight"].shape[-1])
    n_pos = int(state["pos_embed"].shape[1]) - 1
    side = int(round(n_pos ** 0.5))
    if side * side != n_pos:
        raise ValueError(f"{source}: pos_embed has {n_pos} patch positions, not a square grid")
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    heads = next((h for name, h in _TIMM_HEADS.items() if re.search(rf"(^|_){name}(_|$)", arch)), max(1, C // 64))
    num_classes = int(state["head.weight"].shape[0]) if "head.weight" in state else 0
    pre = timm_cfg.get("pretrained_cfg", {}) or {}
    labels = timm_cfg.get("label_names") or pre.get("label_names")
    id2label = {i: (labels[i] if labels and i < len(labels) else f"LABEL_{i}") for i in range(num_classes)}
    cfg = ViTConfig(hidden_size=C, num_hidden_layers=depth, num_attention_heads=heads,
                    intermediate_size=int(state["blocks.0.mlp.fc1.weight"].shape[0]), hidden_act="gelu",
                    layer_norm_eps=1e-6, image_size=side * P, patch_size=P,
                    num_channels=int(state["patch_embed.proj.weight"].shape[1]),
                    qkv_bias="blocks.0.attn.qkv.bias" in state, id2label=id2label)
    cfg.extra = {"timm_architecture": arch, "timm_config": dict(timm_cfg)}
    return cfg


class ViTModel(PreTrainedModel):
    """transformers.ViTModel on the C core. Outputs are NumPy arrays."""

    _with_head = False

    def __init__(self, config: ViTConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.add_pooling_layer = add_pooling_layer and not self._with_head
        self._c = _C.vit_new(config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                         config.intermediate_size, config.patch_size, config.image_size, config.num_channels,
                         bool(config.qkv_bias), bool(self.add_pooling_layer),
                         int(config.pooler_output_size or config.hidden_size),
                         config.num_labels if self._with_head else 0, str(config.hidden_act),
                         float(config.layer_norm_eps))

    @classmethod
    def _prepare(cls, state, raw, source):
        if is_timm_vit(state):
            renamed, names = timm_to_hf(state, source)
            return timm_config(state, raw, source), renamed, names
        if raw is None:
            raise FileNotFoundError(f"{source}: no config.json beside it (needed for transformers checkpoints)")
        mt = raw.get("model_type")
        if mt not in (None, "vit"):
            raise ValueError(f"{source}: config.json model_type '{mt}' is not a ViT")
        config, state = ViTConfig.from_dict(raw, "config.json"), _strip_prefix(state)
        _check_against_weights(config, state, "config.json")
        return config, state, {}

    @classmethod
    def _build(cls, config, state, add_pooling_layer: bool | None = None):
        _resample_position_embeddings(config, state)
        if cls._with_head:
            return cls(config)
        if add_pooling_layer is None:
            add_pooling_layer = "pooler.dense.weight" in state
        return cls(config, add_pooling_layer=add_pooling_layer)

    @property
    def source_format(self) -> str:
        return "timm" if "timm_architecture" in self.config.extra else "transformers"

    def _checkpoint_name(self, name: str) -> str:
        """Names as transformers saves this class: ViTForImageClassification prefixes 'vit.'
        (timm checkpoints name every tensor themselves, except a head they lack)."""
        if self.source_format == "timm":
            return "head." + name[len("classifier."):] if name.startswith("classifier.") else name
        if self._with_head and not name.startswith("classifier."):
            return "vit." + name
        return name

    # Training -------------------------------------------------------------------------
    _precisions = ("fp32", "bf16")

    def _regularisers(self):
        return dict(hidden_dropout=float(self.config.hidden_dropout_prob),
                    attention_dropout=float(self.config.attention_probs_dropout_prob))

    def _save_layout(self):
        state = {name: np.asarray(p) for name, p in self._params.items()}
        if self.source_format == "timm":
            cfg = dict(self.config.extra.get("timm_config") or {})
            cfg.setdefault("architecture", self.config.extra["timm_architecture"])
            cfg["num_classes"] = self.config.num_labels
            cfg["num_features"] = self.config.hidden_size
            cfg["label_names"] = [self.config.id2label[i] for i in range(self.config.num_labels)]
            return state, cfg
        cfg = self.config.to_dict()
        cfg["architectures"] = ["ViTForImageClassification" if self._with_head else "ViTModel"]
        cfg.pop("timm_architecture", None)
        return state, cfg

    # Forward --------------------------------------------------------------------------
    def _run(self, pixel_values, interpolate_pos_encoding, want_pooled, want_logits, output_hidden_states,
             output_attentions):
        px = self._pixel_values(pixel_values, self.config.num_channels)
        return _C.vit_forward(self._c, px, bool(interpolate_pos_encoding), True, want_pooled, want_logits,
                               bool(output_hidden_states), bool(output_attentions))

    def __call__(self, pixel_values, output_hidden_states: bool = False, output_attentions: bool = False,
                 interpolate_pos_encoding: bool = False, return_dict: bool = True):
        last, pooled, _, hidden, attn = self._run(pixel_values, interpolate_pos_encoding, self.add_pooling_layer,
                                                  False, output_hidden_states, output_attentions)
        out = BaseModelOutputWithPooling(last_hidden_state=last, pooler_output=pooled, hidden_states=hidden,
                                         attentions=attn)
        return out if return_dict else out.to_tuple()

    forward = __call__

    def embed(self, pixel_values, pooling: str = "cls", normalize: bool = False,
              interpolate_pos_encoding: bool = False) -> np.ndarray:
        """One vector per image, (N, hidden_size): the final-layer-normed class token
        ("cls"), the mean of the patch tokens ("mean", class token excluded, as timm's avg
        pool), or the pooler output ("pooler"). normalize=True scales each to unit L2 norm."""
        if pooling not in ("cls", "mean", "pooler"):
            raise ValueError(f"pooling must be 'cls', 'mean' or 'pooler', got {pooling!r}")
        if pooling == "pooler" and not self.add_pooling_layer:
            raise ValueError("pooling='pooler' needs a model with a pooler (this checkpoint has none)")
        last, pooled, _, _, _ = self._run(pixel_values, interpolate_pos_encoding, pooling == "pooler", False,
                                          False, False)
        if pooling == "cls":
            emb = last[:, 0].copy()
        elif pooling == "mean":
            emb = last[:, 1:].mean(axis=1, dtype=np.float32)
        else:
            emb = pooled
        if normalize:
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb


class ViTForImageClassification(ViTModel):
    """transformers.ViTForImageClassification on the C core."""

    _with_head = True

    def __init__(self, config: ViTConfig):
        if config.num_labels <= 0:
            raise ValueError("ViTForImageClassification needs id2label / num_labels in the config")
        super().__init__(config, add_pooling_layer=False)

    def __call__(self, pixel_values, labels=None, output_hidden_states: bool = False,
                 output_attentions: bool = False, interpolate_pos_encoding: bool = False,
                 return_dict: bool = True, seed: int | None = None):
        if self._keeps_graph():
            loss, logits = self._kept_call(pixel_values, labels, seed,
                                           output_hidden_states or output_attentions or interpolate_pos_encoding)
            out = ImageClassifierOutput(loss=loss, logits=logits)
            return out if return_dict else out.to_tuple()
        self._remember_eval_input(pixel_values, labels)
        _, _, logits, hidden, attn = self._run(pixel_values, interpolate_pos_encoding, False, True,
                                               output_hidden_states, output_attentions)
        loss = None
        if labels is not None:
            loss = cross_entropy(logits, labels, self.config.num_labels, self.label_smoothing)
        out = ImageClassifierOutput(loss=loss, logits=logits, hidden_states=hidden, attentions=attn)
        return out if return_dict else out.to_tuple()

    forward = __call__


def _check_against_weights(cfg: ViTConfig, state: dict, source: str):
    """Every size the weights fix, compared before the C model is built (a tensor that is
    missing altogether is reported by the loader, by name)."""
    pe = state.get("embeddings.patch_embeddings.projection.weight")
    if pe is not None and pe.ndim == 4:
        name = "embeddings.patch_embeddings.projection.weight"
        check_matches(source, "hidden_size", cfg.hidden_size, int(pe.shape[0]), name)
        check_matches(source, "num_channels", cfg.num_channels, int(pe.shape[1]), name)
        check_matches(source, "patch_size", cfg.patch_size, int(pe.shape[2]), name)
    layers = {int(k.split(".")[2]) for k in state if re.match(r"encoder\.layer\.\d+\.", k)}
    if layers:
        check_matches(source, "num_hidden_layers", cfg.num_hidden_layers, max(layers) + 1, "encoder.layer.*")
    fc1 = state.get("encoder.layer.0.intermediate.dense.weight")
    if fc1 is not None:
        check_matches(source, "intermediate_size", cfg.intermediate_size, int(fc1.shape[0]),
                      "encoder.layer.0.intermediate.dense.weight")
    pos = state.get("embeddings.position_embeddings")
    if pos is not None and pos.ndim == 3:
        grid = cfg.image_size // cfg.patch_size
        if grid * grid + 1 != pos.shape[1]:
            raise ValueError(f"{source}: image_size {cfg.image_size} with patch_size {cfg.patch_size} needs "
                             f"{grid * grid + 1} position embeddings, but the weights have {pos.shape[1]} (pass "
                             f"from_pretrained(..., image_size=N) to resample them for another size)")
    pooler = state.get("pooler.dense.weight")
    if pooler is not None and cfg.pooler_output_size is not None:
        check_matches(source, "pooler_output_size", cfg.pooler_output_size, int(pooler.shape[0]),
                      "pooler.dense.weight")


def _bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of torch's 1-D bicubic interpolation (A = -0.75, align_corners=False,
    edge-clamped taps): applied along both axes it equals F.interpolate(mode="bicubic")."""
    A = -0.75
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        x = (o + 0.5) * scale - 0.5
        i = int(np.floor(x))
        t = x - i
        w = [((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A,
             ((A + 2) * t - (A + 3)) * t * t + 1,
             ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1,
             ((A * (2 - t) - 5 * A) * (2 - t) + 8 * A) * (2 - t) - 4 * A]
        for k in range(4):
            m[o, min(max(i - 1 + k, 0), n_in - 1)] += w[k]
    return m


def _resample_position_embeddings(config: ViTConfig, state: dict):
    """When config.image_size (e.g. from_pretrained(..., image_size=112)) differs from the
    checkpoint's grid, resample the patch position embeddings once, bicubically, as timm does
    when a model is created for another input size. The model then trains and runs natively at
    that size (and save_pretrained writes the resampled table)."""
    key = "embeddings.position_embeddings"
    if key not in state:
        return
    pos = state[key]
    n_old = pos.shape[1] - 1
    side_old = int(round(n_old ** 0.5))
    side_new = config.image_size // config.patch_size
    if side_old * side_old != n_old or side_new == side_old:
        return
    grid = pos[0, 1:].reshape(side_old, side_old, -1).astype(np.float64)
    m = _bicubic_matrix(side_old, side_new)
    new = np.einsum("ay,yxc,bx->abc", m, grid, m).reshape(side_new * side_new, -1)
    state[key] = np.concatenate([pos[0, :1], new.astype(np.float32)])[None]


def cross_entropy(logits: np.ndarray, labels, num_labels: int, label_smoothing: float = 0.0) -> float:
    labels = np.asarray(labels)
    if labels.shape != (logits.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers of shape ({logits.shape[0]},), got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(f"labels must lie in [0, {num_labels}), got values from {labels.min()} to {labels.max()}")
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    nll = -logp[np.arange(len(labels)), labels]
    if label_smoothing:  # torch: (1 - e) * nll + e * mean over classes of -log p
        nll = (1 - label_smoothing) * nll - label_smoothing * logp.mean(axis=1)
    return float(nll.mean())


# transformers >= 5 names ViT's modules differently in memory (save_pretrained converts back
# to the names above, but a torch.save(model.state_dict()) keeps these).
_TF5_RENAMES = [
    (r"^layers\.(\d+)\.attention\.q_proj\.", r"encoder.layer.\1.attention.attention.query."),
    (r"^layers\.(\d+)\.attention\.k_proj\.", r"encoder.layer.\1.attention.attention.key."),
    (r"^layers\.(\d+)\.attention\.v_proj\.", r"encoder.layer.\1.attention.attention.value."),
    (r"^layers\.(\d+)\.attention\.o_proj\.", r"encoder.layer.\1.attention.output.dense."),
    (r"^layers\.(\d+)\.mlp\.fc1\.", r"encoder.layer.\1.intermediate.dense."),
    (r"^layers\.(\d+)\.mlp\.fc2\.", r"encoder.layer.\1.output.dense."),
    (r"^layers\.(\d+)\.layernorm_(before|after)\.", r"encoder.layer.\1.layernorm_\2."),
]


def _strip_prefix(state: dict) -> dict:
    """Canonical ViTModel names: without the 'vit.' prefix (ViTForImageClassification vs
    ViTModel), and with transformers 5's in-memory module names mapped back."""
    out = {}
    for k, v in state.items():
        k = k[4:] if k.startswith("vit.") else k
        if k.startswith("layers."):
            for pat, rep in _TF5_RENAMES:
                if re.match(pat, k):
                    k = re.sub(pat, rep, k)
                    break
        out[k] = v
    return out
