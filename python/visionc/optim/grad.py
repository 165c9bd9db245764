"""Gradient utilities: global norm, clipping by norm, finiteness; the work runs in C
(csrc/train/optim_grad.c), over all gradients at once, with the GIL released.

ref: torch.nn.utils.clip_grad_norm_ (torch 2.13): the total norm is the norm of all gradient
elements as one vector; gradients are multiplied by min(max_norm / (total_norm + 1e-6), 1).
Differences: the norm is accumulated in double (torch: float32 per tensor) and returned as a
Python float; the coefficient is computed in double and applied in float32.
"""
from __future__ import annotations

import math

import numpy as np

from .._native import _C

__all__ = ["clip_grad_norm", "grad_norm", "grads_finite"]


def _grads(parameters) -> list[np.ndarray]:
    params = [parameters] if isinstance(parameters, np.ndarray) else list(parameters)
    return [g for g in (getattr(p, "grad", None) for p in params) if g is not None]


def _norm_type(norm_type) -> float:
    p = float(norm_type)
    if not (p > 0):
        raise ValueError(f"norm_type must be positive or inf, got {norm_type!r}")
    return p


def grad_norm(parameters, norm_type: float = 2.0) -> float:
    """The norm_type-norm of all gradients (parameters' .grad, None skipped) as one vector."""
    p = _norm_type(norm_type)
    grads = _grads(parameters)
    return _C.optim_grad_norm(grads, p) if grads else 0.0


def clip_grad_norm(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Scales the gradients in place so that their total norm is at most max_norm; returns the
    total norm before clipping (torch.nn.utils.clip_grad_norm_).

    With a NaN or infinite total norm: RuntimeError if error_if_nonfinite, otherwise the
    gradients are multiplied by the resulting NaN / 0 coefficient, as torch does."""
    max_norm = float(max_norm)
    if not (max_norm >= 0):
        raise ValueError(f"max_norm must be >= 0, got {max_norm!r}")
    p = _norm_type(norm_type)
    grads = _grads(parameters)
    if not grads:
        return 0.0
    total = _C.optim_grad_norm(grads, p)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {p} for gradients from `parameters` is non-finite, so it "
                           "cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    coef = max_norm / (total + 1e-6)
    if math.isnan(coef) or coef < 1.0:  # clamped to 1 (NaN stays NaN, as torch.clamp)
        _C.optim_grad_scale_(grads, coef)
    return total


def grads_finite(parameters) -> bool:
    """True when no gradient element is NaN or infinite (e.g. to skip a step after an overflow)."""
    grads = _grads(parameters)
    return _C.optim_all_finite(grads) if grads else True
