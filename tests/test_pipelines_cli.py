"""Pipelines and the command line, on the bundled real ViT-Ti/16 and on small random models."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

import visionc
from helpers import ROOT, assert_close, subprocess_env

CAT = ROOT / "examples" / "images" / "chelsea.jpg"


@pytest.fixture(scope="module")
def clf():
    return visionc.pipeline("image-classification")


def test_single_and_list_inputs(clf):
    one = clf(str(CAT), top_k=3)
    assert isinstance(one, list) and len(one) == 3 and set(one[0]) == {"label", "score"}
    assert one[0]["label"] == "Egyptian cat"  # the real classifier on the real photo
    scores = [p["score"] for p in one]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
    pil = Image.open(CAT)
    arr = np.asarray(pil.convert("RGB"))
    many = clf([str(CAT), pil, arr], top_k=5)
    assert len(many) == 3 and all(len(r) == 5 for r in many)
    for r in many[1:]:  # the same photo as a path, a PIL image and a uint8 array
        assert [p["label"] for p in r] == [p["label"] for p in many[0]]
        assert_close("score", [p["score"] for p in r], [p["score"] for p in many[0]], 1e-6)


def test_batch_size_and_progress_do_not_change_results(clf):
    photos = [str(CAT)] * 5 + [str(ROOT / "examples" / "images" / "coffee.jpg")] * 4
    a = clf(photos, top_k=2, batch_size=1, progress=False)
    b = clf(photos, top_k=2, batch_size=4, progress=True)
    for x, y in zip(a, b):
        assert [p["label"] for p in x] == [p["label"] for p in y]
        assert_close("scores", [p["score"] for p in x], [p["score"] for p in y], 1e-5)


def test_pipeline_scores_equal_softmax_of_transformers_logits():
    d = visionc.hub.default_model_dir()
    ref = transformers.ViTForImageClassification.from_pretrained(d).eval()
    px = visionc.AutoImageProcessor.from_pretrained(d)(str(CAT))["pixel_values"]
    with torch.inference_mode():
        probs = torch.softmax(ref(torch.from_numpy(px)).logits, -1)[0].numpy()
    top = visionc.pipeline("image-classification")(str(CAT), top_k=5)
    want = np.sort(probs)[::-1][:5]
    assert_close("top-5 probabilities", [p["score"] for p in top], want, 1e-5)


def test_bad_arguments(clf):
    with pytest.raises(ValueError, match="top_k"):
        clf(str(CAT), top_k=0)
    with pytest.raises(ValueError, match="empty"):
        clf([])
    with pytest.raises(ValueError, match="task"):
        visionc.pipeline("object-detection")
    with pytest.raises((OSError, FileNotFoundError)):
        clf(str(ROOT / "no-such-image.jpg"))


def test_feature_extraction_pipeline():
    fe = visionc.pipeline("image-feature-extraction")
    out = fe(str(CAT))
    assert out.shape == (1, 197, 192)
    emb = fe([str(CAT), str(CAT)], pool=True, pooling="mean", normalize=True)
    assert len(emb) == 2 and emb[0].shape == (1, 192)
    assert_close("unit norm", np.linalg.norm(emb[0]), 1.0, 1e-5)
    np.testing.assert_allclose(emb[0], emb[1], atol=1e-6)


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "visionc", *args], capture_output=True, text=True, cwd=cwd,
                          env=subprocess_env(),
                          timeout=300)


def test_cli_classify_default_model():
    r = _cli("classify", str(CAT), "--top-k", "2")
    assert r.returncode == 0, r.stderr
    assert "Egyptian cat" in r.stdout.splitlines()[1]
    r = _cli("classify", str(CAT), "--json")
    data = json.loads(r.stdout)
    assert data[0]["image"] == str(CAT) and len(data[0]["predictions"]) == 5


def test_cli_embed_writes_npy(tmp_path):
    out = tmp_path / "emb.npy"
    r = _cli("embed", str(CAT), str(ROOT / "examples" / "images" / "rocket.jpg"), "--model",
             str(visionc.hub.default_model_dir()), "--out", str(out), "--normalize")
    assert r.returncode == 0, r.stderr
    emb = np.load(out)
    assert emb.shape == (2, 192)
    assert_close("norms", np.linalg.norm(emb, axis=1), [1.0, 1.0], 1e-5)
    assert not list(tmp_path.glob("*.tmp"))


def test_cli_reports_errors_without_traceback(tmp_path):
    r = _cli("classify", str(tmp_path / "missing.jpg"))
    assert r.returncode == 2 and "visionc: error:" in r.stderr and "Traceback" not in r.stderr
    r = _cli("classify", str(CAT), "--model", "no-such-org/no-such-model")
    assert r.returncode == 2 and "from_pretrained(" in r.stderr
