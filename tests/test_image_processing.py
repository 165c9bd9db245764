"""visionc.image_processing against transformers' PIL processors and timm's eval transform.

Tolerance, unless a test says otherwise: max |diff| <= 1/255/std + 1e-6 (one uint8 step after
normalisation), and the number of differing values is printed. For RGB inputs the pipeline is
bit-exact by construction, so the tests also require that count to be 0.
"""
import json

import numpy as np
import pytest
from visionc import _C
from visionc import image_processing as ip

from image_helpers import compare, hf_classes, hf_tolerance, mode_zoo, odd_images, photos, timm_eval_reference

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

# (name, transformers class key, ours, config): real configs and edge cases of each processor.
CONFIGS = [
    ("vit-large-384 (160-byte file)", "vit", ip.ViTImageProcessor,
     {"do_normalize": True, "do_resize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "size": 384}),
    ("vit-gpt2 feature extractor", "vit", ip.ViTImageProcessor,
     {"do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
      "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "resample": 2, "size": 224}),
    ("vit imagenet bicubic", "vit", ip.ViTImageProcessor,
     {"size": {"height": 224, "width": 224}, "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "resample": 3}),
    ("vit shortest_edge + crop, lanczos", "vit", ip.ViTImageProcessor,
     {"size": {"shortest_edge": 200}, "do_center_crop": True, "crop_size": 180, "resample": 1}),
    ("mobilevit-small (187-byte file)", "mobilevit", ip.MobileViTImageProcessor,
     {"crop_size": 256, "do_center_crop": True, "do_flip_channels": True, "do_resize": True,
      "feature_extractor_type": "MobileViTFeatureExtractor", "resample": 2, "size": 288}),
    ("mobilevit defaults (crop pads)", "mobilevit", ip.MobileViTImageProcessor, {}),
    ("convnext-224", "convnext", ip.ConvNextImageProcessor,
     {"crop_pct": 0.875, "do_normalize": True, "do_resize": True, "image_mean": IMAGENET_MEAN,
      "image_std": IMAGENET_STD, "resample": 3, "size": 224}),
    ("convnext-384 squash", "convnext", ip.ConvNextImageProcessor, {"size": 384, "resample": 3}),
    ("convnext crop_pct > 1 + crop_size", "convnext", ip.ConvNextImageProcessor,
     {"size": 224, "crop_pct": 1.3, "do_center_crop": True, "crop_size": {"height": 200, "width": 260}}),
]


def std_of(cfg):
    return cfg.get("image_std", [0.5] * 3) if cfg.get("do_normalize", True) else [1.0]


def check(name, ours, ref, images, std, exact=True):
    total = 0
    for i, im in enumerate(images):
        want = ref(im, return_tensors="np")["pixel_values"]
        got = ours(im)["pixel_values"]
        total += compare(f"{name} image {i} {np.asarray(im).shape}", got, want, hf_tolerance(std))
    if exact:
        assert total == 0, f"{name}: {total} values differ from the reference (expected bit-exact)"


@pytest.mark.parametrize("name,key,cls,cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_processor_parity_photos_and_odd_sizes(name, key, cls, cfg):
    """Real photos plus 1x1, 3x500, 500x3, 7x13, 257x255: tolerance 1/255/std, expected 0 differing."""
    check(name, cls(**cfg), hf_classes()[key](**cfg), list(photos()) + odd_images(), std_of(cfg))


@pytest.mark.parametrize("key,cls,cfg", [
    ("vit", ip.ViTImageProcessor, CONFIGS[0][3]),
    ("convnext", ip.ConvNextImageProcessor, CONFIGS[6][3]),
])
def test_processor_parity_extreme_aspect(key, cls, cfg):
    """3x5000 and 5000x3 through ViT (squash) and ConvNeXt (short side to 256: a 256x426666 resize):
    tolerance 1/255/std, expected 0 differing."""
    check(f"{key} extreme", cls(**cfg), hf_classes()[key](**cfg), odd_images([(3, 5000), (5000, 3)]), std_of(cfg))


def test_mobilevit_extreme_aspect():
    """MobileViT on 3x5000 / 5000x3 (a 288x480000 intermediate). transformers rescales that whole
    image in float64 before cropping (~20 s), so the reference here is transformers' own steps in
    a cheaper order that gives the same numbers: PIL resize, HF center_crop on uint8, rescale,
    flip. Tolerance 1/255, expected 0 differing."""
    from transformers.image_transforms import center_crop, flip_channel_order, rescale, resize

    cfg = CONFIGS[4][3]
    ours = ip.MobileViTImageProcessor(**cfg)
    for im in odd_images([(3, 5000), (5000, 3)]):
        a = np.asarray(im)
        h, w = a.shape[:2]
        size = (int(288 * h / w), 288) if w <= h else (288, int(288 * w / h))
        x = resize(a, size, resample=2, input_data_format="channels_last")
        x = center_crop(x, (256, 256), input_data_format="channels_last")
        x = rescale(x, 1 / 255, input_data_format="channels_last")
        want = flip_channel_order(x, input_data_format="channels_last").transpose(2, 0, 1)[None]
        assert compare(f"mobilevit {a.shape}", ours(im)["pixel_values"], want, hf_tolerance([1.0])) == 0


# ---- PIL modes ------------------------------------------------------------------------------


@pytest.mark.parametrize("key,cls,cfg", [
    ("vit", ip.ViTImageProcessor, CONFIGS[0][3]),
    ("mobilevit", ip.MobileViTImageProcessor, CONFIGS[4][3]),
    ("convnext", ip.ConvNextImageProcessor, CONFIGS[6][3]),
])
def test_modes_match_reference_or_documented_conversion(key, cls, cfg):
    """Every PIL mode. RGB: equal to the reference on the image itself. Other modes: the reference
    fails (ValueError about the channel count), returns a non-3-channel tensor, or (YCbCr) reads
    the raw bands as RGB; ours equals the reference on image.convert("RGB"), the documented
    choice. Tolerance 1/255/std, expected 0 differing."""
    ref, ours, std = hf_classes()[key](**cfg), cls(**cfg), std_of(cfg)
    for mode, im in mode_zoo().items():
        got = ours(im)["pixel_values"]
        assert got.shape[1] == 3
        try:
            raw = ref(im, return_tensors="np")["pixel_values"]
        except ValueError:
            raw = None
        if mode == "RGB":
            assert compare(f"{key} RGB as is", got, raw, hf_tolerance(std)) == 0
            continue
        # What the reference does with the raw mode: document it, so a change upstream shows up.
        assert raw is None or raw.shape[1] != 3 or mode == "YCbCr", f"{key} {mode}: reference now handles it"
        want = ref(im.convert("RGB"), return_tensors="np")["pixel_values"]
        assert compare(f"{key} {mode} -> convert('RGB')", got, want, hf_tolerance(std)) == 0


def test_modes_with_do_convert_rgb_match_reference_directly():
    """With do_convert_rgb=True the reference converts every mode itself (alpha composited on
    white); ours must equal it for every mode and for RGBA arrays. Tolerance 1/255/0.5, 0 differing."""
    cfg = dict(CONFIGS[0][3], do_convert_rgb=True)
    ref, ours = hf_classes()["vit"](**cfg), ip.ViTImageProcessor(**cfg)
    zoo = mode_zoo()
    p = zoo["P"].copy()
    p.info["transparency"] = 3
    cases = dict(zoo, **{"P+transparency": p, "uint8 RGBA array": np.asarray(zoo["RGBA"])})
    for mode, im in cases.items():
        assert compare(f"convert_rgb {mode}", ours(im)["pixel_values"], ref(im, return_tensors="np")["pixel_values"],
                       hf_tolerance([0.5])) == 0


def test_load_image_arrays_and_paths(tmp_path):
    """Arrays: 2-D and 1/2-channel grey replicate, 4-channel drops alpha, float raises. Paths:
    EXIF-transposed and converted as transformers' load_image (which processors use for strings):
    max |diff| 0."""
    from transformers.image_utils import load_image as hf_load_image

    a = np.asarray(photos()[-2])
    g = a[..., 0]
    assert np.array_equal(ip.load_image(g), np.repeat(g[..., None], 3, 2))
    assert np.array_equal(ip.load_image(g[..., None]), np.repeat(g[..., None], 3, 2))
    assert np.array_equal(ip.load_image(np.dstack([g, g])), np.repeat(g[..., None], 3, 2))
    assert np.array_equal(ip.load_image(np.dstack([a, g])), a)
    with pytest.raises(TypeError, match="uint8"):
        ip.load_image(a.astype(np.float64))
    im = photos()[-2].copy()
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: rotate
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif, quality=95)
    want = np.asarray(hf_load_image(str(path)))
    assert want.shape[:2] == (im.size[0], im.size[1])  # the transpose happened
    assert np.array_equal(ip.load_image(path), want)
    ref, ours = hf_classes()["vit"](**CONFIGS[0][3]), ip.ViTImageProcessor(**CONFIGS[0][3])
    want = ref(str(path), return_tensors="np")["pixel_values"]
    assert compare("vit from path", ours(str(path))["pixel_values"], want, hf_tolerance([0.5])) == 0


# ---- timm -----------------------------------------------------------------------------------

FEMTO = {"tag": "d1_in1k", "custom_load": False, "input_size": [3, 224, 224], "test_input_size": [3, 288, 288],
         "fixed_input_size": False, "interpolation": "bicubic", "crop_pct": 0.875, "test_crop_pct": 0.95,
         "crop_mode": "center", "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "num_classes": 1000,
         "pool_size": [7, 7], "first_conv": "stem.0", "classifier": "head.fc"}


@pytest.mark.parametrize("cfg,use_test", [
    (FEMTO, False),
    (FEMTO, True),
    (dict(FEMTO, interpolation="bilinear", crop_pct=1.0), False),
    (dict(FEMTO, crop_pct=1.2), False),  # crop larger than the resized image: torchvision padding
    (dict(FEMTO, input_size=[3, 224, 192]), False),  # non-square: ResizeKeepRatio (bilinear)
    (dict(FEMTO, crop_mode="squash"), False),
    (dict(FEMTO, crop_mode="border", crop_pct=0.9), False),  # pads with the mean colour
], ids=["femto", "femto-test-size", "bilinear-pct1", "pct1.2-pads", "non-square", "squash", "border"])
def test_timm_eval_transform(cfg, use_test):
    """Against timm's eval transform re-stated with Pillow + torch (torchvision's resize sizes and
    round-half-even crop offsets, to_tensor's x / 255 and Normalize in float32). Tolerance
    1/255/std, expected 0 differing."""
    ours = ip.TimmImageProcessor(cfg, use_test_size=use_test)
    total = 0
    for i, im in enumerate(list(photos()) + odd_images([(1, 1), (3, 500), (500, 3), (300, 301), (301, 300)])):
        want = timm_eval_reference(im, cfg, use_test)[None]
        total += compare(f"timm {i}", ours(im)["pixel_values"], want, hf_tolerance(cfg["std"]))
    assert total == 0


# ---- configuration loading ------------------------------------------------------------------


def write(d, name, obj):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(json.dumps(obj, indent=2) + "\n")
    return d / name


def test_auto_from_pretrained_matches_transformers(tmp_path):
    """AutoImageProcessor on local dirs picks the same class and defaults as transformers'
    (backend="pil"): the google 160-byte file (no resample/rescale keys -> bilinear, 1/255),
    feature_extractor_type, model_type fallback, ConvNeXt. Outputs: tolerance 1/255/std, 0 differing."""
    from transformers import AutoImageProcessor as HFAuto

    vit = tmp_path / "vit-large"
    p = write(vit, "preprocessor_config.json", CONFIGS[0][3])
    assert p.stat().st_size == 160  # the real file's size: same dict, same serialisation
    write(vit, "config.json", {"model_type": "vit"})
    cases = {
        "vit-large": (vit, ip.ViTImageProcessor),
        "vit-gpt2": (write(tmp_path / "vit-gpt2", "preprocessor_config.json", CONFIGS[1][3]).parent,
                     ip.ViTImageProcessor),
        "mobilevit": (write(tmp_path / "mobilevit", "preprocessor_config.json", CONFIGS[4][3]).parent,
                      ip.MobileViTImageProcessor),
        "convnext": (write(tmp_path / "convnext", "preprocessor_config.json",
                           dict(CONFIGS[6][3], feature_extractor_type="ConvNextFeatureExtractor")).parent,
                     ip.ConvNextImageProcessor),
        "typed": (write(tmp_path / "typed", "preprocessor_config.json",
                        dict(CONFIGS[2][3], image_processor_type="ViTImageProcessor")).parent, ip.ViTImageProcessor),
    }
    ours = ip.AutoImageProcessor.from_pretrained(vit)
    assert ours.resample == ip.BILINEAR and ours.do_rescale and ours.rescale_factor == 1 / 255
    assert ours.size == {"height": 384, "width": 384}
    for name, (d, cls) in cases.items():
        ours = ip.AutoImageProcessor.from_pretrained(d)
        assert type(ours) is cls, name
        ref = HFAuto.from_pretrained(str(d), backend="pil")
        std = ref.image_std if ref.do_normalize else [1.0]
        check(f"auto {name}", ours, ref, [photos()[1], odd_images([(7, 13)])[0]], std)
    # A file path works too, and overrides apply.
    p2 = ip.AutoImageProcessor.from_pretrained(vit / "preprocessor_config.json", size=224)
    assert p2.size == {"height": 224, "width": 224}


def test_auto_timm_config(tmp_path):
    """A timm config.json (architecture + pretrained_cfg) gives the timm eval transform;
    use_test_size switches to 288 / 0.95. Tolerance 1/255/std, 0 differing."""
    d = tmp_path / "convnext_femto"
    write(d, "config.json", {"architecture": "convnext_femto", "num_classes": 1000, "num_features": 384,
                             "pretrained_cfg": FEMTO})
    p = ip.AutoImageProcessor.from_pretrained(d)
    assert isinstance(p, ip.TimmImageProcessor) and p.input_size == (3, 224, 224) and p.crop_pct == 0.875
    pt = ip.AutoImageProcessor.from_pretrained(d, use_test_size=True)
    assert pt.input_size == (3, 288, 288) and pt.crop_pct == 0.95
    im = photos()[0]
    assert compare("auto timm", p(im)["pixel_values"], timm_eval_reference(im, FEMTO)[None], 1e-6) == 0
    assert ip.TimmImageProcessor.from_pretrained(d / "config.json").crop_pct == 0.875


def test_from_pretrained_hub_ids_need_a_resolver(tmp_path, monkeypatch):
    """A repo id is not a path: without a resolver the error says how to supply one; with one it works.
    visionc installs the hub cache as the resolver; offline, a miss says how to use a local directory."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match=r"from_pretrained\("):
        ip.AutoImageProcessor.from_pretrained("google/vit-large-patch16-384")
    monkeypatch.setattr(ip, "_hub_resolver", None)
    with pytest.raises(FileNotFoundError, match="resolve=fn"):
        ip.AutoImageProcessor.from_pretrained("google/vit-large-patch16-384")
    d = tmp_path / "hub"
    write(d, "preprocessor_config.json", CONFIGS[0][3])
    write(d, "config.json", {"model_type": "vit"})
    seen = []

    def resolve(repo, filename):
        seen.append((repo, filename))
        if not (d / filename).is_file():
            raise FileNotFoundError(filename)
        return str(d / filename)

    p = ip.AutoImageProcessor.from_pretrained("google/vit-large-patch16-384", resolve=resolve)
    assert isinstance(p, ip.ViTImageProcessor) and ("google/vit-large-patch16-384", "preprocessor_config.json") in seen
    untyped = write(tmp_path / "untyped", "preprocessor_config.json", CONFIGS[0][3]).parent
    with pytest.raises(NotImplementedError, match="model_type"):
        ip.AutoImageProcessor.from_pretrained(untyped)  # no type key, no config.json
    write(d, "preprocessor_config.json", {"image_processor_type": "DetrImageProcessor"})
    with pytest.raises(NotImplementedError, match="DetrImageProcessor"):
        ip.AutoImageProcessor.from_pretrained(d)


# ---- inputs, outputs, errors ----------------------------------------------------------------


def test_batches_ready_tensors_and_out_slot():
    """A list is one batch equal to the images done one by one; a float32 NCHW batch passes through
    unchanged; out= and _C.images_to_tensor(start=k) write straight into a caller's array."""
    p = ip.ViTImageProcessor(**CONFIGS[0][3])
    ims = [photos()[0], np.asarray(photos()[1]), odd_images([(3, 500)])[0]]
    batch = p(ims)["pixel_values"]
    for i, im in enumerate(ims):
        assert np.array_equal(batch[i], p(im)["pixel_values"][0])
    assert p([ims[:2], ims[2:]])["pixel_values"].shape == (3, 3, 384, 384)  # nested lists flatten
    assert p(np.stack([np.asarray(photos()[0])] * 2))["pixel_values"].shape == (2, 3, 384, 384)  # uint8 NHWC
    ready = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert p(ready)["pixel_values"] is ready
    out = np.full((3, 3, 384, 384), 7.0, np.float32)
    res = p(ims, out=out)
    assert res["pixel_values"] is out and np.array_equal(out, batch)
    slot = np.zeros((5, 3, 384, 384), np.float32)
    jobs = [(np.asarray(photos()[1]), (384, 384), ())]
    _C.images_to_tensor(jobs, slot, 3, resample=2, rescale_mode=1, rescale=1 / 255, mean=[0.5] * 3, std=[0.5] * 3)
    assert np.array_equal(slot[3], batch[1]) and not slot[[0, 1, 2, 4]].any()
    import torch

    assert torch.equal(p(ims[0], return_tensors="pt")["pixel_values"], torch.from_numpy(batch[:1]))


def test_input_errors_name_the_argument():
    p = ip.ViTImageProcessor()
    with pytest.raises(ValueError, match="images is empty"):
        p([])
    with pytest.raises(TypeError, match=r"images\[0\] must be a uint8"):
        p(np.zeros((10, 10, 3)))  # float64 HWC
    with pytest.raises(ValueError, match=r"images\[1\] must have 1 to 4 channels"):
        p([np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10, 5), np.uint8)])
    with pytest.raises(ValueError, match=r"images\[0\] must have 1 to 4 channels.*channels-first"):
        p(np.zeros((3, 10, 10), np.uint8))
    bad = np.zeros((2, 3, 4, 4), np.float32)
    bad[1, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"images contains nan at index \(1, 2, 3, 0\)"):
        p(bad)
    bad[1, 2, 3, 0] = np.inf
    with pytest.raises(ValueError, match="images contains inf"):
        p(bad)
    with pytest.raises(ValueError, match=r"ready \(N, 3, H, W\) batch"):
        p(np.zeros((2, 1, 4, 4), np.float32))
    with pytest.raises(TypeError, match="must be float32"):
        p(np.zeros((2, 3, 4, 4), np.float64))
    with pytest.raises(TypeError, match="path, a PIL image or a uint8"):
        p([5])
    with pytest.raises(FileNotFoundError, match="no such image file"):
        p("/nonexistent/cat.jpg")
    with pytest.raises(ValueError, match="comes out"):
        ip.ViTImageProcessor(size={"shortest_edge": 20})([photos()[-3], photos()[-2]])  # 512x512, 451x300
    with pytest.raises(ValueError, match="image_std"):
        ip.ViTImageProcessor(image_std=[0.5, 0.0, 0.5])
    with pytest.raises(ValueError, match="resample"):
        ip.ViTImageProcessor(resample=11)
    with pytest.raises(ValueError, match="size must have one of"):
        ip.ViTImageProcessor(size={"wide": 3})
    with pytest.raises(ValueError, match="shortest_edge"):
        ip.ConvNextImageProcessor(size={"height": 224, "width": 224})
    with pytest.raises(ValueError, match="out must have shape"):
        p(photos()[0], out=np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="interpolation"):
        ip.TimmImageProcessor({"interpolation": "cubic-ish"})
    with pytest.raises(ValueError, match="out has room"):
        _C.images_to_tensor([(np.zeros((4, 4, 3), np.uint8), (4, 4), ())], np.zeros((1, 3, 4, 4), np.float32), 1)


def test_gil_released_threads_agree():
    """Batches processed from several Python threads at once (the C work drops the GIL) equal the
    serial result: max |diff| 0."""
    from concurrent.futures import ThreadPoolExecutor

    p = ip.ConvNextImageProcessor(**CONFIGS[6][3])
    ims = list(photos())
    serial = [p(im)["pixel_values"] for im in ims]
    with ThreadPoolExecutor(4) as ex:
        par = list(ex.map(lambda im: p(im)["pixel_values"], ims))
    for a, b in zip(serial, par):
        assert np.array_equal(a, b)


def test_encoder_decoder_checkpoint_uses_its_encoders_processor(tmp_path):
    """A VisionEncoderDecoder directory whose preprocessor config names no type: the encoder's
    model_type decides, as for a ViT encoder."""
    write(tmp_path, "preprocessor_config.json", {"do_resize": True, "size": {"height": 32, "width": 32}})
    write(tmp_path, "config.json", {"model_type": "vision-encoder-decoder", "encoder": {"model_type": "vit"},
                                    "decoder": {"model_type": "gpt2"}})
    assert isinstance(ip.AutoImageProcessor.from_pretrained(tmp_path), ip.ViTImageProcessor)
