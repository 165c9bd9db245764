"""The real ImageNet ViT-Ti/16 (../shared/weights, HF and timm files with identical bytes) on
real photos, through visionc's own preprocessing, against transformers (the timm eval transform
is restated with PIL and torchvision's crop rounding, since timm itself cannot import here)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

import visionc
from helpers import VIT_TINY, assert_close
from tolerances import LOGITS_ATOL

PHOTOS = sorted((VIT_TINY / "samples").glob("*.JPEG"))
TIMM_CFG = {"architecture": "vit_tiny_patch16_224", "num_classes": 1000,
            "pretrained_cfg": {"tag": "augreg_in21k_ft_in1k", "input_size": [3, 224, 224],
                               "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
                               "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "num_classes": 1000}}

pytestmark = pytest.mark.skipif(not PHOTOS, reason="../shared/weights is not beside this checkout")


@pytest.fixture(scope="module")
def reference():
    torch.set_num_threads(2)
    return transformers.ViTForImageClassification.from_pretrained(VIT_TINY / "hf").eval()


def _reference_logits(ref, px):
    with torch.inference_mode():
        return ref(torch.from_numpy(px)).logits.numpy()


def _timm_eval_reference(path: Path) -> np.ndarray:
    """timm's transforms_imagenet_eval for this pretrained_cfg, written out with PIL + numpy."""
    img = Image.open(path).convert("RGB")
    scale = math.floor(224 / 0.9)
    w, h = img.size
    if w <= h:
        size = (scale, int(scale * h / w))
    else:
        size = (int(scale * w / h), scale)
    img = img.resize(size, Image.BICUBIC)
    left = int(round((img.size[0] - 224) / 2.0))
    top = int(round((img.size[1] - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    x = np.asarray(img, np.float32) / 255.0
    return ((x - 0.5) / 0.5).transpose(2, 0, 1)


def _top5(logits):
    return np.argsort(-logits, axis=1, kind="stable")[:, :5]


def test_hf_files_with_visionc_preprocessing(reference):
    proc = visionc.AutoImageProcessor.from_pretrained(VIT_TINY / "hf")
    px = proc([str(p) for p in PHOTOS])["pixel_values"]
    ref_px = transformers.AutoImageProcessor.from_pretrained(VIT_TINY / "hf")(
        [Image.open(p) for p in PHOTOS], return_tensors="np")["pixel_values"]
    np.testing.assert_array_equal(px, ref_px)  # the processor is bit-exact
    model = visionc.AutoModelForImageClassification.from_pretrained(VIT_TINY / "hf")
    ours = model(px).logits
    want = _reference_logits(reference, ref_px)
    assert_close("ViT-Ti real logits (HF files)", ours, want, LOGITS_ATOL)
    np.testing.assert_array_equal(_top5(ours), _top5(want))


def test_timm_file_with_timm_eval_transform(reference, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TIMM_CFG))
    (tmp_path / "model.safetensors").symlink_to(VIT_TINY / "vit_tiny_patch16_224.safetensors")
    model = visionc.AutoModelForImageClassification.from_pretrained(tmp_path)
    assert model.source_format == "timm" and model.config.num_attention_heads == 3
    proc = visionc.AutoImageProcessor.from_pretrained(tmp_path)
    px = proc([str(p) for p in PHOTOS])["pixel_values"]
    ref_px = np.stack([_timm_eval_reference(p) for p in PHOTOS])
    assert_close("timm eval transform", px, ref_px, 1.0 / 255 / 0.5 + 1e-6)  # within one uint8 step
    ours = model(px).logits
    want = _reference_logits(reference, ref_px)
    assert_close("ViT-Ti real logits (timm file)", ours, want, LOGITS_ATOL)
    np.testing.assert_array_equal(_top5(ours), _top5(want))


def test_bare_timm_weights_file_loads(reference):
    model = visionc.AutoModelForImageClassification.from_pretrained(VIT_TINY / "vit_tiny_patch16_224.safetensors")
    px = np.random.RandomState(0).randn(2, 3, 224, 224).astype(np.float32)
    assert_close("bare timm file", model(px).logits, _reference_logits(reference, px), LOGITS_ATOL)


def test_real_predictions_are_sensible():
    """The bundled model recognises the photos whose classes it knows well (see SOURCE.txt)."""
    clf = visionc.pipeline("image-classification")
    by_name = {p.name: r for p, r in zip(PHOTOS, clf([str(p) for p in PHOTOS], top_k=5))}
    assert by_name["n02127052_10040.JPEG"][0]["label"] == "lynx"
    assert by_name["n02412080_10216.JPEG"][0]["label"] == "ram"
    assert "cock" in [p["label"] for p in by_name["n01514668_10054.JPEG"][:2]]
