"""The data half of examples/finetune_digits.py (the training half needs the real model API)."""
import importlib.util
from pathlib import Path

import numpy as np

from trainer_double import processor
from visionc.data import ImageFolder, split
from visionc.loader import DataLoader

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finetune_digits.py"


def _example():
    spec = importlib.util.spec_from_file_location("finetune_digits", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_digits_image_folder(tmp_path):
    from sklearn.datasets import load_digits
    root = _example().make_digits_folder(str(tmp_path), image_size=16)
    ds = ImageFolder(root, verify=True)
    assert ds.classes == [str(d) for d in range(10)] and len(ds) == 1797 and ds.skipped == 0
    digits = load_digits()
    assert np.bincount(ds.targets).tolist() == np.bincount(digits.target).tolist()
    img = ds.load(0)  # 0000.png is digit 0: upsampled, grey replicated to RGB, dark background
    assert img.shape == (16, 16, 3) and (img[..., 0] == img[..., 2]).all() and img[0, 0, 0] < 30
    tr, ev = split(ds, 0.15, seed=0)
    assert len(ev) == sum(round(0.15 * c) for c in np.bincount(ds.targets)) and len(tr) + len(ev) == 1797
    dl = DataLoader(tr, processor(8), 32, train=True, image_size=16, scale=(0.6, 1.0), flip_p=0.0)
    _, px, y = next(dl.batches(0))
    assert px.shape == (32, 3, 16, 16) and y.max() <= 9
