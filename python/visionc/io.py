"""Checkpoint loading and saving: safetensors and torch.save files, single or sharded.

The work (mapping, parsing, validation, conversion) is done in C by ``visionc._C``; this module
only picks files. Loaded float32 arrays are zero-copy, writeable views of a copy-on-write mapping
of the file: writing to them never modifies the file. float16/bfloat16 weights come back as
float32; integer and bool tensors keep their dtype.
"""
import json
import os

import numpy as np

from ._native import _C

__all__ = ["load_state_dict", "save_state_dict"]

# Directory layouts written by transformers' save_pretrained, in order of preference.
_DIR_CANDIDATES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _load_file(path):
    """One checkpoint file or index, format chosen by extension (sniffed when unknown)."""
    if path.endswith(".index.json"):
        return _load_sharded(path)
    return _load_single(path)


def _load_single(path):
    if path.endswith(".safetensors"):
        return _C.safetensors_load(path)[0]
    if path.endswith((".bin", ".pt", ".pth")):
        return _C.torch_bin_load(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    # torch.save archives are zip files; anything else is tried as safetensors, whose
    # loader gives a precise error if it is not one either.
    return _C.torch_bin_load(path) if magic == b"PK\x03\x04" else _C.safetensors_load(path)[0]


def _load_sharded(index_path):
    """A sharded checkpoint: the index's weight_map says which shard holds each tensor."""
    folder = os.path.dirname(index_path)
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except ValueError as e:
        raise ValueError(f"{index_path}: invalid JSON: {e}") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise ValueError(f"{index_path}: missing or malformed 'weight_map' (expected an object of name -> shard file)")
    for shard in set(weight_map.values()):
        # Shards live next to the index; a path elsewhere is a malformed (or hostile) index.
        if not shard or os.path.basename(shard) != shard or shard in (".", "..") or shard.endswith(".index.json"):
            raise ValueError(f"{index_path}: shard file name {shard!r} is not a plain file name")

    out, origin = {}, {}
    for shard in sorted(set(weight_map.values())):
        shard_path = os.path.join(folder, shard)
        tensors = _load_single(shard_path)
        for name, arr in tensors.items():
            if name in origin:
                raise ValueError(f"{shard_path}: tensor {name!r} is also in {origin[name]}")
            listed = weight_map.get(name)
            if listed is not None and listed != shard:
                raise ValueError(f"{shard_path}: tensor {name!r} is listed under shard {listed!r} in {index_path}")
            origin[name] = shard_path
            out[name] = arr
        missing = [n for n, s in weight_map.items() if s == shard and n not in tensors]
        if missing:
            raise ValueError(f"{shard_path}: {len(missing)} tensor(s) listed in {index_path} are missing, "
                             f"e.g. {missing[0]!r}")
    return out


def load_state_dict(path):
    """Load a checkpoint as ``{name: np.ndarray}`` (file order).

    ``path`` is a ``.safetensors``, ``.bin``/``.pt``/``.pth`` (torch.save zip format; read without
    torch and without running pickle code), or ``*.index.json`` file, or a directory holding one of
    model.safetensors, model.safetensors.index.json, pytorch_model.bin,
    pytorch_model.bin.index.json (safetensors preferred). Errors name the file at fault.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in _DIR_CANDIDATES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return _load_file(candidate)
        raise FileNotFoundError(f"{path}: no checkpoint found (looked for {', '.join(_DIR_CANDIDATES)})")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    return _load_file(path)


def save_state_dict(path, state_dict, metadata=None):
    """Save ``{name: array}`` as safetensors, atomically (temporary file, fsync, rename).

    ``path`` is a file name ending in ``.safetensors``, or a directory (``model.safetensors`` is
    written inside). Values are NumPy arrays or anything ``np.asarray`` accepts (CPU torch tensors).
    ``metadata`` is an optional ``{str: str}`` stored in the header.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.safetensors")
    elif not path.endswith(".safetensors"):
        raise ValueError(f"{path}: save_state_dict writes safetensors; use a .safetensors file name or a directory")
    arrays = {k: v if isinstance(v, np.ndarray) else np.asarray(v) for k, v in state_dict.items()}
    _C.safetensors_save(path, arrays, metadata)
