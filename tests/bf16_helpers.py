"""visionc's bf16 mixed-precision arithmetic written in torch, for the references of the bf16 tests.

Each GEMM-shaped layer rounds its two GEMM operands to bf16 (nearest even), sums the exact
products in fp32 and adds an fp32 bias; backward does the same for both of its GEMMs (dout
rounded too); the bias gradient is the fp32 sum of the unrounded dout."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


def bf16_round(t):
    return t.bfloat16().float()


class BF16Linear(torch.autograd.Function):
    """x . w^T + b on bf16-rounded x, w (any leading dimensions of x)."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        y = bf16_round(x) @ bf16_round(w).T
        return y + b if b is not None else y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
        return bf16_round(g) @ bf16_round(w), bf16_round(g2).T @ bf16_round(x2), g2.sum(0) if ctx.has_bias else None


class BF16Conv2d(torch.autograd.Function):
    """conv2d on bf16-rounded x, w; dx and dw from bf16-rounded dout. (torch's conv may sum in
    another order than visionc's im2col GEMMs: the same values up to fp32 summation order.)"""

    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups):
        ctx.save_for_backward(x, w)
        ctx.conf = (stride, padding, dilation, groups)
        ctx.has_bias = b is not None
        return F.conv2d(bf16_round(x), bf16_round(w), b, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        gr = bf16_round(g)
        dx = torch.nn.grad.conv2d_input(x.shape, bf16_round(w), gr, stride, padding, dilation, groups)
        dw = torch.nn.grad.conv2d_weight(bf16_round(x), w.shape, gr, stride, padding, dilation, groups)
        return dx, dw, g.sum((0, 2, 3)) if ctx.has_bias else None, None, None, None, None


def emulate_bf16(model: torch.nn.Module, keep_fp32=lambda name, mod: False) -> torch.nn.Module:
    """Makes every nn.Linear and every nn.Conv2d that is a GEMM (not per-channel: groups ==
    in_channels > 1 stays fp32, as in visionc) run visionc's bf16 arithmetic, except the modules
    keep_fp32(name, module) names. Forwards are replaced in place: parameter names do not change."""
    for name, mod in model.named_modules():
        if keep_fp32(name, mod):
            continue
        if isinstance(mod, torch.nn.Linear):
            mod.forward = (lambda m: lambda x: BF16Linear.apply(x, m.weight, m.bias))(mod)
        elif isinstance(mod, torch.nn.Conv2d) and not (mod.groups > 1 and mod.groups == mod.in_channels):
            mod.forward = (lambda m: lambda x: BF16Conv2d.apply(x, m.weight, m.bias, m.stride, m.padding, m.dilation,
                                                                m.groups))(mod)
    return model


# ---- visionc side of the whole-model bf16 tests (ConvNeXt, MobileViT) ----

def step_grads(model_dir, precision: str, px, lab, ckpt: bool = False):
    """(loss, {name: grad}) of one visionc training step at `precision`."""
    import visionc
    model = visionc.AutoModelForImageClassification.from_pretrained(model_dir).train().set_precision(precision)
    if ckpt:
        model.gradient_checkpointing_enable()
    out = model(px, labels=lab)
    model.backward()
    return out.loss, {n: p.grad.copy() for n, p in model.named_parameters() if p.grad is not None}


@contextlib.contextmanager
def fallback_kernels():
    """Runs the block on the plain-C bf16 kernels (what CPUs without AVX512_BF16 get)."""
    import visionc
    visionc._C.bf16_set_native(False)
    try:
        yield
    finally:
        visionc._C.bf16_set_native(True)


def adamw_losses(model_dir, precision: str, batch, steps: int = 20, lr: float = 2e-3):
    """Per-step losses of `steps` AdamW steps (weight decay 0.05) on batch(step) -> (px, labels)."""
    import numpy as np

    import visionc
    model = visionc.AutoModelForImageClassification.from_pretrained(model_dir).train().set_precision(precision)
    opt = visionc.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    losses = []
    for step in range(steps):
        px, lab = batch(step)
        losses.append(model(px, labels=lab).loss)
        model.backward()
        opt.step()
        model.zero_grad()
    return np.array(losses)


def flat_rel(got: dict, want: dict) -> float:
    """||got - want|| / ||want|| over the flattened gradient vectors (float64)."""
    import numpy as np
    names = sorted(want)
    a = np.concatenate([got[n].ravel() for n in names]).astype(np.float64)
    b = np.concatenate([want[n].ravel() for n in names]).astype(np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
