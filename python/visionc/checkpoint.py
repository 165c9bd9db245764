"""Training checkpoints: output_dir/checkpoint-<step>/, written crash-safely.

A checkpoint directory holds
    config.json, model.safetensors      model.save_pretrained()
    preprocessor_config.json            the processor the model was trained with
    optimizer.safetensors               optimizer state arrays ("state.<param index>.<name>")
    trainer_state.json                  counters, history, run settings, optimizer param
                                        groups and scalar state, schedule state
    rng_state.json                      NumPy and Python global RNG states, the data order of
                                        the current epoch and the augmentation seed scheme

Crash safety: everything is written into output_dir/.tmp-checkpoint-<step>-XXXX/, each file
and the directory are fsynced, and only then is the directory renamed to checkpoint-<step>
(rename is atomic on POSIX; output_dir is fsynced after it). A crash at any point leaves
either no new checkpoint or a complete one, and the previous checkpoints are only pruned
(keep the newest ``keep``) after the new one is in place. Leftover .tmp-* directories from a
crash are never read and are removed by ``remove_stale_temporaries``.

Test hook: VISIONC_CHECKPOINT_KILL_AT="<step>:<stage>" makes the process SIGKILL itself at
that stage of saving checkpoint <step> (stages: model, optimizer, state, rename). Only the
crash-safety tests set it.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import tempfile

import numpy as np

from .io import load_state_dict, save_state_dict

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "list_checkpoints",
           "restore_model_weights", "remove_stale_temporaries"]

_NAME = re.compile(r"^checkpoint-(\d+)$")
REQUIRED = ("model.safetensors", "trainer_state.json", "rng_state.json")


def _test_hook(step: int, stage: str) -> None:
    if os.environ.get("VISIONC_CHECKPOINT_KILL_AT") == f"{step}:{stage}":
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f)


def list_checkpoints(output_dir) -> list[tuple[int, str]]:
    """[(step, path)] of the complete checkpoints in output_dir, oldest first."""
    out = []
    if not os.path.isdir(output_dir):
        return out
    for name in os.listdir(output_dir):
        m = _NAME.match(name)
        path = os.path.join(output_dir, name)
        if m and all(os.path.isfile(os.path.join(path, f)) for f in REQUIRED):
            out.append((int(m.group(1)), path))
    return sorted(out)


def latest_checkpoint(output_dir) -> str | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def remove_stale_temporaries(output_dir) -> None:
    """Deletes half-written .tmp-checkpoint-* directories left by a crash (single writer assumed)."""
    if os.path.isdir(output_dir):
        for name in os.listdir(output_dir):
            if name.startswith(".tmp-checkpoint-") or name.startswith(".old-checkpoint-"):
                shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)


def _optimizer_split(state_dict: dict) -> tuple[dict, dict]:
    """Optimizer.state_dict() -> (arrays for safetensors, JSON-able rest)."""
    arrays, scalars = {}, {}
    for idx, st in state_dict["state"].items():
        for k, v in st.items():
            if isinstance(v, np.ndarray):
                arrays[f"state.{idx}.{k}"] = v
            else:
                scalars.setdefault(str(idx), {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state_dict["param_groups"]]
    return arrays, {"param_groups": groups, "scalars": scalars}


def _optimizer_join(arrays: dict, meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in arrays.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    for idx, st in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(st)
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_state(data: dict) -> dict:
    alg, keys, pos, has_gauss, gauss = np.random.get_state()
    version, pstate, pgauss = random.getstate()
    return {"numpy": [alg, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(pstate), pgauss], **data}


def _set_rng_state(rng: dict) -> None:
    alg, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((alg, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, pstate, pgauss = rng["python"]
    random.setstate((version, tuple(pstate), pgauss))


def save_checkpoint(output_dir, step: int, model, processor, optimizer, schedule, state: dict, data_rng: dict,
                    keep: int | None = 2) -> str:
    """Writes checkpoint-<step> atomically (see the module doc) and prunes to the newest ``keep``."""
    output_dir = os.fspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-checkpoint-{step}-", dir=output_dir)
    try:
        model.save_pretrained(tmp)
        if processor is not None:
            _write_json(os.path.join(tmp, "preprocessor_config.json"), processor.to_dict())
        _test_hook(step, "model")
        arrays, opt_meta = _optimizer_split(optimizer.state_dict())
        if arrays:
            save_state_dict(os.path.join(tmp, "optimizer.safetensors"), arrays)
        _test_hook(step, "optimizer")
        full = dict(state, optimizer=opt_meta, schedule=schedule.state_dict())
        _write_json(os.path.join(tmp, "trainer_state.json"), full)
        _write_json(os.path.join(tmp, "rng_state.json"), _rng_state(data_rng))
        _test_hook(step, "state")
        for name in os.listdir(tmp):
            _fsync_path(os.path.join(tmp, name))
        _fsync_path(tmp)
        _test_hook(step, "rename")
        final = os.path.join(output_dir, f"checkpoint-{step}")
        if os.path.exists(final):  # re-saving a step (e.g. after resuming from it): swap, then delete
            old = tempfile.mkdtemp(prefix=f".old-checkpoint-{step}-", dir=output_dir)
            os.rename(final, os.path.join(old, "c"))
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_path(output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep is not None:
        for _, path in list_checkpoints(output_dir)[:-max(1, int(keep))]:
            shutil.rmtree(path, ignore_errors=True)
    return final


def load_checkpoint(path) -> dict:
    """{"state": trainer_state.json, "rng": rng_state.json, "optimizer": Optimizer.state_dict()}."""
    path = os.fspath(path)
    missing = [f for f in REQUIRED if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise FileNotFoundError(f"{path}: not a complete checkpoint (missing {', '.join(missing)})")
    with open(os.path.join(path, "trainer_state.json")) as f:
        state = json.load(f)
    with open(os.path.join(path, "rng_state.json")) as f:
        rng = json.load(f)
    opt_file = os.path.join(path, "optimizer.safetensors")
    arrays = dict(load_state_dict(opt_file)) if os.path.isfile(opt_file) else {}
    return {"state": state, "rng": rng, "optimizer": _optimizer_join(arrays, state["optimizer"])}


def restore_model_weights(model, path) -> None:
    """Copies the checkpoint's model.safetensors into the model's own arrays, in place, by name
    (parameters and, where the model exposes them in state_dict(), buffers such as BatchNorm
    running statistics)."""
    saved = load_state_dict(os.path.join(os.fspath(path), "model.safetensors"))
    targets = dict(model.named_parameters())
    if hasattr(model, "state_dict"):
        targets.update({k: v for k, v in model.state_dict().items() if isinstance(v, np.ndarray)})
    missing = [n for n, _ in model.named_parameters() if n not in saved]
    if missing:
        raise ValueError(f"{path}: the checkpoint lacks parameter {missing[0]!r}"
                         + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    for name, dst in targets.items():
        if name in saved:
            src = np.asarray(saved[name])
            if src.shape != dst.shape:
                raise ValueError(f"{path}: {name} has shape {src.shape}, the model's {dst.shape}")
            dst[...] = src


def restore_rng(rng: dict) -> None:
    _set_rng_state(rng)
