"""Auto classes: pick the model family from the checkpoint (config.json's model_type, timm's
"architecture", or for a bare weights file its tensor names), as transformers' Auto classes do."""
from __future__ import annotations

from pathlib import Path

from ..io import load_state_dict
from .base import locate, read_json
from . import convnext, mobilevit, vit

# family -> (base model class, image-classification class). Later families add themselves here.
FAMILIES: dict[str, tuple] = {
    "vit": (vit.ViTModel, vit.ViTForImageClassification),
    "convnext": (convnext.ConvNextModel, convnext.ConvNextForImageClassification),
    "mobilevit": (mobilevit.MobileViTModel, mobilevit.MobileViTForImageClassification),
}

# timm architecture name prefix -> family
TIMM_PREFIXES: dict[str, str] = {
    "vit_": "vit",
    "convnext_": "convnext",
    "convnext": "convnext",
}

# a tensor name that identifies each family in a bare weights file
KEY_MARKERS: list[tuple[str, str]] = [
    ("patch_embed.proj.weight", "vit"),
    ("vit.embeddings.patch_embeddings.projection.weight", "vit"),
    ("embeddings.patch_embeddings.projection.weight", "vit"),
    ("stages.0.blocks.0.conv_dw.weight", "convnext"),
    ("convnext.embeddings.patch_embeddings.weight", "convnext"),
    ("embeddings.patch_embeddings.weight", "convnext"),
    ("mobilevit.conv_stem.convolution.weight", "mobilevit"),
    ("conv_stem.convolution.weight", "mobilevit"),
]


def family_of(name_or_path, **hub_kwargs) -> tuple[str, Path]:
    directory, weights = locate(name_or_path, **hub_kwargs)
    source = directory if directory is not None else weights
    if directory is not None and (directory / "config.json").exists():
        cfg = read_json(directory / "config.json")
        arch = cfg.get("architecture")
        if isinstance(arch, str):
            for prefix, fam in TIMM_PREFIXES.items():
                if arch.startswith(prefix):
                    return fam, source
            raise NotImplementedError(f"{directory / 'config.json'}: timm architecture '{arch}' is not supported "
                                      f"(supported: {', '.join(p + '*' for p in TIMM_PREFIXES)})")
        mt = cfg.get("model_type")
        if mt in FAMILIES:
            return mt, source
        if mt is not None:
            raise NotImplementedError(f"{directory / 'config.json'}: model_type '{mt}' is not supported "
                                      f"(supported: {', '.join(sorted(FAMILIES))})")
    keys = load_state_dict(weights).keys()
    for marker, fam in KEY_MARKERS:
        if marker in keys:
            return fam, source
    raise ValueError(f"{weights}: cannot tell which model family these weights belong to")


class AutoModel:
    """The family's base model (ViTModel, ...): hidden states and embeddings."""

    @staticmethod
    def from_pretrained(name_or_path, *, revision=None, cache_dir=None, token=None, local_files_only=None, **kwargs):
        hub_kw = dict(revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only)
        fam, source = family_of(name_or_path, **hub_kw)
        model = FAMILIES[fam][0].from_pretrained(source, **kwargs)
        model.name_or_path = str(name_or_path)
        return model


class AutoModelForImageClassification:
    """The family's classifier (ViTForImageClassification, ...)."""

    @staticmethod
    def from_pretrained(name_or_path, *, revision=None, cache_dir=None, token=None, local_files_only=None, **kwargs):
        hub_kw = dict(revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only)
        fam, source = family_of(name_or_path, **hub_kw)
        model = FAMILIES[fam][1].from_pretrained(source, **kwargs)
        model.name_or_path = str(name_or_path)
        return model


class AutoBackbone:
    """Multi-scale feature maps: AutoBackbone.from_pretrained(path, out_indices=(0, 1, 2, 3))(px)
    returns a list of (B, C_i, H_i, W_i) maps, one per chosen stage, like timm's features_only."""

    def __init__(self, model, out_indices):
        self.model = model
        self.out_indices = tuple(out_indices) if out_indices is not None else None

    @classmethod
    def from_pretrained(cls, name_or_path, *, out_indices=None, revision=None, cache_dir=None, token=None,
                        local_files_only=None, **kwargs):
        model = AutoModel.from_pretrained(name_or_path, revision=revision, cache_dir=cache_dir, token=token,
                                          local_files_only=local_files_only, **kwargs)
        if not hasattr(model, "features"):
            raise NotImplementedError(f"{type(model).__name__} has no multi-scale feature maps")
        return cls(model, out_indices)

    @property
    def config(self):
        return self.model.config

    def __call__(self, pixel_values) -> list:
        return self.model.features(pixel_values, self.out_indices)
