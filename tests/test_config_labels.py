"""Configs as transformers >= 5.2x writes them: with the default two labels, config.json has no
id2label, label2id or num_labels. Every family reads that as transformers does (two labels,
LABEL_0 and LABEL_1), through its own class, the Auto classes, the pipeline and the CLI, and
save_pretrained writes the same thing back. Also the bounds on sizes given to from_pretrained."""
import json
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
import transformers

import visionc
from helpers import assert_close, subprocess_env
from tolerances import LOGITS_ATOL

transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore")
torch.set_num_threads(2)

DEFAULT_LABELS = {0: "LABEL_0", 1: "LABEL_1"}


def _vit():
    return transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
        patch_size=8)), visionc.ViTForImageClassification, 32


def _convnext():
    return transformers.ConvNextForImageClassification(transformers.ConvNextConfig(
        depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32])), visionc.ConvNextForImageClassification, 64


def _mobilevit():
    return transformers.MobileViTForImageClassification(transformers.MobileViTConfig(
        image_size=64, hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16, 16, 24, 24, 64])), \
        visionc.MobileViTForImageClassification, 64


FAMILIES = {"vit": _vit, "convnext": _convnext, "mobilevit": _mobilevit}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def default_label_checkpoint(request, tmp_path_factory):
    torch.manual_seed(0)
    ref, cls, size = FAMILIES[request.param]()
    ref.eval()
    path = tmp_path_factory.mktemp(f"{request.param}-default-labels")
    ref.save_pretrained(path)
    cfg = json.loads((path / "config.json").read_text())
    assert not {"id2label", "label2id", "num_labels"} & set(cfg), "transformers wrote the default labels"
    (path / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "ViTImageProcessor", "size": {"height": size, "width": size}}))
    return request.param, ref, cls, path, size


def test_loads_with_two_labels_and_matches_logits(default_label_checkpoint):
    name, ref, cls, path, size = default_label_checkpoint
    px = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.inference_mode():
        want = ref(torch.from_numpy(px)).logits.numpy()
    for loader in (cls, visionc.AutoModelForImageClassification):
        model = loader.from_pretrained(path)
        assert model.config.id2label == DEFAULT_LABELS
        assert model.config.num_labels == 2
        assert_close(f"{name} logits ({loader.__name__})", model(px).logits, want, LOGITS_ATOL)
    base = visionc.AutoModel.from_pretrained(path)
    assert base.config.id2label == DEFAULT_LABELS


def test_save_pretrained_writes_what_transformers_writes(default_label_checkpoint, tmp_path):
    name, ref, cls, path, size = default_label_checkpoint
    cls.from_pretrained(path).save_pretrained(tmp_path / "default")
    saved = json.loads((tmp_path / "default" / "config.json").read_text())
    assert not {"id2label", "label2id", "num_labels"} & set(saved)
    back = transformers.AutoModelForImageClassification.from_pretrained(tmp_path / "default")
    assert back.config.id2label == DEFAULT_LABELS
    # Other labels are written, and read back by transformers as they were.
    labels = {0: "cat", 1: "dog", 2: "bird"}
    cls.from_pretrained(path, id2label=labels, ignore_mismatched_sizes=True).save_pretrained(tmp_path / "three")
    saved = json.loads((tmp_path / "three" / "config.json").read_text())
    assert saved["id2label"] == {"0": "cat", "1": "dog", "2": "bird"}
    assert transformers.AutoConfig.from_pretrained(tmp_path / "three").id2label == labels


def test_pipeline_and_cli_name_the_default_labels(default_label_checkpoint, tmp_path):
    name, ref, cls, path, size = default_label_checkpoint
    image = (np.random.default_rng(1).random((size, size, 3)) * 255).astype(np.uint8)
    out = visionc.pipeline("image-classification", model=str(path))(image, top_k=2)
    assert sorted(d["label"] for d in out) == ["LABEL_0", "LABEL_1"]
    from PIL import Image
    Image.fromarray(image).save(tmp_path / "x.png")
    cli = subprocess.run([sys.executable, "-m", "visionc", "classify", str(tmp_path / "x.png"), "--model", str(path),
                          "--json", "--top-k", "2"], capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "LABEL_0" in cli.stdout and "LABEL_1" in cli.stdout, cli.stdout


def test_num_labels_without_names(tmp_path):
    torch.manual_seed(0)
    ref, cls, size = _vit()
    ref.config.num_labels = 2
    ref.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["num_labels"] = 2
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert cls.from_pretrained(tmp_path).config.id2label == DEFAULT_LABELS


@pytest.mark.parametrize("kwargs,key", [({"image_size": 2 ** 31}, "image_size"), ({"image_size": 0}, "image_size"),
                                        ({"num_labels": 2 ** 31}, "num_labels"),
                                        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
                                        ({"image_size": 4096 * 16}, "image_size")])
def test_sizes_given_to_from_pretrained_are_bounded(tmp_path, kwargs, key):
    """The reported case (image_size 2**31 ran for minutes resampling position embeddings): now
    a ValueError naming the key, at once."""
    torch.manual_seed(0)
    ref, cls, size = _vit()
    ref.save_pretrained(tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=key):
        cls.from_pretrained(tmp_path, ignore_mismatched_sizes=True, **kwargs)
    assert time.perf_counter() - t0 < 1.0


def test_config_image_size_disagreeing_with_position_embeddings(tmp_path):
    """config.json's image_size must fit the weights' position table (transformers refuses it
    too); resampling to another size is asked for with from_pretrained(..., image_size=N)."""
    torch.manual_seed(0)
    ref, cls, size = _vit()
    ref.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["image_size"] = 2 ** 31
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="image_size"):
        cls.from_pretrained(tmp_path)
    cfg["image_size"] = 48
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="position embeddings"):
        cls.from_pretrained(tmp_path)
    assert time.perf_counter() - t0 < 1.0
    cfg["image_size"] = 32
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert cls.from_pretrained(tmp_path, image_size=48).config.image_size == 48
