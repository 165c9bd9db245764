"""Gradient accumulation: one optimizer step per `steps` micro-batches.

The effective batch is `steps` micro-batches. Each micro-batch's loss is scaled by
1/steps (``acc.loss_scale``) and its gradients are *added* to ``p.grad``; ``acc.step()`` is
True on every `steps`-th micro-batch, when the optimizer should step and gradients be reset:

    acc = GradientAccumulator(4)
    for batch in batches:
        grads = loss_and_grads(model, batch, scale=acc.loss_scale)  # d(loss / 4)/dp
        for p, g in zip(params, grads):
            accumulate_grad(p, g)           # or a backward pass that adds into p.grad
        if acc.step():
            clip_grad_norm(params, 1.0)
            opt.step(); schedule.step(); opt.zero_grad()

This sums gradients exactly as PyTorch's autograd does for ``(loss / steps).backward()`` on
each micro-batch (first gradient stored, later ones added in float32). Micro-batches left
over at the end (``acc.pending`` > 0) are a partial batch: step on them or drop them.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["GradientAccumulator", "accumulate_grad"]


class GradientAccumulator:
    """Counts micro-batches; step() -> True when an optimizer step is due."""

    def __init__(self, steps: int):
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        self.steps = int(steps)
        self.pending = 0        # micro-batches accumulated since the last optimizer step
        self.num_updates = 0    # optimizer steps signalled so far

    @property
    def loss_scale(self) -> float:
        """Multiply each micro-batch's loss (or its gradients) by this: 1 / steps."""
        return 1.0 / self.steps

    def step(self) -> bool:
        """Records one micro-batch; True when it completes an accumulation window."""
        self.pending += 1
        if self.pending < self.steps:
            return False
        self.pending = 0
        self.num_updates += 1
        return True

    def state_dict(self) -> dict:
        return {"steps": self.steps, "pending": self.pending, "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        if state["steps"] != self.steps:
            raise ValueError(f"state is for {state['steps']} accumulation steps, this accumulator has {self.steps}")
        self.pending, self.num_updates = int(state["pending"]), int(state["num_updates"])


def accumulate_grad(param, grad: np.ndarray, scale: float = 1.0) -> None:
    """param.grad += scale * grad (param.grad = a new float32 array when it is None)."""
    g = np.asarray(grad)
    if g.shape != param.shape:
        raise ValueError(f"gradient shape {g.shape} does not match the parameter's {param.shape}")
    if g.dtype != np.float32:
        raise TypeError(f"gradient must be float32, got {g.dtype}")
    add = g * np.float32(scale) if scale != 1.0 else g
    if param.grad is None:
        param.grad = np.array(add, dtype=np.float32, order="C", copy=True)
    else:
        param.grad += add
