"""ImageFolder discovery and order, empty classes, unreadable images, in-memory datasets, splits."""
import warnings

import numpy as np
import pytest

from trainer_double import make_image_folder
from visionc.data import ArrayDataset, ImageFolder, split


def test_classes_sorted_and_samples_in_torchvision_order(tmp_path):
    root = make_image_folder(tmp_path, per_class=3, classes=("b", "C", "a"))
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / "sub").mkdir()
    from PIL import Image
    Image.new("RGB", (5, 5)).save(root / "a" / "sub" / "x.JPG")  # nested, upper-case extension
    ds = ImageFolder(root)
    assert ds.classes == ["C", "a", "b"]  # plain sorted(): upper case first, as torchvision
    assert ds.class_to_idx == {"C": 0, "a": 1, "b": 2}
    names = [p.relative_to(root).as_posix() for p in map(__import__("pathlib").Path, (s for s, _ in ds.samples))]
    assert names == ["C/000.png", "C/001.png", "C/002.png", "a/000.png", "a/001.png", "a/002.png",
                     "a/sub/x.JPG", "b/000.png", "b/001.png", "b/002.png"]
    assert ds.targets == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    img = ds.load(0)
    assert img.dtype == np.uint8 and img.shape == (20, 24, 3)


def test_empty_class_folder_is_an_error_naming_it(tmp_path):
    root = make_image_folder(tmp_path, per_class=2)
    (root / "zebra").mkdir()
    (root / "zebra" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="'zebra' has no images"):
        ImageFolder(root)


def test_no_class_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no class folders"):
        ImageFolder(tmp_path)


def _corrupt(root):
    (root / "red" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (root / "green" / "bad.jpg").write_bytes(b"")


def test_corrupt_images_skipped_lazily_with_warning_and_count(tmp_path):
    root = make_image_folder(tmp_path, per_class=2)
    _corrupt(root)
    ds = ImageFolder(root)
    assert len(ds) == 8 and ds.skipped == 0  # lazy: nothing decoded yet
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        results = [ds.load(i) for i in range(len(ds))]
    assert sum(r is None for r in results) == 2
    assert ds.skipped == 2 and sorted(p.rsplit("/", 1)[1] for p in ds.skipped_paths) == ["bad.jpg", "bad.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per file, counted once
        [ds.load(i) for i in range(len(ds))]
    assert ds.skipped == 2


def test_corrupt_images_dropped_upfront_with_verify(tmp_path):
    root = make_image_folder(tmp_path, per_class=2)
    _corrupt(root)
    with pytest.warns(UserWarning):
        ds = ImageFolder(root, verify=True)
    assert len(ds) == 6 and ds.skipped == 2
    assert all(ds.load(i) is not None for i in range(len(ds)))


def test_class_with_only_corrupt_images_fails_upfront(tmp_path):
    root = make_image_folder(tmp_path, per_class=1, classes=("a",))
    (root / "b").mkdir()
    (root / "b" / "x.png").write_bytes(b"nope")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="'b' has no readable images"):
        ImageFolder(root, verify=True)


def test_split_is_deterministic_stratified_and_disjoint():
    labels = [0] * 20 + [1] * 10 + [2] * 3
    ds = ArrayDataset([np.zeros((2, 2), np.uint8)] * len(labels), labels)
    tr, ev = split(ds, 0.2, seed=3)
    tr2, ev2 = split(ds, 0.2, seed=3)
    assert tr.indices == tr2.indices and ev.indices == ev2.indices
    assert sorted(tr.indices + ev.indices) == list(range(len(labels)))
    assert np.bincount(ev.targets).tolist() == [4, 2, 1]  # round(0.2 n) per class, at least 1
    assert split(ds, 0.2, seed=4)[1].indices != ev.indices
    _, ev_flat = split(ds, 0.2, seed=3, stratified=False)
    assert len(ev_flat) == round(0.2 * len(labels))
    with pytest.raises(ValueError, match="eval_fraction"):
        split(ds, 1.0)


def test_array_dataset_converts_grey_to_rgb():
    ds = ArrayDataset([np.full((4, 5), 7, np.uint8)], [0], classes=["x"])
    a = ds.load(0)
    assert a.shape == (4, 5, 3) and (a == 7).all() and ds.classes == ["x"]
