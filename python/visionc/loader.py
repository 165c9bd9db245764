"""DataLoader: batches of float32 (N, 3, H, W) pixels and int64 (N,) labels from a dataset.

    loader = DataLoader(train_ds, processor, batch_size=32, train=True, seed=0)
    for epoch in range(3):
        for index, pixel_values, labels in loader.batches(epoch):
            ...

Order: with shuffle, epoch e visits ``np.random.default_rng([seed, 0, e]).permutation(n)``;
without, 0..n-1. Batch b of an epoch is a pure function of (seed, epoch, b), so
``batches(epoch, start=b)`` resumes mid-epoch exactly (the Trainer relies on this).

train=True: RandomResizedCrop + horizontal flip (visionc.augment), then the processor's
rescale / normalise at its output size. train=False: the processor's own eval pipeline
(resize, centre crop, ...), identical to calling the processor.

Throughput: images are decoded by a thread pool (Pillow releases the GIL), crops are NumPy
views, and resize + normalise of the whole batch is one C call (OpenMP over images, GIL
released). The next batch is prepared in a background thread while the caller works on the
current one. Unreadable images are dropped from their batch (see visionc.data).
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import image_processing as ip
from ._native import _C
from .augment import RATIO, SCALE, TrainTransform

__all__ = ["DataLoader", "output_size", "with_image_size"]


def output_size(processor) -> tuple[int, int]:
    """(height, width) of the processor's output (for square-ish inputs; fixed for ViT-style sizes)."""
    size, crops = processor._plan(512, 512)
    return tuple(crops[-1]) if crops else tuple(size)


def with_image_size(processor, image_size: int | None):
    """The processor set to produce image_size x image_size inputs (None: unchanged)."""
    if image_size is None:
        return processor
    s = int(image_size)
    if "height" in processor.size:
        return processor._with(size={"height": s, "width": s})
    if "shortest_edge" in processor.size:
        return processor._with(size={"shortest_edge": s}, crop_size={"height": s, "width": s})
    raise ValueError(f"cannot set an image size on {type(processor).__name__} (size {processor.size})")


class DataLoader:
    def __init__(self, dataset, processor, batch_size: int = 32, *, train: bool = False, shuffle: bool | None = None,
                 augment: bool | None = None, drop_last: bool = False, seed: int = 0, image_size: int | None = None,
                 scale=SCALE, ratio=RATIO, flip_p: float = 0.5, num_workers: int = 2, prefetch: bool = True):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if len(dataset) == 0:
            raise ValueError("the dataset is empty")
        self.dataset = dataset
        self.processor = with_image_size(processor, image_size)
        self.batch_size = int(batch_size)
        self.shuffle = train if shuffle is None else bool(shuffle)
        self.augment = train if augment is None else bool(augment)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.size = output_size(self.processor)
        self.transform = TrainTransform(self.size, self.seed, scale, ratio, flip_p) if self.augment else None
        self.num_workers = max(1, int(num_workers))
        self.prefetch = bool(prefetch)
        self.epoch = 0  # advanced by __iter__

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch`` (int64 indices into the dataset)."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.seed, 0, int(epoch)]).permutation(n).astype(np.int64)

    def _build(self, pool, epoch: int, indices: np.ndarray):
        images = list(pool.map(self.dataset.load, indices.tolist()))
        targets = self.dataset.targets
        keep = [k for k, a in enumerate(images) if a is not None]
        if not keep:
            return None
        jobs = []
        for k in keep:
            a, i = images[k], int(indices[k])
            if self.transform is not None:
                jobs.append(self.transform.job(a, epoch, i))
            else:
                size, crops = self.processor._plan(a.shape[0], a.shape[1])
                jobs.append((a, size, crops))
        if self.transform is None:
            finals = {tuple(c[-1]) if c else tuple(s) for _, s, c in jobs}
            if len(finals) > 1:
                raise ValueError(f"eval images come out in several sizes {sorted(finals)}: give the processor a "
                                 "fixed size or a centre crop")
            shape = finals.pop()
        else:
            shape = self.size
        px = np.empty((len(jobs), 3) + tuple(shape), np.float32)
        _C.images_to_tensor(jobs, px, horizontal_first=ip._HORIZONTAL_FIRST, **self.processor._recipe())
        labels = np.array([targets[int(indices[k])] for k in keep], dtype=np.int64)
        return px, labels

    def batches(self, epoch: int | None = None, start: int = 0):
        """Yields (batch index, pixel_values, labels) for batches start.. of ``epoch``
        (default: self.epoch). A batch whose images are all unreadable is left out."""
        epoch = self.epoch if epoch is None else int(epoch)
        order = self.order(epoch)
        bs, nb = self.batch_size, len(self)
        chunks = [(b, order[b * bs:(b + 1) * bs]) for b in range(int(start), nb)]
        with ThreadPoolExecutor(self.num_workers) as pool, ThreadPoolExecutor(1) as ahead:
            if not self.prefetch:
                for b, idx in chunks:
                    out = self._build(pool, epoch, idx)
                    if out is not None:
                        yield (b,) + out
                return
            pending = ahead.submit(self._build, pool, epoch, chunks[0][1]) if chunks else None
            for k, (b, _) in enumerate(chunks):
                out = pending.result()
                pending = ahead.submit(self._build, pool, epoch, chunks[k + 1][1]) if k + 1 < len(chunks) else None
                if out is not None:
                    yield (b,) + out

    def __iter__(self):
        """(pixel_values, labels) of the next epoch (self.epoch, then advanced by one)."""
        epoch, self.epoch = self.epoch, self.epoch + 1
        for _, px, labels in self.batches(epoch):
            yield px, labels
