"""Where model files come from: a local directory or file, or a Hugging Face Hub repo id
resolved through huggingface_hub's cache (and a download when online)."""
from __future__ import annotations

import os
from pathlib import Path

# Files a vision checkpoint may need, small ones first. Weights are fetched separately so
# that a repo with both formats only costs one download.
_SMALL_FILES = ["config.json", "preprocessor_config.json", "generation_config.json", "tokenizer.json",
                "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
                "model.safetensors.index.json", "pytorch_model.bin.index.json"]


def _offline_error(name: str, err: Exception) -> OSError:
    return OSError(
        f"cannot find model '{name}': it is not a local path, and the Hugging Face Hub copy is neither in the "
        f"local cache nor reachable ({type(err).__name__}: {err}). On a machine with network access, download "
        f"the repository (config.json, model.safetensors or pytorch_model.bin, preprocessor_config.json), e.g. "
        f"`huggingface-cli download {name} --local-dir ./{name.split('/')[-1]}`, then pass that directory: "
        f"from_pretrained('./{name.split('/')[-1]}'). A populated cache also works (HF_HOME or cache_dir=...).")


def resolve(name_or_path, *, revision: str | None = None, cache_dir: str | None = None, token=None,
            local_files_only: bool | None = None) -> Path:
    """Returns a local directory (or file) holding the checkpoint `name_or_path`."""
    path = Path(os.fspath(name_or_path)).expanduser()
    if path.exists():
        return path
    name = os.fspath(name_or_path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith((".safetensors", ".bin", ".json")):
        raise FileNotFoundError(f"no such file or directory: '{name}'")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - huggingface_hub is a dependency
        raise _offline_error(name, e) from e
    if local_files_only is None:
        local_files_only = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    kw = dict(repo_id=name, revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only)
    try:
        snapshot_download(allow_patterns=_SMALL_FILES, **kw)
        local = Path(snapshot_download(allow_patterns=["model.safetensors", "model-*.safetensors"], **kw))
        if not any(local.glob("*.safetensors")):
            local = Path(snapshot_download(allow_patterns=["pytorch_model.bin", "pytorch_model-*.bin"], **kw))
        return local
    except Exception as e:  # network, auth, missing repo, not in cache
        raise _offline_error(name, e) from e


def default_model_dir() -> Path:
    """The real ViT-Ti/16 ImageNet classifier shipped inside the package (offline default)."""
    return Path(__file__).parent / "data" / "vit-tiny-patch16-224"


def resolve_file(name_or_path, filename: str, **hub_kwargs) -> str:
    """`filename` inside the checkpoint `name_or_path` (for the image processors' hub hook)."""
    path = resolve(name_or_path, **hub_kwargs) / filename
    if not path.is_file():
        raise FileNotFoundError(f"{name_or_path} has no {filename}")
    return str(path)
