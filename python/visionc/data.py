"""Datasets for fine-tuning: ImageFolder (one folder per class), in-memory arrays, subsets and
a deterministic train/eval split.

(This module is ``visionc.data``; the directory ``visionc/data/`` beside it only holds the
bundled model files and is not a package, so imports resolve to this file.)

Every dataset here has the same small interface, which the DataLoader uses:
    len(ds), ds.targets (list of int), ds.classes (list of str), ds.load(i) -> uint8 (H, W, 3)
    array, or None when the image cannot be decoded (it is then skipped, see below).

Unreadable images (ImageFolder): verified *lazily* by default. An image that fails to decode
is skipped where it is met (the batch is one image short), warned about once and counted in
``dataset.skipped`` (a count; ``dataset.skipped_paths`` lists them). Lazily, because decoding a
large dataset twice costs as much as an epoch. ``ImageFolder(root, verify=True)`` decodes
every image upfront instead (in threads) and drops the bad ones before anything else sees the
dataset, so sizes, splits and steps per epoch never change during training.
"""
from __future__ import annotations

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .image_processing import load_image

__all__ = ["IMG_EXTENSIONS", "ImageFolder", "ArrayDataset", "Subset", "split"]

# torchvision.datasets.folder.IMG_EXTENSIONS
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def find_classes(root: str) -> list[str]:
    """Class folder names, sorted (torchvision's find_classes: plain sorted() of the names)."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"{root}: no class folders (expected one sub-folder of images per class)")
    return classes


class ImageFolder:
    """root/<class>/**/<image>: samples ordered class by class, file names sorted within each
    (torchvision's make_dataset order), labels = index of the class in ``classes``."""

    def __init__(self, root, extensions=IMG_EXTENSIONS, verify: bool = False, cache: bool = False,
                 num_workers: int = 4):
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"{self.root}: no such directory")
        exts = tuple(e.lower() for e in extensions)
        self.classes = find_classes(self.root)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = []
        for c in self.classes:
            found = []
            for dirpath, _, fnames in sorted(os.walk(os.path.join(self.root, c), followlinks=True)):
                found += [os.path.join(dirpath, f) for f in sorted(fnames) if f.lower().endswith(exts)]
            if not found:
                raise ValueError(f"{self.root}: class folder {c!r} has no images (extensions: {', '.join(exts)})")
            self.samples += [(p, self.class_to_idx[c]) for p in found]
        self._lock = threading.Lock()
        self.skipped_paths: list[str] = []
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        if verify:
            self._verify(num_workers)

    @property
    def targets(self) -> list[int]:
        return [t for _, t in self.samples]

    @property
    def skipped(self) -> int:
        """How many images were found unreadable so far (and skipped)."""
        return len(self.skipped_paths)

    def __len__(self) -> int:
        return len(self.samples)

    def _decode(self, path: str):
        try:
            return load_image(path)
        except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, ... on bad files
            with self._lock:
                if path not in self.skipped_paths:
                    self.skipped_paths.append(path)
                    warnings.warn(f"skipping unreadable image {path}: {type(e).__name__}: {e}", stacklevel=3)
            return None

    def load(self, i: int):
        """Decoded uint8 (H, W, 3) RGB image i, or None if it cannot be read (warned, counted)."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        a = self._decode(self.samples[i][0])
        if self._cache is not None and a is not None:
            self._cache[i] = a
        return a

    def _verify(self, num_workers: int) -> None:
        with ThreadPoolExecutor(max(1, num_workers)) as pool:  # Pillow decodes with the GIL released
            ok = list(pool.map(lambda i: self.load(i) is not None, range(len(self.samples))))
        self.samples = [s for s, good in zip(self.samples, ok) if good]
        if self._cache is not None:  # indices moved: rebuild the cache keys
            self._cache = {}
        present = set(self.targets)
        empty = [c for i, c in enumerate(self.classes) if i not in present]
        if empty:
            raise ValueError(f"{self.root}: class folder {empty[0]!r} has no readable images")


class ArrayDataset:
    """Images already in memory: uint8 (H, W) or (H, W, 3) arrays with integer labels."""

    def __init__(self, images, labels, classes=None):
        self.images = [load_image(np.asarray(a)) for a in images]
        self._targets = [int(t) for t in labels]
        if len(self.images) != len(self._targets):
            raise ValueError(f"{len(self.images)} images but {len(self._targets)} labels")
        self.classes = list(classes) if classes is not None else [str(i) for i in range(max(self._targets) + 1)]
        self.skipped = 0

    @property
    def targets(self) -> list[int]:
        return list(self._targets)

    def __len__(self) -> int:
        return len(self.images)

    def load(self, i: int) -> np.ndarray:
        return self.images[i]


class Subset:
    """The samples ``indices`` of ``dataset`` (in that order)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.classes = dataset.classes

    @property
    def targets(self) -> list[int]:
        t = self.dataset.targets
        return [t[i] for i in self.indices]

    @property
    def skipped(self) -> int:
        return self.dataset.skipped

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, i: int):
        return self.dataset.load(self.indices[i])


def split(dataset, eval_fraction: float, seed: int = 0, stratified: bool = True) -> tuple[Subset, Subset]:
    """(train, eval) subsets; a pure function of the dataset's sample order, eval_fraction and seed.

    stratified=True: in every class, round(eval_fraction * n_class) samples (at least 1 and at
    most n_class - 1 when the class has 2 or more and eval_fraction > 0) go to eval, chosen by a
    permutation seeded with (seed, class index), so each class keeps its proportion. Otherwise
    round(eval_fraction * N) samples of one seeded permutation. Both subsets list indices in
    increasing order (shuffling is the loader's job)."""
    if not (0.0 <= float(eval_fraction) < 1.0):
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction!r}")
    targets = np.asarray(dataset.targets)
    n = len(targets)
    eval_idx: list[np.ndarray] = []
    if stratified:
        for c in np.unique(targets):
            members = np.flatnonzero(targets == c)
            k = int(round(eval_fraction * len(members)))
            if eval_fraction > 0 and len(members) >= 2:
                k = min(max(k, 1), len(members) - 1)
            perm = np.random.default_rng([int(seed), int(c)]).permutation(len(members))
            eval_idx.append(members[perm[:k]])
    else:
        k = int(round(eval_fraction * n))
        eval_idx.append(np.random.default_rng([int(seed)]).permutation(n)[:k])
    is_eval = np.zeros(n, bool)
    for e in eval_idx:
        is_eval[e] = True
    return Subset(dataset, np.flatnonzero(~is_eval)), Subset(dataset, np.flatnonzero(is_eval))
