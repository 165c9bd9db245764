"""RandomResizedCrop (torchvision's algorithm) properties, seeded augmentation, DataLoader batches."""

import numpy as np
import pytest

from trainer_double import make_image_folder, processor
from visionc.augment import augment_rng, random_resized_crop_params
from visionc.data import ArrayDataset, ImageFolder
from visionc.loader import DataLoader


def test_crop_params_within_torchvision_bounds():
    H, W = 97, 151
    fallbacks = 0
    for i in range(2000):
        top, left, h, w = random_resized_crop_params(np.random.default_rng(i), H, W)
        assert 0 < h <= H and 0 < w <= W and 0 <= top <= H - h and 0 <= left <= W - w
        if (top, left, h, w) == (0, 0, H, W):
            fallbacks += 1
            continue
        # w, h are rounded from sqrt(area * r), sqrt(area / r): allow half a pixel each way.
        assert 0.08 * H * W - (h + w) / 2 - 1 <= h * w <= H * W
        assert (w - 0.5) / (h + 0.5) <= 4 / 3 + 1e-9 and (w + 0.5) / (h - 0.5) >= 3 / 4 - 1e-9
    assert fallbacks < 20  # a 97x151 image almost always fits one of the 10 tries


def test_crop_params_fallback_is_a_centre_crop_clamped_to_the_ratio():
    rng = np.random.default_rng(0)
    assert random_resized_crop_params(rng, 10, 1000) == (0, (1000 - 13) // 2, 10, 13)  # too wide: h=H, w=H*4/3
    assert random_resized_crop_params(rng, 1000, 10) == ((1000 - 13) // 2, 0, 13, 10)  # too tall: w=W, h=W*4/3
    assert random_resized_crop_params(rng, 50, 60, scale=(1.5, 2.0)) == (0, 0, 50, 60)  # nothing fits: whole


def test_augmentation_is_a_function_of_seed_epoch_and_index():
    a = augment_rng(1, 2, 3).random(4)
    assert np.array_equal(a, augment_rng(1, 2, 3).random(4))
    for other in (augment_rng(0, 2, 3), augment_rng(1, 1, 3), augment_rng(1, 2, 4)):
        assert not np.array_equal(a, other.random(4))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return ImageFolder(make_image_folder(tmp_path_factory.mktemp("f"), per_class=7))


def _all(loader, epoch, start=0):
    return [(b, px.copy(), y.copy()) for b, px, y in loader.batches(epoch, start)]


def test_batches_shapes_and_determinism(folder):
    dl = DataLoader(folder, processor(8), 4, train=True, seed=5)
    assert len(dl) == 6  # 21 images: 5 full batches and one of 1
    e0 = _all(dl, 0)
    assert [b for b, _, _ in e0] == list(range(6))
    px, y = e0[0][1], e0[0][2]
    assert px.dtype == np.float32 and px.shape == (4, 3, 8, 8) and y.dtype == np.int64 and y.shape == (4,)
    assert px.min() >= -1 and px.max() <= 1  # rescaled and normalised with mean = std = 0.5
    assert e0[-1][1].shape[0] == 1
    again = _all(DataLoader(folder, processor(8), 4, train=True, seed=5, prefetch=False), 0)
    assert all(np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2]) for a, b in zip(e0, again))
    assert not np.array_equal(np.concatenate([y for _, _, y in _all(dl, 1)]), np.concatenate([y for _, _, y in e0]))
    resumed = _all(dl, 0, start=3)  # resuming mid-epoch gives the same batches
    assert [b for b, _, _ in resumed] == [3, 4, 5]
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(e0[3:], resumed))
    assert len(DataLoader(folder, processor(8), 4, train=True, drop_last=True)) == 5


def test_augmentation_does_not_depend_on_batch_size(folder):
    order = DataLoader(folder, processor(8), 4, train=True, seed=1).order(0)
    a = np.concatenate([px for _, px, _ in DataLoader(folder, processor(8), 4, train=True, seed=1).batches(0)])
    b = np.concatenate([px for _, px, _ in DataLoader(folder, processor(8), 5, train=True, seed=1).batches(0)])
    assert np.array_equal(a, b) and sorted(order.tolist()) == list(range(len(folder)))


def test_eval_batches_equal_the_processor(folder):
    proc = processor(8)
    dl = DataLoader(folder, proc, 8, train=False)
    assert not dl.shuffle and dl.transform is None
    got = np.concatenate([px for _, px, _ in dl.batches(0)])
    want = proc([folder.load(i) for i in range(len(folder))])["pixel_values"]
    assert np.array_equal(got, want)


def test_whole_image_crop_with_flip_equals_processor_of_mirrored_image():
    img = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    ds = ArrayDataset([img], [0])
    dl = DataLoader(ds, processor(8), 1, train=True, scale=(1, 1), ratio=(1.2, 1.2), flip_p=1.0)
    px = next(iter(dl))[0]
    assert np.array_equal(px, processor(8)([np.ascontiguousarray(img[:, ::-1])])["pixel_values"])
    dl_noflip = DataLoader(ds, processor(8), 1, train=True, scale=(1, 1), ratio=(1.2, 1.2), flip_p=0.0)
    assert np.array_equal(next(iter(dl_noflip))[0], processor(8)([img])["pixel_values"])


def test_image_size_override_and_unreadable_images_dropped_from_batch(tmp_path):
    root = make_image_folder(tmp_path, per_class=2)
    (root / "green" / "zz.png").write_bytes(b"broken")
    ds = ImageFolder(root)
    dl = DataLoader(ds, processor(8), 16, train=False, image_size=12)
    with pytest.warns(UserWarning, match="zz.png"):
        (b, px, y), = list(dl.batches(0))
    assert px.shape == (6, 3, 12, 12) and y.tolist() == [0, 0, 1, 1, 2, 2] and ds.skipped == 1
