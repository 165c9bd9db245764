"""What every visionc model shares: loading from a directory / hub id / file, the config,
named parameters that are the C core's own memory, and thread control."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import hub
from ..io import load_state_dict
from .config_fields import MAX_LABELS, Int, check_fields
from .training import TrainingMixin, as_parameter, init_head


def read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def weights_file(directory: Path) -> Path:
    """The checkpoint inside a model directory, safetensors preferred."""
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json"):
        if (directory / name).exists():
            return directory / name
    others = sorted(directory.glob("*.safetensors"))
    if len(others) == 1:
        return others[0]
    raise FileNotFoundError(f"{directory}: no model.safetensors or pytorch_model.bin (found: "
                            f"{', '.join(sorted(p.name for p in directory.iterdir())) or 'nothing'})")


def locate(name_or_path, **hub_kwargs) -> tuple[Path | None, Path]:
    """(model directory or None for a bare weights file, weights path)."""
    where = hub.resolve(name_or_path, **hub_kwargs)
    if where.is_file():
        return None, where
    return where, weights_file(where)


class FeatureMapsMixin:
    """features() and embed() of the convolutional families (ConvNeXt, MobileViT). A family
    gives _num_feature_stages(), _stage_maps(pixel_values, stages) -> one map per stage asked
    for (ascending), and _pooled(pixel_values) -> (B, C) pooled features."""

    def features(self, pixel_values, out_indices=None) -> list:
        """Feature maps of the chosen stages (negative indices count from the last), (B, C_i,
        H_i, W_i) each, like timm's features_only; one forward however many are asked for."""
        n = self._num_feature_stages()
        idx = tuple(range(n)) if out_indices is None else tuple(
            int(i) + n if -n <= int(i) < 0 else int(i) for i in out_indices)
        order = tuple(sorted(set(idx)))
        by_stage = dict(zip(order, self._stage_maps(pixel_values, order)))
        return [by_stage[i] for i in idx]

    def embed(self, pixel_values, pooling: str = "mean", normalize: bool = False) -> np.ndarray:
        """(B, C): the head's pooled features; normalize=True scales each row to unit length."""
        if pooling != "mean":
            raise ValueError(f"{type(self).__name__} embeddings are mean-pooled (pooling='mean'), got {pooling!r}")
        emb = self._pooled(pixel_values)
        if normalize:
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb


class PreTrainedModel(TrainingMixin):
    """Base for models whose compute lives in a C object (`self._c`).

    Subclasses define `_bind_parameters(state)` mapping checkpoint arrays onto the C
    slots, and the forward pass. Parameters are kept in `self._params` (name -> float32
    array, names as in the checkpoint) and shared with the C core without copies.
    """

    main_input_name = "pixel_values"

    def __init__(self):
        self._init_training()
        self._params: dict[str, np.ndarray] = {}  # name -> visionc.nn.Parameter
        self.name_or_path: str | None = None
        self.local_dir: Path | None = None  # the directory it was loaded from (processor config lives there)

    # Loading --------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path, *, revision=None, cache_dir=None, token=None, local_files_only=None,
                        **kwargs):
        """Loads a local directory, a weights file, or a hub repo id (through the hub cache).

        Keyword arguments that name config fields (id2label, ...) override the config; the
        rest go to the family's constructor (e.g. add_pooling_layer). num_labels=n sets
        LABEL_0.. names unless id2label is given. ignore_mismatched_sizes=True re-initialises a
        classifier whose shape disagrees with the config (else ValueError naming the tensor);
        a classifier missing from the checkpoint is always initialised (as transformers)."""
        ignore_mismatched = bool(kwargs.pop("ignore_mismatched_sizes", False))
        if "num_labels" in kwargs:
            check_fields(kwargs, {"num_labels": Int(1, MAX_LABELS)}, "from_pretrained")
            n = int(kwargs.pop("num_labels"))
            if "id2label" in kwargs and len(kwargs["id2label"]) != n:
                raise ValueError(f"num_labels={n} disagrees with id2label ({len(kwargs['id2label'])} labels)")
            kwargs.setdefault("id2label", {i: f"LABEL_{i}" for i in range(n)})
        directory, weights = locate(name_or_path, revision=revision, cache_dir=cache_dir, token=token,
                                    local_files_only=local_files_only)
        state = load_state_dict(weights)
        raw = None
        if directory is not None and (directory / "config.json").exists():
            raw = read_json(directory / "config.json")
        config, state, names = cls._prepare(state, raw, str(weights))
        build_kwargs = {}
        rules = getattr(type(config), "_RULES", {})
        check_fields(kwargs, rules, "from_pretrained")
        for k, v in kwargs.items():
            if k == "id2label":
                v = {int(i): str(n) for i, n in v.items()}
            if hasattr(config, k) and not callable(getattr(config, k)):
                setattr(config, k, v)
            else:
                build_kwargs[k] = v
        if hasattr(config, "check"):
            config.check("from_pretrained")
        model = cls._build(config, state, **build_kwargs)
        model._ignore_mismatched_sizes = ignore_mismatched
        model._load(state, str(weights), names)
        model.name_or_path = str(name_or_path)
        model.local_dir = directory
        return model

    @classmethod
    def _prepare(cls, state: dict, raw_config: dict | None, source: str):
        """(config, state with the C model's slot names, {slot name: checkpoint name})."""
        raise NotImplementedError

    @classmethod
    def _build(cls, config, state: dict, **kwargs):
        return cls(config, **kwargs)

    def _load(self, state: dict, source: str, names: dict | None = None):
        """Binds every C slot to its (checked, float32, contiguous) array: no copies for F32.

        names maps a slot to its checkpoint name, or to (name, start, stop) for a slot that is
        rows start:stop of a fused checkpoint tensor (timm's qkv): the fused array, present in
        `state` under its own name, becomes one Parameter and the slot binds a view of it."""
        names = names or {}
        specs = self._c.param_specs()
        head = tuple(getattr(self, "_head_prefixes", ()))
        ignore = getattr(self, "_ignore_mismatched_sizes", False)
        rng = np.random.default_rng(0)
        std = float(getattr(self.config, "initializer_range", None) or
                    getattr(self.config, "extra", {}).get("initializer_range", 0.02))
        missing = [n for n, _ in specs if n not in state and not (head and n.startswith(head))]
        if missing:
            shown = names.get(missing[0], missing[0])
            shown = shown[0] if isinstance(shown, tuple) else shown
            raise ValueError(f"{source}: missing tensor {shown}" +
                             (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        self._slots = []
        for i, (name, shape) in enumerate(specs):
            entry = names.get(name, self._checkpoint_name(name))
            if isinstance(entry, tuple):  # rows of a fused tensor
                label, a, b = entry
                if label not in self._params:
                    self._params[label] = as_parameter(self._checked_array(label, state[label], state[label].shape,
                                                                           source))
                self._c.bind(i, np.asarray(self._params[label])[a:b])
                self._slots.append((label, slice(a, b)))
                continue
            label = entry
            value = state.get(name)
            is_head = bool(head) and name.startswith(head)
            if is_head and (value is None or (ignore and tuple(np.shape(value)) != tuple(shape))):
                value = init_head(tuple(shape), name.endswith("bias"), std, rng)
            elif is_head and tuple(np.shape(value)) != tuple(shape):
                raise ValueError(f"{source}: tensor {label} has shape {tuple(np.shape(value))}, but the config needs "
                                 f"{tuple(shape)} (pass ignore_mismatched_sizes=True to re-initialise the head)")
            arr = self._checked_array(label, value, shape, source)
            self._c.bind(i, arr)
            self._params[label] = as_parameter(arr)
            self._slots.append((label, None))

    def _checkpoint_name(self, name: str) -> str:
        return name

    # Parameters -----------------------------------------------------------------------
    def named_parameters(self):
        return list(self._params.items())

    def parameters(self):
        return list(self._params.values())

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self._params)

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self._params.values()))

    @staticmethod
    def _checked_array(name: str, value, shape: tuple, source: str) -> np.ndarray:
        arr = value
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{source}: tensor {name} is not an array")
        if arr.size == int(np.prod(shape)) and len(shape) == 2 and arr.ndim == 4 and arr.shape[2:] == (1, 1):
            arr = arr.reshape(shape)  # a 1x1 convolution stored for a Linear slot: same memory
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"{source}: tensor {name} has shape {tuple(arr.shape)}, but the config needs "
                             f"{tuple(shape)}")
        if arr.dtype != np.float32:
            if arr.dtype.kind != "f":
                raise ValueError(f"{source}: tensor {name} has dtype {arr.dtype}, expected a float type")
            arr = arr.astype(np.float32)
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        return arr

    @staticmethod
    def _pixel_values(pixel_values, num_channels: int) -> np.ndarray:
        if isinstance(pixel_values, (list, tuple)):
            raise TypeError("pixel_values must be a float32 array of shape (N, C, H, W); use the image processor "
                            "to turn images into one")
        px = pixel_values
        if not isinstance(px, np.ndarray):
            if hasattr(px, "detach") and hasattr(px, "numpy"):  # a torch tensor
                px = px.detach().cpu().numpy()
            else:
                raise TypeError(f"pixel_values must be a NumPy array, got {type(pixel_values).__name__}")
        if px.dtype != np.float32:
            raise TypeError(f"pixel_values must be float32, got {px.dtype} (use .astype(np.float32))")
        if px.ndim != 4:
            raise ValueError(f"pixel_values must have 4 dimensions (N, C, H, W), got shape {px.shape}")
        if px.shape[0] == 0:
            raise ValueError("pixel_values: the batch is empty")
        if px.shape[1] != num_channels:
            raise ValueError(f"pixel_values has {px.shape[1]} channels, the model expects {num_channels} "
                             f"(shape (N, C, H, W))")
        if not np.isfinite(px).all():
            raise ValueError("pixel_values contains NaN or infinity")
        return np.ascontiguousarray(px)
