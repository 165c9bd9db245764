"""Training augmentation: torchvision's RandomResizedCrop + RandomHorizontalFlip, seeded.

Randomness is counter-based: the draws for one image come from
``np.random.default_rng([seed, 1, epoch, index])`` (index = the sample's index in its dataset).
An augmentation is thus a pure function of (seed, epoch, sample), independent of batch
size, thread scheduling, prefetching and of where a run was resumed, which is what makes
resumed training repeat an uninterrupted run exactly.

Pixels: the crop and the flip are NumPy slices (no copy until the C resize reads them); the
resize to the model's input size, rescale and normalise run in C for the whole batch
(``_C.images_to_tensor``, OpenMP over images). Order differs from torchvision's in one way:
the flip is applied to the crop before resizing rather than after (equal up to the
resampling filter's rounding, and saves a pass).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["random_resized_crop_params", "augment_rng", "TrainTransform"]

SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)


def augment_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of sample ``index``'s augmentation in ``epoch`` (see the module doc)."""
    return np.random.default_rng([int(seed), 1, int(epoch), int(index)])


def random_resized_crop_params(rng: np.random.Generator, height: int, width: int, scale=SCALE,
                               ratio=RATIO) -> tuple[int, int, int, int]:
    """(top, left, h, w): torchvision.transforms.RandomResizedCrop.get_params with NumPy draws.

    Up to 10 tries: area fraction ~ U(scale), log aspect ratio ~ U(log ratio); the first window
    that fits is placed uniformly. Otherwise a centre crop: the whole image, clamped to the
    ratio bounds when the image's own ratio lies outside them."""
    if scale[0] > scale[1] or ratio[0] > ratio[1]:
        raise ValueError(f"scale and ratio must be (min, max) pairs, got {scale} and {ratio}")
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


class TrainTransform:
    """Per-image crop + flip; returns an image-processing job for ``_C.images_to_tensor``."""

    def __init__(self, size: tuple[int, int], seed: int = 0, scale=SCALE, ratio=RATIO, flip_p: float = 0.5):
        self.size = (int(size[0]), int(size[1]))
        self.seed, self.scale, self.ratio, self.flip_p = int(seed), tuple(scale), tuple(ratio), float(flip_p)

    def params(self, image_hw: tuple[int, int], epoch: int, index: int):
        """(top, left, h, w, flipped) for sample ``index`` in ``epoch``."""
        rng = augment_rng(self.seed, epoch, index)
        top, left, h, w = random_resized_crop_params(rng, image_hw[0], image_hw[1], self.scale, self.ratio)
        return top, left, h, w, bool(rng.random() < self.flip_p)

    def job(self, image: np.ndarray, epoch: int, index: int):
        top, left, h, w, flipped = self.params(image.shape[:2], epoch, index)
        crop = image[top:top + h, left:left + w]
        if flipped:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop), self.size, []
