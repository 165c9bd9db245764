"""Hub ids resolve through huggingface_hub's cache; offline misses explain what to do."""
import shutil

import numpy as np
import pytest
import torch
import transformers

import visionc
from visionc import hub


def _tiny_vit(path):
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 image_size=16, patch_size=8, num_labels=3)
    transformers.ViTForImageClassification(cfg).eval().save_pretrained(path)


def _fake_cache(cache_dir, repo_id, src):
    """The layout huggingface_hub keeps: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(src, repo / "snapshots" / commit)


def test_local_directory_resolves_to_itself(tmp_path):
    assert hub.resolve(tmp_path) == tmp_path


def test_repo_id_from_the_hub_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _tiny_vit(tmp_path / "src")
    _fake_cache(tmp_path / "cache", "someone/tiny-vit", tmp_path / "src")
    model = visionc.AutoModelForImageClassification.from_pretrained("someone/tiny-vit", cache_dir=tmp_path / "cache")
    px = np.zeros((1, 3, 16, 16), np.float32)
    want = visionc.AutoModelForImageClassification.from_pretrained(tmp_path / "src")(px).logits
    np.testing.assert_array_equal(model(px).logits, want)


def test_offline_miss_says_how_to_use_a_local_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError) as e:
        visionc.AutoModelForImageClassification.from_pretrained("google/vit-base-patch16-224",
                                                                cache_dir=tmp_path)
    msg = str(e.value)
    assert "google/vit-base-patch16-224" in msg and "from_pretrained('./vit-base-patch16-224')" in msg
    assert "huggingface-cli download" in msg


def test_missing_local_path_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        visionc.AutoModel.from_pretrained(str(tmp_path / "nope" / "model.safetensors"))
