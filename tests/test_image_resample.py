"""csrc/image resize and crop against Pillow and the references' crop formulas.

Tolerance everywhere in this file: bit-exact (max |diff| 0). Pillow's resize is integer
arithmetic after the coefficients, so any difference is a bug, not rounding noise.
"""
import numpy as np
import pytest
from PIL import Image

import visionc
from visionc import _C
from visionc import image_processing as ip

from image_helpers import compare, photos

FILTERS = {"NEAREST": 0, "LANCZOS": 1, "BILINEAR": 2, "BICUBIC": 3, "BOX": 4, "HAMMING": 5, "MKS2013": 6, "MKS2021": 7}
PIL_MODE = {1: "L", 3: "RGB", 4: "RGBX"}  # RGBX: four independent bands (RGBA premultiplies, tested below)


def to_pil(a: np.ndarray) -> Image.Image:
    c = a.shape[2]
    if c == 1:
        return Image.fromarray(a[:, :, 0])
    if c == 4:
        return Image.frombytes("RGBX", (a.shape[1], a.shape[0]), a.tobytes())
    return Image.fromarray(a)


def pil_resize(a: np.ndarray, size, resample) -> np.ndarray:
    h, w = size
    out = to_pil(a).resize((w, h), resample)
    return np.frombuffer(out.tobytes(), np.uint8).reshape(h, w, a.shape[2])


def targets(h, w):
    """Down, up, odd, 1x1 and mixed (one side up, one down) targets for an h x w image."""
    return sorted({(1, 1), (7, 5), (224, 224), (max(1, h // 3), max(1, w // 2)), (2 * h + 1, w), (h, 3 * w // 2 + 1),
                   (h + 3, max(1, w // 7)), (max(1, h // 5), w + 2)})


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5000), (5000, 3), (17, 23), (333, 517)])
def test_resize_random_matches_pillow(shape, channels):
    """Every filter, up and down, odd sizes, 1x1 and extreme aspect ratios: max |diff| 0."""
    rng = np.random.default_rng(hash((shape, channels)) % 2**32)
    a = rng.integers(0, 256, shape + (channels,), dtype=np.uint8)
    for size in targets(*shape):
        for name, f in FILTERS.items():
            got = _C.resize(a, size, f)
            want = pil_resize(a, size, f)
            assert np.array_equal(got, want), (
                f"{name} {shape}x{channels} -> {size}: {np.count_nonzero(got != want)} values differ, "
                f"max {np.abs(got.astype(int) - want).max()}")


@pytest.mark.parametrize("index", range(len(photos())))
def test_resize_photos_match_pillow(index):
    """Real photos (ImageNet samples, skimage), all filters, model sizes and odd ones: max |diff| 0."""
    a = np.asarray(photos()[index])
    h, w = a.shape[:2]
    for size in [(224, 224), (384, 384), (288, 288 * w // h), (h * 3 // 2, w * 5 // 4), (h - 1, w + 1), (31, 517)]:
        for name, f in FILTERS.items():
            got = ip.resize(a, size, f)
            want = np.asarray(photos()[index].resize(size[::-1], f))
            assert np.array_equal(got, want), f"{name} photo {index} {a.shape} -> {size}"


def test_resize_grey_photo_2d():
    """A 2-D (H, W) array resizes like a Pillow 'L' image and stays 2-D: max |diff| 0."""
    from skimage import data

    cam = data.camera()
    for f in FILTERS.values():
        got = _C.resize(cam, (100, 333), f)
        assert got.shape == (100, 333)
        assert np.array_equal(got, np.asarray(Image.fromarray(cam).resize((333, 100), f)))


@pytest.mark.parametrize("mode,channels", [("RGBA", 4), ("LA", 2)])
def test_resize_premultiplied_alpha_matches_pillow(mode, channels):
    """premultiplied_alpha=True reproduces Pillow's RGBA/LA path (RGBa/La round trip): max |diff| 0."""
    rng = np.random.default_rng(7)
    for shape in [(1, 1), (3, 400), (400, 3), (97, 131)]:
        a = rng.integers(0, 256, shape + (channels,), dtype=np.uint8)
        a[..., -1][rng.random(shape) < 0.2] = 0
        a[..., -1][rng.random(shape) < 0.2] = 255
        pil = Image.fromarray(a, mode)
        for size in targets(*shape):
            for f in FILTERS.values():
                got = ip.resize(a, size, f, alpha=True)
                want = np.asarray(pil.resize(size[::-1], f))
                assert np.array_equal(got, want), f"{mode} {shape} -> {size} filter {f}"


def test_resize_pass_order():
    """Pillow 13 runs the vertical pass first when the height shrinks by more than twice the
    width's shrink; the uint8 intermediate makes the order visible. Both orders: max |diff| 0
    against Pillow where Pillow uses that order, and the two orders do differ somewhere."""
    import PIL

    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (900, 301, 3), dtype=np.uint8)
    vertical_first_case = (100, 290)  # height shrinks by 800 > 2 * 11
    got = _C.resize(a, vertical_first_case, 3)
    legacy = _C.resize(a, vertical_first_case, 3, horizontal_first=True)
    want = pil_resize(a, vertical_first_case, 3)
    if int(PIL.__version__.split(".")[0]) >= 13:
        assert np.array_equal(got, want)
    else:
        assert np.array_equal(legacy, want)
    assert not np.array_equal(got, legacy), "expected the two pass orders to round differently here"
    horizontal_case = (800, 150)  # not enough vertical shrink: both flags give Pillow's result
    assert np.array_equal(_C.resize(a, horizontal_case, 3), pil_resize(a, horizontal_case, 3))
    assert np.array_equal(_C.resize(a, horizontal_case, 3, horizontal_first=True), pil_resize(a, horizontal_case, 3))


def test_resize_strided_and_non_contiguous_inputs():
    """Crop views (strided rows) are read in place; other layouts are copied first: max |diff| 0."""
    a = np.asarray(photos()[-3])
    for view in [a[10:300, 20:400], a[:, ::2], a[::-1], np.asfortranarray(a)]:
        ref = pil_resize(np.ascontiguousarray(view), (150, 170), 2)
        assert np.array_equal(_C.resize(view, (150, 170), 2), ref)


def test_resize_same_size_is_a_copy():
    """Pillow returns a copy for an unchanged size, before any alpha handling: max |diff| 0."""
    a = np.random.default_rng(0).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    for f in FILTERS.values():
        out = _C.resize(a, (20, 30), f, premultiplied_alpha=True)
        assert np.array_equal(out, a) and out.base is not a


def test_resize_threads_deterministic():
    """Row-parallel passes give the same bytes on 1 thread and on several: max |diff| 0."""
    a = np.asarray(photos()[-2])
    prev = visionc.get_num_threads()
    try:
        visionc.set_num_threads(1)
        one = [_C.resize(a, s, f) for s in [(1500, 2000), (224, 224)] for f in (1, 2, 3)]
        visionc.set_num_threads(2)
        two = [_C.resize(a, s, f) for s in [(1500, 2000), (224, 224)] for f in (1, 2, 3)]
    finally:
        visionc.set_num_threads(prev)
    for x, y in zip(one, two):
        assert np.array_equal(x, y)


def test_resize_argument_errors():
    a = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(TypeError, match="image must be uint8"):
        _C.resize(a.astype(np.float32), (2, 2))
    with pytest.raises(ValueError, match="1 to 4 channels"):
        _C.resize(np.zeros((4, 4, 5), np.uint8), (2, 2))
    with pytest.raises(ValueError, match="size must be between 1"):
        _C.resize(a, (0, 5))
    with pytest.raises(ValueError, match="larger than the .*-byte image limit"):
        _C.resize(a, (1 << 23, 1 << 23))
    with pytest.raises(ValueError, match="resample must be"):
        _C.resize(a, (2, 2), 8)
    with pytest.raises(ValueError, match="premultiplied_alpha needs"):
        _C.resize(a, (2, 2), 2, premultiplied_alpha=True)
    with pytest.raises(TypeError, match="size must be a"):
        _C.resize(a, 5)
    with pytest.raises(ValueError, match="empty"):
        _C.resize(np.zeros((0, 4, 3), np.uint8), (2, 2))


# ---- centre crop ----------------------------------------------------------------------------


@pytest.mark.parametrize("src", [(5, 5), (6, 9), (2, 3), (10, 1)])
@pytest.mark.parametrize("crop", [(1, 1), (2, 2), (3, 4), (5, 5), (7, 8), (10, 2)])
def test_center_crop_hf_convention(src, crop):
    """convention 'hf' equals transformers.image_transforms.center_crop (floor offsets, zero
    padding when larger), including mixed larger/smaller sides: max |diff| 0."""
    from transformers.image_transforms import center_crop as hf_center_crop

    a = (np.arange(src[0] * src[1] * 3) % 251 + 1).astype(np.uint8).reshape(src + (3,))
    want = hf_center_crop(a, crop, input_data_format="channels_last")
    assert np.array_equal(ip.center_crop(a, crop, "hf"), want)


@pytest.mark.parametrize("src", [(5, 5), (6, 9), (2, 3), (10, 1), (8, 8)])
@pytest.mark.parametrize("crop", [(1, 1), (2, 2), (3, 4), (5, 5), (7, 8), (10, 2)])
def test_center_crop_torchvision_convention(src, crop):
    """convention 'torchvision' equals torchvision's center_crop, re-stated with Pillow
    (ImageOps.expand padding, int(round(d / 2.0)) offsets, half to even): max |diff| 0."""
    from image_helpers import _tv_center_crop

    a = (np.arange(src[0] * src[1] * 3) % 251 + 1).astype(np.uint8).reshape(src + (3,))
    want = np.asarray(_tv_center_crop(Image.fromarray(a), crop[0], crop[1]))
    assert np.array_equal(ip.center_crop(a, crop, "torchvision"), want)


def test_center_crop_start_rounding():
    """The two conventions part where (L - n) / 2 ends in .5: floor vs Python's round half even."""
    for d in range(0, 12):
        assert _C.center_crop_start(100 + d, 100, 0) == d // 2
        assert _C.center_crop_start(100 + d, 100, 1) == int(round(d / 2.0))
    compare("crop start sanity", np.array([_C.center_crop_start(3, 8, 0), _C.center_crop_start(3, 8, 1)]),
            np.array([-3, -2]), 0)
