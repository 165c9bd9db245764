"""Saliency maps of the bundled ViT-Ti/16 (ImageNet) on a sample photo, on CPU.

    python examples/saliency.py [image] [out.png]

A saliency map is the gradient of the top class's logit with respect to the input pixels,
max |d logit / d pixel| over the three colour channels (Simonyan et al., 2014): one
model.backward(grad_logits=onehot, input_grad=True) after an eval-mode forward with gradients
enabled. That raw gradient is speckled and, for this model and photo, peaks on a few patches of
the blurred background; SmoothGrad (Smilkov et al., 2017), the mean of the same map over noisy
copies of the image (32 here, noise 20% of the input range), shows where the class evidence
is: the eyes and the face.
The PNG (Pillow only, no matplotlib) shows, side by side: the photo as the model saw it
(224x224), the raw gradient map, the SmoothGrad map, and the SmoothGrad map over the photo.
Defaults: examples/images/chelsea.jpg -> saliency.png in the working directory.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

import visionc

HERE = Path(__file__).resolve().parent
# A black-red-yellow-white ramp (like matplotlib's "hot"): position, RGB.
_RAMP = np.array([[0.0, 0, 0, 0], [0.4, 200, 0, 0], [0.75, 255, 210, 0], [1.0, 255, 255, 255]])


def colorize(m: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 through the ramp."""
    rgb = [np.interp(m, _RAMP[:, 0], _RAMP[:, c]) for c in (1, 2, 3)]
    return np.stack(rgb, axis=-1).astype(np.uint8)


def input_gradient(model, px: np.ndarray, target: int) -> np.ndarray:
    """d logits[i, target] / d px[i] for every image i of the batch, shaped like px."""
    logits = model(px).logits
    onehot = np.zeros_like(logits)
    onehot[:, target] = 1.0
    return model.backward(grad_logits=onehot, input_grad=True)


def smoothgrad(model, px: np.ndarray, target: int, n: int = 32, sigma: float = 0.4, batch: int = 8,
               seed: int = 0) -> np.ndarray:
    """(H, W): the mean over n noisy copies of px[0] (Gaussian, std sigma in normalised units)
    of max |dx| over channels. Batches of `batch` bound the memory the kept forwards need."""
    rng = np.random.default_rng(seed)
    total = np.zeros(px.shape[2:], np.float64)
    for start in range(0, n, batch):
        k = min(batch, n - start)
        noisy = (px[:1] + sigma * rng.standard_normal((k, *px.shape[1:]))).astype(np.float32)
        total += np.abs(input_gradient(model, noisy, target)).max(axis=1).sum(axis=0)
    return (total / n).astype(np.float32)


def heatmap(sal: np.ndarray) -> np.ndarray:
    """(H, W) saliency -> (H, W) in [0, 1] for display. Gradients are speckled (every pixel on its
    own), so a light blur shows the regions; the 99th percentile is full scale, so a few extreme
    pixels do not wash out the rest."""
    level = Image.fromarray((np.clip(sal / np.percentile(sal, 99), 0, 1) * 255).astype(np.uint8))
    heat = np.asarray(level.filter(ImageFilter.GaussianBlur(2)), np.float32) / 255
    return heat / max(float(heat.max()), 1e-12)


def saliency_map(image_path, out_path, model_dir=None):
    """Writes the picture to out_path; returns (top class name, raw map, SmoothGrad map), each
    map (H, W) float32: max |d logit / d pixel| over channels."""
    model_dir = model_dir or visionc.hub.default_model_dir()
    model = visionc.AutoModelForImageClassification.from_pretrained(model_dir)
    processor = visionc.AutoImageProcessor.from_pretrained(model_dir)
    model.eval().set_grad_enabled(True)  # eval forwards keep what backward needs
    model.freeze()  # no parameter gradients: backward computes d / d pixels only and touches no weight
    px = processor(Image.open(image_path).convert("RGB"))["pixel_values"]  # (1, 3, 224, 224), normalised

    dx = input_gradient(model, px, target := int(model(px).logits[0].argmax()))
    raw = np.abs(dx[0]).max(axis=0)
    smooth = smoothgrad(model, px, target)

    # What the model saw: the processor's normalisation undone.
    mean = np.array(processor.image_mean, np.float32)[:, None, None]
    std = np.array(processor.image_std, np.float32)[:, None, None]
    seen = (np.clip(px[0] * std + mean, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    heat = heatmap(smooth)
    alpha = 0.75 * heat[..., None]
    overlay = (seen * (1 - alpha) + colorize(heat) * alpha).astype(np.uint8)
    gap = np.full((seen.shape[0], 4, 3), 255, np.uint8)  # white between the panels
    panels = np.concatenate([seen, gap, colorize(heatmap(raw)), gap, colorize(heat), gap, overlay], axis=1)
    Image.fromarray(panels).resize((panels.shape[1] * 2, panels.shape[0] * 2), Image.NEAREST).save(out_path)
    return model.config.id2label[target], raw, smooth


def main(argv):
    image = argv[1] if len(argv) > 1 else HERE / "images" / "chelsea.jpg"
    out = argv[2] if len(argv) > 2 else "saliency.png"
    label, raw, _ = saliency_map(image, out)
    print(f"top class: {label}; saliency maps ({raw.shape[0]}x{raw.shape[1]}: photo, raw gradient, SmoothGrad, "
          f"SmoothGrad over the photo) written to {out}")


if __name__ == "__main__":
    main(sys.argv)
