"""Image preprocessing equal to the PyTorch-side references, with the pixel work in C.

Processors
    ``ViTImageProcessor``, ``MobileViTImageProcessor``, ``ConvNextImageProcessor``: the same
    configuration keys, defaults and call convention as transformers' PIL ("slow") processors,
    which in transformers 5.x are ``ViTImageProcessorPil`` & co. (``ViTImageProcessor`` there is the
    torchvision backend, whose pixels differ slightly; it falls back to the PIL class when
    torchvision is missing). ``TimmImageProcessor`` is timm's eval transform
    (``resolve_data_config`` + ``transforms_imagenet_eval``). ``AutoImageProcessor`` picks one
    from a local directory or file.

What runs where
    Python: decoding and mode conversion (Pillow), and the output-size formulas, written as the
    references write them. C (``visionc._C.images_to_tensor``, GIL released): Pillow-exact resize,
    centre crops, rescale/normalise/flip straight into the float32 (N, C, H, W) output.

Parity
    For RGB inputs the output is bit-identical to the reference (same Pillow resize integers,
    same crop offsets, same float32 arithmetic). Inputs the reference mishandles are converted
    first; see ``load_image``.
"""
from __future__ import annotations

import copy
import json
import math
import os
import pathlib
from typing import Callable, Iterable

import numpy as np

from ._native import _C

# PIL.Image.Resampling values (the C side takes these integers directly).
NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING = 0, 1, 2, 3, 4, 5

# Crop conventions and rescale modes understood by _C.images_to_tensor.
CROP_FLOOR, CROP_ROUND = 0, 1  # Hugging Face: (L - n) // 2;  torchvision: int(round((L - n) / 2))
RESCALE_NONE, RESCALE_MUL_F64, RESCALE_DIV_F32 = 0, 1, 2  # numpy's float64 product vs torch's float32 x / 255

IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)

_hub_resolver: Callable[[str, str], str] | None = None


def set_hub_resolver(fn: Callable[[str, str], str] | None) -> None:
    """Installs the function that turns (repo_id, filename) into a local file path (or raises).

    ``from_pretrained`` calls it when its argument is not a local path; the Hub client lives
    elsewhere in visionc."""
    global _hub_resolver
    _hub_resolver = fn


def _pillow_horizontal_first() -> bool:
    """Pillow <= 12 always resized horizontally first; 13 picks the order (see csrc/image/resample.c).
    The installed Pillow is the reference, so follow its rule."""
    try:
        import PIL

        return int(PIL.__version__.split(".")[0]) < 13
    except Exception:
        return False


_HORIZONTAL_FIRST = _pillow_horizontal_first()


# ----------------------------------------------------------------------------------------------
# Loading


def _is_pil(x) -> bool:
    try:
        import PIL.Image
    except ImportError:
        return False
    return isinstance(x, PIL.Image.Image)


def _composite_on_white_pil(im):
    # transformers.image_transforms.convert_to_rgb for PIL images (do_convert_rgb=True).
    import PIL.Image

    im = im.convert("RGBA")
    background = PIL.Image.new("RGBA", im.size, (255, 255, 255, 255))
    return PIL.Image.alpha_composite(background, im).convert("RGB")


def _pil_to_rgb(im, what: str, alpha: str) -> np.ndarray:
    if im.mode == "RGB":
        return np.asarray(im)
    has_alpha = "A" in im.getbands() or im.info.get("transparency") is not None
    if alpha == "white" and has_alpha:
        return np.asarray(_composite_on_white_pil(im))
    try:
        return np.asarray(im.convert("RGB"))
    except (ValueError, OSError) as e:
        raise ValueError(f"{what}: cannot convert a PIL image of mode {im.mode!r} to RGB ({e})") from None


def _array_to_rgb(a: np.ndarray, what: str, alpha: str) -> np.ndarray:
    if a.dtype != np.uint8:
        raise TypeError(
            f"{what} must be a uint8 image array (H, W) or (H, W, C), got dtype {a.dtype}; "
            "ready model inputs must be float32 (N, 3, H, W)"
        )
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"{what} must have shape (H, W) or (H, W, C), got {a.shape}")
    h, w, c = a.shape
    if h < 1 or w < 1:
        raise ValueError(f"{what} is empty (shape {a.shape})")
    if c == 3:
        return a
    if c == 1 or c == 2:  # L or LA: replicate the grey level, as Pillow's L -> RGB
        return np.repeat(a[:, :, :1], 3, axis=2)
    if c == 4:
        if alpha == "white":
            # transformers' numpy convert_to_rgb: blend onto white in float64, then round.
            f = a[..., 3:4] / 255
            return np.round(f * a[..., :3] + (1 - f) * 255).astype(np.uint8)
        return np.ascontiguousarray(a[:, :, :3])  # Pillow's RGBA -> RGB drops alpha
    raise ValueError(
        f"{what} must have 1 to 4 channels in its last axis, got shape {a.shape} "
        "(channels-first arrays are not accepted: use np.moveaxis(x, 0, -1))"
    )


def load_image(x, *, alpha: str = "drop", what: str = "image") -> np.ndarray:
    """Returns ``x`` as a uint8 (H, W, 3) RGB array.

    ``x`` may be a path (str or os.PathLike), a PIL image of any mode, or a uint8 (H, W) /
    (H, W, C) array with C = 1..4.

    Paths: opened, EXIF-transposed and ``.convert("RGB")``, exactly as transformers' ``load_image``
    (which its processors call for string inputs).

    PIL modes, compared with the reference (transformers' PIL processors, ``do_convert_rgb``
    unset, which call ``np.array(image)``):

    * RGB: used as is, as the reference does.
    * L, P, 1, I, I;16, F (one band): the reference gets a 1-channel array and fails
      ("mean must have 1 elements") or, without normalisation (MobileViT), returns 1-channel
      output. Converted with Pillow's ``.convert("RGB")``. Note Pillow clips I, I;16 and F values
      to 0..255 rather than rescaling them (a full-range 16-bit image comes out nearly white);
      transformers' ``load_image`` does the same for such files.
    * RGBA, LA, PA, RGBa, RGBX, CMYK (two or four bands): the reference fails on 2/4 channels
      (or returns them, MobileViT; for RGBA/CMYK it even resizes with the 4th band as alpha).
      Converted with ``.convert("RGB")``: alpha is dropped, CMYK uses Pillow's formula.
    * YCbCr, HSV, LAB (three bands): the reference silently treats the raw bands as R, G, B,
      which is garbage; they are converted to real RGB with ``.convert("RGB")``.

    ``alpha="white"`` instead composites images with transparency onto white, as transformers
    does when a processor has ``do_convert_rgb=True`` (processors pass this automatically).

    Arrays: (H, W, 3) used as is. (H, W), (H, W, 1), (H, W, 2) are grey (+ alpha): the grey level is
    replicated (the reference rejects 2-D arrays). (H, W, 4) drops alpha. Other dtypes raise
    TypeError: a float array is not a decoded image.
    """
    if alpha not in ("drop", "white"):
        raise ValueError(f"alpha must be 'drop' or 'white', got {alpha!r}")
    if isinstance(x, (str, os.PathLike)):
        import PIL.Image
        import PIL.ImageOps

        path = os.fspath(x)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{what}: no such image file: {path!r}")
        with PIL.Image.open(path) as im:
            im = PIL.ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    if _is_pil(x):
        return _pil_to_rgb(x, what, alpha)
    if isinstance(x, np.ndarray):
        return _array_to_rgb(x, what, alpha)
    raise TypeError(f"{what} must be a path, a PIL image or a uint8 NumPy array, got {type(x).__name__}")


# ----------------------------------------------------------------------------------------------
# Batch assembly


class BatchFeature(dict):
    """dict with attribute access, like transformers' BatchFeature: ``out["pixel_values"]``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _is_torch_tensor(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def _check_ready_batch(a: np.ndarray, what: str) -> np.ndarray:
    """A float32 (N, 3, H, W) batch passes through unchanged once shown to be finite."""
    if a.ndim != 4 or a.shape[1] != 3:
        raise ValueError(f"{what}: a float32 input must be a ready (N, 3, H, W) batch, got shape {a.shape}")
    if min(a.shape) < 1:
        raise ValueError(f"{what} is empty (shape {a.shape})")
    bad = _C.first_nonfinite(a)
    if bad >= 0:
        idx = np.unravel_index(bad, a.shape)
        raise ValueError(f"{what} contains {a.flat[bad]} at index {tuple(int(i) for i in idx)}: inputs must be finite")
    return a


def _flatten_images(images) -> list:
    """Single image, list, nested list or uint8 (N, H, W, C) array -> list of images."""
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4:
        return list(images)
    if isinstance(images, (list, tuple)):
        flat = []
        for item in images:
            if isinstance(item, (list, tuple)):
                flat.extend(item)
            else:
                flat.append(item)
        return flat
    return [images]


def _wrap(pixel_values: np.ndarray, return_tensors) -> BatchFeature:
    if return_tensors in (None, "np", "numpy"):
        return BatchFeature(pixel_values=pixel_values)
    if return_tensors == "pt":
        import torch

        return BatchFeature(pixel_values=torch.from_numpy(pixel_values))
    raise ValueError(f"return_tensors must be None, 'np' or 'pt', got {return_tensors!r}")


def _out_array(out, n: int, shape: tuple) -> np.ndarray:
    if out is None:
        return np.empty((n, 3) + shape, dtype=np.float32)
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise TypeError("out must be a C-contiguous float32 NumPy array")
    if out.shape != (n, 3) + shape:
        raise ValueError(f"out must have shape {(n, 3) + shape}, got {out.shape}")
    return out


class _Processor:
    """Shared call path: inputs -> uint8 RGB arrays -> per-image plan (Python) -> C."""

    def _plan(self, h: int, w: int):  # -> ((resize_h, resize_w), [(crop_h, crop_w), ...])
        raise NotImplementedError

    def _recipe(self) -> dict:
        raise NotImplementedError

    def _alpha_mode(self) -> str:
        return "drop"

    def __call__(self, images, return_tensors="np", out=None, **overrides):
        return self.preprocess(images, return_tensors=return_tensors, out=out, **overrides)

    def preprocess(self, images, return_tensors="np", out=None, **overrides):
        """Returns ``{"pixel_values": float32 (N, 3, H, W)}``. ``out`` may be a preallocated
        float32 array of that shape to write into; keyword overrides change the configuration
        for this call only (e.g. ``size=...``)."""
        proc = self._with(**overrides) if overrides else self
        if _is_torch_tensor(images):
            images = images.detach().cpu().numpy()
            if images.dtype != np.float32:
                raise TypeError("images: torch tensors are accepted only as ready float32 (N, 3, H, W) batches")
        if isinstance(images, np.ndarray) and images.dtype.kind == "f" and images.ndim == 4:
            if images.dtype != np.float32:
                raise TypeError(f"images: a ready batch must be float32, got {images.dtype}")
            return _wrap(_check_ready_batch(images, "images"), return_tensors)
        items = _flatten_images(images)
        if not items:
            raise ValueError("images is empty: pass at least one image")
        alpha = proc._alpha_mode()
        arrays = [load_image(x, alpha=alpha, what=f"images[{i}]") for i, x in enumerate(items)]
        jobs, shape = [], None
        for i, a in enumerate(arrays):
            size, crops = proc._plan(a.shape[0], a.shape[1])
            final = tuple(crops[-1]) if crops else tuple(size)
            if shape is None:
                shape = final
            elif final != shape:
                raise ValueError(
                    f"images[{i}] comes out {final[0]}x{final[1]} but images[0] is {shape[0]}x{shape[1]}: "
                    "a batch needs one output size (set a fixed size or process the images separately)"
                )
            jobs.append((a, size, crops))
        dst = _out_array(out, len(jobs), shape)
        _C.images_to_tensor(jobs, dst, horizontal_first=_HORIZONTAL_FIRST, **proc._recipe())
        return _wrap(dst, return_tensors)

    def _with(self, **overrides):
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------
# transformers processors


def _size_dict(size, default_to_square: bool, name: str) -> dict | None:
    """transformers.image_processing_utils.get_size_dict."""
    if size is None:
        return None
    if isinstance(size, dict):
        keys = set(size)
    elif isinstance(size, int) and not isinstance(size, bool):
        return {"height": size, "width": size} if default_to_square else {"shortest_edge": size}
    elif isinstance(size, (list, tuple)) and len(size) == 2:
        return {"height": int(size[0]), "width": int(size[1])}
    else:
        raise ValueError(f"{name} must be an int, a (height, width) pair or a dict, got {size!r}")
    valid = ({"height", "width"}, {"shortest_edge"}, {"shortest_edge", "longest_edge"}, {"longest_edge"},
             {"max_height", "max_width"})
    if keys not in valid:
        raise ValueError(f"{name} must have one of the key sets {[sorted(v) for v in valid]}, got {sorted(keys)}")
    for k, v in size.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}[{k!r}] must be a positive int, got {v!r}")
    return dict(size)


def _shortest_edge_size(h: int, w: int, size: int) -> tuple[int, int]:
    """transformers get_resize_output_image_size(default_to_square=False) = torchvision Resize(int)."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)


def _aspect_size(h: int, w: int, size: int, max_size: int | None) -> tuple[int, int]:
    """transformers image_transforms.get_size_with_aspect_ratio."""
    raw_size = None
    if max_size is not None:
        mn, mx = float(min(h, w)), float(max(h, w))
        if mx / mn * size > max_size:
            raw_size = max_size * mn / mx
            size = int(round(raw_size))
    if (h <= w and h == size) or (w <= h and w == size):
        return h, w
    if w < h:
        ow = size
        oh = int(raw_size * h / w) if raw_size is not None else int(size * h / w)
    else:
        oh = size
        ow = int(raw_size * w / h) if raw_size is not None else int(size * w / h)
    return oh, ow


def _hf_resize_size(size: dict, h: int, w: int) -> tuple[int, int]:
    """transformers PilBackend.resize: the output size for each kind of size dict."""
    se, le = size.get("shortest_edge"), size.get("longest_edge")
    if se and le:
        return _aspect_size(h, w, se, le)
    if se:
        return _shortest_edge_size(h, w, se)
    if size.get("max_height") and size.get("max_width"):
        scale = min(size["max_height"] / h, size["max_width"] / w)
        return int(h * scale), int(w * scale)
    if size.get("height") and size.get("width"):
        return size["height"], size["width"]
    raise ValueError(
        f"size must contain 'height' and 'width', 'max_height' and 'max_width', or 'shortest_edge'; got {size}")


def _resample_id(v, name="resample") -> int:
    try:
        r = int(v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a PIL.Image.Resampling value, got {v!r}") from None
    if not 0 <= r <= 7:
        raise ValueError(f"{name} must be a PIL.Image.Resampling value 0..7, got {r}")
    return r


class _HFImageProcessor(_Processor):
    """Configuration handling common to transformers' processors (PilBackend semantics)."""

    _defaults: dict = {}
    default_to_square = True
    model_input_names = ["pixel_values"]

    def __init__(self, **kwargs):
        cfg = dict(kwargs)
        # transformers: a key that is absent *or None* takes the class default.
        for key, default in self._defaults.items():
            value = cfg.pop(key, None)
            setattr(self, key, copy.deepcopy(default) if value is None else value)
        dts = cfg.pop("default_to_square", None)
        if dts is not None:
            self.default_to_square = bool(dts)
        for key in ("image_processor_type", "feature_extractor_type", "processor_class", "_processor_class"):
            cfg.pop(key, None)
        self.unused_kwargs = cfg  # kept, but ignored, as transformers does
        self.size = _size_dict(self.size, self.default_to_square, "size")
        if "crop_size" in self._defaults:
            self.crop_size = _size_dict(self.crop_size, True, "crop_size")
        self.resample = _resample_id(self.resample)
        self._validate()

    def _validate(self):
        """transformers validate_preprocess_arguments, plus checks it leaves to numpy."""
        if getattr(self, "do_rescale", False) and self.rescale_factor is None:
            raise ValueError("rescale_factor must be specified if do_rescale is True")
        if getattr(self, "do_resize", False) and self.size is None:
            raise ValueError("size must be specified if do_resize is True")
        if getattr(self, "do_center_crop", False) and self.crop_size is None:
            raise ValueError("crop_size must be specified if do_center_crop is True")
        if getattr(self, "do_normalize", False):
            if self.image_mean is None or self.image_std is None:
                raise ValueError("image_mean and image_std must both be specified if do_normalize is True")
            std = np.atleast_1d(np.asarray(self.image_std, dtype=np.float64))
            if not np.all(np.isfinite(std)) or np.any(std == 0):
                raise ValueError(f"image_std must be finite and non-zero, got {self.image_std}")

    def _with(self, **overrides):
        d = dict(self.unused_kwargs)
        d.update(self.to_dict())
        d.update(overrides)
        return type(self)(**d)

    def to_dict(self) -> dict:
        d = {k: copy.deepcopy(getattr(self, k)) for k in self._defaults}
        d["default_to_square"] = self.default_to_square
        d["image_processor_type"] = type(self).__name__
        return d

    def _alpha_mode(self) -> str:
        return "white" if getattr(self, "do_convert_rgb", None) else "drop"

    @classmethod
    def from_dict(cls, config: dict, **overrides):
        d = dict(config)
        d.update(overrides)
        return cls(**d)

    @classmethod
    def from_pretrained(cls, path_or_dir, **overrides):
        """Reads preprocessor_config.json from a directory, or the given JSON file."""
        resolve = overrides.pop("resolve", None)
        path = _find_file(path_or_dir, "preprocessor_config.json", resolve)
        return cls.from_dict(_read_json(path), **overrides)

    def _normalize_kwargs(self) -> dict:
        if getattr(self, "do_normalize", False):
            return {"mean": _per_channel(self.image_mean, "image_mean"),
                    "std": _per_channel(self.image_std, "image_std")}
        return {}

    def __repr__(self):
        return f"{type(self).__name__}({json.dumps(self.to_dict(), default=str)})"


def _per_channel(v, name) -> list:
    vals = [float(v)] * 3 if isinstance(v, (int, float)) else [float(x) for x in v]
    if len(vals) != 3:
        raise ValueError(f"{name} must have 3 values (one per RGB channel), got {len(vals)}")
    return vals


class ViTImageProcessor(_HFImageProcessor):
    """transformers ViTImageProcessorPil: resize -> [centre crop] -> rescale -> normalise."""

    _defaults = dict(
        do_resize=True, size={"height": 224, "width": 224}, resample=BILINEAR, do_center_crop=None,
        crop_size=None, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=IMAGENET_STANDARD_MEAN, image_std=IMAGENET_STANDARD_STD, do_convert_rgb=None,
    )

    def _plan(self, h, w):
        size = _hf_resize_size(self.size, h, w) if self.do_resize else (h, w)
        crops = [(self.crop_size["height"], self.crop_size["width"])] if self.do_center_crop else []
        return size, crops

    def _recipe(self):
        return dict(resample=self.resample, crop_convention=CROP_FLOOR,
                    rescale_mode=RESCALE_MUL_F64 if self.do_rescale else RESCALE_NONE,
                    rescale=float(self.rescale_factor or 1.0), **self._normalize_kwargs())


ViTFeatureExtractor = ViTImageProcessor


class ConvNextImageProcessor(_HFImageProcessor):
    """transformers ConvNextImageProcessorPil. Below 384 px: resize the short side to
    int(shortest_edge / crop_pct), centre-crop shortest_edge square; from 384 on: squash to a
    shortest_edge square. Then [centre crop], rescale, normalise."""

    _defaults = dict(
        do_resize=True, size={"shortest_edge": 384}, resample=BICUBIC, do_center_crop=None, crop_size=None,
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=IMAGENET_STANDARD_MEAN,
        image_std=IMAGENET_STANDARD_STD, crop_pct=224 / 256, do_convert_rgb=None,
    )
    default_to_square = False

    def _validate(self):
        super()._validate()
        if self.do_resize and not self.size.get("shortest_edge"):
            raise ValueError(f"size must contain 'shortest_edge' for ConvNeXt, got {self.size}")
        if not (isinstance(self.crop_pct, (int, float)) and self.crop_pct > 0):
            raise ValueError(f"crop_pct must be a positive number, got {self.crop_pct!r}")

    def _plan(self, h, w):
        size, crops = (h, w), []
        if self.do_resize:
            se = self.size["shortest_edge"]
            if se < 384:
                size = _shortest_edge_size(h, w, int(se / self.crop_pct))
                crops.append((se, se))
            else:
                size = (se, se)
        if self.do_center_crop:
            crops.append((self.crop_size["height"], self.crop_size["width"]))
        return size, crops

    _recipe = ViTImageProcessor._recipe


ConvNextFeatureExtractor = ConvNextImageProcessor


class MobileViTImageProcessor(_HFImageProcessor):
    """transformers MobileViTImageProcessorPil: resize (short side) -> rescale -> centre crop
    (zero padding) -> RGB->BGR. No mean/std normalisation (do_normalize is ignored, as there)."""

    _defaults = dict(
        do_resize=True, size={"shortest_edge": 224}, resample=BICUBIC, do_center_crop=True,
        crop_size={"height": 256, "width": 256}, do_rescale=True, rescale_factor=1 / 255,
        do_flip_channel_order=True, do_normalize=None, image_mean=IMAGENET_STANDARD_MEAN,
        image_std=IMAGENET_STANDARD_STD, do_convert_rgb=None,
    )
    default_to_square = False

    _plan = ViTImageProcessor._plan

    def _recipe(self):
        return dict(resample=self.resample, crop_convention=CROP_FLOOR,
                    rescale_mode=RESCALE_MUL_F64 if self.do_rescale else RESCALE_NONE,
                    rescale=float(self.rescale_factor or 1.0), pad_after_rescale=True,
                    flip=bool(self.do_flip_channel_order))


MobileViTFeatureExtractor = MobileViTImageProcessor


# ----------------------------------------------------------------------------------------------
# timm


_TIMM_INTERPOLATION = {"nearest": NEAREST, "bilinear": BILINEAR, "bicubic": BICUBIC, "box": BOX,
                       "hamming": HAMMING, "lanczos": LANCZOS}


class TimmImageProcessor(_Processor):
    """timm's eval transform for a model's ``pretrained_cfg``.

    ``resolve_data_config`` (defaults: input 224, bicubic, crop_pct 0.875, crop_mode "center",
    ImageNet mean/std; ``use_test_size`` takes test_input_size / test_crop_pct) then
    ``transforms_imagenet_eval``: scale = floor(size / crop_pct); "center": torchvision Resize of
    the short side (or, for non-square sizes, timm's ResizeKeepRatio, which uses bilinear) and
    CenterCrop; "squash": Resize to the scale size, CenterCrop; "border": ResizeKeepRatio of the
    long side and CenterCropOrPad filled with the mean colour. Then ToTensor (x / 255 in float32)
    and Normalize ((x - mean) / std in float32). Crops use torchvision's rounding.
    """

    model_input_names = ["pixel_values"]

    def __init__(self, pretrained_cfg: dict | None = None, use_test_size: bool = False, **overrides):
        cfg = dict(pretrained_cfg or {})
        cfg.update(overrides)
        self.pretrained_cfg = cfg
        self.use_test_size = bool(use_test_size)
        input_size = (3, 224, 224)
        if use_test_size and cfg.get("test_input_size") is not None:
            input_size = cfg["test_input_size"]
        elif cfg.get("input_size") is not None:
            input_size = cfg["input_size"]
        if len(input_size) != 3 or int(input_size[0]) != 3:
            raise ValueError(f"input_size must be (3, height, width), got {input_size!r}")
        self.input_size = tuple(int(v) for v in input_size)
        self.interpolation = cfg.get("interpolation") or "bicubic"
        if self.interpolation not in _TIMM_INTERPOLATION:
            raise ValueError(f"interpolation must be one of {sorted(_TIMM_INTERPOLATION)}, got {self.interpolation!r}")
        self.mean = tuple(cfg.get("mean") or IMAGENET_DEFAULT_MEAN)
        self.std = tuple(cfg.get("std") or IMAGENET_DEFAULT_STD)
        _per_channel(self.mean, "mean")
        _per_channel(self.std, "std")
        if any(float(s) == 0 or not math.isfinite(float(s)) for s in self.std):
            raise ValueError(f"std must be finite and non-zero, got {self.std}")
        crop_pct = 0.875
        if use_test_size and cfg.get("test_crop_pct"):
            crop_pct = cfg["test_crop_pct"]
        elif cfg.get("crop_pct"):
            crop_pct = cfg["crop_pct"]
        self.crop_pct = float(crop_pct)
        if not self.crop_pct > 0:
            raise ValueError(f"crop_pct must be positive, got {crop_pct!r}")
        self.crop_mode = cfg.get("crop_mode") or "center"
        if self.crop_mode not in ("center", "squash", "border"):
            raise ValueError(f"crop_mode must be 'center', 'squash' or 'border', got {self.crop_mode!r}")

    @classmethod
    def from_pretrained(cls, path_or_dir, **overrides):
        """Reads a timm config.json ({"architecture", "pretrained_cfg"}) from a directory or file."""
        resolve = overrides.pop("resolve", None)
        config = _read_json(_find_file(path_or_dir, "config.json", resolve))
        if "pretrained_cfg" not in config:
            raise ValueError(f"{path_or_dir}: config.json has no 'pretrained_cfg' (not a timm model config)")
        return cls(config["pretrained_cfg"], **overrides)

    def _with(self, **overrides):
        use_test = overrides.pop("use_test_size", self.use_test_size)
        return TimmImageProcessor(self.pretrained_cfg, use_test_size=use_test, **overrides)

    @staticmethod
    def _keep_ratio_size(h, w, target, longest):
        # timm ResizeKeepRatio.get_params without the random parts.
        ratio_h, ratio_w = h / target[0], w / target[1]
        ratio = max(ratio_h, ratio_w) * longest + min(ratio_h, ratio_w) * (1.0 - longest)
        return round(h * 1.0 / ratio), round(w * 1.0 / ratio)

    def _plan(self, h, w):
        img = self.input_size[1:]
        scale = tuple(math.floor(x / self.crop_pct) for x in img)
        if self.crop_mode == "squash":
            size = scale
        elif self.crop_mode == "border":
            size = self._keep_ratio_size(h, w, scale, 1.0)
        elif scale[0] == scale[1]:
            size = _shortest_edge_size(h, w, scale[0])
        else:
            size = self._keep_ratio_size(h, w, scale, 0.0)
        return size, [tuple(img)]

    def _filter(self) -> int:
        # The non-square "center" path goes through ResizeKeepRatio(scale_size), whose
        # interpolation defaults to bilinear: timm does not pass the configured one there.
        img = self.input_size[1:]
        scale = tuple(math.floor(x / self.crop_pct) for x in img)
        if self.crop_mode == "center" and scale[0] != scale[1]:
            return BILINEAR
        return _TIMM_INTERPOLATION[self.interpolation]

    def _recipe(self):
        r = dict(resample=self._filter(), crop_convention=CROP_ROUND, rescale_mode=RESCALE_DIV_F32,
                 rescale=255.0, mean=[float(m) for m in self.mean], std=[float(s) for s in self.std])
        if self.crop_mode == "border":
            r["pad_value"] = [round(255 * v) for v in self.mean]
        return r

    def __repr__(self):
        return (f"TimmImageProcessor(input_size={self.input_size}, interpolation={self.interpolation!r}, "
                f"crop_pct={self.crop_pct}, crop_mode={self.crop_mode!r}, mean={self.mean}, std={self.std})")


# ----------------------------------------------------------------------------------------------
# Auto


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(d).__name__}")
    return d


def _find_file(path_or_dir, filename: str, resolve=None, required: bool = True) -> str | None:
    """A local directory's `filename`, a local file itself, or the hub resolver's answer."""
    p = pathlib.Path(os.fspath(path_or_dir))
    if p.is_dir():
        f = p / filename
        if f.is_file():
            return str(f)
        if required:
            raise FileNotFoundError(f"{p} has no {filename}")
        return None
    if p.is_file():
        return str(p)
    resolve = resolve or _hub_resolver
    if resolve is None:
        raise FileNotFoundError(
            f"{str(path_or_dir)!r} is not a local file or directory. To load a Hub repo id, pass "
            "resolve=fn(repo_id, filename) -> local path, or install one with set_hub_resolver(fn)"
        )
    try:
        return resolve(str(path_or_dir), filename)
    except FileNotFoundError:
        if required:
            raise
        return None


_BY_TYPE = {
    "ViTImageProcessor": ViTImageProcessor,
    "ViTFeatureExtractor": ViTImageProcessor,
    "MobileViTImageProcessor": MobileViTImageProcessor,
    "MobileViTFeatureExtractor": MobileViTImageProcessor,
    "ConvNextImageProcessor": ConvNextImageProcessor,
    "ConvNextFeatureExtractor": ConvNextImageProcessor,
}
_BY_MODEL_TYPE = {
    "vit": ViTImageProcessor,
    "mobilevit": MobileViTImageProcessor,
    "mobilevitv2": MobileViTImageProcessor,
    "convnext": ConvNextImageProcessor,
    "convnextv2": ConvNextImageProcessor,
}


def _class_for_type(name: str):
    base = name
    for suffix in ("Fast", "Pil"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    cls = _BY_TYPE.get(base) or _BY_TYPE.get(base.replace("FeatureExtractor", "ImageProcessor"))
    if cls is None:
        raise NotImplementedError(f"image processor type {name!r} is not supported (supported: {sorted(_BY_TYPE)})")
    return cls


def _is_timm_config(d: dict) -> bool:
    return "architecture" in d and isinstance(d.get("pretrained_cfg"), dict)


class AutoImageProcessor:
    """Chooses the processor for a local model directory (or a config file)."""

    @staticmethod
    def from_pretrained(path_or_dir, **overrides):
        """Order, as transformers: preprocessor_config.json's image_processor_type, else its
        feature_extractor_type, else config.json's model_type; a timm config.json
        ("architecture" + "pretrained_cfg") gives a TimmImageProcessor. A file argument is read as
        the processor config (a config.json beside it supplies model_type). ``resolve=fn`` handles
        repo ids (see ``set_hub_resolver``); other keywords override configuration keys."""
        resolve = overrides.pop("resolve", None)
        p = pathlib.Path(os.fspath(path_or_dir))
        if p.is_file():
            pre_path = str(p)
            sibling = p.parent / "config.json"
            cfg_path = str(sibling) if sibling.is_file() and sibling != p else None
        else:
            pre_path = _find_file(path_or_dir, "preprocessor_config.json", resolve, required=False)
            cfg_path = _find_file(path_or_dir, "config.json", resolve, required=False)
        pre = _read_json(pre_path) if pre_path else None
        cfg = _read_json(cfg_path) if cfg_path else {}
        if pre is not None and _is_timm_config(pre):
            return TimmImageProcessor(pre["pretrained_cfg"], **overrides)
        if pre is not None:
            name = pre.get("image_processor_type") or pre.get("feature_extractor_type")
            if name:
                return _class_for_type(name).from_dict(pre, **overrides)
        if _is_timm_config(cfg):
            return TimmImageProcessor(cfg["pretrained_cfg"], **overrides)
        if pre is None:
            raise FileNotFoundError(f"{path_or_dir}: no preprocessor_config.json and no timm config.json")
        model_type = cfg.get("model_type") or pre.get("model_type")
        if model_type == "vision-encoder-decoder" and isinstance(cfg.get("encoder"), dict):
            model_type = cfg["encoder"].get("model_type")  # the image goes to the encoder
        cls = _BY_MODEL_TYPE.get(model_type)
        if cls is None:
            raise NotImplementedError(
                f"{path_or_dir}: cannot tell the image processor (no image_processor_type; model_type "
                f"{model_type!r} is not one of {sorted(_BY_MODEL_TYPE)})"
            )
        return cls.from_dict(pre, **overrides)


# ----------------------------------------------------------------------------------------------
# Building blocks, exposed for direct use


def resize(image: np.ndarray, size: Iterable[int], resample: int = BICUBIC, *, alpha: bool = False) -> np.ndarray:
    """Pillow-exact resize of a uint8 (H, W) or (H, W, C) image to ``size`` = (height, width).

    ``alpha=True`` treats the last channel of a 2- or 4-channel image as alpha, as Pillow does for
    its LA and RGBA modes (premultiplied resampling); otherwise channels are independent, as for
    RGB, L, RGBX or CMYK."""
    return _C.resize(image, tuple(size), _resample_id(resample), premultiplied_alpha=alpha,
                     horizontal_first=_HORIZONTAL_FIRST)


def center_crop(image: np.ndarray, size: Iterable[int], convention: str = "hf") -> np.ndarray:
    """Centre crop of a uint8 image to (height, width), zero-padded where the crop is larger.
    convention "hf": offset (L - n) // 2; "torchvision": int(round((L - n) / 2.0))."""
    conv = {"hf": CROP_FLOOR, "torchvision": CROP_ROUND}.get(convention)
    if conv is None:
        raise ValueError(f"convention must be 'hf' or 'torchvision', got {convention!r}")
    return _C.center_crop(image, tuple(size), conv)


__all__ = [
    "AutoImageProcessor", "BatchFeature", "ConvNextImageProcessor", "MobileViTImageProcessor", "TimmImageProcessor",
    "ViTImageProcessor", "center_crop", "load_image", "resize", "set_hub_resolver",
]
