"""Shared pieces of the image tests: photos, the PIL-mode zoo, comparisons that report how many
values differ, and the timm eval reference (torchvision is not importable here, so it is
written from torchvision's own formulas with Pillow and torch)."""
from __future__ import annotations

import glob
import math
import os
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
# The shared folder sits beside the checkout (/work/main) or two levels up (/work/wt/<name>).
SAMPLES = next((p / "shared" / "weights" / "vit_tiny_patch16_224-timm" / "samples" for p in ROOT.parents
                if (p / "shared" / "weights").is_dir()), ROOT / "missing-samples")


@lru_cache(maxsize=None)
def photos() -> tuple:
    """Real photos as PIL RGB images: a few ImageNet samples, then scikit-image's astronaut,
    chelsea and coffee (always the last three)."""
    from PIL import Image
    from skimage import data

    out = [Image.open(p).convert("RGB") for p in sorted(glob.glob(str(SAMPLES / "*.JPEG")))[:4]]
    out += [Image.fromarray(data.astronaut()), Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())]
    return tuple(out)


def odd_images(shapes=((1, 1), (3, 500), (500, 3), (7, 13), (257, 255))) -> list:
    from PIL import Image

    rng = np.random.default_rng(1234)
    return [Image.fromarray(rng.integers(0, 256, s + (3,), dtype=np.uint8)) for s in shapes]


def mode_zoo() -> dict:
    """One real photo in every PIL mode the processors must accept."""
    from PIL import Image
    from skimage import data

    rgb = Image.fromarray(data.chelsea())
    grey = np.asarray(rgb.convert("L"))
    ramp = np.linspace(0, 255, grey.shape[1]).astype(np.uint8)[None].repeat(grey.shape[0], 0)
    rgba = np.dstack([np.asarray(rgb), ramp])
    return {
        "RGB": rgb,
        "RGBA": Image.fromarray(rgba, "RGBA"),
        "L": rgb.convert("L"),
        "LA": Image.fromarray(rgba, "RGBA").convert("LA"),
        "P": rgb.convert("P"),
        "I": Image.fromarray(grey.astype(np.int32)),
        "I;16": Image.fromarray(grey.astype(np.uint16)),
        "F": Image.fromarray(grey.astype(np.float32)),
        "CMYK": rgb.convert("CMYK"),
        "1": rgb.convert("1"),
        "YCbCr": rgb.convert("YCbCr"),
        "camera(L)": Image.fromarray(data.camera()),
    }


def compare(name: str, got: np.ndarray, want: np.ndarray, atol: float) -> int:
    """Asserts shape equality and max |got - want| <= atol; prints and returns how many values
    differ at all."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != reference {want.shape}"
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    ndiff = int(np.count_nonzero(diff))
    mx = float(diff.max()) if diff.size else 0.0
    print(f"{name}: {ndiff} of {diff.size} values differ, max |diff| {mx:.3g} (tolerance {atol:.3g})",
          file=sys.stderr)
    assert mx <= atol, f"{name}: max |diff| {mx} > {atol} ({ndiff} of {diff.size} values differ)"
    return ndiff


def hf_tolerance(image_std) -> float:
    """One uint8 step after normalisation: 1/255/std (std 1 when there is no normalisation)."""
    return 1 / 255 / min(image_std) + 1e-6


@lru_cache(maxsize=None)
def hf_classes():
    """transformers' PIL-backend ("slow") processors, quiet."""
    import transformers

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", module="transformers")
    from transformers import ConvNextImageProcessorPil, MobileViTImageProcessorPil, ViTImageProcessorPil

    return {"vit": ViTImageProcessorPil, "mobilevit": MobileViTImageProcessorPil, "convnext": ConvNextImageProcessorPil}


# ---- timm eval reference --------------------------------------------------------------------

_INTERP = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def _tv_resize(pil, size, interp):
    """torchvision.transforms.functional.resize on a PIL image (int: shorter side; pair: h, w)."""
    w, h = pil.size
    if isinstance(size, int):
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    else:
        new_h, new_w = size
    if (new_h, new_w) == (h, w):
        return pil
    return pil.resize((new_w, new_h), interp)


def _tv_center_crop(pil, ch, cw, fill=0):
    """torchvision center_crop / timm center_crop_or_pad: pad (d // 2 before), then round offsets."""
    from PIL import ImageOps

    w, h = pil.size
    if cw > w or ch > h:
        pad = ((cw - w) // 2 if cw > w else 0, (ch - h) // 2 if ch > h else 0,
               (cw - w + 1) // 2 if cw > w else 0, (ch - h + 1) // 2 if ch > h else 0)
        pil = ImageOps.expand(pil, border=pad, fill=fill)
        w, h = pil.size
        if (cw, ch) == (w, h):
            return pil
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return pil.crop((left, top, left + cw, top + ch))


def _keep_ratio(pil, target, longest):
    w, h = pil.size
    ratio_h, ratio_w = h / target[0], w / target[1]
    ratio = max(ratio_h, ratio_w) * longest + min(ratio_h, ratio_w) * (1.0 - longest)
    return round(h * 1.0 / ratio), round(w * 1.0 / ratio)


def timm_eval_reference(pil, cfg: dict, use_test_size: bool = False) -> np.ndarray:
    """timm resolve_data_config + transforms_imagenet_eval, step by step, for one RGB PIL image."""
    import torch

    size = cfg.get("input_size", (3, 224, 224))
    if use_test_size and cfg.get("test_input_size"):
        size = cfg["test_input_size"]
    crop_pct = cfg.get("crop_pct") or 0.875
    if use_test_size and cfg.get("test_crop_pct"):
        crop_pct = cfg["test_crop_pct"]
    interp = _INTERP[cfg.get("interpolation") or "bicubic"]
    mode = cfg.get("crop_mode") or "center"
    mean, std = cfg.get("mean") or (0.485, 0.456, 0.406), cfg.get("std") or (0.229, 0.224, 0.225)
    img = tuple(size[1:])
    scale = tuple(math.floor(x / crop_pct) for x in img)
    fill = 0
    if mode == "squash":
        pil = _tv_resize(pil, scale, interp)
    elif mode == "border":
        pil = _tv_resize(pil, _keep_ratio(pil, scale, 1.0), interp)
        fill = tuple(round(255 * v) for v in mean)
    elif scale[0] == scale[1]:
        pil = _tv_resize(pil, scale[0], interp)
    else:
        pil = _tv_resize(pil, _keep_ratio(pil, scale, 0.0), _INTERP["bilinear"])  # ResizeKeepRatio's default
    pil = _tv_center_crop(pil, img[0], img[1], fill)
    # torchvision to_tensor + Normalize
    t = torch.from_numpy(np.array(pil)).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    m = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return t.sub_(m).div_(s).numpy()
